//! Events: what happened to a popup, the script that records one at most once and counts impressions
//! toward the caps, and the pipeline of one event (the script and the stream append).

use alloc::string::ToString;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use super::keys::KeySpace;
use super::{exact, parse_int, Command, Reply, StoreError};
use crate::ids::Timestamp;
use crate::stream::Record;
use crate::token::VerifiedToken;

/// What happened to a popup the customer was offered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Impression,
    Click,
    Dismiss,
    /// Posted by the bank's backend with the impression token: the customer did what the popup asked.
    Conversion,
    /// Recorded by the resolver: the customer was held out of the campaign by its control variant.
    Holdout,
}

impl EventKind {
    pub const ALL: [EventKind; 5] = [
        EventKind::Impression,
        EventKind::Click,
        EventKind::Dismiss,
        EventKind::Conversion,
        EventKind::Holdout,
    ];

    /// What the app posts to `/v1/campaigns/{id}/{kind}`; the others come from the bank or the resolver.
    pub const FROM_APP: [EventKind; 3] = [EventKind::Impression, EventKind::Click, EventKind::Dismiss];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Impression => "impression",
            EventKind::Click => "click",
            EventKind::Dismiss => "dismiss",
            EventKind::Conversion => "conversion",
            EventKind::Holdout => "holdout",
        }
    }

    pub fn parse(raw: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == raw)
    }

    /// A kind the app may post, from its path segment.
    pub fn parse_from_app(raw: &str) -> Option<EventKind> {
        EventKind::FROM_APP.into_iter().find(|k| k.as_str() == raw)
    }
}

/// An event whose impression token was verified: who, which campaign and variant all come from the token.
#[derive(Clone, Copy, Debug)]
pub struct Event<'a> {
    pub kind: EventKind,
    pub token: &'a VerifiedToken,
    /// How long to remember the event so a retry is a no-op: at least as long as the token is accepted
    /// ([`crate::token::Verifier::dedupe_ttl_seconds`]).
    pub dedupe_ttl_seconds: i64,
    pub now: Timestamp,
}

/// Records an event at most once per (token, kind), and counts impressions toward the caps, atomically.
/// KEYS: user hash, user day hash, event marker. ARGV: kind, campaign id, now, day TTL, marker TTL.
pub const EVENT_SCRIPT: &str = "\
if not redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[5]) then return 0 end
if ARGV[1] == 'impression' then
  redis.call('HINCRBY', KEYS[1], 'n:' .. ARGV[2], 1)
  redis.call('HSET', KEYS[1], 't:' .. ARGV[2], ARGV[3])
  redis.call('HINCRBY', KEYS[2], 'n:' .. ARGV[2], 1)
  redis.call('HINCRBY', KEYS[2], 'all', 1)
  redis.call('EXPIRE', KEYS[2], ARGV[4])
end
return 1";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventOutcome {
    Recorded,
    /// The same event was recorded before: nothing changed.
    Duplicate,
}

/// The pipeline of one event.
#[derive(Clone, Debug)]
pub struct EventPlan {
    commands: [Command; 2],
}

impl EventPlan {
    /// The stream entry is appended even for a retry (the script's verdict is not known when the pipeline is
    /// sent); it carries the event id, and ingest stores each id once (see [`crate::stream`]).
    pub fn new(keys: &KeySpace, event: &Event<'_>) -> EventPlan {
        let claims = &event.token.claims;
        let user = &claims.user;
        let campaign = claims.campaign.to_string();
        let now = event.now.seconds().to_string();
        let script = Command::new([
            "EVAL",
            EVENT_SCRIPT,
            "3",
            &keys.user(user),
            &keys.user_day(user, keys.day(event.now)),
            &keys.event_marker(user, &event.token.id, event.kind),
            event.kind.as_str(),
            &campaign,
            &now,
            &keys.day_ttl(event.now).to_string(),
            &event.dedupe_ttl_seconds.max(1).to_string(),
        ]);
        let append = Record::of_event(event).append(keys);
        EventPlan { commands: [script, append] }
    }

    pub fn commands(&self) -> &[Command] {
        &self.commands
    }

    pub fn read(&self, replies: Vec<Reply>) -> Result<EventOutcome, StoreError> {
        let [script, append] = exact::<2>(replies)?;
        if let Reply::Error(message) = append {
            return Err(StoreError::Redis { command: "XADD", message });
        }
        match parse_int(&script, "EVAL event")? {
            1 => Ok(EventOutcome::Recorded),
            0 => Ok(EventOutcome::Duplicate),
            _ => Err(StoreError::UnexpectedReply("EVAL event")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{CampaignId, UserId};

    fn bulk(text: &str) -> Reply {
        Reply::Bulk(text.as_bytes().to_vec())
    }

    fn error(message: &str) -> Reply {
        Reply::Error(message.into())
    }

    fn event_plan() -> EventPlan {
        let secret = [7u8; crate::token::MIN_SECRET_LEN];
        let claims = crate::token::TokenClaims {
            user: UserId::parse("u").unwrap(),
            campaign: CampaignId(3),
            variant: "default".into(),
            issued_at: Timestamp(1000),
            nonce: 1,
        };
        let token = crate::token::issue(&secret, &claims).unwrap();
        let secrets: &[&[u8]] = &[&secret];
        let token =
            crate::token::Verifier::new(secrets, 3600, 60).unwrap().verify(&token, Timestamp(1000)).unwrap();
        let keys = KeySpace::new("p", 0).unwrap();
        EventPlan::new(
            &keys,
            &Event {
                kind: EventKind::Impression,
                token: &token,
                dedupe_ttl_seconds: 3600,
                now: Timestamp(1000),
            },
        )
    }

    #[test]
    fn an_event_reads_its_verdict_and_reports_what_went_wrong() {
        let plan = event_plan();
        let stream_id = bulk("1767225600000-0");
        let read = |script: Reply, append: Reply| plan.read(alloc::vec![script, append]);
        assert_eq!(read(Reply::Int(1), stream_id.clone()), Ok(EventOutcome::Recorded));
        assert_eq!(read(Reply::Int(0), stream_id.clone()), Ok(EventOutcome::Duplicate));
        assert_eq!(read(bulk("1"), stream_id.clone()), Ok(EventOutcome::Recorded));
        let unexpected = Err(StoreError::UnexpectedReply("EVAL event"));
        for script in [Reply::Int(2), Reply::Int(-1), Reply::Nil, bulk("yes"), Reply::Array(alloc::vec![])] {
            assert_eq!(read(script.clone(), stream_id.clone()), unexpected, "{script:?}");
        }
        assert_eq!(
            read(error("NOSCRIPT"), stream_id.clone()),
            Err(StoreError::Redis { command: "EVAL event", message: "NOSCRIPT".into() })
        );
        // A failed append is reported even when the script counted the impression: ingest would miss it.
        assert_eq!(
            read(Reply::Int(1), error("OOM")),
            Err(StoreError::Redis { command: "XADD", message: "OOM".into() })
        );
        for count in [0, 1, 3] {
            assert_eq!(
                plan.read(alloc::vec![Reply::Int(1); count]),
                Err(StoreError::ReplyCount { expected: 2, got: count })
            );
        }
    }
}

//! The commands the gateway runs: exactly those the edge sends (see `popup_core::store`), on the keys of
//! one deployment. Everything else is refused before anything reaches Redis, so a leaked edge token can
//! read catalogs and user hashes and record events, but cannot flush, scan, read admin or other
//! deployments' keys, run arbitrary scripts, or trim the event stream.
//!
//! | command | allowed when |
//! |---|---|
//! | `PING [message]` | always |
//! | `GET key` | key is `P:{catalog}` or `P:{catalog}:version` |
//! | `HGETALL key` | key is a user hash `P:u:{uid}` or a user day hash `P:u:{uid}:d:<day>` |
//! | `EVAL script 3 k1 k2 k3 argv...` | script is [`EVENT_SCRIPT`] byte for byte, and the keys are one customer's hash, day hash and event marker, in that order |
//! | `XADD P:events * field value ...` | the id is `*`, no `MAXLEN`/`MINID`/`NOMKSTREAM` option (trimming would drop events not yet ingested), and fields come in pairs |
//!
//! Every request shares one multiplexed connection, so commands that change a connection's state
//! (`MULTI`, `WATCH`, `SELECT`, `CLIENT`, `SUBSCRIBE`, ...) must never pass: one request could change what
//! every later request runs against. `/multi-exec` wraps its commands in `MULTI`/`EXEC` itself.
//!
//! Command names are matched case-insensitively (the official clients send them in lower case). `EVALSHA`
//! is not allowed: the edge sends the script with `EVAL`, and one way in is easier to audit than two.

use popup_core::store::{Command, EventKind, KeyKind, KeySpace, EVENT_SCRIPT};

/// Why a command was refused. The message names the command, never its arguments, which may hold
/// customer ids.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("ERR command not allowed by the gateway: {name} ({reason})")]
pub struct Refusal {
    pub name: String,
    pub reason: &'static str,
}

/// The allow-list of one deployment's key space. Keys are told apart by the core
/// ([`KeySpace::classify`], the inverse of the layout in `popup_core::store::keys`); this list only decides
/// which kinds each command may touch.
#[derive(Clone, Debug)]
pub struct AllowList {
    keys: KeySpace,
}

impl AllowList {
    pub fn new(keys: &KeySpace) -> AllowList {
        AllowList { keys: keys.clone() }
    }

    pub fn check(&self, command: &Command) -> Result<(), Refusal> {
        let name = command.name().to_ascii_uppercase();
        let args = command.arguments();
        let verdict = match name.as_str() {
            "PING" if args.len() <= 1 => Ok(()),
            "PING" => Err("too many arguments"),
            "GET" => match args {
                [key] => match self.keys.classify(key) {
                    KeyKind::Catalog | KeyKind::CatalogVersion => Ok(()),
                    _ => Err("key outside the catalog keys"),
                },
                _ => Err("GET takes one key"),
            },
            "HGETALL" => match args {
                [key] => match self.keys.classify(key) {
                    KeyKind::User { .. } | KeyKind::UserDay { .. } => Ok(()),
                    _ => Err("key is not a user hash"),
                },
                _ => Err("HGETALL takes one key"),
            },
            "EVAL" => self.check_event_script(args),
            "XADD" => self.check_append(args),
            _ => Err("not on the allow-list"),
        };
        verdict.map_err(|reason| Refusal { name, reason })
    }

    fn check_event_script(&self, args: &[String]) -> Result<(), &'static str> {
        let [script, numkeys, user, day, marker, ..] = args else {
            return Err("EVAL needs the event script and its three keys");
        };
        if script != EVENT_SCRIPT {
            return Err("only the event script may run");
        }
        if numkeys != "3" {
            return Err("the event script takes three keys");
        }
        // One customer's keys, in the order the script uses them: anything else would let the script
        // count impressions or set markers in keys it was not written for. Only the events the app posts
        // come through here; conversions and holdouts are recorded by the origin itself.
        match (self.keys.classify(user), self.keys.classify(day), self.keys.classify(marker)) {
            (
                KeyKind::User { user: a },
                KeyKind::UserDay { user: b, .. },
                KeyKind::EventMarker { user: c, kind, .. },
            ) if a == b && b == c && EventKind::FROM_APP.contains(&kind) => Ok(()),
            _ => Err("the event script's keys must be one customer's hash, day hash and event marker"),
        }
    }

    fn check_append(&self, args: &[String]) -> Result<(), &'static str> {
        match args {
            [stream, ..] if self.keys.classify(stream) != KeyKind::Events => {
                Err("only the events stream takes appends")
            }
            [_, id, fields @ ..] if id == "*" && !fields.is_empty() && fields.len() % 2 == 0 => Ok(()),
            _ => Err("XADD takes the id * and field/value pairs, without options"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(parts: &[&str]) -> Command {
        Command(parts.iter().map(|p| p.to_string()).collect())
    }

    #[test]
    fn only_the_edges_commands_on_its_keys_pass() {
        let list = AllowList::new(&KeySpace::new("p", 0).unwrap());
        let s = EVENT_SCRIPT;
        let marker = "p:u:{u1}:e:tok-1:impression";
        let allowed: &[&[&str]] = &[
            &["PING"],
            &["ping", "hello"],
            &["GET", "p:{catalog}"],
            &["get", "p:{catalog}:version"],
            &["HGETALL", "p:u:{u1}"],
            &["hgetall", "p:u:{user.name@bank:7}"],
            &["HGETALL", "p:u:{u1}:d:20454"],
            &["HGETALL", "p:u:{u1}:d:-3"],
            &["EVAL", s, "3", "p:u:{u1}", "p:u:{u1}:d:20454", marker, "impression", "7", "1", "2", "3"],
            &["eval", s, "3", "p:u:{u1}", "p:u:{u1}:d:1", "p:u:{u1}:e:t:click"],
            &["XADD", "p:events", "*", "id", "t:impression"],
            &["xadd", "p:events", "*", "id", "x", "kind", "click", "user", "u1"],
        ];
        for parts in allowed {
            assert_eq!(list.check(&command(parts)), Ok(()), "{parts:?}");
        }
        let refused: &[(&[&str], &str)] = &[
            (&["FLUSHALL"], "FLUSHALL"),
            (&["flushdb", "async"], "FLUSHDB"),
            (&["KEYS", "*"], "KEYS"),
            (&["SCAN", "0"], "SCAN"),
            (&["SET", "p:{catalog}", "x"], "SET"),
            (&["DEL", "p:{catalog}"], "DEL"),
            (&["EVALSHA", "0123", "3", "p:u:{u}", "p:u:{u}:d:1", "p:u:{u}:e:t:click"], "EVALSHA"),
            (&["CONFIG", "GET", "*"], "CONFIG"),
            (&[""], ""),
            (&["PING", "a", "b"], "PING"),
            (&["GET", "other"], "GET"),
            (&["GET", "p:segment:1:loaded"], "GET"),
            (&["GET", "q:{catalog}"], "GET"),
            (&["GET", "p:{catalog}", "p:{catalog}:version"], "GET"),
            (&["GET"], "GET"),
            (&["HGETALL", "p:{catalog}"], "HGETALL"),
            (&["HGETALL", "p:{catalog}:ready"], "HGETALL"),
            (&["GET", "p:{catalog}:ready"], "GET"),
            (&["XADD", "p:{catalog}", "*", "a", "b"], "XADD"),
            (&["HGETALL", "p:u:{u1}:e:t:impression"], "HGETALL"),
            (&["HGETALL", "p:u:{u1}:d:007"], "HGETALL"),
            (&["HGETALL", "p:u:{u1}:d:"], "HGETALL"),
            (&["HGETALL", "p:u:{u1}x"], "HGETALL"),
            (&["HGETALL", "p:u:{}"], "HGETALL"),
            (&["HGETALL", "p:u:{u 1}"], "HGETALL"),
            (&["HGETALL", "p:u:{u1"], "HGETALL"),
            (&["HGETALL", "q:u:{u1}"], "HGETALL"),
            (&["HGETALL", "p:u:{u1}", "p:u:{u2}"], "HGETALL"),
            (&["EVAL", "return 1", "3", "p:u:{u}", "p:u:{u}:d:1", "p:u:{u}:e:t:click"], "EVAL"),
            (&["EVAL", &format!("{s} "), "3", "p:u:{u}", "p:u:{u}:d:1", "p:u:{u}:e:t:click"], "EVAL"),
            (&["EVAL", s, "2", "p:u:{u}", "p:u:{u}:d:1", "p:u:{u}:e:t:click"], "EVAL"),
            (&["EVAL", s, "03", "p:u:{u}", "p:u:{u}:d:1", "p:u:{u}:e:t:click"], "EVAL"),
            (&["EVAL", s, "3", "p:u:{u}", "p:u:{u}:d:1"], "EVAL"),
            (&["EVAL", s, "3", "p:u:{u}", "p:u:{v}:d:1", "p:u:{u}:e:t:click"], "EVAL"),
            (&["EVAL", s, "3", "p:u:{u}:d:1", "p:u:{u}", "p:u:{u}:e:t:click"], "EVAL"),
            (&["EVAL", s, "3", "p:u:{u}", "p:u:{u}:d:1", "p:{catalog}"], "EVAL"),
            (&["EVAL", s, "3", "p:u:{u}", "p:u:{u}:d:1", "p:u:{u}:e:t:open"], "EVAL"),
            (&["EVAL", s, "3", "p:u:{u}", "p:u:{u}:d:1", "p:u:{u}:e::click"], "EVAL"),
            // Conversions and holdouts are recorded by the origin, never through the gateway.
            (&["EVAL", s, "3", "p:u:{u}", "p:u:{u}:d:1", "p:u:{u}:e:t:conversion"], "EVAL"),
            (&["EVAL", s, "3", "p:u:{u}", "p:u:{u}:d:1", "p:u:{u}:e:t:holdout"], "EVAL"),
            (&["XADD", "other", "*", "a", "b"], "XADD"),
            (&["XADD", "p:events", "MAXLEN", "0", "*", "a", "b"], "XADD"),
            (&["XADD", "p:events", "NOMKSTREAM", "*", "a", "b"], "XADD"),
            (&["XADD", "p:events", "1-1", "a", "b"], "XADD"),
            (&["XADD", "p:events", "*", "a"], "XADD"),
            (&["XADD", "p:events", "*"], "XADD"),
        ];
        for (parts, name) in refused {
            let refusal = list.check(&command(parts)).expect_err(&format!("{parts:?} passed"));
            assert_eq!(refusal.name, *name, "{parts:?}");
            assert!(
                refusal.to_string().starts_with(&format!("ERR command not allowed by the gateway: {name}")),
                "{refusal}"
            );
        }
    }

    #[test]
    fn the_core_plans_pass_as_the_edge_sends_them() {
        use popup_core::ids::{Timestamp, UserId};
        use popup_core::store::ResolvePlan;
        let keys = KeySpace::new("popup", 7 * 3600).unwrap();
        let list = AllowList::new(&keys);
        let user = UserId::parse("cust-42").unwrap();
        for cached in [None, Some(3)] {
            for command in ResolvePlan::new(&keys, &user, Timestamp(1_767_225_600), cached).commands() {
                assert_eq!(list.check(command), Ok(()), "{command:?}");
            }
        }
        // The event plan, from a real token, for each kind of event.
        let secret = [7u8; popup_core::token::MIN_SECRET_LEN];
        let claims = popup_core::token::TokenClaims {
            user: user.clone(),
            campaign: popup_core::ids::CampaignId(3),
            variant: "default".into(),
            issued_at: Timestamp(1_767_225_600),
            nonce: 1,
        };
        let token = popup_core::token::issue(&secret, &claims).unwrap();
        let secrets: &[&[u8]] = &[&secret];
        let verifier = popup_core::token::Verifier::new(secrets, 3600, 60).unwrap();
        let token = verifier.verify(&token, Timestamp(1_767_225_600)).unwrap();
        for kind in [EventKind::Impression, EventKind::Click, EventKind::Dismiss] {
            let event = popup_core::store::Event {
                kind,
                token: &token,
                dedupe_ttl_seconds: 3600,
                now: Timestamp(1_767_225_700),
            };
            for command in popup_core::store::EventPlan::new(&keys, &event).commands() {
                assert_eq!(list.check(command), Ok(()), "{command:?}");
            }
        }
    }
}

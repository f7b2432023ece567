//! The events stream `P:events`: the layout of its entries, appended by the edge and the origin and read back
//! by ingest.
//!
//! Each entry is one [`Record`], as field/value pairs:
//!
//! | field | holds |
//! |---|---|
//! | `id` | the dedupe key: every copy of one event carries the same id, and ingest stores each id once |
//! | `kind` | [`EventKind`] |
//! | `user`, `campaign`, `variant` | who saw which popup; for app events and conversions they come from the verified token |
//! | `at` | when it happened, unix seconds |
//! | `served` | when the popup was served (the token's issue time), unix seconds |
//!
//! Copies of one event exist because the event pipeline appends even when the event script says it is a
//! retry (the verdict is not known when the pipeline is sent), and a retry has a later `at`. `served` is the
//! same in every copy, which is why the table is partitioned by it: all copies of an event land in one
//! partition, where the id's uniqueness can be enforced.
//!
//! Holdout exposures are recorded by the resolver itself, since a held-out customer is shown nothing and
//! posts nothing: one record per customer, campaign and day (`served` is the day's start, the id names the
//! day), so they count users, the same unit as the other variants' unique users. A held-out customer's
//! conversion is keyed the same way ([`Record::control_conversion`]).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::ids::{CampaignId, Timestamp, UserId};
use crate::store::{Command, Event, EventKind, KeySpace};

/// One entry of the events stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub id: String,
    pub kind: EventKind,
    pub user: UserId,
    pub campaign: CampaignId,
    pub variant: String,
    pub at: Timestamp,
    pub served: Timestamp,
}

/// Why a stream entry could not be read as a [`Record`]. Such an entry was not written by this code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("stream entry field {field}: {problem}")]
pub struct RecordError {
    pub field: &'static str,
    pub problem: &'static str,
}

impl Record {
    /// The record of an event whose token was verified.
    pub fn of_event(event: &Event<'_>) -> Record {
        let claims = &event.token.claims;
        Record {
            id: format!("{}:{}", event.token.id, event.kind.as_str()),
            kind: event.kind,
            user: claims.user.clone(),
            campaign: claims.campaign,
            variant: claims.variant.clone(),
            at: event.now,
            served: claims.issued_at,
        }
    }

    /// The record that `user` was held out of `campaign` (in its control `variant`) on `now`'s day.
    pub fn holdout(
        keys: &KeySpace,
        user: &UserId,
        campaign: CampaignId,
        variant: &str,
        now: Timestamp,
    ) -> Record {
        Record::daily(keys, EventKind::Holdout, "h", user, campaign, variant, now)
    }

    /// The record that `user`, held out of `campaign` by its control `variant`, converted on `now`'s day.
    /// Such a customer never got a token, so the bank names the customer and the campaign instead; one is
    /// stored per customer, campaign and day, like their holdout exposure.
    pub fn control_conversion(
        keys: &KeySpace,
        user: &UserId,
        campaign: CampaignId,
        variant: &str,
        now: Timestamp,
    ) -> Record {
        Record::daily(keys, EventKind::Conversion, "c", user, campaign, variant, now)
    }

    /// A record without a token, kept once per customer, campaign and day: its id names the day (after
    /// `tag`, which keeps kinds apart), and `served` is the day's start, the same for every copy.
    fn daily(
        keys: &KeySpace,
        kind: EventKind,
        tag: &str,
        user: &UserId,
        campaign: CampaignId,
        variant: &str,
        now: Timestamp,
    ) -> Record {
        let day = keys.day(now);
        Record {
            id: format!("{tag}:{day}:{campaign}:{user}"),
            kind,
            user: user.clone(),
            campaign,
            variant: variant.into(),
            at: now,
            served: keys.day_start(day),
        }
    }

    /// `XADD P:events * field value ...`. Never trimmed here: entries leave the stream once ingest stored
    /// them.
    pub fn append(&self, keys: &KeySpace) -> Command {
        Command(
            [
                "XADD",
                &keys.events(),
                "*",
                "id",
                &self.id,
                "kind",
                self.kind.as_str(),
                "user",
                self.user.as_str(),
                "campaign",
                &self.campaign.to_string(),
                "variant",
                &self.variant,
                "at",
                &self.at.seconds().to_string(),
                "served",
                &self.served.seconds().to_string(),
            ]
            .iter()
            .map(|part| part.to_string())
            .collect(),
        )
    }

    /// Reads an entry's field/value pairs. Unknown fields are ignored, so a newer writer can add some.
    pub fn parse<'a>(fields: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Record, RecordError> {
        let (mut id, mut kind, mut user, mut campaign, mut variant, mut at, mut served) =
            (None, None, None, None, None, None, None);
        for (field, value) in fields {
            match field {
                "id" => id = Some(value),
                "kind" => kind = Some(value),
                "user" => user = Some(value),
                "campaign" => campaign = Some(value),
                "variant" => variant = Some(value),
                "at" => at = Some(value),
                "served" => served = Some(value),
                _ => {}
            }
        }
        let missing = |field| RecordError { field, problem: "is missing" };
        let id = id.filter(|id| !id.is_empty()).ok_or(missing("id"))?;
        let kind = EventKind::parse(kind.ok_or(missing("kind"))?)
            .ok_or(RecordError { field: "kind", problem: "is not a known event kind" })?;
        let user = UserId::parse(user.ok_or(missing("user"))?)
            .map_err(|_| RecordError { field: "user", problem: "is not a valid user id" })?;
        let number = |field, value: Option<&str>| {
            value
                .ok_or(missing(field))?
                .parse::<i64>()
                .map_err(|_| RecordError { field, problem: "is not a number" })
        };
        let campaign = campaign
            .ok_or(missing("campaign"))?
            .parse()
            .map_err(|_| RecordError { field: "campaign", problem: "is not a campaign id" })?;
        let at = Timestamp(number("at", at)?);
        // Entries written before `served` existed fall back to `at`.
        let served = match served {
            Some(_) => Timestamp(number("served", served)?),
            None => at,
        };
        Ok(Record {
            id: id.into(),
            kind,
            user,
            campaign: CampaignId(campaign),
            variant: variant.unwrap_or_default().into(),
            at,
            served,
        })
    }
}

/// The appends recording a resolve's holdouts: one per campaign the customer was held out of.
pub fn holdout_appends(
    keys: &KeySpace,
    user: &UserId,
    holdouts: &[(CampaignId, &str)],
    now: Timestamp,
) -> Vec<Command> {
    holdouts
        .iter()
        .map(|(campaign, variant)| Record::holdout(keys, user, *campaign, variant, now).append(keys))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(command: &Command) -> Vec<(&str, &str)> {
        command.arguments()[2..].chunks(2).map(|pair| (pair[0].as_str(), pair[1].as_str())).collect()
    }

    #[test]
    fn records_read_back_as_written() {
        let keys = KeySpace::new("p", 7 * 3600).unwrap();
        let user = UserId::parse("cust-1").unwrap();
        let now = Timestamp(1_767_225_600 + 3600);
        let record = Record::holdout(&keys, &user, CampaignId(9), "control", now);
        let append = record.append(&keys);
        assert_eq!(append.name(), "XADD");
        assert_eq!(append.arguments()[..2], ["p:events", "*"]);
        assert_eq!(Record::parse(pairs(&append)), Ok(record.clone()));
        // Two resolves on one local day make one holdout record; the next day makes another.
        let later = Record::holdout(&keys, &user, CampaignId(9), "control", now.plus(3600));
        assert_eq!((later.id.as_str(), later.served), (record.id.as_str(), record.served));
        let tomorrow = Record::holdout(&keys, &user, CampaignId(9), "control", now.plus(86_400));
        assert_ne!(tomorrow.id, record.id);
        let converted = Record::control_conversion(&keys, &user, CampaignId(9), "control", now.plus(60));
        assert_eq!(Record::parse(pairs(&converted.append(&keys))), Ok(converted.clone()));
        assert_eq!((converted.kind, converted.served), (EventKind::Conversion, record.served));
        assert_ne!(converted.id, record.id, "a conversion is not the exposure");
        let again = Record::control_conversion(&keys, &user, CampaignId(9), "control", now.plus(7200));
        assert_eq!(again.id, converted.id, "one per customer, campaign and day");
        assert_eq!(keys.day(record.served), keys.day(now), "served is the start of the local day");
        assert_eq!(keys.day(Timestamp(record.served.seconds() - 1)), keys.day(now) - 1);
    }

    #[test]
    fn malformed_entries_name_the_field() {
        let good = [
            ("id", "x:click"),
            ("kind", "click"),
            ("user", "u"),
            ("campaign", "3"),
            ("variant", "a"),
            ("at", "100"),
        ];
        let record = Record::parse(good).unwrap();
        assert_eq!(record.served, Timestamp(100), "an entry without `served` falls back to `at`");
        for (field, value) in
            [("kind", "purchase"), ("user", "a b"), ("campaign", "-1"), ("at", "soon"), ("id", "")]
        {
            let entry = good.map(|(f, v)| if f == field { (f, value) } else { (f, v) });
            assert_eq!(Record::parse(entry).unwrap_err().field, field, "{field}={value}");
        }
        let without_user = good.into_iter().filter(|(f, _)| *f != "user");
        assert_eq!(Record::parse(without_user), Err(RecordError { field: "user", problem: "is missing" }));
    }
}

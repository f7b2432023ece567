//! The events stream `P:events`: the layout of its entries, appended by the edge and the origin and read back
//! by ingest.
//!
//! Each entry is one [`Record`], in one field `r` whose value is its parts joined by `|`:
//! `kind|user|campaign|variant|at|served|id`.
//!
//! | part | holds |
//! |---|---|
//! | `kind` | [`EventKind`] |
//! | `user`, `campaign`, `variant` | who saw which popup; for app events and conversions they come from the verified token |
//! | `at` | when it happened, unix seconds |
//! | `served` | when the popup was served (the token's issue time), unix seconds |
//! | `id` | the dedupe key: every copy of one event carries the same id, and ingest stores each id once |
//!
//! None of the parts before the id can hold `|` (user ids and variant keys are checked, the others are
//! names and decimals), and the id comes last, so the split is unambiguous whatever the id holds. One field
//! instead of one per part is what a hundred thousand events a second cost least in: Redis stores, sends
//! and acknowledges two strings per entry instead of fourteen, and ingest decodes as few. Entries written
//! one field per part (`id`, `kind`, `user`, `campaign`, `variant`, `at`, `served`), as earlier versions
//! did, are still read.
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
use alloc::string::String;
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

    /// `XADD P:events * r <record>`. Never trimmed here: entries leave the stream once ingest stored them.
    pub fn append(&self, keys: &KeySpace) -> Command {
        let packed = format!(
            "{kind}{SEPARATOR}{user}{SEPARATOR}{campaign}{SEPARATOR}{variant}{SEPARATOR}{at}{SEPARATOR}{served}{SEPARATOR}{id}",
            kind = self.kind.as_str(),
            user = self.user.as_str(),
            campaign = self.campaign,
            variant = self.variant,
            at = self.at.seconds(),
            served = self.served.seconds(),
            id = self.id,
        );
        Command(alloc::vec!["XADD".into(), keys.events(), "*".into(), PACKED_FIELD.into(), packed])
    }

    /// Reads an entry's field/value pairs: the packed record, or (entries of earlier versions) one field per
    /// part. Unknown fields are ignored, so a newer writer can add some.
    pub fn parse<'a>(fields: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Record, RecordError> {
        let mut parts = Parts::default();
        for (field, value) in fields {
            match field {
                PACKED_FIELD => return Record::unpack(value),
                "id" => parts.id = Some(value),
                "kind" => parts.kind = Some(value),
                "user" => parts.user = Some(value),
                "campaign" => parts.campaign = Some(value),
                "variant" => parts.variant = Some(value),
                "at" => parts.at = Some(value),
                "served" => parts.served = Some(value),
                _ => {}
            }
        }
        parts.record()
    }

    /// Reads the packed record `kind|user|campaign|variant|at|served|id`.
    fn unpack(packed: &str) -> Result<Record, RecordError> {
        let mut split = packed.splitn(7, SEPARATOR);
        let mut next = || split.next();
        let parts = Parts {
            kind: next(),
            user: next(),
            campaign: next(),
            variant: next(),
            at: next(),
            served: next(),
            id: next(),
        };
        if parts.id.is_none() {
            return Err(RecordError { field: PACKED_FIELD, problem: "has fewer than seven parts" });
        }
        parts.record()
    }
}

/// The field holding a whole record.
const PACKED_FIELD: &str = "r";

/// Between the parts of a packed record.
const SEPARATOR: char = '|';

/// A record's parts as written, not yet checked.
#[derive(Default)]
struct Parts<'a> {
    id: Option<&'a str>,
    kind: Option<&'a str>,
    user: Option<&'a str>,
    campaign: Option<&'a str>,
    variant: Option<&'a str>,
    at: Option<&'a str>,
    served: Option<&'a str>,
}

impl Parts<'_> {
    fn record(self) -> Result<Record, RecordError> {
        let missing = |field| RecordError { field, problem: "is missing" };
        let id = self.id.filter(|id| !id.is_empty()).ok_or(missing("id"))?;
        let kind = EventKind::parse(self.kind.ok_or(missing("kind"))?)
            .ok_or(RecordError { field: "kind", problem: "is not a known event kind" })?;
        let user = UserId::parse(self.user.ok_or(missing("user"))?)
            .map_err(|_| RecordError { field: "user", problem: "is not a valid user id" })?;
        let number = |field, value: Option<&str>| {
            value
                .ok_or(missing(field))?
                .parse::<i64>()
                .map_err(|_| RecordError { field, problem: "is not a number" })
        };
        let campaign = self
            .campaign
            .ok_or(missing("campaign"))?
            .parse()
            .map_err(|_| RecordError { field: "campaign", problem: "is not a campaign id" })?;
        let at = Timestamp(number("at", self.at)?);
        // Entries written before `served` existed fall back to `at`.
        let served = match self.served {
            Some(_) => Timestamp(number("served", self.served)?),
            None => at,
        };
        Ok(Record {
            id: id.into(),
            kind,
            user,
            campaign: CampaignId(campaign),
            variant: self.variant.unwrap_or_default().into(),
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
    fn an_entry_is_one_field_holding_the_whole_record() {
        let keys = KeySpace::new("p", 0).unwrap();
        let record = Record {
            id: "tok|en:click".into(),
            kind: EventKind::Click,
            user: UserId::parse("cust-7@bank.id").unwrap(),
            campaign: CampaignId(42),
            variant: "spring-b".into(),
            at: Timestamp(1_767_225_700),
            served: Timestamp(1_767_225_600),
        };
        let append = record.append(&keys);
        assert_eq!(
            append.arguments()[2..],
            ["r", "click|cust-7@bank.id|42|spring-b|1767225700|1767225600|tok|en:click"]
        );
        assert_eq!(Record::parse(pairs(&append)), Ok(record.clone()), "the id is the rest, `|` and all");
        let with_more = [("r", append.arguments()[3].as_str()), ("added-later", "x")];
        assert_eq!(Record::parse(with_more), Ok(record));
    }

    #[test]
    fn malformed_packed_records_name_the_part() {
        let parse = |packed| Record::parse([("r", packed)]).map_err(|error| error.field);
        assert_eq!(parse("click|u|3|a|100|100"), Err("r"), "no id");
        assert_eq!(parse(""), Err("r"));
        assert_eq!(parse("click|u|3|a|100|100|"), Err("id"), "an empty id");
        assert_eq!(parse("buy|u|3|a|100|100|x"), Err("kind"));
        assert_eq!(parse("click|a b|3|a|100|100|x"), Err("user"));
        assert_eq!(parse("click|u|-3|a|100|100|x"), Err("campaign"));
        assert_eq!(parse("click|u|3|a|soon|100|x"), Err("at"));
        assert_eq!(parse("click|u|3|a|100|later|x"), Err("served"));
        assert!(parse("click|u|3||100|100|x").is_ok(), "a record without variant, as older events have");
    }

    /// Entries written one field per part, by earlier versions, are still read.
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

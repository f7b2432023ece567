//! The Redis key layout and the command plans of a resolve and an event.
//!
//! This module decides what is stored where and which commands each operation sends; adapters only carry
//! the commands to Redis (a pipeline over TCP at the origin, one HTTP request to the REST API at the edge)
//! and hand the replies back. Keys, with `P` the deployment's prefix:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P:{catalog}` | string | the catalog JSON ([`Catalog::encode`]) |
//! | `P:{catalog}:version` | string | the catalog's version (at most [`crate::catalog::MAX_VERSION`]); both keys change together, never backwards |
//! | `P:{catalog}:ready` | hash | which parts of the projection are complete in Redis ([`crate::projection`]) |
//! | `P:u:{uid}` | hash | `s:<segment>:<version parity>` -> segment version; `n:<campaign>` -> lifetime impressions; `t:<campaign>` -> last impression (unix seconds) |
//! | `P:u:{uid}:d:<day>` | hash, expires | `n:<campaign>` -> impressions that day; `all` -> impressions that day, all campaigns |
//! | `P:u:{uid}:e:<token id>:<kind>` | string, expires | marks an event as recorded, so a retry is a no-op |
//! | `P:events` | stream | every recorded event, for the origin to ingest ([`crate::stream`]) |
//!
//! The braces make `{uid}` a Redis Cluster hash tag: all keys of one customer live in one slot, which the
//! event script requires; likewise `{catalog}` for the publish script. A resolve is one pipeline of three commands whatever the number of campaigns:
//! `HGETALL P:u:{uid}`, `HGETALL P:u:{uid}:d:<day>`, then `GET P:{catalog}:version` (or `GET P:{catalog}`
//! when nothing is cached). An event is one pipeline of two: the event script and `XADD`.
//!
//! Memberships are double-buffered: a segment's consecutive versions have opposite parity (the origin makes
//! sure of it), and each parity has its own field. An upload in progress writes the field of the new
//! parity, which the live catalog does not read, so a customer in both the old and the new upload never
//! drops out mid-upload, and the switch is the catalog's version change alone.
//!
//! Days start at local midnight of a fixed UTC offset set per deployment (e.g. +07:00 for Jakarta): the key of
//! today's hash must be known before the catalog is read.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, CatalogError};
use crate::ids::{CampaignId, SegmentId, Timestamp, UserId, SECONDS_PER_DAY};
use crate::stream::Record;
use crate::token::VerifiedToken;
use crate::user::UserState;

/// One Redis command: its name and arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command(pub Vec<String>);

impl Command {
    fn new<const N: usize>(parts: [&str; N]) -> Command {
        Command(parts.iter().map(|p| p.to_string()).collect())
    }

    pub fn name(&self) -> &str {
        self.0.first().map_or("", String::as_str)
    }

    /// The arguments, without the name.
    pub fn arguments(&self) -> &[String] {
        self.0.get(1..).unwrap_or_default()
    }

    /// The name and the arguments: the whole command as sent. See [`Command::arguments`] for the
    /// arguments alone.
    pub fn args(&self) -> &[String] {
        &self.0
    }
}

/// A Redis reply, as both adapters can express it (RESP over TCP, JSON over HTTP).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Nil,
    Int(i64),
    /// Bulk and status strings.
    Bulk(Vec<u8>),
    Array(Vec<Reply>),
    /// An error reply for this command (the pipeline as a whole went through).
    Error(String),
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("expected {expected} replies, got {got}")]
    ReplyCount { expected: usize, got: usize },
    #[error("redis answered {command}: {message}")]
    Redis { command: &'static str, message: String },
    #[error("unexpected reply to {0}")]
    UnexpectedReply(&'static str),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// Where a deployment's keys live: a prefix (so tests and tenants can share a Redis) and the UTC offset at
/// which days start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySpace {
    prefix: String,
    day_offset_seconds: i32,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeySpaceError {
    #[error("the key prefix must be 1-32 of a-z, 0-9, -, _ and :")]
    InvalidPrefix,
    #[error("the day offset must be within ±14 hours")]
    InvalidDayOffset,
}

impl KeySpace {
    pub fn new(prefix: &str, day_offset_seconds: i32) -> Result<KeySpace, KeySpaceError> {
        let valid = (1..=32).contains(&prefix.len())
            && prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b':'));
        if !valid {
            return Err(KeySpaceError::InvalidPrefix);
        }
        // unsigned_abs: i32::MIN has no positive counterpart.
        if day_offset_seconds.unsigned_abs() > 14 * 3600 {
            return Err(KeySpaceError::InvalidDayOffset);
        }
        Ok(KeySpace { prefix: prefix.into(), day_offset_seconds })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn catalog(&self) -> String {
        format!("{}:{{catalog}}", self.prefix)
    }

    pub fn catalog_version(&self) -> String {
        format!("{}:{{catalog}}:version", self.prefix)
    }

    /// The readiness hash: which parts of the projection are complete (see [`crate::projection`]). In the
    /// catalog's hash slot, so the publish script can check it in the step that writes the catalog.
    pub fn readiness(&self) -> String {
        format!("{}:{{catalog}}:ready", self.prefix)
    }

    pub fn user(&self, user: &UserId) -> String {
        format!("{}:u:{{{user}}}", self.prefix)
    }

    pub fn user_day(&self, user: &UserId, day: i64) -> String {
        format!("{}:u:{{{user}}}:d:{day}", self.prefix)
    }

    pub fn event_marker(&self, user: &UserId, token_id: &str, kind: EventKind) -> String {
        format!("{}:u:{{{user}}}:e:{token_id}:{}", self.prefix, kind.as_str())
    }

    pub fn events(&self) -> String {
        format!("{}:events", self.prefix)
    }

    /// The day number (days since the epoch, in the deployment's offset) that `now` falls in.
    pub fn day(&self, now: Timestamp) -> i64 {
        self.split_day(now).0
    }

    /// `now` as (day number, seconds since that day's local midnight). Computed from `now`'s own day and
    /// second, so no intermediate value leaves i64 even at its extremes: `now + offset` would overflow
    /// near i64::MAX, and a day number times 86 400 beyond ±2^63 / 86 400.
    fn split_day(&self, now: Timestamp) -> (i64, i64) {
        let utc_day = now.seconds().div_euclid(SECONDS_PER_DAY);
        // Within ±(86 400 + 14 hours): the offset is bounded by KeySpace::new.
        let local_second = now.seconds().rem_euclid(SECONDS_PER_DAY) + i64::from(self.day_offset_seconds);
        // utc_day is at most i64::MAX / 86 400 in magnitude, so moving it by one cannot overflow.
        (utc_day + local_second.div_euclid(SECONDS_PER_DAY), local_second.rem_euclid(SECONDS_PER_DAY))
    }

    /// When day number `day` starts, in UTC.
    pub fn day_start(&self, day: i64) -> Timestamp {
        Timestamp(day.saturating_mul(SECONDS_PER_DAY).saturating_sub(i64::from(self.day_offset_seconds)))
    }

    /// Seconds from `now` until the day after `now`'s day ends: daily counters live that long, so that a
    /// resolve just after midnight never reads a hash that expired early. Between one day (exclusive) and
    /// two (inclusive).
    pub(crate) fn day_ttl(&self, now: Timestamp) -> i64 {
        2 * SECONDS_PER_DAY - self.split_day(now).1
    }
}

/// Parses a deployment's day offset, `+07:00`, `-03:30` or `Z`: hours of one or two digits, minutes of
/// two, at most 14 hours. Both adapters read their configuration with it, so they agree on what a day is.
pub fn parse_day_offset(raw: &str) -> Option<i32> {
    if raw == "Z" {
        return Some(0);
    }
    let (sign, rest) = match raw.as_bytes().first()? {
        b'+' => (1, raw.get(1..)?),
        b'-' => (-1, raw.get(1..)?),
        _ => return None,
    };
    let (hours, minutes) = rest.split_once(':')?;
    let digits =
        |s: &str, lengths: &[usize]| lengths.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(hours, &[1, 2]) || !digits(minutes, &[2]) {
        return None;
    }
    let hours: i32 = hours.parse().ok()?;
    let minutes: i32 = minutes.parse().ok()?;
    if hours > 14 || minutes > 59 || (hours == 14 && minutes > 0) {
        return None;
    }
    Some(sign * (hours * 3600 + minutes * 60))
}

/// The hash field that holds a customer's membership of `version` of a segment.
pub fn segment_field(segment: SegmentId, version: u64) -> String {
    format!("s:{segment}:{}", version % 2)
}

/// Marks `user` as a member of `segment` at `version`.
pub fn add_member(keys: &KeySpace, user: &UserId, segment: SegmentId, version: u64) -> Command {
    Command::new(["HSET", &keys.user(user), &segment_field(segment, version), &version.to_string()])
}

pub fn fetch_catalog(keys: &KeySpace) -> Command {
    Command::new(["GET", &keys.catalog()])
}

/// Decodes the reply to [`fetch_catalog`]; None when Redis has no catalog.
pub fn read_catalog(reply: Reply) -> Result<Option<Catalog>, StoreError> {
    match reply {
        Reply::Nil => Ok(None),
        Reply::Bulk(json) => Ok(Some(Catalog::decode(&json)?)),
        Reply::Error(message) => Err(StoreError::Redis { command: "GET catalog", message }),
        _ => Err(StoreError::UnexpectedReply("GET catalog")),
    }
}

/// What a resolve learnt about the catalog.
#[derive(Debug)]
pub enum CatalogStatus {
    /// The cached catalog is current.
    Current,
    /// Redis holds another version: fetch it with [`fetch_catalog`].
    Stale { version: u64 },
    /// Nothing was cached, and this is the catalog Redis holds.
    Fetched(Catalog),
    /// Redis holds no catalog: no campaign is live.
    Absent,
}

#[derive(Debug)]
pub struct ResolveInputs {
    pub catalog: CatalogStatus,
    pub user: UserState,
}

/// The pipeline of one resolve.
#[derive(Clone, Debug)]
pub struct ResolvePlan {
    commands: [Command; 3],
    cached_version: Option<u64>,
}

impl ResolvePlan {
    /// `cached_version` is the version of the catalog the adapter holds in memory, if any.
    pub fn new(keys: &KeySpace, user: &UserId, now: Timestamp, cached_version: Option<u64>) -> ResolvePlan {
        let catalog_read = match cached_version {
            Some(_) => Command::new(["GET", &keys.catalog_version()]),
            None => fetch_catalog(keys),
        };
        // The catalog is read last. Redis runs a pipeline's commands in order, so if a flush lands between
        // them, the customer's hashes may be read after it but the catalog then is read after it too and is
        // gone: an old catalog is never paired with memberships read from an emptied Redis.
        let commands = [
            Command::new(["HGETALL", &keys.user(user)]),
            Command::new(["HGETALL", &keys.user_day(user, keys.day(now))]),
            catalog_read,
        ];
        ResolvePlan { commands, cached_version }
    }

    pub fn commands(&self) -> &[Command] {
        &self.commands
    }

    pub fn read(&self, replies: Vec<Reply>) -> Result<ResolveInputs, StoreError> {
        let [user, today, catalog] = exact::<3>(replies)?;
        let catalog = match self.cached_version {
            None => read_catalog(catalog)?.map_or(CatalogStatus::Absent, CatalogStatus::Fetched),
            Some(cached) => match catalog {
                Reply::Nil => CatalogStatus::Absent,
                reply => match parse_version(&reply)? {
                    version if version == cached => CatalogStatus::Current,
                    version => CatalogStatus::Stale { version },
                },
            },
        };
        let mut state = UserState::default();
        for (field, value) in hash_pairs(user, "HGETALL user")? {
            read_user_field(&mut state, &field, &value);
        }
        for (field, value) in hash_pairs(today, "HGETALL user day")? {
            read_day_field(&mut state, &field, &value);
        }
        Ok(ResolveInputs { catalog, user: state })
    }
}

/// Unknown or malformed fields are ignored: a newer writer may add fields an older reader does not know.
fn read_user_field(state: &mut UserState, field: &str, value: &str) {
    let Some((kind, id)) = field.split_once(':') else {
        return;
    };
    let Ok(number) = value.parse::<i64>() else {
        return;
    };
    match kind {
        "s" => {
            let Some((segment, parity)) = id.split_once(':') else { return };
            if let (Ok(segment), Ok(parity), Ok(version)) =
                (segment.parse(), parity.parse(), u64::try_from(number))
            {
                state.segments.insert((SegmentId(segment), parity), version);
            }
        }
        "n" => {
            if let Ok(campaign) = id.parse() {
                state.campaigns.entry(CampaignId(campaign)).or_default().lifetime = clamp_count(number);
            }
        }
        "t" => {
            if let Ok(campaign) = id.parse() {
                state.campaigns.entry(CampaignId(campaign)).or_default().last_shown = Some(Timestamp(number));
            }
        }
        _ => {}
    }
}

fn read_day_field(state: &mut UserState, field: &str, value: &str) {
    let Ok(number) = value.parse::<i64>() else {
        return;
    };
    if field == "all" {
        state.shown_today = clamp_count(number);
    } else if let Some(Ok(campaign)) = field.strip_prefix("n:").map(str::parse) {
        state.campaigns.entry(CampaignId(campaign)).or_default().today = clamp_count(number);
    }
}

fn clamp_count(number: i64) -> u32 {
    u32::try_from(number.max(0)).unwrap_or(u32::MAX)
}

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

fn exact<const N: usize>(replies: Vec<Reply>) -> Result<[Reply; N], StoreError> {
    let got = replies.len();
    replies.try_into().map_err(|_| StoreError::ReplyCount { expected: N, got })
}

pub(crate) fn parse_int(reply: &Reply, command: &'static str) -> Result<i64, StoreError> {
    match reply {
        Reply::Int(n) => Ok(*n),
        Reply::Bulk(bytes) => core::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(StoreError::UnexpectedReply(command)),
        Reply::Error(message) => Err(StoreError::Redis { command, message: message.clone() }),
        _ => Err(StoreError::UnexpectedReply(command)),
    }
}

/// The catalog version Redis holds. Only the publish script writes it, from a u64 in canonical decimal;
/// anything else (negative, signed, not a number) means something else wrote the key, and must not be
/// read as some other version: `-1` cast to u64 would look like the newest catalog there is.
fn parse_version(reply: &Reply) -> Result<u64, StoreError> {
    const COMMAND: &str = "GET catalog:version";
    match reply {
        Reply::Int(n) => u64::try_from(*n).map_err(|_| StoreError::UnexpectedReply(COMMAND)),
        // Digits only: u64::from_str alone would also take `+7`.
        Reply::Bulk(bytes) if !bytes.is_empty() && bytes.iter().all(u8::is_ascii_digit) => {
            core::str::from_utf8(bytes)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or(StoreError::UnexpectedReply(COMMAND))
        }
        Reply::Error(message) => Err(StoreError::Redis { command: COMMAND, message: message.clone() }),
        _ => Err(StoreError::UnexpectedReply(COMMAND)),
    }
}

/// The field/value pairs of an `HGETALL` reply. Non-UTF-8 entries are skipped.
pub(crate) fn hash_pairs(reply: Reply, command: &'static str) -> Result<Vec<(String, String)>, StoreError> {
    let items = match reply {
        Reply::Array(items) => items,
        Reply::Nil => Vec::new(),
        Reply::Error(message) => return Err(StoreError::Redis { command, message }),
        _ => return Err(StoreError::UnexpectedReply(command)),
    };
    if items.len() % 2 != 0 {
        return Err(StoreError::UnexpectedReply(command));
    }
    let text = |reply: Reply| match reply {
        Reply::Bulk(bytes) => String::from_utf8(bytes).ok(),
        Reply::Int(n) => Some(n.to_string()),
        _ => None,
    };
    let mut pairs = Vec::with_capacity(items.len() / 2);
    let mut items = items.into_iter();
    while let (Some(field), Some(value)) = (items.next(), items.next()) {
        if let (Some(field), Some(value)) = (text(field), text(value)) {
            pairs.push((field, value));
        }
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user::Counters;

    const DAY: i64 = 86_400;

    #[test]
    fn days_and_their_ttl_follow_the_offset() {
        let jakarta = KeySpace::new("p", 7 * 3600).unwrap();
        // 2026-01-01T16:59:59Z is 23:59:59 in Jakarta; a second later is the next day there.
        let t = Timestamp(1_767_286_799);
        assert_eq!(jakarta.day(t) + 1, jakarta.day(t.plus(1)));
        assert_eq!(jakarta.day_ttl(t), DAY + 1);
        assert_eq!(jakarta.day_ttl(t.plus(1)), 2 * DAY);
        let utc = KeySpace::new("p", 0).unwrap();
        assert_eq!(utc.day(Timestamp(-1)), -1);
        assert_eq!(utc.day(Timestamp(0)), 0);
        assert_eq!(utc.day_ttl(Timestamp(-1)), DAY + 1);
        // Against the definition, in wider arithmetic, around the epoch and today.
        for offset in [-14 * 3600, -3 * 3600 - 1800, 0, 5 * 3600 + 2700, 14 * 3600] {
            let keys = KeySpace::new("p", offset).unwrap();
            for base in [0, 1_767_225_600] {
                for step in -200..200 {
                    let now = base + step * 997;
                    let local = i128::from(now) + i128::from(offset);
                    let day = local.div_euclid(i128::from(DAY));
                    assert_eq!(i128::from(keys.day(Timestamp(now))), day);
                    let next_midnight = (day + 1) * i128::from(DAY) - i128::from(offset);
                    let ttl = next_midnight - i128::from(now) + i128::from(DAY);
                    assert_eq!(i128::from(keys.day_ttl(Timestamp(now))), ttl);
                }
            }
        }
    }

    #[test]
    fn extreme_timestamps_do_not_overflow() {
        for offset in [-14 * 3600, 0, 14 * 3600] {
            let keys = KeySpace::new("p", offset).unwrap();
            for now in
                [Timestamp(i64::MAX), Timestamp(i64::MIN), Timestamp(i64::MAX - 1), Timestamp(i64::MIN + 1)]
            {
                let day = keys.day(now);
                let ttl = keys.day_ttl(now);
                assert!(ttl > 0 && ttl <= 2 * DAY, "ttl {ttl} at {now:?} offset {offset}");
                // The day still contains `now`, measured without leaving i64.
                let start_of_day = i128::from(day) * i128::from(DAY) - i128::from(offset);
                let now = i128::from(now.seconds());
                assert!(
                    start_of_day <= now && now < start_of_day + i128::from(DAY),
                    "day {day} offset {offset}"
                );
            }
        }
    }

    fn resolve_plan(cached_version: Option<u64>) -> ResolvePlan {
        let keys = KeySpace::new("p", 0).unwrap();
        ResolvePlan::new(&keys, &UserId::parse("u").unwrap(), Timestamp(0), cached_version)
    }

    fn read_version(reply: Reply) -> Result<ResolveInputs, StoreError> {
        resolve_plan(Some(7)).read(alloc::vec![Reply::Nil, Reply::Nil, reply])
    }

    #[test]
    fn catalog_versions_are_read_as_u64() {
        assert!(matches!(read_version(Reply::Bulk(b"7".to_vec())).unwrap().catalog, CatalogStatus::Current));
        assert!(matches!(read_version(Reply::Int(7)).unwrap().catalog, CatalogStatus::Current));
        assert!(matches!(
            read_version(Reply::Bulk(b"9007199254740992".to_vec())).unwrap().catalog,
            CatalogStatus::Stale { version: 9_007_199_254_740_992 }
        ));
        assert!(matches!(read_version(Reply::Nil).unwrap().catalog, CatalogStatus::Absent));
        let unexpected = Err(StoreError::UnexpectedReply("GET catalog:version"));
        // -1 must not wrap around to u64::MAX and read as a newer catalog.
        for bad in ["-1", "-7", "seven", "7.0", "", " 7", "+7", "18446744073709551616"] {
            assert_eq!(read_version(Reply::Bulk(bad.into())).map(|_| ()), unexpected, "{bad:?}");
        }
        assert_eq!(read_version(Reply::Int(-1)).map(|_| ()), unexpected);
        assert_eq!(read_version(Reply::Array(alloc::vec![])).map(|_| ()), unexpected);
    }

    fn bulk(text: &str) -> Reply {
        Reply::Bulk(text.as_bytes().to_vec())
    }

    fn hash(pairs: &[(&str, &str)]) -> Reply {
        Reply::Array(pairs.iter().flat_map(|&(field, value)| [bulk(field), bulk(value)]).collect())
    }

    fn error(message: &str) -> Reply {
        Reply::Error(message.into())
    }

    #[test]
    fn a_resolve_needs_exactly_three_replies() {
        for count in [0, 2, 4] {
            let replies = alloc::vec![Reply::Nil; count];
            assert_eq!(
                resolve_plan(Some(1)).read(replies).map(|_| ()),
                Err(StoreError::ReplyCount { expected: 3, got: count })
            );
        }
    }

    #[test]
    fn a_resolve_reports_error_replies_with_their_command() {
        let redis = |command, message: &str| Err(StoreError::Redis { command, message: message.into() });
        let cases = [
            (None, [Reply::Nil, Reply::Nil, error("LOADING")], redis("GET catalog", "LOADING")),
            (Some(1), [Reply::Nil, Reply::Nil, error("LOADING")], redis("GET catalog:version", "LOADING")),
            (Some(1), [error("WRONGTYPE"), Reply::Nil, bulk("1")], redis("HGETALL user", "WRONGTYPE")),
            (Some(1), [Reply::Nil, error("WRONGTYPE"), bulk("1")], redis("HGETALL user day", "WRONGTYPE")),
        ];
        for (cached, replies, expected) in cases {
            assert_eq!(resolve_plan(cached).read(replies.to_vec()).map(|_| ()), expected);
        }
    }

    #[test]
    fn a_resolve_refuses_replies_of_the_wrong_shape() {
        let unexpected = |command| Err(StoreError::UnexpectedReply(command));
        let odd = Reply::Array(alloc::vec![bulk("n:1"), bulk("2"), bulk("all")]);
        let cases = [
            (None, [Reply::Nil, Reply::Nil, Reply::Int(3)], unexpected("GET catalog")),
            (Some(1), [odd.clone(), Reply::Nil, bulk("1")], unexpected("HGETALL user")),
            (Some(1), [Reply::Nil, odd, bulk("1")], unexpected("HGETALL user day")),
            (Some(1), [bulk("n:1"), Reply::Nil, bulk("1")], unexpected("HGETALL user")),
            (Some(1), [Reply::Nil, Reply::Int(1), bulk("1")], unexpected("HGETALL user day")),
        ];
        for (cached, replies, expected) in cases {
            assert_eq!(resolve_plan(cached).read(replies.to_vec()).map(|_| ()), expected);
        }
        let garbage = resolve_plan(None).read(alloc::vec![Reply::Nil, Reply::Nil, bulk("{not json")]);
        assert!(matches!(garbage, Err(StoreError::Catalog(CatalogError::Malformed(_)))));
    }

    #[test]
    fn garbage_in_the_users_hashes_is_ignored() {
        let user = hash(&[
            ("n:1", "3"),
            ("t:1", "1767225600"),
            ("s:4:1", "5"),
            // Not numbers, out of range, unknown kinds, malformed ids: all skipped.
            ("n:2", "three"),
            ("n:3", "99999999999999999999"),
            ("t:2", "1e9"),
            ("t:3", ""),
            ("s:5:0", "-2"),
            ("s:6", "4"),
            ("s:x:1", "3"),
            ("n:", "1"),
            ("n:-1", "1"),
            ("x:1", "1"),
            ("plain", "1"),
            ("", ""),
        ]);
        let mut day =
            hash(&[("n:1", "2"), ("all", "-5"), ("n:4", "4294967296"), ("n:x", "1"), ("n:5", "NaN")]);
        if let Reply::Array(items) = &mut day {
            // Non-UTF-8 fields and values, and replies that are not strings, are skipped too.
            items.extend([Reply::Bulk(alloc::vec![0xff, 0xfe]), bulk("1"), bulk("n:6"), Reply::Nil]);
            items.extend([bulk("n:7"), Reply::Int(6)]);
        }
        let inputs = resolve_plan(Some(1)).read(alloc::vec![user, day, bulk("1")]).unwrap();
        let state = inputs.user;
        assert_eq!(
            state.counters(CampaignId(1)),
            Counters { lifetime: 3, today: 2, last_shown: Some(Timestamp(1_767_225_600)) }
        );
        // A count beyond u32 is clamped, never wrapped.
        assert_eq!(state.counters(CampaignId(4)).today, u32::MAX);
        assert_eq!(state.counters(CampaignId(7)).today, 6);
        assert_eq!(state.shown_today, 0, "a negative count reads as none");
        let known: alloc::vec::Vec<u64> = state.campaigns.keys().map(|c| c.0).collect();
        assert_eq!(known, [1, 4, 7]);
        assert_eq!(state.segments.len(), 1);
        assert!(state.is_member(SegmentId(4), Some(5)));
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

    #[test]
    fn commands_give_their_name_and_arguments_apart() {
        let plan = resolve_plan(None);
        let user = &plan.commands()[0];
        assert_eq!(user.name(), "HGETALL");
        assert_eq!(user.arguments(), ["p:u:{u}"]);
        assert_eq!(user.args(), ["HGETALL", "p:u:{u}"]);
        let empty = Command(alloc::vec![]);
        assert_eq!((empty.name(), empty.arguments(), empty.args()), ("", &[][..], &[][..]));
    }

    #[test]
    fn key_spaces_refuse_extreme_offsets() {
        assert_eq!(KeySpace::new("p", i32::MIN), Err(KeySpaceError::InvalidDayOffset));
        assert_eq!(KeySpace::new("p", i32::MAX), Err(KeySpaceError::InvalidDayOffset));
        assert_eq!(KeySpace::new("p", -14 * 3600 - 1), Err(KeySpaceError::InvalidDayOffset));
        assert!(KeySpace::new("p", -14 * 3600).is_ok());
    }

    #[test]
    fn day_offsets_parse() {
        assert_eq!(parse_day_offset("+07:00"), Some(7 * 3600));
        assert_eq!(parse_day_offset("+7:00"), Some(7 * 3600));
        assert_eq!(parse_day_offset("-03:30"), Some(-(3 * 3600 + 1800)));
        assert_eq!(parse_day_offset("+14:00"), Some(14 * 3600));
        assert_eq!(parse_day_offset("Z"), Some(0));
        for bad in
            ["07:00", "+15:00", "+14:30", "+07:60", "+07", "+-1:00", "++7:00", "+07:0", "", "+", "+é:00"]
        {
            assert_eq!(parse_day_offset(bad), None, "{bad:?}");
        }
    }
}

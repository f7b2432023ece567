//! The Redis key layout: where a deployment's data lives. Keys, with `P` the deployment's prefix:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P:{catalog}` | string | the catalog JSON ([`crate::catalog::Catalog::encode`]) |
//! | `P:{catalog}:version` | string | the catalog's version (at most [`crate::catalog::MAX_VERSION`]); both keys change together, never backwards |
//! | `P:{catalog}:ready` | hash | which parts of the projection are complete in Redis ([`crate::projection`]) |
//! | `P:u:{uid}` | hash | `s:<segment>:<version parity>` -> segment version; `n:<campaign>` -> lifetime impressions; `t:<campaign>` -> last impression (unix seconds) |
//! | `P:u:{uid}:d:<day>` | hash, expires | `n:<campaign>` -> impressions that day; `all` -> impressions that day, all campaigns |
//! | `P:u:{uid}:e:<token id>:<kind>` | string, expires | marks an event as recorded, so a retry is a no-op |
//! | `P:events` | stream | every recorded event, for the origin to ingest ([`crate::stream`]) |
//!
//! The braces make `{uid}` a Redis Cluster hash tag: all keys of one customer live in one slot, which the
//! event script requires; likewise `{catalog}` for the publish script. A resolve reads
//! `HGETALL P:u:{uid}`, `HGETALL P:u:{uid}:d:<day>`, then `GET P:{catalog}:version` (or `GET P:{catalog}`
//! when nothing is cached), see [`super::resolve`]; an event runs the event script and `XADD`, see
//! [`super::event`].
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

use super::event::EventKind;
use super::Command;
use crate::ids::{SegmentId, Timestamp, UserId, SECONDS_PER_DAY};

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

    /// Seconds from UTC midnight to the deployment's midnight: day `d` starts at `d × 86 400 − this`.
    pub fn day_offset_seconds(&self) -> i32 {
        self.day_offset_seconds
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

/// What a key is in one deployment's layout: the inverse of [`KeySpace`]'s key functions, for code that is
/// handed keys rather than building them (the origin's gateway decides by kind which commands may touch a
/// key). A key is of a kind only if [`KeySpace`] writes it exactly that way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyKind<'a> {
    /// `P:{catalog}`
    Catalog,
    /// `P:{catalog}:version`
    CatalogVersion,
    /// `P:{catalog}:ready`
    Readiness,
    /// `P:events`
    Events,
    /// `P:u:{uid}`
    User { user: UserId },
    /// `P:u:{uid}:d:<day>`
    UserDay { user: UserId, day: i64 },
    /// `P:u:{uid}:e:<token id>:<kind>`
    EventMarker { user: UserId, token_id: &'a str, kind: EventKind },
    /// Anything else: another deployment's key, or one this layout never writes.
    Other,
}

impl KeySpace {
    /// The kind of `key` in this key space.
    pub fn classify<'a>(&self, key: &'a str) -> KeyKind<'a> {
        let Some(rest) = key.strip_prefix(self.prefix.as_str()).and_then(|rest| rest.strip_prefix(':'))
        else {
            return KeyKind::Other;
        };
        match rest {
            "{catalog}" => KeyKind::Catalog,
            "{catalog}:version" => KeyKind::CatalogVersion,
            "{catalog}:ready" => KeyKind::Readiness,
            "events" => KeyKind::Events,
            _ => rest.strip_prefix("u:{").and_then(classify_user_key).unwrap_or(KeyKind::Other),
        }
    }
}

/// A per-customer key after its `P:u:{`: the customer id, then nothing (the hash), a day, or an event marker.
fn classify_user_key(rest: &str) -> Option<KeyKind<'_>> {
    let (user, rest) = rest.split_once('}')?;
    // The ids the adapters accept: no brace or odd byte can shift what follows.
    let user = UserId::parse(user).ok()?;
    if rest.is_empty() {
        return Some(KeyKind::User { user });
    }
    if let Some(day) = rest.strip_prefix(":d:") {
        // Canonical decimal only: the same day written two ways would be two hashes.
        let day = day.parse::<i64>().ok().filter(|d| d.to_string() == day)?;
        return Some(KeyKind::UserDay { user, day });
    }
    // The token id may hold `:`; the kind, last, never does.
    let (token_id, kind) = rest.strip_prefix(":e:")?.rsplit_once(':')?;
    let kind = EventKind::parse(kind)?;
    (!token_id.is_empty()).then_some(KeyKind::EventMarker { user, token_id, kind })
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn every_key_the_layout_writes_is_classified_back() {
        let keys = KeySpace::new("p", 7 * 3600).unwrap();
        let user = UserId::parse("cust-1@bank:7").unwrap();
        let cases = [
            (keys.catalog(), KeyKind::Catalog),
            (keys.catalog_version(), KeyKind::CatalogVersion),
            (keys.readiness(), KeyKind::Readiness),
            (keys.events(), KeyKind::Events),
            (keys.user(&user), KeyKind::User { user: user.clone() }),
            (keys.user_day(&user, 20_454), KeyKind::UserDay { user: user.clone(), day: 20_454 }),
            (keys.user_day(&user, -3), KeyKind::UserDay { user: user.clone(), day: -3 }),
        ];
        for (key, kind) in cases {
            assert_eq!(keys.classify(&key), kind, "{key}");
        }
        for kind in EventKind::ALL {
            let key = keys.event_marker(&user, "tok:1", kind);
            assert_eq!(
                keys.classify(&key),
                KeyKind::EventMarker { user: user.clone(), token_id: "tok:1", kind },
                "{key}"
            );
        }
    }

    #[test]
    fn keys_the_layout_never_writes_are_other() {
        let keys = KeySpace::new("p", 0).unwrap();
        for key in [
            "",
            "p",
            "p:",
            "other",
            "q:{catalog}",
            "pp:{catalog}",
            "p{catalog}",
            "p:{catalog}:versions",
            "p:{catalog}x",
            "p:segment:1:loaded",
            "p:events:x",
            "p:u:{u1}x",
            "p:u:{}",
            "p:u:{u 1}",
            "p:u:{u1",
            "p:u:u1",
            "q:u:{u1}",
            "p:u:{u1}:d:007",
            "p:u:{u1}:d:+7",
            "p:u:{u1}:d:",
            "p:u:{u1}:d:99999999999999999999",
            "p:u:{u1}:e:t:open",
            "p:u:{u1}:e::click",
            "p:u:{u1}:e:click",
            "p:u:{u1}:x:1",
        ] {
            assert_eq!(keys.classify(key), KeyKind::Other, "{key:?}");
        }
        // Each key space reads its own layout: a prefix is matched whole, then its colon.
        let nested = KeySpace::new("p:u", 0).unwrap();
        assert_eq!(nested.classify("p:u:{catalog}"), KeyKind::Catalog);
        assert_eq!(nested.classify("p:{catalog}"), KeyKind::Other);
        assert_eq!(nested.classify("p:uevents"), KeyKind::Other);
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

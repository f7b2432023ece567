//! Time zone offsets without a time zone database.
//!
//! A full tz database is too heavy for the edge's wasm bundle. The origin, which has one, compiles each zone
//! a campaign uses into a [`ZoneOffsets`] table (UTC instants at which the offset changes, DST included) for
//! a span of days around now, and ships it inside the catalog. Evaluating a local-time window is then a
//! binary search and some arithmetic. The catalog is rebuilt by every reconcile, so the table always covers
//! today; past its last entry the last offset holds.

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::campaign::{TimeOfDay, Weekday};
use crate::ids::{Timestamp, SECONDS_PER_DAY};

/// Offsets of one zone: `(from, offset_seconds)` pairs sorted by `from`; each offset holds from its
/// instant until the next one. Before the first instant the first offset holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ZoneOffsets(Vec<(Timestamp, i32)>);

/// A moment in local time: the weekday and the minute of the day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalMoment {
    pub weekday: Weekday,
    pub time: TimeOfDay,
}

impl ZoneOffsets {
    /// A zone with one fixed offset.
    pub fn fixed(offset_seconds: i32) -> ZoneOffsets {
        ZoneOffsets(alloc::vec![(Timestamp(i64::MIN), offset_seconds)])
    }

    /// Builds a table from transitions; returns None when they are empty or not strictly increasing.
    pub fn from_transitions(transitions: Vec<(Timestamp, i32)>) -> Option<ZoneOffsets> {
        is_valid_table(&transitions).then_some(ZoneOffsets(transitions))
    }

    pub fn transitions(&self) -> &[(Timestamp, i32)] {
        &self.0
    }

    pub fn offset_at(&self, instant: Timestamp) -> i32 {
        let after = self.0.partition_point(|(from, _)| *from <= instant);
        let index = after.saturating_sub(1);
        self.0.get(index).map_or(0, |(_, offset)| *offset)
    }

    pub fn local(&self, instant: Timestamp) -> LocalMoment {
        local_moment(instant, self.offset_at(instant))
    }

    /// The local wall-clock time at `instant`, as seconds since 1970-01-01 00:00 of that clock.
    pub fn to_local(&self, instant: Timestamp) -> i64 {
        instant.seconds().saturating_add(i64::from(self.offset_at(instant)))
    }

    /// The instants whose local time is `local` (seconds since 1970-01-01 00:00 of the local clock):
    /// usually one; two when the clocks went back over it; none when they skipped it.
    pub fn from_local(&self, local: i64) -> LocalTime {
        let mut earliest: Option<Timestamp> = None;
        let mut latest: Option<Timestamp> = None;
        // The instant, if any, is `local - offset` for one of the offsets the table holds.
        for (_, offset) in &self.0 {
            let instant = Timestamp(local.saturating_sub(i64::from(*offset)));
            if self.offset_at(instant) == *offset {
                earliest = Some(earliest.map_or(instant, |e| e.min(instant)));
                latest = Some(latest.map_or(instant, |l| l.max(instant)));
            }
        }
        match (earliest, latest) {
            (Some(first), Some(last)) if first == last => LocalTime::Once(first),
            (Some(first), Some(last)) => LocalTime::Twice(first, last),
            _ => LocalTime::Skipped,
        }
    }

    /// Whether the table is what [`ZoneOffsets::from_transitions`] accepts; a decoded catalog is checked
    /// with it, since deserializing bypasses that constructor.
    pub(crate) fn is_sorted(&self) -> bool {
        is_valid_table(&self.0)
    }
}

/// What a local date and time is in a zone: see [`ZoneOffsets::from_local`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalTime {
    Once(Timestamp),
    /// The clocks went back over it: the earlier and the later instant.
    Twice(Timestamp, Timestamp),
    /// The clocks went forward over it: no instant has this local time.
    Skipped,
}

/// Not empty, and strictly increasing instants: the binary search in [`ZoneOffsets::offset_at`] needs both.
fn is_valid_table(transitions: &[(Timestamp, i32)]) -> bool {
    !transitions.is_empty() && transitions.windows(2).all(|pair| pair[0].0 < pair[1].0)
}

/// The local weekday and minute of day at `instant` under a fixed offset.
pub fn local_moment(instant: Timestamp, offset_seconds: i32) -> LocalMoment {
    let local = instant.seconds().saturating_add(i64::from(offset_seconds));
    let days = local.div_euclid(SECONDS_PER_DAY);
    let minute = local.rem_euclid(SECONDS_PER_DAY) / 60;
    // 1970-01-01 was a Thursday: index 3 with Monday as 0.
    let weekday = Weekday::from_index((days + 3).rem_euclid(7) as u32);
    let time = TimeOfDay::from_minutes(minute as u16).unwrap_or(TimeOfDay::MIDNIGHT);
    LocalMoment { weekday, time }
}

/// A cheap syntactic check of an IANA zone name (`Area/Location`, or `UTC`); the origin checks that the
/// zone exists when it compiles the offsets.
pub fn is_plausible_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-' | b'+'))
        && !name.starts_with('/')
        && !name.ends_with('/')
}

#[cfg(feature = "tzdb")]
mod tzdb {
    use super::*;
    use chrono::{Offset, TimeZone};

    /// Sampling step when searching for transitions. Every real transition since 1970 is at least hours
    /// apart, and offsets change on quarter hours at the finest, so a 15 minute grid finds them all; the
    /// exact second is then found by bisection.
    const STEP: i64 = 15 * 60;

    #[derive(Debug, thiserror::Error, PartialEq, Eq)]
    #[error("unknown time zone \"{0}\"")]
    pub struct UnknownZone(pub alloc::string::String);

    /// Compiles `name` into offsets covering `[from, until]`.
    pub fn compile(name: &str, from: Timestamp, until: Timestamp) -> Result<ZoneOffsets, UnknownZone> {
        let zone: chrono_tz::Tz = name.parse().map_err(|_| UnknownZone(name.into()))?;
        let offset_at = |t: i64| -> i32 {
            zone.timestamp_opt(t, 0).single().map_or(0, |dt| dt.offset().fix().local_minus_utc())
        };
        let mut transitions = alloc::vec![(from, offset_at(from.seconds()))];
        let mut previous = from.seconds();
        let mut current = offset_at(previous);
        let mut t = previous;
        while t < until.seconds() {
            t = (t + STEP).min(until.seconds());
            let offset = offset_at(t);
            if offset != current {
                // Bisect (previous, t] for the first second with the new offset.
                let (mut low, mut high) = (previous, t);
                while high - low > 1 {
                    let mid = low + (high - low) / 2;
                    if offset_at(mid) == current {
                        low = mid;
                    } else {
                        high = mid;
                    }
                }
                transitions.push((Timestamp(high), offset));
                current = offset;
            }
            previous = t;
        }
        Ok(ZoneOffsets(transitions))
    }

    /// Compiles `name` into offsets covering two days either side of `instant`: enough to read or write
    /// any local time within a day of it, since no offset is a day or more.
    pub fn around(name: &str, instant: Timestamp) -> Result<ZoneOffsets, UnknownZone> {
        let span = 2 * SECONDS_PER_DAY;
        let from = Timestamp(instant.seconds().saturating_sub(span));
        compile(name, from, Timestamp(instant.seconds().saturating_add(span)))
    }
}

#[cfg(feature = "tzdb")]
pub use tzdb::{around, compile, UnknownZone};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_is_a_thursday_midnight() {
        let moment = local_moment(Timestamp(0), 0);
        assert_eq!(moment.weekday, Weekday::Thu);
        assert_eq!(moment.time, TimeOfDay::MIDNIGHT);
        // One second before is Wednesday 23:59 (negative instants floor correctly).
        let moment = local_moment(Timestamp(-1), 0);
        assert_eq!(moment.weekday, Weekday::Wed);
        assert_eq!(moment.time.minutes(), 23 * 60 + 59);
    }

    #[test]
    fn offsets_apply_from_their_instant() {
        let zone = ZoneOffsets::from_transitions(alloc::vec![(Timestamp(100), 3600), (Timestamp(200), 7200)])
            .unwrap();
        assert_eq!(zone.offset_at(Timestamp(0)), 3600);
        assert_eq!(zone.offset_at(Timestamp(199)), 3600);
        assert_eq!(zone.offset_at(Timestamp(200)), 7200);
        assert_eq!(zone.offset_at(Timestamp(i64::MAX)), 7200);
        assert!(ZoneOffsets::from_transitions(alloc::vec![]).is_none());
        assert!(ZoneOffsets::from_transitions(alloc::vec![(Timestamp(2), 0), (Timestamp(1), 0)]).is_none());
    }

    #[test]
    fn decoded_tables_are_checked_like_constructed_ones() {
        let tables: [&[(i64, i32)]; 5] =
            [&[], &[(1, 0)], &[(1, 0), (2, 0)], &[(2, 0), (1, 0)], &[(1, 0), (1, 3600)]];
        for table in tables {
            let table: Vec<(Timestamp, i32)> = table.iter().map(|&(t, o)| (Timestamp(t), o)).collect();
            let constructed = ZoneOffsets::from_transitions(table.clone()).is_some();
            assert_eq!(ZoneOffsets(table.clone()).is_sorted(), constructed, "{table:?}");
            assert_eq!(constructed, table.len() == 1 || (table.len() == 2 && table[0].0 < table[1].0));
        }
    }

    #[test]
    fn local_times_map_to_the_instants_that_show_them() {
        // Jakarta: UTC+7 all year. 2026-11-28 16:30 local is 09:30 UTC.
        let jakarta = compile("Asia/Jakarta", Timestamp(1_790_000_000), Timestamp(1_800_000_000)).unwrap();
        let local = 1_795_858_200 + 7 * 3600;
        assert_eq!(jakarta.from_local(local), LocalTime::Once(Timestamp(1_795_858_200)));
        assert_eq!(jakarta.to_local(Timestamp(1_795_858_200)), local);

        // Berlin, 2026-03-29: 02:00 local jumps to 03:00 (02:30 never happens); 2026-10-25: 03:00 goes back
        // to 02:00 (02:30 happens twice, first at UTC+2, then at UTC+1).
        let berlin = around("Europe/Berlin", Timestamp(1_774_746_000)).unwrap();
        let day = |days_since_epoch: i64| days_since_epoch * SECONDS_PER_DAY;
        let march_29 = day(20_541);
        assert_eq!(berlin.from_local(march_29 + 2 * 3600 + 1800), LocalTime::Skipped);
        assert_eq!(berlin.from_local(march_29 + 3600), LocalTime::Once(Timestamp(march_29)));
        let autumn = around("Europe/Berlin", Timestamp(1_792_890_000)).unwrap();
        let october_25 = day(20_751);
        let twice = october_25 + 2 * 3600 + 1800;
        assert_eq!(
            autumn.from_local(twice),
            LocalTime::Twice(Timestamp(twice - 7200), Timestamp(twice - 3600))
        );
        for instant in [twice - 7200, twice - 3600] {
            assert_eq!(autumn.to_local(Timestamp(instant)), twice);
        }
        assert!(around("Mars/Olympus", Timestamp(0)).is_err());
    }

    #[test]
    fn zone_names_are_checked_for_shape() {
        assert!(is_plausible_name("Asia/Jakarta"));
        assert!(is_plausible_name("America/Argentina/Buenos_Aires"));
        assert!(is_plausible_name("UTC"));
        assert!(!is_plausible_name(""));
        assert!(!is_plausible_name("Asia/Jakarta "));
        assert!(!is_plausible_name("/etc/passwd"));
    }
}

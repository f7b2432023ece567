//! Local-time windows through the offset tables the origin compiles, across daylight saving changes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use popup_core::campaign::{Weekday, Window};
use popup_core::catalog::{Catalog, CatalogParts};
use popup_core::context::RequestContext;
use popup_core::ids::Timestamp;
use popup_core::resolve::Skip;
use popup_core::user::UserState;
use popup_core::zone::{compile, ZoneOffsets};

/// Parses an RFC 3339 instant into a Timestamp.
fn at(rfc3339: &str) -> Timestamp {
    Timestamp(chrono::DateTime::parse_from_rfc3339(rfc3339).unwrap().timestamp())
}

fn year_of(zone: &str) -> ZoneOffsets {
    compile(zone, at("2026-01-01T00:00:00Z"), at("2027-01-01T00:00:00Z")).unwrap()
}

#[test]
fn compiled_transitions_are_the_exact_dst_instants() {
    let new_york = year_of("America/New_York");
    // 2026: DST starts 8 March 07:00 UTC (02:00 EST), ends 1 November 06:00 UTC (02:00 EDT).
    let changes: Vec<(Timestamp, i32)> = new_york.transitions()[1..].to_vec();
    assert_eq!(changes, [(at("2026-03-08T07:00:00Z"), -4 * 3600), (at("2026-11-01T06:00:00Z"), -5 * 3600)]);
    assert_eq!(new_york.offset_at(at("2026-03-08T06:59:59Z")), -5 * 3600);
    assert_eq!(new_york.offset_at(at("2026-03-08T07:00:00Z")), -4 * 3600);
    // Jakarta has no DST: a single entry.
    assert_eq!(year_of("Asia/Jakarta").transitions(), [(at("2026-01-01T00:00:00Z"), 7 * 3600)]);
    // A half-hour zone with DST.
    let adelaide = year_of("Australia/Adelaide");
    assert_eq!(adelaide.offset_at(at("2026-01-15T00:00:00Z")), 10 * 3600 + 1800);
    assert_eq!(adelaide.offset_at(at("2026-07-15T00:00:00Z")), 9 * 3600 + 1800);
    assert!(compile("Mars/Olympus_Mons", at("2026-01-01T00:00:00Z"), at("2026-02-01T00:00:00Z")).is_err());
}

/// A daily 09:00-10:00 window in `zone`; returns whether a popup shows at each instant.
fn shows_at(zone: &str, window: (&str, &str), days: Vec<Weekday>, instants: &[&str]) -> Vec<bool> {
    let mut c = campaign(1);
    c.schedule.start = at("2025-12-01T00:00:00Z");
    c.schedule.time_zone = Some(zone.into());
    c.schedule.windows =
        vec![Window { days, start: window.0.parse().unwrap(), end: window.1.parse().unwrap() }];
    let mut parts = CatalogParts { version: 1, campaigns: vec![c], ..CatalogParts::default() };
    parts.zones.insert(zone.into(), year_of(zone));
    let catalog = Catalog::build(parts).unwrap();
    instants
        .iter()
        .map(|instant| {
            let decision = explain_for(
                &catalog,
                &user("u"),
                &UserState::default(),
                &RequestContext::default(),
                at(instant),
            );
            match decision.trace.as_slice() {
                [] => true,
                [(_, Skip::OutsideWindow)] => false,
                other => panic!("unexpected {other:?}"),
            }
        })
        .collect()
}

const EVERY_DAY: [Weekday; 7] =
    [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri, Weekday::Sat, Weekday::Sun];

#[test]
fn a_local_window_follows_the_clock_across_dst() {
    // 09:00 New York is 14:00 UTC in winter and 13:00 UTC in summer.
    let shows = shows_at(
        "America/New_York",
        ("09:00", "10:00"),
        EVERY_DAY.to_vec(),
        &[
            "2026-03-07T13:30:00Z", // Saturday 08:30 EST: before
            "2026-03-07T14:30:00Z", // Saturday 09:30 EST: inside
            "2026-03-09T13:30:00Z", // Monday 09:30 EDT: inside
            "2026-03-09T14:30:00Z", // Monday 10:30 EDT: after
            "2026-11-02T14:30:00Z", // Monday 09:30 EST again
        ],
    );
    assert_eq!(shows, [false, true, true, false, true]);
}

#[test]
fn a_window_in_the_skipped_hour_is_shorter_that_day_and_the_repeated_hour_counts_twice() {
    // London springs forward at 01:00 UTC on 29 March 2026 (01:00 -> 02:00 local), and falls back at 01:00
    // UTC on 25 October (02:00 BST -> 01:00 GMT).
    let shows = shows_at(
        "Europe/London",
        ("01:00", "02:00"),
        EVERY_DAY.to_vec(),
        &[
            "2026-03-29T00:59:59Z", // 00:59:59 GMT: before
            "2026-03-29T01:00:00Z", // 02:00 BST: the window's hour never happened
            "2026-10-25T00:30:00Z", // 01:30 BST: inside (first pass)
            "2026-10-25T01:30:00Z", // 01:30 GMT: inside (second pass)
            "2026-10-25T02:00:00Z", // 02:00 GMT: after
        ],
    );
    assert_eq!(shows, [false, false, true, true, false]);
}

#[test]
fn days_of_week_are_local_days() {
    // 23:30 UTC Sunday is 06:30 Monday in Jakarta.
    let shows = shows_at(
        "Asia/Jakarta",
        ("06:00", "07:00"),
        vec![Weekday::Mon],
        &["2026-01-04T23:30:00Z", "2026-01-05T23:30:00Z", "2026-01-04T06:30:00Z"],
    );
    assert_eq!(shows, [true, false, false]);
}

#[test]
fn an_overnight_window_spans_midnight() {
    // Friday 22:00 to Saturday 02:00 in Jakarta (UTC+7).
    let shows = shows_at(
        "Asia/Jakarta",
        ("22:00", "02:00"),
        vec![Weekday::Fri],
        &[
            "2026-01-09T14:59:00Z", // Fri 21:59
            "2026-01-09T15:00:00Z", // Fri 22:00
            "2026-01-09T18:59:00Z", // Sat 01:59
            "2026-01-09T19:00:00Z", // Sat 02:00
            "2026-01-10T15:30:00Z", // Sat 22:30: Saturday is not listed
            "2026-01-08T18:00:00Z", // Fri 01:00: the tail of Thursday's window, not listed
        ],
    );
    assert_eq!(shows, [false, true, true, false, false, false]);
}

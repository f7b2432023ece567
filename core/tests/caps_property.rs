//! Caps against random sequences of resolves and impressions.
//!
//! The model is the customer's side: at random moments the app asks for a popup, and shows it (posting an
//! impression) or not. The test keeps its own ledger of what was shown and checks every cap against it;
//! the resolver only sees the state the impression script keeps in Redis.
//!
//! Counters move when an impression is recorded, not when a popup is offered (see [`popup_core::resolve`]).
//! So the caps hold exactly when the app posts each impression before asking again
//! (`caps_are_never_exceeded`); an app holding k offers at once can exceed each by at most k - 1
//! (`caps_are_exceeded_by_at_most_the_offers_in_flight`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use popup_core::campaign::Campaign;
use popup_core::campaign::Caps;
use popup_core::catalog::{Catalog, CatalogParts, Settings};
use popup_core::context::RequestContext;
use popup_core::ids::{CampaignId, Timestamp};
use popup_core::resolve::{resolve, Subject};
use popup_core::store::KeySpace;
use popup_core::user::UserState;
use proptest::prelude::*;
use std::collections::BTreeMap;

#[derive(Clone, Debug)]
struct Step {
    advance_seconds: i64,
    shows_popup: bool,
}

fn caps() -> impl Strategy<Value = Caps> {
    (
        proptest::option::of(1u32..6),
        proptest::option::of(1u32..4),
        proptest::option::of(prop_oneof![Just(60u32), Just(3600), Just(4 * 3600)]),
    )
        .prop_map(|(lifetime, per_day, min_interval_seconds)| Caps {
            per_day: match (lifetime, per_day) {
                (Some(l), Some(d)) => Some(d.min(l)),
                (_, d) => d,
            },
            lifetime,
            min_interval_seconds,
        })
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let step = (
        prop_oneof![Just(0i64), 1i64..600, 600i64..(6 * HOUR), (6 * HOUR)..(2 * DAY)],
        prop::bool::weighted(0.8),
    )
        .prop_map(|(advance_seconds, shows_popup)| Step { advance_seconds, shows_popup });
    prop::collection::vec(step, 1..120)
}

#[derive(Default)]
struct Ledger {
    lifetime: BTreeMap<CampaignId, u32>,
    per_day: BTreeMap<(CampaignId, i64), u32>,
    all_per_day: BTreeMap<i64, u32>,
    last: BTreeMap<CampaignId, Timestamp>,
}

/// One campaign per entry of `caps`, the later ones first.
fn capped_catalog(caps: &[Caps], global: Option<u32>) -> Catalog {
    let campaigns: Vec<Campaign> = caps
        .iter()
        .enumerate()
        .map(|(i, caps)| {
            let mut c = campaign(i as u64 + 1);
            c.priority = i as i32;
            c.caps = caps.clone();
            c
        })
        .collect();
    Catalog::build(CatalogParts {
        version: 1,
        settings: Settings { max_popups_per_day: global },
        campaigns,
        ..CatalogParts::default()
    })
    .unwrap()
}

/// What the app does next, with offers it holds: ask for another popup, show one (post its impression),
/// or drop one without ever showing it. Indices pick among held offers, modulo their number.
#[derive(Clone, Debug)]
enum Action {
    Ask,
    Show(usize),
    Drop(usize),
}

#[derive(Clone, Debug)]
struct Move {
    advance_seconds: i64,
    action: Action,
}

fn moves() -> impl Strategy<Value = Vec<Move>> {
    let action = prop_oneof![
        4 => Just(Action::Ask),
        4 => any::<usize>().prop_map(Action::Show),
        1 => any::<usize>().prop_map(Action::Drop),
    ];
    let step = (prop_oneof![Just(0i64), 1i64..600, 600i64..(6 * HOUR), (6 * HOUR)..(2 * DAY)], action)
        .prop_map(|(advance_seconds, action)| Move { advance_seconds, action });
    prop::collection::vec(step, 1..160)
}

/// Impressions as the ledger of the concurrent property keeps them: day numbers are computed here from
/// the offset, independently of the key space.
#[derive(Default)]
struct Recorded {
    lifetime: BTreeMap<CampaignId, u32>,
    per_day: BTreeMap<(CampaignId, i64), u32>,
    all_per_day: BTreeMap<i64, u32>,
    times: BTreeMap<CampaignId, Vec<Timestamp>>,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn caps_are_never_exceeded(
        campaign_caps in prop::collection::vec(caps(), 1..5),
        global in proptest::option::of(1u32..5),
        day_offset_hours in -12i32..=14,
        steps in steps(),
    ) {
        let catalog = capped_catalog(&campaign_caps, global);
        let keys = KeySpace::new("p", day_offset_hours * 3600).unwrap();
        let user = user("u");
        let context = RequestContext::default();
        let mut state = UserState::default();
        let mut ledger = Ledger::default();
        let mut now = T0;
        let mut today = keys.day(now);

        for step in steps {
            now = now.plus(step.advance_seconds);
            if keys.day(now) != today {
                today = keys.day(now);
                state.start_new_day();
            }
            let decision = resolve(&catalog, &Subject { user: &user, state: &state, context: &context, now });
            let Some(chosen) = decision.chosen else { continue };
            if !step.shows_popup {
                continue;
            }
            let id = chosen.campaign.id;
            state.record_impression(id, now);
            let caps = &chosen.campaign.caps;

            let lifetime = ledger.lifetime.entry(id).or_default();
            *lifetime += 1;
            prop_assert!(caps.lifetime.is_none_or(|cap| *lifetime <= cap), "lifetime cap of {id} exceeded");
            let daily = ledger.per_day.entry((id, today)).or_default();
            *daily += 1;
            prop_assert!(caps.per_day.is_none_or(|cap| *daily <= cap), "daily cap of {id} exceeded");
            let all = ledger.all_per_day.entry(today).or_default();
            *all += 1;
            prop_assert!(global.is_none_or(|cap| *all <= cap), "global daily cap exceeded");
            if let (Some(interval), Some(last)) = (caps.min_interval_seconds, ledger.last.get(&id)) {
                prop_assert!(now.0 - last.0 >= i64::from(interval), "interval of {id} not respected");
            }
            ledger.last.insert(id, now);
        }
    }

    #[test]
    fn caps_are_exceeded_by_at_most_the_offers_in_flight(
        campaign_caps in prop::collection::vec(caps(), 1..5),
        global in proptest::option::of(1u32..5),
        day_offset_hours in -12i32..=14,
        hold in 1usize..=4,
        moves in moves(),
    ) {
        let catalog = capped_catalog(&campaign_caps, global);
        let day_offset = i64::from(day_offset_hours) * 3600;
        let keys = KeySpace::new("p", day_offset_hours * 3600).unwrap();
        let user = user("u");
        let context = RequestContext::default();
        let mut state = UserState::default();
        let mut recorded = Recorded::default();
        // Offers answered by a resolve whose impression is not recorded yet, and not dropped.
        let mut in_flight: Vec<CampaignId> = Vec::new();
        let mut most_in_flight = 1;
        let mut now = T0;
        let mut today = keys.day(now);

        for step in moves {
            now = now.plus(step.advance_seconds);
            if keys.day(now) != today {
                today = keys.day(now);
                state.start_new_day();
            }
            match step.action {
                // The app holds at most `hold` offers; asking with its hands full does nothing.
                Action::Ask if in_flight.len() < hold => {
                    let subject = Subject { user: &user, state: &state, context: &context, now };
                    if let Some(chosen) = resolve(&catalog, &subject).chosen {
                        in_flight.push(chosen.campaign.id);
                        most_in_flight = most_in_flight.max(in_flight.len());
                    }
                }
                Action::Ask => {}
                Action::Show(i) if !in_flight.is_empty() => {
                    let id = in_flight.remove(i % in_flight.len());
                    state.record_impression(id, now);
                    let day = (now.0 + day_offset).div_euclid(DAY);
                    *recorded.lifetime.entry(id).or_default() += 1;
                    *recorded.per_day.entry((id, day)).or_default() += 1;
                    *recorded.all_per_day.entry(day).or_default() += 1;
                    recorded.times.entry(id).or_default().push(now);
                }
                Action::Drop(i) if !in_flight.is_empty() => {
                    in_flight.remove(i % in_flight.len());
                }
                Action::Show(_) | Action::Drop(_) => {}
            }
        }

        let slack = u32::try_from(most_in_flight - 1).unwrap();
        let k = most_in_flight;
        for (i, caps) in campaign_caps.iter().enumerate() {
            let id = CampaignId(i as u64 + 1);
            if let Some(cap) = caps.lifetime {
                let count = recorded.lifetime.get(&id).copied().unwrap_or(0);
                prop_assert!(count <= cap + slack, "lifetime of {id}: {count} > {cap} + {slack}");
            }
            if let Some(cap) = caps.per_day {
                for ((_, day), &count) in recorded.per_day.range((id, i64::MIN)..=(id, i64::MAX)) {
                    prop_assert!(count <= cap + slack, "day {day} of {id}: {count} > {cap} + {slack}");
                }
            }
            // An interval allows one impression per span of `interval` seconds; with k in flight, k.
            if let (Some(interval), Some(times)) = (caps.min_interval_seconds, recorded.times.get(&id)) {
                for (j, start) in times.iter().enumerate() {
                    let within = times[j..].iter().take_while(|t| t.0 < start.0 + i64::from(interval)).count();
                    prop_assert!(within <= k, "{within} impressions of {id} within {interval}s from {start:?}");
                }
            }
        }
        if let Some(cap) = global {
            for (day, &count) in &recorded.all_per_day {
                prop_assert!(count <= cap + slack, "all campaigns on day {day}: {count} > {cap} + {slack}");
            }
        }
    }
}

/// The bound is reached: two resolves answered before the first impression is recorded both offer a
/// campaign with a lifetime cap of one, and both impressions count.
#[test]
fn two_offers_in_flight_can_exceed_a_cap_by_one() {
    let catalog = capped_catalog(&[Caps { lifetime: Some(1), ..Caps::default() }], None);
    let user = user("u");
    let context = RequestContext::default();
    let mut state = UserState::default();
    let subject = Subject { user: &user, state: &state, context: &context, now: T0 };
    let first = resolve(&catalog, &subject).chosen.map(|s| s.campaign.id);
    let second = resolve(&catalog, &subject).chosen.map(|s| s.campaign.id);
    assert_eq!((first, second), (Some(CampaignId(1)), Some(CampaignId(1))));
    state.record_impression(CampaignId(1), T0);
    state.record_impression(CampaignId(1), T0);
    assert_eq!(state.counters(CampaignId(1)).lifetime, 2);
    // Once recorded, the cap holds again.
    let subject = Subject { user: &user, state: &state, context: &context, now: T0 };
    assert!(resolve(&catalog, &subject).chosen.is_none());
}

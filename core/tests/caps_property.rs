//! No sequence of resolves and impressions ever exceeds a campaign's caps or the global daily cap.
//!
//! The model is the customer's side: at random moments the app asks for a popup, and shows it (posting an
//! impression) or not. The test keeps its own ledger of what was shown and checks every cap against it;
//! the resolver only sees the state the impression script keeps in Redis.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn caps_are_never_exceeded(
        campaign_caps in prop::collection::vec(caps(), 1..5),
        global in proptest::option::of(1u32..5),
        day_offset_hours in -12i32..=14,
        steps in steps(),
    ) {
        let campaigns = campaign_caps.iter().enumerate().map(|(i, caps)| {
            let mut c = campaign(i as u64 + 1);
            c.priority = i as i32;
            c.caps = caps.clone();
            c
        }).collect();
        let catalog = Catalog::build(CatalogParts {
            version: 1,
            settings: Settings { max_popups_per_day: global },
            campaigns,
            ..CatalogParts::default()
        }).unwrap();
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
}

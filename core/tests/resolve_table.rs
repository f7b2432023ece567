//! One case per skip reason and per cap: a scenario is built from defaults, one thing is changed, and the
//! decision must be exactly the expected one. Each reason also has a twin case just on the other side of
//! its boundary, so a check that always skips (or never does) fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use popup_core::campaign::{Campaign, Include, Variant, VersionRange, Weekday, Window};
use popup_core::catalog::{Catalog, CatalogParts, Settings};
use popup_core::context::{Platform, RequestContext};
use popup_core::ids::{CampaignId, SegmentId, Timestamp};
use popup_core::resolve::{control_variant, resolve, Rule, Skip, Subject};
use popup_core::user::{Counters, UserState};
use popup_core::zone::ZoneOffsets;

/// What one case changes; everything else is the default: campaign 1, visible to anyone, now = T0 + 1 day.
struct Scenario {
    campaign: Campaign,
    parts: CatalogParts,
    state: UserState,
    context: RequestContext,
    now: Timestamp,
}

#[derive(Debug, PartialEq)]
enum Expect {
    Shown(&'static str),
    Skipped(Skip),
}

struct Case {
    name: &'static str,
    setup: fn(&mut Scenario),
    expect: Expect,
}

const SEGMENT: SegmentId = SegmentId(7);
const OTHER_SEGMENT: SegmentId = SegmentId(8);

fn counters(lifetime: u32, today: u32, last_shown: Option<Timestamp>) -> Counters {
    Counters { lifetime, today, last_shown }
}

fn seen(s: &mut Scenario, c: Counters) {
    s.state.campaigns.insert(CampaignId(1), c);
}

/// Jakarta is UTC+7 all year.
fn jakarta_window(s: &mut Scenario, days: Vec<Weekday>, start: &str, end: &str) {
    s.campaign.schedule.time_zone = Some("Asia/Jakarta".into());
    s.campaign.schedule.windows =
        vec![Window { days, start: start.parse().unwrap(), end: end.parse().unwrap() }];
    s.parts.zones.insert("Asia/Jakarta".into(), ZoneOffsets::fixed(7 * 3600));
}

/// T0 + 1 day is Friday 2026-01-02 00:00 UTC = 07:00 in Jakarta.
const CASES: &[Case] = &[
    Case { name: "defaults show", setup: |_| {}, expect: Expect::Shown("default") },
    // Schedule.
    Case {
        name: "before start",
        setup: |s| s.campaign.schedule.start = s.now.plus(1),
        expect: Expect::Skipped(Skip::NotStarted),
    },
    Case { name: "at start", setup: |s| s.campaign.schedule.start = s.now, expect: Expect::Shown("default") },
    Case {
        name: "at end (exclusive)",
        setup: |s| s.campaign.schedule.end = Some(s.now),
        expect: Expect::Skipped(Skip::Ended),
    },
    Case {
        name: "just before end",
        setup: |s| s.campaign.schedule.end = Some(s.now.plus(1)),
        expect: Expect::Shown("default"),
    },
    Case {
        name: "window on another day",
        setup: |s| jakarta_window(s, vec![Weekday::Mon], "00:00", "24:00"),
        expect: Expect::Skipped(Skip::OutsideWindow),
    },
    Case {
        name: "window later today",
        setup: |s| jakarta_window(s, vec![Weekday::Fri], "07:01", "09:00"),
        expect: Expect::Skipped(Skip::OutsideWindow),
    },
    Case {
        name: "window ends now",
        setup: |s| jakarta_window(s, vec![Weekday::Fri], "06:00", "07:00"),
        expect: Expect::Skipped(Skip::OutsideWindow),
    },
    Case {
        name: "inside window",
        setup: |s| jakarta_window(s, vec![Weekday::Fri], "07:00", "07:01"),
        expect: Expect::Shown("default"),
    },
    Case {
        name: "overnight window from the day before",
        setup: |s| jakarta_window(s, vec![Weekday::Thu], "22:00", "08:00"),
        expect: Expect::Shown("default"),
    },
    Case {
        name: "overnight window listed for today only",
        setup: |s| jakarta_window(s, vec![Weekday::Fri], "22:00", "08:00"),
        expect: Expect::Skipped(Skip::OutsideWindow),
    },
    // Budget.
    Case {
        name: "budget spent",
        setup: |s| {
            s.campaign.budget = Some(10);
            s.parts.served.insert(CampaignId(1), 10);
        },
        expect: Expect::Skipped(Skip::BudgetExhausted),
    },
    Case {
        name: "budget has one left",
        setup: |s| {
            s.campaign.budget = Some(10);
            s.parts.served.insert(CampaignId(1), 9);
        },
        expect: Expect::Shown("default"),
    },
    // Placement.
    Case {
        name: "other placement",
        setup: |s| {
            s.campaign.placements = vec!["login".into()];
            s.context.placement = Some("home".into());
        },
        expect: Expect::Skipped(Skip::WrongPlacement),
    },
    Case {
        name: "placement not said",
        setup: |s| s.campaign.placements = vec!["login".into()],
        expect: Expect::Skipped(Skip::WrongPlacement),
    },
    Case {
        name: "matching placement",
        setup: |s| {
            s.campaign.placements = vec!["login".into(), "home".into()];
            s.context.placement = Some("home".into());
        },
        expect: Expect::Shown("default"),
    },
    // Request rules.
    Case {
        name: "other platform",
        setup: |s| {
            s.campaign.rules.platforms = vec![Platform::Ios];
            s.context.platform = Some(Platform::Android);
        },
        expect: Expect::Skipped(Skip::RuleMismatch(Rule::Platform)),
    },
    Case {
        name: "platform not said",
        setup: |s| s.campaign.rules.platforms = vec![Platform::Ios],
        expect: Expect::Skipped(Skip::RuleMismatch(Rule::Platform)),
    },
    Case {
        name: "matching platform",
        setup: |s| {
            s.campaign.rules.platforms = vec![Platform::Ios];
            s.context.platform = Some(Platform::Ios);
        },
        expect: Expect::Shown("default"),
    },
    Case {
        name: "version below min",
        setup: |s| version_rule(s, "5.1.9"),
        expect: Expect::Skipped(Skip::RuleMismatch(Rule::AppVersion)),
    },
    Case { name: "version at min", setup: |s| version_rule(s, "5.2"), expect: Expect::Shown("default") },
    Case {
        name: "version at max (exclusive)",
        setup: |s| version_rule(s, "6.0.0"),
        expect: Expect::Skipped(Skip::RuleMismatch(Rule::AppVersion)),
    },
    Case {
        name: "version not said",
        setup: |s| {
            version_rule(s, "5.2.0");
            s.context.app_version = None;
        },
        expect: Expect::Skipped(Skip::RuleMismatch(Rule::AppVersion)),
    },
    Case {
        name: "other country",
        setup: |s| {
            s.campaign.rules.countries = vec!["ID".into()];
            s.context.country = Some("SG".into());
        },
        expect: Expect::Skipped(Skip::RuleMismatch(Rule::Country)),
    },
    Case {
        name: "matching country",
        setup: |s| {
            s.campaign.rules.countries = vec!["ID".into()];
            s.context.country = Some("id".into());
        },
        expect: Expect::Shown("default"),
    },
    Case {
        name: "other locale",
        setup: |s| {
            s.campaign.rules.locales = vec!["id".into()];
            s.context.locale = Some("en-US".into());
        },
        expect: Expect::Skipped(Skip::RuleMismatch(Rule::Locale)),
    },
    Case {
        name: "locale of the language",
        setup: |s| {
            s.campaign.rules.locales = vec!["id".into()];
            s.context.locale = Some("id-ID".into());
        },
        expect: Expect::Shown("default"),
    },
    // Audience.
    Case {
        name: "not in segment",
        setup: |s| include_segment(s, None),
        expect: Expect::Skipped(Skip::NotInAudience),
    },
    Case {
        name: "in an older version of the segment",
        setup: |s| include_segment(s, Some(2)),
        expect: Expect::Skipped(Skip::NotInAudience),
    },
    Case {
        name: "in the current segment version",
        setup: |s| include_segment(s, Some(3)),
        expect: Expect::Shown("default"),
    },
    Case {
        name: "in an excluded segment",
        setup: |s| exclude_segment(s, Some(1)),
        expect: Expect::Skipped(Skip::Excluded),
    },
    Case {
        name: "in an old version of an excluded segment",
        setup: |s| exclude_segment(s, Some(0)),
        expect: Expect::Shown("default"),
    },
    // A segment the catalog has no version for (never uploaded, or deleted) cannot be checked.
    Case {
        name: "excluded segment without a current version fails closed",
        setup: |s| {
            exclude_segment(s, Some(1));
            s.parts.segments.clear();
        },
        expect: Expect::Skipped(Skip::Excluded),
    },
    Case {
        name: "excluded segment without a current version, customer listed nowhere",
        setup: |s| {
            exclude_segment(s, None);
            s.parts.segments.clear();
        },
        expect: Expect::Skipped(Skip::Excluded),
    },
    Case {
        name: "included segment without a current version matches nobody",
        setup: |s| {
            s.campaign.audience.include = Include::AnyOf(vec![SEGMENT]);
            s.state.add_membership(SEGMENT, 3);
        },
        expect: Expect::Skipped(Skip::NotInAudience),
    },
    Case {
        name: "an unversioned included segment does not hide a versioned one",
        setup: |s| {
            include_segment(s, Some(3));
            s.parts.segments.remove(&OTHER_SEGMENT);
        },
        expect: Expect::Shown("default"),
    },
    // Caps.
    Case {
        name: "lifetime cap reached",
        setup: |s| {
            s.campaign.caps.lifetime = Some(3);
            seen(s, counters(3, 0, None));
        },
        expect: Expect::Skipped(Skip::TotalCap),
    },
    Case {
        name: "lifetime cap not reached",
        setup: |s| {
            s.campaign.caps.lifetime = Some(3);
            seen(s, counters(2, 0, None));
        },
        expect: Expect::Shown("default"),
    },
    Case {
        name: "daily cap reached",
        setup: |s| {
            s.campaign.caps.per_day = Some(2);
            seen(s, counters(9, 2, None));
        },
        expect: Expect::Skipped(Skip::DailyCap),
    },
    Case {
        name: "daily cap not reached",
        setup: |s| {
            s.campaign.caps.per_day = Some(2);
            seen(s, counters(9, 1, None));
        },
        expect: Expect::Shown("default"),
    },
    Case {
        name: "interval not elapsed",
        setup: |s| {
            s.campaign.caps.min_interval_seconds = Some(3600);
            seen(s, counters(1, 1, Some(s.now.plus(-3599))));
        },
        expect: Expect::Skipped(Skip::Interval),
    },
    Case {
        name: "interval elapsed",
        setup: |s| {
            s.campaign.caps.min_interval_seconds = Some(3600);
            seen(s, counters(1, 1, Some(s.now.plus(-3600))));
        },
        expect: Expect::Shown("default"),
    },
    Case {
        name: "global daily cap reached",
        setup: |s| {
            s.parts.settings = Settings { max_popups_per_day: Some(2) };
            s.state.shown_today = 2;
        },
        expect: Expect::Skipped(Skip::GlobalDailyCap),
    },
    Case {
        name: "global daily cap not reached",
        setup: |s| {
            s.parts.settings = Settings { max_popups_per_day: Some(2) };
            s.state.shown_today = 1;
        },
        expect: Expect::Shown("default"),
    },
    // While Redis is being restored (after it lost its data).
    Case {
        name: "an excluded segment being restored decides nothing",
        setup: |s| {
            exclude_segment(s, None);
            s.parts.segments.clear();
            s.parts.restoring.segments.insert(SEGMENT);
        },
        expect: Expect::Skipped(Skip::Restoring),
    },
    Case {
        name: "a loaded excluded segment decides even while another is restored",
        setup: |s| {
            exclude_segment(s, Some(1));
            s.campaign.audience.exclude.push(OTHER_SEGMENT);
            s.parts.restoring.segments.insert(OTHER_SEGMENT);
        },
        expect: Expect::Skipped(Skip::Excluded),
    },
    Case {
        name: "an included segment being restored decides nothing",
        setup: |s| {
            s.campaign.audience.include = Include::AnyOf(vec![SEGMENT]);
            s.parts.restoring.segments.insert(SEGMENT);
        },
        expect: Expect::Skipped(Skip::Restoring),
    },
    Case {
        name: "a membership of a loaded included segment decides while another is restored",
        setup: |s| {
            include_segment(s, Some(3));
            s.parts.segments.remove(&OTHER_SEGMENT);
            s.parts.restoring.segments.insert(OTHER_SEGMENT);
        },
        expect: Expect::Shown("default"),
    },
    Case {
        name: "a capped campaign whose counters are being restored decides nothing",
        setup: |s| {
            s.campaign.caps.lifetime = Some(3);
            s.parts.restoring.counters.insert(CampaignId(1));
        },
        expect: Expect::Skipped(Skip::Restoring),
    },
    Case {
        name: "an uncapped campaign does not need its counters",
        setup: |s| {
            s.parts.restoring.counters.insert(CampaignId(1));
        },
        expect: Expect::Shown("default"),
    },
    Case {
        name: "the global daily cap needs today's totals",
        setup: |s| {
            s.parts.settings = Settings { max_popups_per_day: Some(2) };
            s.parts.restoring.daily_totals = true;
        },
        expect: Expect::Skipped(Skip::Restoring),
    },
    Case {
        name: "without a global daily cap today's totals are not needed",
        setup: |s| {
            s.parts.restoring.daily_totals = true;
        },
        expect: Expect::Shown("default"),
    },
    Case {
        name: "rules are still decided while the audience is restored",
        setup: |s| {
            s.campaign.placements = vec!["home".into()];
            s.campaign.audience.include = Include::AnyOf(vec![SEGMENT]);
            s.parts.restoring.segments.insert(SEGMENT);
        },
        expect: Expect::Skipped(Skip::WrongPlacement),
    },
    // Variants.
    // A 1-in-a-million chance of "b": the test user (fixed) lands in control.
    Case {
        name: "holdout",
        setup: |s| s.campaign.variants = vec![variant("control", 999_999, true), variant("b", 1, false)],
        expect: Expect::Skipped(Skip::Holdout),
    },
    Case {
        name: "variant",
        setup: |s| s.campaign.variants = vec![variant("control", 0, true), variant("b", 1, false)],
        expect: Expect::Shown("b"),
    },
    // Order: an earlier check wins over a later one.
    Case {
        name: "ended beats capped",
        setup: |s| {
            s.campaign.schedule.end = Some(s.now);
            s.campaign.caps.lifetime = Some(1);
            seen(s, counters(1, 1, None));
        },
        expect: Expect::Skipped(Skip::Ended),
    },
];

fn version_rule(s: &mut Scenario, requested: &str) {
    s.campaign.rules.app_version =
        Some(VersionRange { min: Some("5.2.0".parse().unwrap()), max: Some("6.0.0".parse().unwrap()) });
    s.context.app_version = Some(requested.parse().unwrap());
}

/// The campaign targets SEGMENT, whose current version is 3; the user holds `membership`.
fn include_segment(s: &mut Scenario, membership: Option<u64>) {
    s.campaign.audience.include = Include::AnyOf(vec![OTHER_SEGMENT, SEGMENT]);
    s.parts.segments.insert(SEGMENT, 3);
    s.parts.segments.insert(OTHER_SEGMENT, 1);
    if let Some(version) = membership {
        s.state.add_membership(SEGMENT, version);
    }
}

/// Everyone but SEGMENT, whose current version is 1.
fn exclude_segment(s: &mut Scenario, membership: Option<u64>) {
    s.campaign.audience.exclude = vec![SEGMENT];
    s.parts.segments.insert(SEGMENT, 1);
    if let Some(version) = membership {
        s.state.add_membership(SEGMENT, version);
    }
}

fn variant(key: &str, weight: u32, control: bool) -> Variant {
    Variant { key: key.into(), weight, control, creative: None }
}

fn check(case: &Case) {
    let mut scenario = Scenario {
        campaign: campaign(1),
        parts: CatalogParts { version: 1, ..CatalogParts::default() },
        state: UserState::default(),
        context: RequestContext::default(),
        now: T0.plus(DAY),
    };
    (case.setup)(&mut scenario);
    scenario.parts.campaigns = vec![scenario.campaign.clone()];
    let catalog = Catalog::build(scenario.parts).unwrap_or_else(|e| panic!("{}: {e}", case.name));
    let user = user("cust-1");
    let decision = explain_for(&catalog, &user, &scenario.state, &scenario.context, scenario.now);
    let outcome = match (&decision.chosen, decision.trace.as_slice()) {
        (Some(chosen), []) => Expect::Shown(if chosen.variant == "b" { "b" } else { "default" }),
        (None, [(CampaignId(1), skip)]) => Expect::Skipped(*skip),
        other => panic!("{}: unexpected decision {other:?}", case.name),
    };
    assert_eq!(outcome, case.expect, "case: {}", case.name);
    // The fast path agrees with the explained one.
    let fast = resolve(
        &catalog,
        &Subject { user: &user, state: &scenario.state, context: &scenario.context, now: scenario.now },
    );
    assert_eq!(fast.chosen, decision.chosen, "case: {}", case.name);
    assert!(fast.trace.is_empty());
}

#[test]
fn every_skip_reason_and_cap() {
    for case in CASES {
        check(case);
    }
    // Every reason but LowerPriority (next test) has a case.
    for reason in Skip::ALL.into_iter().filter(|r| *r != Skip::LowerPriority) {
        assert!(CASES.iter().any(|c| c.expect == Expect::Skipped(reason)), "no case for {reason:?}");
    }
}

#[test]
fn priority_orders_campaigns_and_the_older_wins_a_tie() {
    let mut low = campaign(1);
    low.priority = 1;
    let mut high = campaign(3);
    high.priority = 5;
    let mut tie_newer = campaign(4);
    tie_newer.priority = 5;
    let catalog = catalog(vec![tie_newer, low, high]);
    let order: Vec<u64> = catalog.campaigns().iter().map(|c| c.id.0).collect();
    assert_eq!(order, [3, 4, 1]);
    let decision = explain_for(&catalog, &user("u"), &UserState::default(), &RequestContext::default(), T0);
    assert_eq!(decision.chosen.unwrap().campaign.id, CampaignId(3));
    assert_eq!(decision.trace, [(CampaignId(4), Skip::LowerPriority), (CampaignId(1), Skip::LowerPriority)]);
}

#[test]
fn a_holdout_falls_through_to_the_next_campaign_and_is_reported() {
    let mut held = campaign(1);
    held.priority = 9;
    held.variants = vec![variant("control", 999_999, true), variant("b", 1, false)];
    let catalog = catalog(vec![held, campaign(2)]);
    let state = UserState::default();
    let decision = explain_for(&catalog, &user("u"), &state, &RequestContext::default(), T0);
    assert_eq!(decision.chosen.unwrap().campaign.id, CampaignId(2));
    assert_eq!(decision.holdouts, [(CampaignId(1), "control")]);
    assert_eq!(decision.trace, [(CampaignId(1), Skip::Holdout)]);
}

#[test]
fn the_control_variant_named_for_a_conversion_is_the_one_the_resolver_held_out() {
    let mut split = campaign(1);
    split.variants = vec![variant("a", 1, false), variant("control", 1, true), variant("quiet", 1, true)];
    let catalog = catalog(vec![split.clone()]);
    let (mut held, mut shown) = (0, 0);
    for n in 0..300 {
        let u = user(&format!("cust-{n}"));
        let decision = explain_for(&catalog, &u, &UserState::default(), &RequestContext::default(), T0);
        let control = control_variant(split.id, &split.variants, &u);
        match decision.holdouts.first() {
            Some((_, key)) => {
                assert_eq!(control, Some(*key), "{u:?}");
                held += 1;
            }
            None => {
                assert_eq!(control, None, "{u:?}");
                shown += 1;
            }
        }
    }
    assert!(held > 150 && shown > 60, "both arms drawn: {held} held, {shown} shown");
    assert_eq!(control_variant(split.id, &[], &user("u")), None, "no variants, no control");
}

#[test]
fn a_variant_creative_replaces_the_campaigns() {
    let mut c = campaign(1);
    let mut b = variant("b", 1, false);
    b.creative = Some(popup_core::campaign::Creative { title: "B title".into(), ..Default::default() });
    c.variants = vec![b];
    let catalog = catalog(vec![c]);
    let decision = explain_for(&catalog, &user("u"), &UserState::default(), &RequestContext::default(), T0);
    assert_eq!(decision.chosen.unwrap().creative.title, "B title");
}

#[test]
fn no_campaigns_means_no_popup() {
    let catalog = Catalog::empty();
    let decision = explain_for(&catalog, &user("u"), &UserState::default(), &RequestContext::default(), T0);
    assert!(decision.chosen.is_none() && decision.trace.is_empty());
}

#[test]
fn resolution_stops_at_a_campaign_that_cannot_be_decided_yet() {
    // A segment of the higher campaign is being restored: its members may see it, and everyone else the
    // lower one, but which is which is unknown, so nobody sees anything.
    let mut members_only = campaign(1);
    members_only.priority = 9;
    members_only.audience.include = Include::AnyOf(vec![SEGMENT]);
    let mut parts =
        CatalogParts { version: 1, campaigns: vec![members_only, campaign(2)], ..Default::default() };
    parts.restoring.segments.insert(SEGMENT);
    let catalog = Catalog::build(parts.clone()).unwrap();
    let state = UserState::default();
    let decision = explain_for(&catalog, &user("u"), &state, &RequestContext::default(), T0);
    assert!(decision.chosen.is_none());
    assert_eq!(decision.trace, [(CampaignId(1), Skip::Restoring), (CampaignId(2), Skip::LowerPriority)]);
    let subject = Subject { user: &user("u"), state: &state, context: &RequestContext::default(), now: T0 };
    assert!(resolve(&catalog, &subject).chosen.is_none());
    // Once the segment is back, non-members get the lower campaign again.
    parts.restoring.segments.clear();
    parts.segments.insert(SEGMENT, 1);
    let catalog = Catalog::build(parts).unwrap();
    assert_eq!(resolve(&catalog, &subject).chosen.unwrap().campaign.id, CampaignId(2));
}

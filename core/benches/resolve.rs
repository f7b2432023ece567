//! Resolve over 10, 100 and 1,000 live campaigns, decoding the catalog, and reading a resolve's replies.
//!
//! Run with `scripts/bench-core` (or `cargo bench -p popup-core --bench resolve`).
//!
//! The catalog is shaped like a real one: every campaign targets one of 50 segments, most have caps, a
//! quarter run in local-time windows, some have rules and A/B variants. The customer belongs to three
//! segments and has seen a few campaigns. Two cases per size:
//! - `first_match`: the customer is eligible for a campaign early in the order (the common case).
//! - `full_scan`: the customer is eligible for nothing, so every campaign is checked (the worst case).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use popup_core::campaign::{Campaign, Caps, Creative, Include, Schedule, Variant, Weekday, Window};
use popup_core::catalog::{Catalog, CatalogParts, Settings};
use popup_core::context::{Platform, RequestContext};
use popup_core::ids::{CampaignId, SegmentId, Timestamp, UserId};
use popup_core::resolve::{resolve, Subject};
use popup_core::store::{KeySpace, Reply, ResolvePlan};
use popup_core::user::{Counters, UserState};
use popup_core::zone::ZoneOffsets;

const NOW: Timestamp = Timestamp(1_767_258_000); // Thursday 2026-01-01 09:00 UTC, 16:00 in Jakarta
const SEGMENTS: u32 = 50;

fn campaign(id: u64) -> Campaign {
    let mut c = Campaign {
        id: CampaignId(id),
        name: format!("Campaign {id}"),
        priority: (id % 17) as i32,
        placements: if id.is_multiple_of(3) { vec!["home".into()] } else { vec![] },
        schedule: Schedule {
            start: Timestamp(NOW.0 - 86_400),
            end: Some(Timestamp(NOW.0 + 30 * 86_400)),
            time_zone: None,
            windows: vec![],
        },
        creative: Creative {
            title: format!("Special offer {id}"),
            body: "Get 5% cashback on every QRIS payment this month.".into(),
            image_url: Some(format!("https://cdn.example.com/promo/{id}.png")),
            action_url: Some(format!("bankapp://promo/{id}")),
            extra: Default::default(),
        },
        variants: vec![],
        caps: Caps { lifetime: Some(3), per_day: Some(1), min_interval_seconds: Some(3600) },
        audience: Default::default(),
        rules: Default::default(),
        budget: if id.is_multiple_of(5) { Some(1_000_000) } else { None },
    };
    c.audience.include = Include::AnyOf(vec![SegmentId((id % u64::from(SEGMENTS)) as u32)]);
    if id.is_multiple_of(4) {
        c.schedule.time_zone = Some("Asia/Jakarta".into());
        c.schedule.windows = vec![Window {
            days: vec![Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri],
            start: "08:00".parse().unwrap(),
            end: "20:00".parse().unwrap(),
        }];
    }
    if id.is_multiple_of(6) {
        c.rules.platforms = vec![Platform::Ios, Platform::Android];
        c.rules.app_version =
            Some(popup_core::campaign::VersionRange { min: Some("5.0.0".parse().unwrap()), max: None });
    }
    if id.is_multiple_of(2) {
        c.variants = vec![
            Variant { key: "control".into(), weight: 10, control: true, creative: None },
            Variant { key: "a".into(), weight: 45, control: false, creative: None },
            Variant { key: "b".into(), weight: 45, control: false, creative: None },
        ];
    }
    c
}

fn catalog(size: u64) -> Catalog {
    let mut parts = CatalogParts {
        version: 1,
        settings: Settings { max_popups_per_day: Some(5) },
        campaigns: (1..=size).map(campaign).collect(),
        ..CatalogParts::default()
    };
    parts.segments = (0..SEGMENTS).map(|s| (SegmentId(s), 1)).collect();
    parts.zones.insert("Asia/Jakarta".into(), ZoneOffsets::fixed(7 * 3600));
    Catalog::build(parts).unwrap()
}

/// A customer in three segments who has seen three campaigns. `eligible` decides whether those segments
/// are targeted by any campaign (version 1 is current) or only by stale uploads (version 0).
fn user_state(eligible: bool) -> UserState {
    let mut state = UserState::default();
    let version = u64::from(eligible);
    for segment in [3, 17, 41] {
        state.add_membership(SegmentId(segment), version);
    }
    for campaign in [3, 17, 41] {
        state.campaigns.insert(
            CampaignId(campaign),
            Counters { lifetime: 1, today: 0, last_shown: Some(Timestamp(NOW.0 - 86_400)) },
        );
    }
    state.shown_today = 1;
    state
}

fn bench_resolve(c: &mut Criterion) {
    let user = UserId::parse("cust-0012345").unwrap();
    let context = RequestContext {
        placement: Some("home".into()),
        platform: Some(Platform::Android),
        app_version: Some("5.2.0".parse().unwrap()),
        country: Some("ID".into()),
        locale: Some("id-ID".into()),
    };
    let mut group = c.benchmark_group("resolve");
    for size in [10u64, 100, 1000] {
        let catalog = catalog(size);
        for (case, eligible) in [("first_match", true), ("full_scan", false)] {
            let state = user_state(eligible);
            let subject = Subject { user: &user, state: &state, context: &context, now: NOW };
            let chosen = resolve(&catalog, &subject).chosen.is_some();
            assert_eq!(
                chosen,
                eligible,
                "{case} over {size} must {} choose",
                if eligible { "" } else { "not" }
            );
            group.bench_with_input(BenchmarkId::new(case, size), &size, |b, _| {
                b.iter(|| resolve(black_box(&catalog), black_box(&subject)))
            });
        }
    }
    group.finish();
}

fn bench_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("catalog_decode");
    for size in [10u64, 100, 1000] {
        let json = catalog(size).encode();
        group.throughput(criterion::Throughput::Bytes(json.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &json, |b, json| {
            b.iter(|| Catalog::decode(black_box(json.as_bytes())).unwrap())
        });
    }
    group.finish();
}

fn bench_read_replies(c: &mut Criterion) {
    let keys = KeySpace::new("popup", 7 * 3600).unwrap();
    let user = UserId::parse("cust-0012345").unwrap();
    let plan = ResolvePlan::new(&keys, &user, NOW, Some(1));
    let bulk = |s: String| Reply::Bulk(s.into_bytes());
    // Ten segment memberships and five campaigns' counters.
    let mut user_hash = Vec::new();
    for s in 0..10 {
        user_hash.extend([bulk(format!("s:{s}")), bulk("1".into())]);
    }
    for campaign in 0..5 {
        user_hash.extend([
            bulk(format!("n:{campaign}")),
            bulk("2".into()),
            bulk(format!("t:{campaign}")),
            bulk("1767200000".into()),
        ]);
    }
    let day_hash = vec![bulk("n:1".into()), bulk("1".into()), bulk("all".into()), bulk("1".into())];
    let replies = vec![bulk("1".into()), Reply::Array(user_hash), Reply::Array(day_hash)];
    c.bench_function("resolve_replies_decode", |b| b.iter(|| plan.read(black_box(replies.clone())).unwrap()));
}

criterion_group!(benches, bench_resolve, bench_decode, bench_read_replies);
criterion_main!(benches);

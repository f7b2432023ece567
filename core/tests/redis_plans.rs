//! The command plans against the real Redis on this machine: the key layout, the reply decoding, the
//! event script's counters, TTLs and replay protection, and caps enforced end to end.
//!
//! Needs Redis at `REDIS_URL` (default `redis://127.0.0.1:6379`). Every test works under its own key
//! prefix and deletes it afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use popup_core::campaign::Caps;
use popup_core::catalog::{Catalog, CatalogParts, Settings};
use popup_core::context::RequestContext;
use popup_core::ids::{CampaignId, SegmentId, Timestamp, UserId};
use popup_core::projection::{
    assess, begin, fetch_readiness, mark, publish_catalog, read_begin, read_mark, read_publish,
    read_readiness, Part, Published,
};
use popup_core::resolve::{resolve, Subject};
use popup_core::store::{
    add_member, fetch_catalog, read_catalog, CatalogStatus, Command, Event, EventKind, EventOutcome,
    EventPlan, KeySpace, Reply, ResolvePlan,
};
use popup_core::stream::Record;
use popup_core::token::{issue, TokenClaims, VerifiedToken, Verifier};
use popup_core::user::UserState;
use proptest::prelude::*;
use std::collections::BTreeMap;

const SECRET: &[u8] = b"a test secret that is long enough!!";

struct Redis {
    connection: redis::Connection,
    keys: KeySpace,
}

impl Redis {
    fn connect(test: &str) -> Redis {
        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let client = redis::Client::open(url).unwrap();
        let connection = client.get_connection().expect("Redis must run for these tests (see README)");
        let prefix = format!("t-{test}-{}", std::process::id());
        let mut redis = Redis { connection, keys: KeySpace::new(&prefix, 7 * 3600).unwrap() };
        redis.clean();
        redis
    }

    fn run(&mut self, commands: &[Command]) -> Vec<Reply> {
        let mut pipe = redis::pipe();
        for command in commands {
            let mut cmd = redis::cmd(command.name());
            for arg in command.arguments() {
                cmd.arg(arg);
            }
            pipe.add_command(cmd);
        }
        let values: Vec<redis::Value> = pipe.query(&mut self.connection).unwrap();
        values.into_iter().map(to_reply).collect()
    }

    fn clean(&mut self) {
        let pattern = format!("{}:*", self.keys.prefix());
        let keys: Vec<String> = redis::cmd("KEYS").arg(&pattern).query(&mut self.connection).unwrap();
        if !keys.is_empty() {
            let _: () = redis::cmd("DEL").arg(keys).query(&mut self.connection).unwrap();
        }
    }

    fn ttl(&mut self, key: &str) -> i64 {
        redis::cmd("TTL").arg(key).query(&mut self.connection).unwrap()
    }

    /// Publishes `catalog` as the origin does once every part it names is in Redis: marks them all, then
    /// publishes relying on the marks.
    fn publish(&mut self, catalog: &Catalog) -> bool {
        let reply = self.run(&[begin(&self.keys, "epoch-1")]).remove(0);
        let (epoch, _) = read_begin(reply).unwrap();
        let mut parts = catalog.clone().into_parts();
        let mut marks: Vec<Part> =
            parts.segments.iter().map(|(&segment, &version)| Part::Segment { segment, version }).collect();
        marks.extend(parts.campaigns.iter().map(|c| Part::Counters(c.id)));
        marks.push(Part::DailyTotals);
        for part in &marks {
            assert!(read_mark(&self.run(&[mark(&self.keys, &epoch, part)])[0]).unwrap());
        }
        let readiness = read_readiness(self.run(&[fetch_readiness(&self.keys)]).remove(0)).unwrap();
        let claims = assess(&mut parts, &readiness);
        assert!(parts.restoring.is_empty());
        let command = publish_catalog(&self.keys, catalog, &claims);
        match read_publish(&self.run(&[command])[0]).unwrap() {
            Published::Written => true,
            Published::Superseded => false,
            Published::LostMarks => panic!("marks lost"),
        }
    }

    fn resolve_inputs(
        &mut self,
        user: &UserId,
        now: Timestamp,
        cached: Option<u64>,
    ) -> (CatalogStatus, UserState) {
        let plan = ResolvePlan::new(&self.keys, user, now, cached);
        assert_eq!(plan.commands().len(), 3, "a resolve is three commands");
        let inputs = plan.read(self.run(plan.commands())).unwrap();
        (inputs.catalog, inputs.user)
    }

    fn post_event(&mut self, token: &VerifiedToken, kind: EventKind, now: Timestamp) -> EventOutcome {
        let plan = EventPlan::new(&self.keys, &Event { kind, token, dedupe_ttl_seconds: 86_400, now });
        plan.read(self.run(plan.commands())).unwrap()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.clean();
    }
}

fn token_for(user: &UserId, campaign: CampaignId, now: Timestamp, nonce: u64) -> VerifiedToken {
    let claims =
        TokenClaims { user: user.clone(), campaign, variant: "default".into(), issued_at: now, nonce };
    let token = issue(SECRET, &claims).unwrap();
    let secrets: &[&[u8]] = &[SECRET];
    Verifier::new(secrets, 86_400, 60).unwrap().verify(&token, now).unwrap()
}

#[test]
fn a_cold_resolve_reads_the_catalog_and_a_warm_one_only_its_version() {
    let mut redis = Redis::connect("catalog");
    let u = user("cust-1");
    let (status, state) = redis.resolve_inputs(&u, T0, None);
    assert!(matches!(status, CatalogStatus::Absent));
    assert_eq!(state, UserState::default());

    let catalog =
        Catalog::build(CatalogParts { version: 7, campaigns: vec![campaign(1)], ..Default::default() })
            .unwrap();
    redis.publish(&catalog);
    match redis.resolve_inputs(&u, T0, None).0 {
        CatalogStatus::Fetched(fetched) => assert_eq!(fetched, catalog),
        other => panic!("expected the catalog, got {other:?}"),
    }
    assert!(matches!(redis.resolve_inputs(&u, T0, Some(7)).0, CatalogStatus::Current));
    assert!(matches!(redis.resolve_inputs(&u, T0, Some(6)).0, CatalogStatus::Stale { version: 7 }));
    let fetched = read_catalog(redis.run(&[fetch_catalog(&redis.keys)]).remove(0)).unwrap();
    assert_eq!(fetched, Some(catalog));
}

#[test]
fn publishing_an_older_or_equal_version_changes_nothing() {
    let mut redis = Redis::connect("publish");
    let build = |version, campaigns| {
        Catalog::build(CatalogParts { version, campaigns, ..Default::default() }).unwrap()
    };
    let current = build(5, vec![campaign(1)]);
    assert!(redis.publish(&current));
    let stored = |redis: &mut Redis| {
        let replies = redis
            .run(&[fetch_catalog(&redis.keys), Command(vec!["GET".into(), redis.keys.catalog_version()])]);
        (replies[0].clone(), replies[1].clone())
    };
    let before = stored(&mut redis);
    assert_eq!(before.1, Reply::Bulk(b"5".to_vec()));
    // Same version with other content, then an older one: both refused, nothing written.
    assert!(!redis.publish(&build(5, vec![campaign(2)])));
    assert_eq!(stored(&mut redis), before);
    assert!(!redis.publish(&build(4, vec![campaign(3)])));
    assert_eq!(stored(&mut redis), before);
    assert_eq!(read_catalog(before.0).unwrap(), Some(current));
    // A newer one goes through; versions compare as numbers, not as text ("10" < "9").
    assert!(redis.publish(&build(9, vec![campaign(4)])));
    assert!(redis.publish(&build(10, vec![campaign(5)])));
    assert!(!redis.publish(&build(9, vec![campaign(6)])));
    let (catalog, version) = stored(&mut redis);
    assert_eq!(version, Reply::Bulk(b"10".to_vec()));
    assert_eq!(read_catalog(catalog).unwrap().unwrap().campaigns()[0].id, CampaignId(5));
    // The largest version allowed still compares exactly against its neighbour.
    let limit = popup_core::catalog::MAX_VERSION;
    assert!(redis.publish(&build(limit - 1, vec![])));
    assert!(redis.publish(&build(limit, vec![])));
    assert!(!redis.publish(&build(limit - 1, vec![])));
}

#[test]
fn memberships_and_counters_decode_from_the_users_hashes() {
    let mut redis = Redis::connect("user");
    let u = user("cust-2");
    let add = add_member(&redis.keys, &u, SegmentId(3), 11);
    redis.run(&[add]);
    let token = token_for(&u, CampaignId(5), T0, 1);
    assert_eq!(redis.post_event(&token, EventKind::Impression, T0.plus(10)), EventOutcome::Recorded);

    let (_, state) = redis.resolve_inputs(&u, T0.plus(20), None);
    assert!(state.is_member(SegmentId(3), Some(11)));
    assert!(!state.is_member(SegmentId(3), Some(12)) && !state.is_member(SegmentId(3), Some(13)));
    let counters = state.counters(CampaignId(5));
    assert_eq!((counters.lifetime, counters.today, counters.last_shown), (1, 1, Some(T0.plus(10))));
    assert_eq!(state.shown_today, 1);

    // The next day the daily counters start again; lifetime ones remain.
    let (_, state) = redis.resolve_inputs(&u, T0.plus(DAY), None);
    assert_eq!(
        (state.counters(CampaignId(5)).lifetime, state.counters(CampaignId(5)).today, state.shown_today),
        (1, 0, 0)
    );

    // Keys of one customer share one hash tag, so they live in one cluster slot.
    let day_key = redis.keys.user_day(&u, redis.keys.day(T0));
    assert!(day_key.contains("{cust-2}") && redis.keys.user(&u).contains("{cust-2}"));
    // The daily hash outlives its day by a day at most, and never less than the rest of the day.
    let ttl = redis.ttl(&day_key);
    assert!(ttl > DAY && ttl <= 2 * DAY, "day hash TTL {ttl}");
}

#[test]
fn a_retried_event_is_recorded_once_and_clicks_do_not_count_as_impressions() {
    let mut redis = Redis::connect("dedupe");
    let u = user("cust-3");
    let token = token_for(&u, CampaignId(5), T0, 1);
    assert_eq!(redis.post_event(&token, EventKind::Impression, T0), EventOutcome::Recorded);
    assert_eq!(redis.post_event(&token, EventKind::Impression, T0.plus(5)), EventOutcome::Duplicate);
    assert_eq!(redis.post_event(&token, EventKind::Click, T0.plus(6)), EventOutcome::Recorded);
    assert_eq!(redis.post_event(&token, EventKind::Click, T0.plus(7)), EventOutcome::Duplicate);
    // A second popup (a new token) is a second impression.
    let second = token_for(&u, CampaignId(5), T0.plus(100), 2);
    assert_eq!(redis.post_event(&second, EventKind::Impression, T0.plus(100)), EventOutcome::Recorded);

    let (_, state) = redis.resolve_inputs(&u, T0.plus(200), None);
    assert_eq!(state.counters(CampaignId(5)).lifetime, 2);
    assert_eq!(state.shown_today, 2);
    let marker = redis.keys.event_marker(&u, &token.id, EventKind::Impression);
    assert!(redis.ttl(&marker) > 0, "the replay marker expires");
    // Every post reaches the stream, with the event id ingest deduplicates on.
    let entries: redis::streams::StreamRangeReply =
        redis::cmd("XRANGE").arg(redis.keys.events()).arg("-").arg("+").query(&mut redis.connection).unwrap();
    let records: Vec<Record> = entries
        .ids
        .iter()
        .map(|entry| {
            let fields: Vec<(String, String)> =
                entry.map.iter().map(|(k, v)| (k.clone(), redis::from_redis_value_ref(v).unwrap())).collect();
            Record::parse(fields.iter().map(|(k, v)| (k.as_str(), v.as_str()))).unwrap()
        })
        .collect();
    let ids: Vec<&str> = records.iter().map(|record| record.id.as_str()).collect();
    assert_eq!(ids.len(), 5);
    assert_eq!(ids.iter().collect::<std::collections::BTreeSet<_>>().len(), 3);
    assert_eq!(ids[0], format!("{}:impression", token.id));
    // Both copies of the first impression carry the token's issue time (the table's partition key) though
    // they were posted at different times.
    assert_eq!((records[0].at, records[1].at), (T0, T0.plus(5)));
    assert_eq!((records[0].served, records[1].served), (T0, T0));
    assert_eq!(records[4].served, T0.plus(100));
    assert_eq!(
        (records[2].kind, records[2].user.as_str(), records[2].campaign),
        (EventKind::Click, "cust-3", CampaignId(5))
    );
}

#[test]
fn a_conversion_is_recorded_once_and_is_not_an_impression() {
    let mut redis = Redis::connect("conversion");
    let u = user("cust-9");
    let token = token_for(&u, CampaignId(5), T0, 1);
    assert_eq!(redis.post_event(&token, EventKind::Conversion, T0.plus(60)), EventOutcome::Recorded);
    assert_eq!(redis.post_event(&token, EventKind::Conversion, T0.plus(61)), EventOutcome::Duplicate);
    let (_, state) = redis.resolve_inputs(&u, T0.plus(200), None);
    assert_eq!(state.counters(CampaignId(5)).lifetime, 0);
    assert_eq!(state.shown_today, 0);
}

#[test]
fn caps_hold_end_to_end_through_redis() {
    let mut redis = Redis::connect("caps");
    let mut capped = campaign(1);
    capped.priority = 1;
    capped.caps.lifetime = Some(3);
    capped.caps.per_day = Some(2);
    let fallback = campaign(2);
    let catalog = Catalog::build(CatalogParts {
        version: 1,
        settings: Settings { max_popups_per_day: Some(3) },
        campaigns: vec![capped, fallback],
        ..Default::default()
    })
    .unwrap();
    assert!(redis.publish(&catalog));
    let u = user("cust-4");
    let context = RequestContext::default();
    let mut shown = Vec::new();
    // Ask 6 times a day for 3 days, every hour from 09:00 Jakarta, and show every popup.
    for day in 0..3 {
        for hour in 0..6 {
            let now = T0.plus(day * DAY + (2 + hour) * HOUR);
            let (_, state) = redis.resolve_inputs(&u, now, Some(1));
            let decision = resolve(&catalog, &Subject { user: &u, state: &state, context: &context, now });
            if let Some(chosen) = decision.chosen {
                let token = token_for(&u, chosen.campaign.id, now, (day * 100 + hour) as u64);
                assert_eq!(redis.post_event(&token, EventKind::Impression, now), EventOutcome::Recorded);
                shown.push((day, chosen.campaign.id.0));
            }
        }
    }
    // Day 0: campaign 1 twice (daily cap), then campaign 2 once (global cap of 3). Day 1: campaign 1 once
    // (lifetime cap of 3), then campaign 2 twice. Day 2: campaign 2 three times.
    assert_eq!(shown, [(0, 1), (0, 1), (0, 2), (1, 1), (1, 2), (1, 2), (2, 2), (2, 2), (2, 2)]);
}

/// The deployment offset Redis::connect uses, for the ledger's own day numbers.
const DAY_OFFSET: i64 = 7 * HOUR;

fn random_caps() -> impl Strategy<Value = Caps> {
    (
        proptest::option::of(1u32..5),
        proptest::option::of(1u32..3),
        proptest::option::of(prop_oneof![Just(60u32), Just(3600), Just(4 * 3600)]),
    )
        .prop_map(|(lifetime, per_day, min_interval_seconds)| Caps {
            per_day: per_day.map(|d| lifetime.map_or(d, |l| d.min(l))),
            lifetime,
            min_interval_seconds,
        })
}

proptest! {
    // Each case is a few hundred round trips to Redis.
    #![proptest_config(ProptestConfig { cases: 16, failure_persistence: None, ..ProptestConfig::default() })]

    /// The sequential guarantee through the real scripts: the app asks, and shows the popup (its impression
    /// recorded by the event script before the next ask) or not. A ledger kept here, not in Redis, checks
    /// every cap.
    #[test]
    fn caps_hold_through_the_real_event_script(
        campaign_caps in prop::collection::vec(random_caps(), 1..4),
        global in proptest::option::of(1u32..4),
        steps in prop::collection::vec(
            (prop_oneof![Just(0i64), 1i64..600, 600i64..(6 * HOUR), (6 * HOUR)..(2 * DAY)], prop::bool::weighted(0.8)),
            1..60,
        ),
    ) {
        let mut redis = Redis::connect("caps-random");
        let campaigns = campaign_caps
            .iter()
            .enumerate()
            .map(|(i, caps)| {
                let mut c = campaign(i as u64 + 1);
                c.priority = i as i32;
                c.caps = caps.clone();
                c
            })
            .collect();
        let catalog = Catalog::build(CatalogParts {
            version: 1,
            settings: Settings { max_popups_per_day: global },
            campaigns,
            ..Default::default()
        })
        .unwrap();
        prop_assert!(redis.publish(&catalog));
        let u = user("cust-random");
        let context = RequestContext::default();
        let mut lifetime: BTreeMap<CampaignId, u32> = BTreeMap::new();
        let mut per_day: BTreeMap<(CampaignId, i64), u32> = BTreeMap::new();
        let mut all_per_day: BTreeMap<i64, u32> = BTreeMap::new();
        let mut last: BTreeMap<CampaignId, Timestamp> = BTreeMap::new();
        let mut now = T0;
        for (nonce, (advance, shows_popup)) in steps.into_iter().enumerate() {
            now = now.plus(advance);
            let (status, state) = redis.resolve_inputs(&u, now, Some(1));
            prop_assert!(matches!(status, CatalogStatus::Current));
            let decision = resolve(&catalog, &Subject { user: &u, state: &state, context: &context, now });
            let Some(chosen) = decision.chosen else { continue };
            if !shows_popup {
                continue;
            }
            let id = chosen.campaign.id;
            let token = token_for(&u, id, now, nonce as u64);
            prop_assert_eq!(redis.post_event(&token, EventKind::Impression, now), EventOutcome::Recorded);

            let caps = &chosen.campaign.caps;
            let day = (now.0 + DAY_OFFSET).div_euclid(DAY);
            let total = lifetime.entry(id).or_default();
            *total += 1;
            prop_assert!(caps.lifetime.is_none_or(|cap| *total <= cap), "lifetime cap of {} exceeded", id);
            let daily = per_day.entry((id, day)).or_default();
            *daily += 1;
            prop_assert!(caps.per_day.is_none_or(|cap| *daily <= cap), "daily cap of {} exceeded", id);
            let all = all_per_day.entry(day).or_default();
            *all += 1;
            prop_assert!(global.is_none_or(|cap| *all <= cap), "global daily cap exceeded on day {}", day);
            if let (Some(interval), Some(previous)) = (caps.min_interval_seconds, last.get(&id)) {
                prop_assert!(now.0 - previous.0 >= i64::from(interval), "interval of {} not respected", id);
            }
            last.insert(id, now);
        }
        // And Redis counted what the ledger counted.
        let (_, state) = redis.resolve_inputs(&u, now, Some(1));
        for (id, &count) in &lifetime {
            prop_assert_eq!(state.counters(*id).lifetime, count);
        }
        let today = (now.0 + DAY_OFFSET).div_euclid(DAY);
        prop_assert_eq!(state.shown_today, all_per_day.get(&today).copied().unwrap_or(0));
    }
}

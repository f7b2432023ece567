//! The projection's scripts against the real Redis on this machine: epochs, marks, a publish that relies on
//! marks, and counters that are only ever raised. A loss of the projection is what a flush does to this
//! test's keys (they are deleted); a restart is a readiness hash whose `run` is not the server's.
//!
//! Needs Redis at `REDIS_URL` (default `redis://127.0.0.1:6379`); every test has its own key prefix.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use popup_core::catalog::{Catalog, CatalogParts};
use popup_core::ids::{CampaignId, SegmentId};
use popup_core::projection::{
    assess, begin, fetch_readiness, load_script, mark, publish_catalog, read_begin, read_mark, read_publish,
    read_readiness, read_script_sha, restore_counters, restore_daily_total, unmark, Part, Published,
    RebuiltCounters, RESTORE_COUNTERS_SCRIPT,
};
use popup_core::store::{fetch_catalog, read_catalog, Command, KeySpace, Reply, ResolvePlan};

struct Redis {
    connection: redis::Connection,
    keys: KeySpace,
}

impl Redis {
    fn connect(test: &str) -> Redis {
        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let connection = redis::Client::open(url).unwrap().get_connection().expect("Redis must run");
        let prefix = format!("t-proj-{test}-{}", std::process::id());
        let mut redis = Redis { connection, keys: KeySpace::new(&prefix, 7 * 3600).unwrap() };
        redis.lose_everything();
        redis
    }

    fn run(&mut self, command: Command) -> Reply {
        let mut cmd = redis::cmd(command.name());
        for arg in command.arguments() {
            cmd.arg(arg);
        }
        to_reply(cmd.query(&mut self.connection).unwrap())
    }

    /// What a flush does to this test's keys.
    fn lose_everything(&mut self) {
        let keys: Vec<String> =
            redis::cmd("KEYS").arg(format!("{}:*", self.keys.prefix())).query(&mut self.connection).unwrap();
        if !keys.is_empty() {
            let _: () = redis::cmd("DEL").arg(keys).query(&mut self.connection).unwrap();
        }
    }

    fn begin(&mut self, fresh: &str) -> (String, bool) {
        let command = begin(&self.keys, fresh);
        read_begin(self.run(command)).unwrap()
    }

    fn mark(&mut self, epoch: &str, part: &Part) -> bool {
        let command = mark(&self.keys, epoch, part);
        read_mark(&self.run(command)).unwrap()
    }

    /// Assesses `parts` against Redis and publishes; returns the outcome and what the catalog waited for.
    fn publish(&mut self, mut parts: CatalogParts) -> (Published, Catalog) {
        let readiness = read_readiness(self.run(fetch_readiness(&self.keys))).unwrap();
        let claims = assess(&mut parts, &readiness);
        let catalog = Catalog::build(parts).unwrap();
        let command = publish_catalog(&self.keys, &catalog, &claims);
        (read_publish(&self.run(command)).unwrap(), catalog)
    }

    fn catalog(&mut self) -> Option<Catalog> {
        let command = fetch_catalog(&self.keys);
        read_catalog(self.run(command)).unwrap()
    }

    fn hget(&mut self, key: &str, field: &str) -> Option<String> {
        redis::cmd("HGET").arg(key).arg(field).query(&mut self.connection).unwrap()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.lose_everything();
    }
}

fn parts(version: u64) -> CatalogParts {
    let mut members = campaign(1);
    members.audience.include = popup_core::campaign::Include::AnyOf(vec![SegmentId(3)]);
    CatalogParts {
        version,
        campaigns: vec![members, campaign(2)],
        segments: [(SegmentId(3), 5)].into_iter().collect(),
        ..CatalogParts::default()
    }
}

#[test]
fn an_epoch_begins_once_and_marks_hold_only_within_it() {
    let mut redis = Redis::connect("epoch");
    assert_eq!(redis.begin("e1"), ("e1".into(), true));
    assert_eq!(redis.begin("e2"), ("e1".into(), false), "a running epoch is kept");
    let segment = Part::Segment { segment: SegmentId(3), version: 5 };
    assert!(redis.mark("e1", &segment));
    assert!(!redis.mark("e0", &segment), "a writer from an older epoch cannot mark");
    // A flush: the epoch is gone, and a loader that started before it may not mark what it wrote.
    redis.lose_everything();
    assert!(!redis.mark("e1", &segment));
    assert_eq!(redis.begin("e3"), ("e3".into(), true));
    assert!(redis.mark("e3", &segment));
    let readiness = read_readiness(redis.run(fetch_readiness(&redis.keys))).unwrap();
    assert!(readiness.has(&segment));
    assert!(!readiness.has(&Part::Segment { segment: SegmentId(3), version: 7 }), "another version");
    let command = unmark(&redis.keys, &segment);
    redis.run(command);
    let readiness = read_readiness(redis.run(fetch_readiness(&redis.keys))).unwrap();
    assert!(!readiness.has(&segment));
}

#[test]
fn a_restart_ends_the_epoch_and_takes_the_catalog_with_it() {
    let mut redis = Redis::connect("restart");
    let (epoch, _) = redis.begin("e1");
    for part in [Part::Segment { segment: SegmentId(3), version: 5 }, Part::Counters(CampaignId(1))] {
        assert!(redis.mark(&epoch, &part));
    }
    assert_eq!(redis.publish(parts(4)).0, Published::Written);
    assert!(redis.catalog().is_some());
    // What a restarted server looks like from here: the hash says the epoch began on another run.
    let ready = redis.keys.readiness();
    let _: () = redis::cmd("HSET").arg(&ready).arg("run").arg("0000").query(&mut redis.connection).unwrap();
    assert!(!redis.mark(&epoch, &Part::Counters(CampaignId(2))), "writes may have been lost: no mark");
    assert_eq!(redis.publish(parts(5)).0, Published::LostMarks, "nor a catalog relying on old marks");
    assert_eq!(redis.begin("e2"), ("e2".into(), true));
    assert!(redis.catalog().is_none(), "the catalog of the old epoch is gone");
    let readiness = read_readiness(redis.run(fetch_readiness(&redis.keys))).unwrap();
    assert!(!readiness.has(&Part::Counters(CampaignId(1))), "and every mark with it");
}

#[test]
fn a_catalog_names_only_marked_segments_and_a_lost_mark_refuses_the_publish() {
    let mut redis = Redis::connect("publish");
    let (epoch, _) = redis.begin("e1");
    // Nothing marked yet: the catalog waits for the segment, the counters and today's totals.
    let (outcome, catalog) = redis.publish(parts(1));
    assert_eq!(outcome, Published::Written);
    assert_eq!(catalog.segment_version(SegmentId(3)), None);
    assert!(catalog.restoring().segments.contains(&SegmentId(3)));
    assert!(catalog.restoring().daily_totals);
    let published = redis.catalog().unwrap();
    assert_eq!(published.restoring(), catalog.restoring());
    // Once the segment is marked, the next catalog names it.
    assert!(redis.mark(&epoch, &Part::Segment { segment: SegmentId(3), version: 5 }));
    let (outcome, catalog) = redis.publish(parts(2));
    assert_eq!(outcome, Published::Written);
    assert_eq!(catalog.segment_version(SegmentId(3)), Some(5));
    // A catalog assessed before a loss but published after it is refused: its marks are gone.
    let readiness = read_readiness(redis.run(fetch_readiness(&redis.keys))).unwrap();
    let mut stale = parts(3);
    let claims = assess(&mut stale, &readiness);
    redis.lose_everything();
    redis.begin("e2");
    let command = publish_catalog(&redis.keys, &Catalog::build(stale).unwrap(), &claims);
    assert_eq!(read_publish(&redis.run(command)).unwrap(), Published::LostMarks);
    assert!(redis.catalog().is_none());
    // An older version is still never published over a newer one.
    let (outcome, _) = redis.publish(parts(9));
    assert_eq!(outcome, Published::Written);
    assert_eq!(redis.publish(parts(8)).0, Published::Superseded);
}

#[test]
fn restored_counters_only_ever_go_up() {
    let mut redis = Redis::connect("counters");
    let sha = read_script_sha(redis.run(load_script(RESTORE_COUNTERS_SCRIPT))).unwrap();
    let u = user("cust-1");
    let now = T0.plus(10 * HOUR);
    let user_key = redis.keys.user(&u);
    let day_key = redis.keys.user_day(&u, redis.keys.day(now));
    // An impression recorded after the loss is already there.
    let _: () = redis::cmd("HSET")
        .arg(&user_key)
        .arg("n:7")
        .arg("1")
        .arg("t:7")
        .arg(now.seconds())
        .query(&mut redis.connection)
        .unwrap();
    let rebuilt = RebuiltCounters { lifetime: 4, last_shown: now.plus(-HOUR), today: 2 };
    let command = restore_counters(&redis.keys, &sha, &u, CampaignId(7), &rebuilt, now);
    assert_eq!(redis.run(command), Reply::Int(1));
    assert_eq!(redis.hget(&user_key, "n:7").as_deref(), Some("4"), "raised to the rebuilt count");
    assert_eq!(redis.hget(&user_key, "t:7"), Some(now.seconds().to_string()), "the newer time kept");
    assert_eq!(redis.hget(&day_key, "n:7").as_deref(), Some("2"));
    let ttl: i64 = redis::cmd("TTL").arg(&day_key).query(&mut redis.connection).unwrap();
    assert!(ttl > DAY && ttl <= 2 * DAY, "today's hash expires as the event script's does: {ttl}");
    // Restoring again, or a lower count, changes nothing.
    let lower = RebuiltCounters { lifetime: 3, last_shown: now.plus(-2 * HOUR), today: 1 };
    let command = restore_counters(&redis.keys, &sha, &u, CampaignId(7), &lower, now);
    redis.run(command);
    assert_eq!(redis.hget(&user_key, "n:7").as_deref(), Some("4"));
    assert_eq!(redis.hget(&day_key, "n:7").as_deref(), Some("2"));
    let command = restore_daily_total(&redis.keys, &sha, &u, 3, now);
    redis.run(command);
    assert_eq!(redis.hget(&day_key, "all").as_deref(), Some("3"));
    // And the resolver reads what was restored.
    let plan = ResolvePlan::new(&redis.keys, &u, now, None);
    let replies = plan.commands().iter().map(|c| redis.run(c.clone())).collect();
    let inputs = plan.read(replies).unwrap();
    assert_eq!(inputs.user.counters(CampaignId(7)).lifetime, 4);
    assert_eq!(inputs.user.counters(CampaignId(7)).today, 2);
    assert_eq!(inputs.user.shown_today, 3);
}

//! Redis losing everything (a flush; a restart without persistence is the same loss) while the origin
//! serves: never a popup to an excluded customer or a non-member, caps remembered from the events in
//! Postgres, and the projection healing by itself. Each test runs a redis-server of its own.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use common::redis_server::RedisServer;
use common::*;
use popup_origin::ingest::{IngestSettings, Ingester};
use serde_json::{json, Value};
use sqlx::PgPool;

/// Members of each segment: enough that writing them back takes a while, so traffic meets the heal.
const MEMBERS: usize = 30_000;

fn ids(prefix: &str, count: usize) -> String {
    (0..count).map(|i| format!("{prefix}-{i}\n")).collect()
}

/// Who asked, and what they got.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Customer {
    OptedOut,
    Vip,
    Other,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Answer {
    Vip,
    Everyone,
    Plain,
    Nothing,
    Unavailable,
}

/// The campaigns, highest priority first: VIP members only; everyone but the opted out; anyone.
#[derive(Clone, Copy)]
struct Campaigns {
    vip: i64,
    everyone: i64,
}

async fn ask(app: &TestApp, user: &str, campaigns: Campaigns) -> Answer {
    let (status, body) = app.get(&format!("/v1/campaigns/popup?user_id={user}")).await;
    match status {
        StatusCode::OK if body["campaign_id"] == campaigns.vip => Answer::Vip,
        StatusCode::OK if body["campaign_id"] == campaigns.everyone => Answer::Everyone,
        StatusCode::OK => Answer::Plain,
        StatusCode::NO_CONTENT => Answer::Nothing,
        StatusCode::SERVICE_UNAVAILABLE => Answer::Unavailable,
        other => panic!("{user}: {other} {body}"),
    }
}

fn start_reconciler(app: &TestApp) -> tokio::sync::watch::Sender<bool> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    // An hour between full reconciles: only the watch can notice the loss in time.
    let reconciler =
        popup_origin::projection::run_reconciler(app.state.clone(), Duration::from_secs(3600), stopped);
    tokio::spawn(reconciler);
    stop
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn a_flush_under_traffic_never_shows_an_excluded_customer_or_a_non_member_a_popup(db: PgPool) {
    let redis = RedisServer::start();
    let app = TestApp::with_config(db, &redis.url(), |config| config.max_segment_bytes = 1 << 20).await;
    let app = Arc::new(app);
    assert_eq!(app.upload("opted-out", &ids("o", MEMBERS)).await.0, StatusCode::OK);
    assert_eq!(app.upload("vip", &ids("v", MEMBERS)).await.0, StatusCode::OK);
    let mut vip_offer = spec("VIP offer");
    vip_offer["priority"] = json!(10);
    vip_offer["audience"] = json!({"include": {"any_of": ["vip"]}});
    let vip = app.live_campaign(vip_offer).await;
    let mut everyone_offer = spec("Everyone but the opted out");
    everyone_offer["priority"] = json!(5);
    everyone_offer["audience"] = json!({"exclude": ["opted-out"]});
    let everyone = app.live_campaign(everyone_offer).await;
    app.live_campaign(spec("Plain")).await;
    let campaigns = Campaigns { vip, everyone };
    let stop_reconciler = start_reconciler(&app);
    assert_eq!(ask(&app, "v-1", campaigns).await, Answer::Vip);
    assert_eq!(ask(&app, "o-1", campaigns).await, Answer::Plain);
    assert_eq!(ask(&app, "x-1", campaigns).await, Answer::Everyone);

    // Traffic from every kind of customer, counted over every response, before, during and after.
    let answers: Arc<Mutex<BTreeMap<(Customer, Answer), usize>>> = Default::default();
    let running = Arc::new(AtomicBool::new(true));
    let mut traffic = Vec::new();
    for worker in 0..6usize {
        let (app, answers, running) = (app.clone(), answers.clone(), running.clone());
        traffic.push(tokio::spawn(async move {
            let mut n = worker;
            while running.load(Ordering::Relaxed) {
                let (customer, user) = match n % 3 {
                    0 => (Customer::OptedOut, format!("o-{}", n % MEMBERS)),
                    1 => (Customer::Vip, format!("v-{}", n % MEMBERS)),
                    _ => (Customer::Other, format!("x-{n}")),
                };
                let answer = ask(&app, &user, campaigns).await;
                *answers.lock().unwrap().entry((customer, answer)).or_default() += 1;
                n += 7;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.flush_all();
    let flushed = Instant::now();
    let healed = loop {
        let back = ask(&app, "v-77", campaigns).await == Answer::Vip
            && ask(&app, "x-77", campaigns).await == Answer::Everyone
            && ask(&app, "o-77", campaigns).await == Answer::Plain
            && ask(&app, &format!("v-{}", MEMBERS - 1), campaigns).await == Answer::Vip;
        if back {
            break flushed.elapsed();
        }
        assert!(flushed.elapsed() < Duration::from_secs(60), "the projection did not heal");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    running.store(false, Ordering::Relaxed);
    for task in traffic {
        task.await.unwrap();
    }
    let _ = stop_reconciler.send(true);
    let answers = answers.lock().unwrap().clone();
    println!("healed {healed:?} after the flush of {} members; answers: {answers:?}", 2 * MEMBERS);

    let count = |customer, answer| answers.get(&(customer, answer)).copied().unwrap_or(0);
    assert_eq!(
        count(Customer::OptedOut, Answer::Everyone),
        0,
        "an opted-out customer saw a campaign excluding them"
    );
    assert_eq!(count(Customer::OptedOut, Answer::Vip), 0, "a non-member saw the VIP offer");
    assert_eq!(count(Customer::Other, Answer::Vip), 0, "a non-member saw the VIP offer");
    // Nor a lower campaign than theirs: that would be a guess while their segment was being restored.
    assert_eq!(
        count(Customer::Vip, Answer::Everyone) + count(Customer::Vip, Answer::Plain),
        0,
        "a VIP saw a lower campaign"
    );
    assert_eq!(count(Customer::Other, Answer::Plain), 0, "a customer saw a lower campaign than theirs");
    // The traffic met the heal (nothing was shown for a while) and was served before and after it.
    assert!(count(Customer::Other, Answer::Nothing) > 0, "no request landed during the heal: {answers:?}");
    assert!(count(Customer::Vip, Answer::Vip) > 0 && count(Customer::Other, Answer::Everyone) > 0);
    // And every customer gets the right answer again, not only those checked while waiting.
    for i in (0..MEMBERS).step_by(997) {
        assert_eq!(ask(&app, &format!("v-{i}"), campaigns).await, Answer::Vip);
        assert_eq!(ask(&app, &format!("o-{i}"), campaigns).await, Answer::Plain);
    }
}

async fn ingest_everything(app: &TestApp, redis_url: &str) {
    let settings = IngestSettings {
        batch: 1000,
        claim_idle: Duration::from_secs(60),
        block: Duration::from_millis(100),
        retention_days: 30,
    };
    let mut ingester =
        Ingester::connect(app.state.clone(), redis_url, "test".into(), settings).await.unwrap();
    while ingester.step().await.unwrap().read > 0 {}
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn caps_are_remembered_through_a_flush_from_the_events_in_postgres(db: PgPool) {
    let redis = RedisServer::start();
    let app = TestApp::with_redis(db.clone(), &redis.url()).await;
    let mut once = spec("Once in a lifetime");
    once["priority"] = json!(10);
    once["caps"] = json!({"lifetime": 1});
    let once = app.live_campaign(once).await;
    let mut hourly = spec("At most hourly");
    hourly["priority"] = json!(5);
    hourly["caps"] = json!({"min_interval_seconds": 3600});
    let hourly = app.live_campaign(hourly).await;
    let fallback = app.live_campaign(spec("Fallback")).await;

    // c-1 sees both capped campaigns once; the impressions reach Postgres.
    for expected in [once, hourly] {
        let (campaign, token) = app.popup_for("c-1").await.unwrap();
        assert_eq!(campaign, expected);
        assert_eq!(app.impression(campaign, "c-1", &token).await, StatusCode::ACCEPTED);
    }
    assert_eq!(app.popup_for("c-1").await.unwrap().0, fallback, "capped on both");
    ingest_everything(&app, &redis.url()).await;

    redis.flush_all();
    assert_eq!(app.popup_for("c-1").await, None, "nothing to serve from an empty Redis");
    popup_origin::projection::heal(&app.state).await.unwrap();
    assert_eq!(app.popup_for("c-1").await.unwrap().0, fallback, "still capped on both after the flush");
    assert_eq!(app.popup_for("c-2").await.unwrap().0, once, "others are not");

    // The global daily cap counts today's impressions across campaigns, rebuilt too.
    sqlx::query("UPDATE settings SET max_popups_per_day = 2").execute(&db).await.unwrap();
    popup_origin::projection::publish(&app.state).await.unwrap();
    assert_eq!(app.popup_for("c-1").await, None, "two popups today already");
    redis.flush_all();
    popup_origin::projection::heal(&app.state).await.unwrap();
    assert_eq!(app.popup_for("c-1").await, None, "still two popups today after the flush");
    assert_eq!(app.popup_for("c-3").await.unwrap().0, once);

    // Counters are only raised: an impression recorded after the heal counts on top.
    let (campaign, token) = app.popup_for("c-2").await.unwrap();
    assert_eq!(app.impression(campaign, "c-2", &token).await, StatusCode::ACCEPTED);
    assert_eq!(app.popup_for("c-2").await.unwrap().0, hourly);
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn a_restart_without_persistence_heals_without_anyone_acting(db: PgPool) {
    let mut redis = RedisServer::start();
    let app = TestApp::with_redis(db, &redis.url()).await;
    assert_eq!(app.upload("opted-out", "o-1\n").await.0, StatusCode::OK);
    let mut offer = spec("Everyone but the opted out");
    offer["audience"] = json!({"exclude": ["opted-out"]});
    let offer = app.live_campaign(offer).await;
    let stop_reconciler = start_reconciler(&app);
    redis.kill();
    let (status, body) = app.get("/v1/campaigns/popup?user_id=x-1").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    redis.restart();
    let started = Instant::now();
    loop {
        let (status, body) = app.get("/v1/campaigns/popup?user_id=x-1").await;
        if status == StatusCode::OK {
            assert_eq!(body["campaign_id"], offer);
            break;
        }
        assert!(
            matches!(status, StatusCode::NO_CONTENT | StatusCode::SERVICE_UNAVAILABLE),
            "{status} {body}"
        );
        assert!(started.elapsed() < Duration::from_secs(30), "not healed: {status} {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.popup_for("o-1").await, None, "and the opt-out holds");
    let _ = stop_reconciler.send(true);
    let metrics = app.metrics().await;
    assert!(metrics.contains("popup_projection_losses_total"), "{metrics}");
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn the_preview_says_what_waits_for_a_restore(db: PgPool) {
    let redis = RedisServer::start();
    let app = TestApp::with_redis(db, &redis.url()).await;
    assert_eq!(app.upload("vip", "v-1\n").await.0, StatusCode::OK);
    let mut vip = spec("VIP");
    vip["audience"] = json!({"include": {"any_of": ["vip"]}});
    let vip = app.live_campaign(vip).await;
    redis.flush_all();
    let (status, preview) = app.admin(Method::GET, "/admin/v1/preview?user_id=v-1", Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(preview["skipped"], json!([{"campaign_id": vip, "reason": "restoring"}]));
    popup_origin::projection::heal(&app.state).await.unwrap();
    let (_, preview) = app.admin(Method::GET, "/admin/v1/preview?user_id=v-1", Value::Null).await;
    assert_eq!(preview["chosen"]["campaign_id"], vip, "{preview}");
}

//! The event pipeline on the real Redis and Postgres: the stream into the table exactly once, whatever
//! consumers die; stats; budgets; retention.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::{spec, TestApp, ADMIN_KEY};
use popup_core::ids::{CampaignId, Timestamp, UserId};
use popup_core::store::EventKind;
use popup_core::stream::Record;
use popup_origin::db::events::drop_expired_partitions;
use popup_origin::ingest::{IngestSettings, Ingester};
use popup_origin::redis_store::to_cmd;
use serde_json::{json, Value};
use sqlx::PgPool;

fn settings(claim_idle_ms: u64) -> IngestSettings {
    IngestSettings {
        batch: 300,
        claim_idle: Duration::from_millis(claim_idle_ms),
        block: Duration::from_millis(50),
        retention_days: 30,
    }
}

async fn ingester(app: &TestApp, name: &str, claim_idle_ms: u64) -> Ingester {
    Ingester::connect(app.state.clone(), &common::redis_url(), name.into(), settings(claim_idle_ms))
        .await
        .unwrap()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn record(id: &str, kind: EventKind, user: &str, campaign: u64, variant: &str, at: i64) -> Record {
    Record {
        id: format!("{id}:{}", kind.as_str()),
        kind,
        user: UserId::parse(user).unwrap(),
        campaign: CampaignId(campaign),
        variant: variant.into(),
        at: Timestamp(at),
        served: Timestamp(at - 10),
    }
}

fn append(app: &TestApp, records: &[Record]) {
    let mut redis = app.redis();
    let mut pipe = redis::pipe();
    for record in records {
        pipe.add_command(to_cmd(&record.append(&app.state.keys)));
    }
    let _: () = pipe.query(&mut redis).unwrap();
}

/// Day number `d` as the stats API writes it.
fn day(d: i64) -> String {
    (chrono::NaiveDate::default() + chrono::Days::new(d as u64)).to_string()
}

/// `campaign`'s stats from day `from` to day `to`, which must answer 200.
async fn stats_of_days(app: &TestApp, campaign: i64, from: i64, to: i64) -> Value {
    let uri = format!("/admin/v1/campaigns/{campaign}/stats?from={}&to={}", day(from), day(to));
    let (status, stats) = app.admin(Method::GET, &uri, Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    stats
}

async fn stored_ids(db: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT event_id FROM events ORDER BY event_id").fetch_all(db).await.unwrap()
}

fn pending(app: &TestApp) -> usize {
    let reply: redis::streams::StreamPendingReply = redis::cmd("XPENDING")
        .arg(app.state.keys.events())
        .arg(popup_origin::ingest::GROUP)
        .query(&mut app.redis())
        .unwrap();
    reply.count()
}

fn stream_length(app: &TestApp) -> usize {
    redis::cmd("XLEN").arg(app.state.keys.events()).query(&mut app.redis()).unwrap()
}

/// Steps until a step finds nothing to do and nothing is pending.
async fn drain(ingester: &mut Ingester, app: &TestApp) {
    for _ in 0..200 {
        let outcome = ingester.step().await.unwrap();
        if outcome.read == 0 && pending(app) == 0 {
            return;
        }
        if outcome.read == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    panic!("the stream did not drain");
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn a_consumer_killed_mid_batch_loses_nothing_and_duplicates_nothing(db: PgPool) {
    let app = TestApp::new(db.clone()).await;
    let t = now();
    // 1 000 events, 100 of them posted twice (a retried event appends a second entry with the same id).
    let mut records: Vec<Record> = (0..1000)
        .map(|i| {
            let kind = [EventKind::Impression, EventKind::Click, EventKind::Dismiss][i % 3];
            record(&format!("tok{i}"), kind, &format!("u{}", i % 97), 7, "a", t - i as i64)
        })
        .collect();
    let retries: Vec<Record> =
        (0..100).map(|i| Record { at: Timestamp(t + 5), ..records[i * 7].clone() }).collect();
    records.extend(retries);
    append(&app, &records);
    let mut dying = ingester(&app, "dying", 200).await;
    dying.step().await.unwrap(); // group created, a first batch stored and acknowledged
                                 // Then it dies twice over: once after storing a batch but before acknowledging it, once with a batch
                                 // read and not stored.
    let stored_not_acknowledged = dying.read_new().await.unwrap();
    dying.store(&stored_not_acknowledged).await.unwrap();
    let read_not_stored = dying.read_new().await.unwrap();
    assert_eq!((stored_not_acknowledged.len(), read_not_stored.len()), (300, 300));
    drop(dying);
    assert_eq!(pending(&app), 600);

    // Another worker takes over once the entries have been idle for the claim timeout.
    let mut survivor = ingester(&app, "survivor", 200).await;
    tokio::time::sleep(Duration::from_millis(250)).await;
    drain(&mut survivor, &app).await;
    survivor.trim().await.unwrap();

    let expected: BTreeSet<String> = records.iter().map(|r| r.id.clone()).collect();
    let ids = stored_ids(&db).await;
    assert_eq!(ids.len(), 1000, "every event once");
    assert_eq!(ids.into_iter().collect::<BTreeSet<_>>(), expected);
    let impressions: i64 =
        sqlx::query_scalar("SELECT impressions FROM campaign_totals WHERE campaign_id = 7")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(impressions, 334, "totals count each impression once");
    // The first copy stored wins: a retry's later time does not replace it.
    let first_at: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT at FROM events WHERE event_id = $1")
            .bind(&records[0].id)
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(first_at.timestamp(), t);
    assert_eq!(pending(&app), 0);
    assert_eq!(stream_length(&app), 0, "everything stored is trimmed");
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn workers_running_at_once_share_the_stream(db: PgPool) {
    let app = TestApp::new(db.clone()).await;
    let t = now();
    let records: Vec<Record> = (0..3000)
        .map(|i| record(&format!("s{i}"), EventKind::Impression, &format!("u{i}"), 1 + i as u64 % 4, "a", t))
        .collect();
    append(&app, &records);
    let mut one = ingester(&app, "one", 60_000).await;
    let mut two = ingester(&app, "two", 60_000).await;
    let (mut read_by_one, mut read_by_two) = (0, 0);
    loop {
        let (a, b) = tokio::join!(one.step(), two.step());
        let (a, b) = (a.unwrap(), b.unwrap());
        read_by_one += a.read;
        read_by_two += b.read;
        if a.read == 0 && b.read == 0 {
            break;
        }
    }
    assert!(read_by_one > 0 && read_by_two > 0, "both took part: {read_by_one} and {read_by_two}");
    assert_eq!(read_by_one + read_by_two, 3000, "no entry was delivered twice");
    assert_eq!(stored_ids(&db).await.len(), 3000);
    let totals: Vec<i64> = sqlx::query_scalar("SELECT impressions FROM campaign_totals ORDER BY campaign_id")
        .fetch_all(&db)
        .await
        .unwrap();
    assert_eq!(totals, [750, 750, 750, 750]);
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn an_ingest_process_killed_mid_run_loses_nothing_and_duplicates_nothing(db: PgPool) {
    let app = TestApp::new(db.clone()).await;
    let t = now();
    let mut records: Vec<Record> = (0..60_000)
        .map(|i| record(&format!("p{i}"), EventKind::Impression, &format!("u{}", i % 500), 5, "a", t))
        .collect();
    let retries: Vec<Record> = (0..6_000).map(|i| records[i * 10].clone()).collect();
    records.extend(retries);
    append(&app, &records);
    let spawn = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_popup-origin"))
            .arg("ingest")
            .env("RUST_LOG", "warn")
            .env("DATABASE_URL", common::database_url(&db))
            .env("REDIS_URL", common::redis_url())
            .env("POPUP_KEY_PREFIX", &app.prefix)
            .env("POPUP_DAY_OFFSET", "+07:00")
            .env("POPUP_TOKEN_SECRET", common::TOKEN_SECRET)
            .env("POPUP_INGEST_WORKERS", "2")
            .env("POPUP_INGEST_BATCH", "200")
            .env("POPUP_INGEST_CLAIM_IDLE_MS", "500")
            .spawn()
            .unwrap()
    };
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM events").fetch_one(&db).await.unwrap()
    };
    let mut first = spawn();
    let started = std::time::Instant::now();
    while count().await == 0 {
        assert!(started.elapsed() < Duration::from_secs(30), "the first process stored nothing");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.kill().unwrap(); // SIGKILL: no draining, batches in hand are lost with it
    first.wait().unwrap();
    let at_kill = count().await;
    assert!(at_kill < 60_000, "killed mid-run, with {at_kill} stored");

    let mut second = spawn();
    let started = std::time::Instant::now();
    while count().await < 60_000 || pending(&app) > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the second process did not finish: {}",
            count().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    second.kill().unwrap();
    second.wait().unwrap();
    let ids = stored_ids(&db).await;
    assert_eq!(ids.len(), 60_000);
    assert_eq!(ids.into_iter().collect::<BTreeSet<_>>().len(), 60_000);
    let totals: i64 = sqlx::query_scalar("SELECT impressions FROM campaign_totals WHERE campaign_id = 5")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(totals, 60_000);
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn redelivery_is_idempotent_and_trimming_keeps_what_is_not_stored(db: PgPool) {
    let app = TestApp::new(db.clone()).await;
    let t = now();
    let records: Vec<Record> =
        (0..10).map(|i| record(&format!("r{i}"), EventKind::Impression, "ana", 3, "a", t)).collect();
    append(&app, &records);
    let mut worker = ingester(&app, "w", 60_000).await;
    let batch = worker.read_new().await.unwrap();
    assert_eq!(worker.store(&batch).await.unwrap(), 10);
    assert_eq!(worker.store(&batch).await.unwrap(), 0, "the same batch again stores nothing");
    // Not acknowledged yet: trimming must keep it.
    worker.trim().await.unwrap();
    assert_eq!(stream_length(&app), 10);
    worker.acknowledge(&batch).await.unwrap();
    // New entries, delivered to nobody yet, survive a trim too.
    append(&app, &[record("late", EventKind::Click, "ana", 3, "a", t)]);
    worker.trim().await.unwrap();
    assert_eq!(stream_length(&app), 1);
    let totals: i64 = sqlx::query_scalar("SELECT impressions FROM campaign_totals WHERE campaign_id = 3")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(totals, 10);
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn a_long_blocking_read_and_a_stream_lost_by_redis_are_survived(db: PgPool) {
    let app = TestApp::new(db.clone()).await;
    // Blocking longer than the client library's default response timeout (500 ms).
    let settings = IngestSettings { block: Duration::from_millis(1500), ..settings(60_000) };
    let mut worker =
        Ingester::connect(app.state.clone(), &common::redis_url(), "w".into(), settings).await.unwrap();
    assert_eq!(worker.step().await.unwrap().read, 0, "an idle blocking read is not an error");
    // Redis loses the stream, group and all; the next append makes a stream without the group.
    let _: () = redis::cmd("DEL").arg(app.state.keys.events()).query(&mut app.redis()).unwrap();
    append(&app, &[record("after-loss", EventKind::Click, "ana", 3, "a", now())]);
    let _ = worker.step().await; // finds the group gone, and makes it again
    drain(&mut worker, &app).await;
    assert_eq!(stored_ids(&db).await, ["after-loss:click"]);
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn malformed_entries_are_acknowledged_and_left_out(db: PgPool) {
    let app = TestApp::new(db.clone()).await;
    let mut redis = app.redis();
    let stream = app.state.keys.events();
    let _: String = redis::cmd("XADD")
        .arg(&stream)
        .arg("*")
        .arg("id")
        .arg("x")
        .arg("kind")
        .arg("purchase")
        .query(&mut redis)
        .unwrap();
    // Served long before retention: it would create a partition only to drop it.
    let mut ancient = record("old", EventKind::Click, "ana", 3, "a", 1_000_000);
    ancient.served = Timestamp(1_000_000);
    append(&app, &[ancient, record("ok", EventKind::Click, "ana", 3, "a", now())]);
    let mut worker = ingester(&app, "w", 60_000).await;
    let outcome = worker.step().await.unwrap();
    assert_eq!((outcome.read, outcome.stored, outcome.malformed), (3, 1, 2));
    // An entry of an earlier version, one field per part, is stored like the packed ones.
    let served = now().to_string();
    let _: String = redis::cmd("XADD")
        .arg(&stream)
        .arg("*")
        .arg(&["id", "legacy:click", "kind", "click", "user", "ana", "campaign", "3", "variant", "a"])
        .arg(&["at", served.as_str(), "served", served.as_str()])
        .query(&mut redis)
        .unwrap();
    let outcome = worker.step().await.unwrap();
    assert_eq!((outcome.read, outcome.stored, outcome.malformed), (1, 1, 0));
    assert_eq!(pending(&app), 0);
    assert_eq!(stored_ids(&db).await, ["legacy:click", "ok:click"]);
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn old_days_are_dropped_whole(db: PgPool) {
    let app = TestApp::new(db.clone()).await;
    let t = now();
    let day = 86_400;
    append(
        &app,
        &[
            record("d0", EventKind::Click, "ana", 3, "a", t),
            record("d2", EventKind::Click, "ana", 3, "a", t - 2 * day),
            record("d5", EventKind::Click, "ana", 3, "a", t - 5 * day),
        ],
    );
    let mut worker = ingester(&app, "w", 60_000).await;
    drain(&mut worker, &app).await;
    assert_eq!(stored_ids(&db).await.len(), 3);
    let today = app.state.keys.day(Timestamp(t - 10));
    let dropped = drop_expired_partitions(&db, &app.state.keys, Timestamp(t), 3).await.unwrap();
    assert_eq!(dropped, [app.state.keys.day(Timestamp(t - 5 * day - 10))]);
    assert_eq!(stored_ids(&db).await, ["d0:click", "d2:click"]);
    let dropped = drop_expired_partitions(&db, &app.state.keys, Timestamp(t), 3).await.unwrap();
    assert!(dropped.is_empty(), "nothing left to drop");
    assert!(today > 0);
}

/// The popup for `user` with its variant and token, or None.
async fn popup(app: &TestApp, user: &str) -> Option<(i64, String, String)> {
    let (status, body) = app.get(&format!("/v1/campaigns/popup?user_id={user}")).await;
    match status {
        StatusCode::OK => Some((
            body["campaign_id"].as_i64().unwrap(),
            body["variant"].as_str().unwrap().into(),
            body["impression_token"].as_str().unwrap().into(),
        )),
        StatusCode::NO_CONTENT => None,
        other => panic!("{other} {body}"),
    }
}

async fn event(app: &TestApp, campaign: i64, kind: &str, user: &str, token: &str) {
    let (status, body) = app
        .post(
            &format!("/v1/campaigns/{campaign}/{kind}"),
            json!({"user_id": user, "impression_token": token}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn stats_match_the_events_posted_per_variant_and_day(db: PgPool) {
    let app = TestApp::new(db.clone()).await;
    let mut campaign = spec("stats");
    campaign["variants"] = json!([
        {"key": "a", "weight": 40},
        {"key": "b", "weight": 40},
        {"key": "control", "weight": 20, "control": true}
    ]);
    let id = app.live_campaign(campaign).await;

    // What each variant should show, counted by the test as it posts.
    #[derive(Default, Debug, PartialEq)]
    struct Expected {
        impressions: i64,
        users: BTreeSet<String>,
        clicks: i64,
        dismissals: i64,
        conversions: i64,
        converted: BTreeSet<String>,
        holdouts: BTreeSet<String>,
    }
    let convert_by_campaign = |user: &str| {
        app.as_key(ADMIN_KEY, Method::POST, "/v1/conversions", json!({"user_id": user, "campaign_id": id}))
    };
    let mut expected: BTreeMap<String, Expected> = BTreeMap::new();
    for n in 0..120 {
        let user = format!("cust-{n}");
        let Some((shown, variant, token)) = popup(&app, &user).await else {
            let control = expected.entry("control".into()).or_default();
            control.holdouts.insert(user.clone());
            // Asking again the same day is the same exposure.
            assert!(popup(&app, &format!("cust-{n}")).await.is_none());
            if n % 2 == 0 {
                // A held-out customer converts anyway: the bank names the campaign, twice (a retry).
                for _ in 0..2 {
                    let (status, body) = convert_by_campaign(&user).await;
                    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
                }
                control.conversions += 1;
                control.converted.insert(user);
            }
            continue;
        };
        assert_eq!(shown, id);
        let counts = expected.entry(variant).or_default();
        event(&app, id, "impression", &user, &token).await;
        event(&app, id, "impression", &user, &token).await; // a retry
        counts.impressions += 1;
        counts.users.insert(user.clone());
        if n % 3 == 0 {
            event(&app, id, "click", &user, &token).await;
            counts.clicks += 1;
            let (status, body) = app
                .as_key(
                    ADMIN_KEY,
                    Method::POST,
                    "/v1/conversions",
                    json!({"user_id": user, "impression_token": token}),
                )
                .await;
            assert_eq!(status, StatusCode::ACCEPTED, "{body}");
            counts.conversions += 1;
            counts.converted.insert(user.clone());
            // Without the token, a customer who was shown the popup is not the control's to count.
            let (status, body) = convert_by_campaign(&user).await;
            assert_eq!(status, StatusCode::CONFLICT, "{body}");
        } else if n % 3 == 1 {
            event(&app, id, "dismiss", &user, &token).await;
            counts.dismissals += 1;
            // A second popup the same day: another impression by the same customer.
            let (_, _, second) = popup(&app, &user).await.unwrap();
            event(&app, id, "impression", &user, &second).await;
            counts.impressions += 1;
        }
    }
    assert!(expected.len() == 3, "all three variants were drawn: {expected:?}");
    // Holdout exposures are appended after the answer; wait until they are all on the stream.
    let holdouts = expected["control"].holdouts.len();
    for _ in 0..100 {
        let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(app.state.keys.events())
            .arg("-")
            .arg("+")
            .query(&mut app.redis())
            .unwrap();
        let kind = |entry: &redis::streams::StreamId| {
            let packed = entry.get::<String>("r")?;
            Record::parse([("r", packed.as_str())]).ok().map(|record| record.kind)
        };
        let seen = entries.ids.iter().filter(|e| kind(e) == Some(EventKind::Holdout)).count();
        if seen >= 2 * holdouts {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Yesterday's events, for the per-day split.
    let yesterday = now() - 86_400;
    append(&app, &[record("y1", EventKind::Impression, "old-1", id as u64, "a", yesterday)]);

    let mut worker = ingester(&app, "w", 60_000).await;
    drain(&mut worker, &app).await;
    // Each held-out customer was asked twice and is stored once.
    let holdout_rows: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE kind = 'holdout'")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(holdout_rows as usize, holdouts);

    // A conversion needs the editor role at least, and a token of this customer.
    let (status, _) =
        app.post("/v1/conversions", json!({"user_id": "cust-0", "impression_token": "x"})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let today = app.state.keys.day(Timestamp(now()));
    let stats = stats_of_days(&app, id, today - 1, today).await;
    let rows = stats["days"].as_array().unwrap();
    let yesterday_row = &rows[0];
    assert_eq!(
        (yesterday_row["day"].as_str().unwrap(), yesterday_row["variant"].as_str().unwrap()),
        (day(today - 1).as_str(), "a")
    );
    assert_eq!(yesterday_row["impressions"], 1);
    for (variant, want) in &expected {
        let row = rows
            .iter()
            .find(|r| r["variant"] == variant.as_str() && r["day"] == day(today).as_str())
            .unwrap_or_else(|| panic!("no row for {variant}: {stats}"));
        assert_eq!(row["impressions"], want.impressions, "{variant}");
        assert_eq!(row["unique_users"], want.users.len(), "{variant}");
        assert_eq!(row["clicks"], want.clicks, "{variant}");
        assert_eq!(row["dismissals"], want.dismissals, "{variant}");
        assert_eq!(row["conversions"], want.conversions, "{variant}");
        assert_eq!(row["holdouts"], want.holdouts.len(), "{variant}");
        assert_eq!(row["converted_users"], want.converted.len(), "{variant}");
        let exposed = (want.users.len() + want.holdouts.len()) as f64;
        let rate = row["conversion_rate"].as_f64().unwrap();
        assert!((rate - want.converted.len() as f64 / exposed).abs() < 1e-9, "{variant}: {row}");
        if want.impressions > 0 {
            let ctr = row["click_through_rate"].as_f64().unwrap();
            assert!((ctr - want.clicks as f64 / want.impressions as f64).abs() < 1e-9);
        } else {
            assert!(row["click_through_rate"].is_null());
        }
    }
    let totals = stats["variants"].as_array().unwrap();
    let a = totals.iter().find(|r| r["variant"] == "a").unwrap();
    assert_eq!(a["impressions"], expected["a"].impressions + 1, "the range total includes yesterday");

    // Bad ranges and unknown campaigns.
    for query in ["from=2026-13-01", "from=2026-12-02&to=2026-12-01", "from=2020-01-01&to=2026-12-01"] {
        let (status, body) =
            app.admin(Method::GET, &format!("/admin/v1/campaigns/{id}/stats?{query}"), Value::Null).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
    }
    let (status, _) = app.admin(Method::GET, "/admin/v1/campaigns/999999/stats", Value::Null).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .as_key(
            ADMIN_KEY,
            Method::POST,
            "/v1/conversions",
            json!({"user_id": "cust-1", "campaign_id": 999999}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) =
        app.as_key(ADMIN_KEY, Method::POST, "/v1/conversions", json!({"user_id": "cust-1"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn a_campaign_that_reaches_its_budget_stops_serving(db: PgPool) {
    let app = TestApp::new(db.clone()).await;
    let mut limited = spec("limited");
    limited["budget"] = json!(3);
    limited["priority"] = json!(10);
    let limited = app.live_campaign(limited).await;
    let fallback = app.live_campaign(spec("fallback")).await;
    let mut worker = ingester(&app, "w", 60_000).await;
    for n in 0..3 {
        let user = format!("cust-{n}");
        let (shown, token) = app.popup_for(&user).await.unwrap();
        assert_eq!(shown, limited);
        assert_eq!(app.impression(shown, &user, &token).await, StatusCode::ACCEPTED);
        drain(&mut worker, &app).await;
    }
    // The third impression reached the budget: ingest published a catalog without it.
    assert_eq!(app.popup_for("cust-9").await.unwrap().0, fallback);
    let (status, preview) = app
        .admin(Method::GET, &format!("/admin/v1/campaigns/{limited}/preview?user_id=cust-9"), Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(preview["this_campaign"]["reason"], "budget_exhausted", "{preview}");
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn the_backends_conversions_key_posts_conversions_and_nothing_else(db: PgPool) {
    let app = TestApp::new(db.clone()).await;
    let id = app.live_campaign(spec("converting")).await;
    let mut keys = BTreeMap::new();
    for role in ["conversions", "viewer"] {
        let (status, created) =
            app.admin(Method::POST, "/admin/v1/keys", json!({"name": role, "role": role})).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        keys.insert(role, created["key"].as_str().unwrap().to_string());
    }
    let (shown, token) = app.popup_for("cust-1").await.unwrap();
    assert_eq!(shown, id);
    let conversion = json!({"user_id": "cust-1", "impression_token": token});
    let (status, body) =
        app.as_key(&keys["viewer"], Method::POST, "/v1/conversions", conversion.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a viewer reads, and posts nothing: {body}");
    let (status, body) = app.as_key(&keys["conversions"], Method::POST, "/v1/conversions", conversion).await;
    assert_eq!((status, &body), (StatusCode::ACCEPTED, &json!({"recorded": true})));
    for (method, uri) in
        [(Method::GET, "/admin/v1/campaigns"), (Method::GET, &format!("/admin/v1/campaigns/{id}/stats"))]
    {
        let (status, _) = app.as_key(&keys["conversions"], method, uri, Value::Null).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{uri}");
    }
}

type DayRow = (i64, i64, String, i64, i64, i64, i64, i64);
type ReachRow = (i64, i64, String, String, Option<Vec<i64>>, String);

/// The daily counts and customers of the rollup, each sketch by its digest, in key order.
async fn rollup_rows(db: &PgPool) -> (Vec<DayRow>, Vec<ReachRow>) {
    let days = sqlx::query_as(
        "SELECT campaign_id, day, variant, impressions, clicks, dismissals, conversions, holdout_events
         FROM event_days ORDER BY 1, 2, 3",
    )
    .fetch_all(db)
    .await
    .unwrap();
    let reach = sqlx::query_as(
        "SELECT campaign_id, day, variant, kind, exact, md5(sketch::text) FROM event_reach ORDER BY 1, 2, 3, 4",
    )
    .fetch_all(db)
    .await
    .unwrap();
    (days, reach)
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn daily_stats_kept_by_ingest_equal_a_rebuild_from_the_events_and_count_large_days_closely(db: PgPool) {
    let app = TestApp::new(db.clone()).await;
    let id = app.live_campaign(spec("rollup")).await;
    let campaign = id as u64;
    let keys = &app.state.keys;
    let today = keys.day(Timestamp(now()));
    let noon = |day: i64| keys.day_start(day).seconds() + 43_200;
    let mut records = Vec::new();
    // Yesterday, variant a: 2,000 customers shown the popup (one in four twice), 300 of them converting,
    // a tenth dismissing it.
    for n in 0..2_000 {
        let (user, at) = (format!("cust-{n}"), noon(today - 1) + n % 3_600);
        records.push(record(&format!("y{n}"), EventKind::Impression, &user, campaign, "a", at));
        if n % 4 == 0 {
            records.push(record(
                &format!("y{n}-again"),
                EventKind::Impression,
                &user,
                campaign,
                "a",
                at + 60,
            ));
        }
        if n < 300 {
            records.push(record(&format!("y{n}"), EventKind::Conversion, &user, campaign, "a", at + 600));
        }
        if n % 10 == 0 {
            records.push(record(&format!("y{n}"), EventKind::Dismiss, &user, campaign, "a", at + 5));
        }
    }
    // The day before, variant b: 100 customers, and the control's 40 held out.
    for n in 0..100 {
        records.push(record(
            &format!("d{n}"),
            EventKind::Impression,
            &format!("cust-{n}"),
            campaign,
            "b",
            noon(today - 2),
        ));
    }
    for n in 0..40 {
        let user = format!("held-{n}");
        records.push(record(
            &format!("h{n}"),
            EventKind::Holdout,
            &user,
            campaign,
            "control",
            noon(today - 2) + n,
        ));
    }
    // Every event of the small day posted twice.
    let retries: Vec<Record> =
        records.iter().filter(|r| r.id.starts_with('d') || r.id.starts_with('h')).cloned().collect();
    records.extend(retries);
    append(&app, &records);
    let mut worker = ingester(&app, "rollup", 60_000).await;
    drain(&mut worker, &app).await;

    let stats = stats_of_days(&app, id, today - 2, today).await;
    let row = |d: i64, variant: &str| {
        stats["days"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["day"] == day(d).as_str() && r["variant"] == variant)
            .cloned()
            .unwrap_or_else(|| panic!("no row for {variant} on {}: {stats}", day(d)))
    };
    let close = |count: &Value, truth: f64| {
        let count = count.as_f64().unwrap();
        assert!((count - truth).abs() / truth <= 0.03, "{count} for {truth}: {stats}");
    };
    // Small days are exact; a large one is an estimate within its error.
    let (b, control) = (row(today - 2, "b"), row(today - 2, "control"));
    assert_eq!((b["impressions"].as_i64(), b["unique_users"].as_i64()), (Some(100), Some(100)), "{b}");
    assert_eq!(
        (control["holdouts"].as_i64(), control["impressions"].as_i64()),
        (Some(40), Some(0)),
        "{control}"
    );
    let a = row(today - 1, "a");
    assert_eq!((a["impressions"].as_i64(), a["conversions"].as_i64()), (Some(2_500), Some(300)), "{a}");
    assert_eq!((a["converted_users"].as_i64(), a["dismissals"].as_i64()), (Some(300), Some(200)), "{a}");
    close(&a["unique_users"], 2_000.0);
    let variant = |key: &str| {
        stats["variants"].as_array().unwrap().iter().find(|v| v["variant"] == key).cloned().unwrap()
    };
    close(&variant("a")["unique_users"], 2_000.0);
    assert_eq!(variant("b")["unique_users"], 100);
    assert_eq!(variant("control")["holdouts"], 40);

    // What ingest kept, batch by batch, is what one pass over the stored events computes, in SQL: the same
    // hashes, sketch bits and counts.
    let kept = rollup_rows(&db).await;
    assert_eq!(
        kept.1.iter().filter(|r| r.4.is_none()).count(),
        1,
        "only the large day lost its exact set: {:?}",
        kept.1
    );
    let offset = -keys.day_start(0).seconds();
    sqlx::query("SELECT rebuild_event_rollup($1::integer)").bind(offset).execute(&db).await.unwrap();
    assert_eq!(rollup_rows(&db).await, kept);
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn events_stored_before_the_daily_stats_existed_are_counted_once_on_start(db: PgPool) {
    let app = TestApp::new(db.clone()).await;
    let id = app.live_campaign(spec("older")).await;
    let t = now();
    let records: Vec<Record> = (0..30)
        .map(|n| {
            record(
                &format!("o{n}"),
                EventKind::Impression,
                &format!("cust-{}", n % 20),
                id as u64,
                "a",
                t - 60,
            )
        })
        .collect();
    append(&app, &records);
    let mut worker = ingester(&app, "older", 60_000).await;
    drain(&mut worker, &app).await;
    // As an origin upgraded over events stored before migration 0005 finds them.
    sqlx::raw_sql("DELETE FROM event_days; DELETE FROM event_reach; DELETE FROM event_rollup")
        .execute(&db)
        .await
        .unwrap();
    let totals = |stats: &Value| {
        (stats["variants"][0]["impressions"].as_i64(), stats["variants"][0]["unique_users"].as_i64())
    };
    let (_, before) = app.admin(Method::GET, &format!("/admin/v1/campaigns/{id}/stats"), Value::Null).await;
    assert_eq!(before["variants"], json!([]), "{before}");

    assert!(popup_origin::db::events::ensure_rollup(&db, &app.state.keys).await.unwrap(), "rebuilt");
    let (_, after) = app.admin(Method::GET, &format!("/admin/v1/campaigns/{id}/stats"), Value::Null).await;
    assert_eq!(totals(&after), (Some(30), Some(20)), "{after}");
    // Built with this offset: the next start leaves it alone, and ingest keeps adding to it.
    assert!(!popup_origin::db::events::ensure_rollup(&db, &app.state.keys).await.unwrap());
    append(&app, &[record("later", EventKind::Impression, "cust-99", id as u64, "a", t - 30)]);
    drain(&mut worker, &app).await;
    let (_, later) = app.admin(Method::GET, &format!("/admin/v1/campaigns/{id}/stats"), Value::Null).await;
    assert_eq!(totals(&later), (Some(31), Some(21)), "{later}");
}

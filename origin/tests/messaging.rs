//! Outbound messaging against the real Postgres (and Redis for segments): customers, message campaigns,
//! sending, and the worker in-process with the mock provider.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, StatusCode};
use chrono::{DateTime, Utc};
use common::*;
use popup_origin::messaging::provider::{
    idempotency_key, MockOptions, MockProvider, Outbound, Provider, INVALID_NUMBER,
};
use popup_origin::messaging::worker::{self, WorkerMetrics, WorkerOptions};
use popup_origin::messaging::Channel;
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio::sync::watch;

/// A worker running in this process until stopped.
struct RunningWorker {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    metrics: Arc<WorkerMetrics>,
}

impl RunningWorker {
    fn start(db: &PgPool, provider: Arc<MockProvider>, options: WorkerOptions) -> RunningWorker {
        let (stop, stopped) = watch::channel(false);
        let metrics = Arc::new(WorkerMetrics::default());
        let task = tokio::spawn(worker::run(db.clone(), provider, options, metrics.clone(), stopped));
        RunningWorker { stop, task, metrics }
    }

    async fn stop(self) {
        self.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(20), self.task).await.unwrap().unwrap().unwrap();
    }
}

fn fast_options() -> WorkerOptions {
    WorkerOptions {
        concurrency: 32,
        backoff_base: Duration::from_millis(100),
        backoff_max: Duration::from_secs(2),
        poll_interval: Duration::from_millis(20),
        lease: Duration::from_secs(30),
        ..WorkerOptions::default()
    }
}

fn fast_mock() -> MockOptions {
    MockOptions {
        latency_min: Duration::from_millis(1),
        latency_max: Duration::from_millis(5),
        ..Default::default()
    }
}

async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn campaign_status(db: &PgPool, id: i64) -> String {
    sqlx::query_scalar("SELECT status FROM message_campaigns WHERE id = $1")
        .bind(id)
        .fetch_one(db)
        .await
        .unwrap()
}

async fn customer(app: &TestApp, phone: &str, first_name: Option<&str>) -> i64 {
    let (status, body) = app
        .admin(Method::POST, "/admin/v1/customers", json!({"phone": phone, "first_name": first_name}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_i64().unwrap()
}

/// Customers +62811000000<i>, i in 0..n, named C<i>.
async fn customers(app: &TestApp, n: usize) -> Vec<i64> {
    let mut csv = String::from("phone,first_name\n");
    for i in 0..n {
        csv.push_str(&format!("+628110{i:06},C{i}\n"));
    }
    let (status, body) = import(app, &csv).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    sqlx::query_scalar("SELECT id FROM customers ORDER BY id").fetch_all(&app.state.db).await.unwrap()
}

async fn import(app: &TestApp, csv: &str) -> (StatusCode, Value) {
    app.call(
        Method::POST,
        "/admin/v1/customers/import",
        Some(ADMIN_KEY),
        Body::from(csv.to_string()),
        "text/csv",
    )
    .await
}

async fn campaign(app: &TestApp, body: Value) -> i64 {
    let (status, created) = app.admin(Method::POST, "/admin/v1/message-campaigns", body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["id"].as_i64().unwrap()
}

fn sms(name: &str) -> Value {
    json!({"name": name, "channel": "sms", "base_template": "Hi {first_name|Nasabah}, cek {preferred_product|promo} kami"})
}

async fn send(app: &TestApp, campaign: i64, body: Value) -> (StatusCode, Value) {
    app.admin(Method::POST, &format!("/admin/v1/message-campaigns/{campaign}/send"), body).await
}

async fn stats(app: &TestApp, campaign: i64) -> Value {
    let (status, body) =
        app.admin(Method::GET, &format!("/admin/v1/message-campaigns/{campaign}"), Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["stats"].clone()
}

async fn new_key(app: &TestApp, role: &str) -> String {
    let (status, created) =
        app.admin(Method::POST, "/admin/v1/keys", json!({"name": role, "role": role})).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["key"].as_str().unwrap().to_string()
}

fn field_names(body: &Value) -> Vec<String> {
    body["error"]["fields"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|f| f["field"].as_str().unwrap().to_string())
        .collect()
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn customers_are_validated_created_read_and_audited(db: PgPool) {
    let app = TestApp::new(db).await;
    let (status, body) = app
        .admin(
            Method::POST,
            "/admin/v1/customers",
            json!({"phone": " +6281234567890 ", "first_name": "Siti", "last_name": "  ", "email": "siti@bank.co.id"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["phone"], "+6281234567890", "trimmed");
    assert_eq!(body["last_name"], Value::Null, "blank is missing");
    let id = body["id"].as_i64().unwrap();

    let (status, body) = app
        .admin(Method::POST, "/admin/v1/customers", json!({"phone": "081234567890", "email": "nope"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(field_names(&body), ["phone", "email"]);
    let (status, _) = app.admin(Method::POST, "/admin/v1/customers", json!({"first_name": "no phone"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, body) =
        app.admin(Method::POST, "/admin/v1/customers", json!({"phone": "+6281234567890"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("phone"));

    let viewer = new_key(&app, "viewer").await;
    let (status, body) =
        app.as_key(&viewer, Method::GET, &format!("/admin/v1/customers/{id}"), Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["first_name"], "Siti");
    let (status, _) =
        app.as_key(&viewer, Method::POST, "/admin/v1/customers", json!({"phone": "+6281111111"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "viewers read only");
    let (status, _) = app.admin(Method::GET, "/admin/v1/customers/999999", Value::Null).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, list) =
        app.admin(Method::GET, "/admin/v1/customers?phone=%2B6281234567890", Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["pagination"]["total_count"], 1);

    let audited: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE entity = 'customer' AND action = 'create'")
            .fetch_one(&app.state.db)
            .await
            .unwrap();
    assert_eq!(audited, 1);
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn an_import_is_all_or_nothing_with_row_numbers_and_can_be_rerun(db: PgPool) {
    let app = TestApp::new(db).await;
    let csv = "phone,first_name,location,external_id\n+6281000001,Ani,Jakarta,cif-1\n\
               \"+6281000002\",\"Budi, Jr\",Bandung,cif-2\n+6281000003,,,\n";
    let (status, body) = import(&app, csv).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"rows": 3, "inserted": 3, "updated": 0}));
    let name: String = sqlx::query_scalar("SELECT first_name FROM customers WHERE phone = '+6281000002'")
        .fetch_one(&app.state.db)
        .await
        .unwrap();
    assert_eq!(name, "Budi, Jr");

    // Bad rows: reported by line number (the header is line 1), and nothing of the file is kept.
    let bad = "phone,first_name\n+6281000009,New\n0812,Bad\n+6281000010\n+6281000011,Fine\n";
    let (status, body) = import(&app, bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(field_names(&body), ["line 3", "line 4"]);
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM customers").fetch_one(&app.state.db).await.unwrap();
    assert_eq!(count, 3, "nothing of the bad file was written");

    let (status, body) = import(&app, "name,phone\nx,+6281000001\n").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "unknown column: {body}");
    let (status, _) = import(&app, "phone\n").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "no rows");

    // Run again: known phones are updated, the file's later row wins.
    let again = "phone,first_name\n+6281000001,Ani2\n+6281000004,Dewi\n+6281000004,Dewi2\n";
    let (status, body) = import(&app, again).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"rows": 3, "inserted": 1, "updated": 1}));
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT first_name FROM customers WHERE phone IN ('+6281000001', '+6281000004') ORDER BY phone",
    )
    .fetch_all(&app.state.db)
    .await
    .unwrap();
    assert_eq!(names, ["Ani2", "Dewi2"]);

    // The test origin's upload limit is 64 KiB.
    let big: String =
        std::iter::once("phone\n".to_string()).chain((0..10_000).map(|i| format!("+6282{i:08}\n"))).collect();
    let (status, _) = import(&app, &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn campaign_templates_and_fields_are_checked_at_creation(db: PgPool) {
    let app = TestApp::new(db).await;
    let (status, body) = app
        .admin(
            Method::POST,
            "/admin/v1/message-campaigns",
            json!({"name": "", "channel": "fax", "base_template": "Hi {frist_name}",
                   "scheduled_at": "2020-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(field_names(&body), ["name", "channel", "base_template", "scheduled_at"]);
    let message = body["error"]["fields"][2]["message"].as_str().unwrap();
    assert!(message.starts_with("unknown placeholder {frist_name} at column 4"), "{message}");
    for template in ["Hi {First_Name}", "Hi {", "a } b", ""] {
        let (status, body) = app
            .admin(
                Method::POST,
                "/admin/v1/message-campaigns",
                json!({"name": "x", "channel": "sms", "base_template": template}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{template}: {body}");
        assert_eq!(field_names(&body), ["base_template"]);
    }
    let (status, _) = app
        .admin(
            Method::POST,
            "/admin/v1/message-campaigns",
            json!({"name": "x", "channel": "sms", "base_template": "x", "extra": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "unknown fields are refused");
    let (status, _) = app
        .call(
            Method::POST,
            "/admin/v1/message-campaigns",
            Some(ADMIN_KEY),
            Body::from("{not json"),
            "application/json",
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let id = campaign(
        &app,
        json!({"name": "wa", "channel": "whatsapp", "base_template": "Halo {first_name} {email|}"}),
    )
    .await;
    let (_, detail) = app.admin(Method::GET, &format!("/admin/v1/message-campaigns/{id}"), Value::Null).await;
    assert_eq!(detail["status"], "draft");
    assert_eq!(detail["stats"], json!({"total": 0, "pending": 0, "sending": 0, "sent": 0, "failed": 0}));
    let later = (Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let (_, created) = app
        .admin(
            Method::POST,
            "/admin/v1/message-campaigns",
            json!({"name": "later", "channel": "sms", "base_template": "x", "scheduled_at": later}),
        )
        .await;
    assert_eq!(created["status"], "scheduled");
    let (status, _) = app.admin(Method::GET, "/admin/v1/message-campaigns/424242", Value::Null).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn send_errors_follow_the_seed(db: PgPool) {
    let app = TestApp::new(db).await;
    let ids = customers(&app, 2).await;
    let id = campaign(&app, sms("errors")).await;
    for body in [
        json!({}),
        json!({"customer_ids": []}),
        json!({"customer_ids": [1], "segment": "x"}),
        json!({"customer_ids": "x"}),
    ] {
        let (status, response) = send(&app, id, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {response}");
    }
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/admin/v1/message-campaigns/{id}/send"),
            Some(ADMIN_KEY),
            Body::from("nope"),
            "application/json",
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(send(&app, 999_999, json!({"customer_ids": ids})).await.0, StatusCode::NOT_FOUND);
    assert_eq!(send(&app, id, json!({"customer_ids": [ids[0], 999_999]})).await.0, StatusCode::NOT_FOUND);
    assert_eq!(send(&app, id, json!({"segment": "no-such-segment"})).await.0, StatusCode::NOT_FOUND);
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM messages").fetch_one(&app.state.db).await.unwrap();
    assert_eq!(count, 0, "a failed send stores nothing");
    assert_eq!(campaign_status(&app.state.db, id).await, "draft");

    let viewer = new_key(&app, "viewer").await;
    let (status, _) = app
        .as_key(
            &viewer,
            Method::POST,
            &format!("/admin/v1/message-campaigns/{id}/send"),
            json!({"customer_ids": ids}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, body) = send(&app, id, json!({"customer_ids": [ids[0], ids[1], ids[0]]})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["messages_queued"], 2, "duplicates are sent once");
    let (status, body) = send(&app, id, json!({"customer_ids": ids})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn the_full_send_flow_renders_delivers_and_counts(db: PgPool) {
    let app = TestApp::new(db).await;
    let mut ids = customers(&app, 40).await;
    let named = customer(&app, "+6289999999", Some("Rina")).await;
    let invalid = customer(&app, INVALID_NUMBER, None).await;
    ids.extend([named, invalid]);
    let id = campaign(&app, sms("flow")).await;

    let (status, body) = send(&app, id, json!({"customer_ids": ids})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!((body["messages_queued"].as_i64(), body["status"].as_str()), (Some(42), Some("sending")));
    assert_eq!(
        stats(&app, id).await,
        json!({"total": 42, "pending": 42, "sending": 0, "sent": 0, "failed": 0})
    );
    let bodies: HashMap<i64, String> =
        sqlx::query_as::<_, (i64, String)>("SELECT customer_id, body FROM messages WHERE campaign_id = $1")
            .bind(id)
            .fetch_all(&app.state.db)
            .await
            .unwrap()
            .into_iter()
            .collect();
    assert_eq!(bodies[&named], "Hi Rina, cek promo kami");
    assert_eq!(bodies[&invalid], "Hi Nasabah, cek promo kami");
    assert_eq!(bodies[&ids[3]], "Hi C3, cek promo kami");

    let provider = Arc::new(MockProvider::new(fast_mock()));
    let running = RunningWorker::start(&app.state.db, provider.clone(), fast_options());
    let db = app.state.db.clone();
    wait_until("the campaign to finish", Duration::from_secs(30), || {
        let db = db.clone();
        async move { campaign_status(&db, id).await != "sending" }
    })
    .await;
    running.stop().await;

    assert_eq!(campaign_status(&app.state.db, id).await, "sent", "a partial success counts as sent");
    assert_eq!(
        stats(&app, id).await,
        json!({"total": 42, "pending": 0, "sending": 0, "sent": 41, "failed": 1})
    );
    let deliveries = provider.deliveries();
    assert_eq!(deliveries.len(), 41);
    assert_eq!(deliveries.iter().map(|d| d.message_id).collect::<HashSet<_>>().len(), 41, "each once");
    let (status, failed) = app
        .admin(Method::GET, &format!("/admin/v1/message-campaigns/{id}/messages?status=failed"), Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(failed["pagination"]["total_count"], 1);
    assert_eq!(failed["data"][0]["customer_id"], invalid);
    assert_eq!(failed["data"][0]["attempts"], 1, "a permanent error is not retried");
    assert!(failed["data"][0]["last_error"].as_str().unwrap().starts_with("21211"), "{failed}");
    let sent: Vec<Option<String>> =
        sqlx::query_scalar("SELECT provider_message_id FROM messages WHERE status = 'sent'")
            .fetch_all(&app.state.db)
            .await
            .unwrap();
    assert!(sent.iter().all(Option::is_some));

    let audited: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_log WHERE entity = 'message_campaign' AND entity_id = $1 ORDER BY id",
    )
    .bind(id.to_string())
    .fetch_all(&app.state.db)
    .await
    .unwrap();
    assert_eq!(audited, ["create", "send"]);
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn a_campaign_whose_messages_all_fail_is_failed_and_requeue_revives_it(db: PgPool) {
    let app = TestApp::new(db).await;
    let ids = customers(&app, 5).await;
    let id = campaign(&app, sms("doomed")).await;
    send(&app, id, json!({"customer_ids": ids})).await;
    // The provider is down for every message's first 5 attempts; the worker gives up after 3.
    let provider = Arc::new(MockProvider::new(MockOptions { fail_attempts_up_to: 5, ..fast_mock() }));
    let options = WorkerOptions { backoff_base: Duration::from_millis(20), ..fast_options() };
    let running = RunningWorker::start(&app.state.db, provider.clone(), options.clone());
    let db = app.state.db.clone();
    wait_until("the campaign to fail", Duration::from_secs(30), || {
        let db = db.clone();
        async move { campaign_status(&db, id).await == "failed" }
    })
    .await;
    running.stop().await;
    assert_eq!(stats(&app, id).await["failed"], 5);
    assert_eq!(provider.received().len(), 15, "3 attempts each");
    let (status, dead) = app.admin(Method::GET, "/admin/v1/messages/dead", Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(dead["pagination"]["total_count"], 5);
    assert_eq!(dead["data"][0]["attempts"], 3);
    assert_eq!(dead["data"][0]["last_error"], "gave up after 3 attempts: simulated network error");

    let (status, body) =
        app.admin(Method::POST, "/admin/v1/messages/dead/requeue", json!({"campaign_id": id})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["requeued"], 5);
    assert_eq!(campaign_status(&app.state.db, id).await, "sending");
    assert_eq!(stats(&app, id).await["pending"], 5);
    let (status, _) = app.admin(Method::POST, "/admin/v1/messages/dead/requeue", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Attempts start again from 1, so the same provider would fail them all again (it is down for every
    // message's first five attempts); a healthy one delivers them.
    let healthy = Arc::new(MockProvider::new(fast_mock()));
    let running = RunningWorker::start(&app.state.db, healthy.clone(), options);
    wait_until("the requeued messages to go out", Duration::from_secs(30), || {
        let db = db.clone();
        async move { campaign_status(&db, id).await == "sent" }
    })
    .await;
    running.stop().await;
    let deliveries = healthy.deliveries();
    assert_eq!(deliveries.len(), 5);
    for delivery in &deliveries {
        assert_eq!(delivery.key, idempotency_key(delivery.message_id, 4), "a re-queue never reuses a key");
        assert_eq!(delivery.attempt, 1, "with a fresh set of attempts");
    }
    let audited: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'requeue'")
        .fetch_one(&app.state.db)
        .await
        .unwrap();
    assert_eq!(audited, 1);
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn failed_attempts_are_retried_with_growing_backoff(db: PgPool) {
    let app = TestApp::new(db).await;
    let ids = customers(&app, 10).await;
    let id = campaign(&app, sms("flaky")).await;
    send(&app, id, json!({"customer_ids": ids})).await;
    let provider = Arc::new(MockProvider::new(MockOptions { fail_attempts_up_to: 2, ..fast_mock() }));
    let base = Duration::from_millis(200);
    let options = WorkerOptions { backoff_base: base, ..fast_options() };
    let running = RunningWorker::start(&app.state.db, provider.clone(), options);
    let db = app.state.db.clone();
    wait_until("the campaign to be sent", Duration::from_secs(30), || {
        let db = db.clone();
        async move { campaign_status(&db, id).await == "sent" }
    })
    .await;
    running.stop().await;

    let attempts: Vec<i32> =
        sqlx::query_scalar("SELECT attempts FROM messages").fetch_all(&app.state.db).await.unwrap();
    assert_eq!(attempts, vec![3; 10], "two failures, then success on the third attempt");
    let mut by_message: HashMap<i64, Vec<(i32, Instant)>> = HashMap::new();
    for (message, attempt, at) in provider.received() {
        by_message.entry(message).or_default().push((attempt, at));
    }
    for (message, mut sends) in by_message {
        sends.sort_by_key(|(attempt, _)| *attempt);
        assert_eq!(sends.iter().map(|(a, _)| *a).collect::<Vec<_>>(), [1, 2, 3], "message {message}");
        // Equal jitter: the wait after attempt k is at least half of base * 2^(k-1).
        let first_wait = sends[1].1 - sends[0].1;
        let second_wait = sends[2].1 - sends[1].1;
        assert!(first_wait >= base / 2, "message {message}: {first_wait:?}");
        assert!(second_wait >= base, "message {message}: {second_wait:?}");
    }
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn the_rate_limit_holds_over_every_window(db: PgPool) {
    let app = TestApp::new(db).await;
    let ids = customers(&app, 60).await;
    let id = campaign(&app, sms("limited")).await;
    send(&app, id, json!({"customer_ids": ids})).await;
    let (rate, burst) = (20.0, 5);
    let provider = Arc::new(MockProvider::new(fast_mock()));
    let options = WorkerOptions { rate_sms: rate, burst, ..fast_options() };
    let running = RunningWorker::start(&app.state.db, provider.clone(), options);
    let db = app.state.db.clone();
    wait_until("the campaign to be sent", Duration::from_secs(60), || {
        let db = db.clone();
        async move { campaign_status(&db, id).await == "sent" }
    })
    .await;
    running.stop().await;

    let mut times: Vec<Instant> = provider.received().into_iter().map(|(_, _, at)| at).collect();
    times.sort();
    assert_eq!(times.len(), 60);
    // In any window of length T, at most burst + rate * T sends (plus one for the window's edges).
    for window in [Duration::from_millis(250), Duration::from_secs(1)] {
        let bound = f64::from(burst) + rate * window.as_secs_f64() + 1.0;
        for (i, start) in times.iter().enumerate() {
            let inside = times[i..].iter().take_while(|t| **t - *start <= window).count();
            assert!(inside as f64 <= bound, "{inside} sends within {window:?}; bound {bound}");
        }
    }
    let span = *times.last().unwrap() - times[0];
    let least = Duration::from_secs_f64((60.0 - f64::from(burst)) / rate * 0.95);
    assert!(span >= least, "60 sends took {span:?}; the bucket allows no less than {least:?}");
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn a_scheduled_campaign_goes_out_at_its_time(db: PgPool) {
    let app = TestApp::new(db).await;
    let ids = customers(&app, 5).await;
    let at = Utc::now() + chrono::Duration::seconds(2);
    let id = campaign(
        &app,
        json!({"name": "later", "channel": "whatsapp", "base_template": "Halo {first_name}", "scheduled_at": at.to_rfc3339()}),
    )
    .await;
    let provider = Arc::new(MockProvider::new(fast_mock()));
    let running = RunningWorker::start(&app.state.db, provider.clone(), fast_options());
    let (status, body) = send(&app, id, json!({"customer_ids": ids})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "scheduled");
    let (status, _) = send(&app, id, json!({"customer_ids": ids})).await;
    assert_eq!(status, StatusCode::CONFLICT, "a queued scheduled campaign is not sent twice");
    // Nothing goes out before its time: checked below on every message's sent_at, which does not depend on
    // how fast this test runs.
    let db = app.state.db.clone();
    wait_until("the campaign to be sent", Duration::from_secs(30), || {
        let db = db.clone();
        async move { campaign_status(&db, id).await == "sent" }
    })
    .await;
    running.stop().await;
    let sent_at: Vec<DateTime<Utc>> =
        sqlx::query_scalar("SELECT sent_at FROM messages").fetch_all(&app.state.db).await.unwrap();
    assert_eq!(sent_at.len(), 5);
    assert!(sent_at.iter().all(|t| *t >= at), "every message went out after {at}: {sent_at:?}");
    assert!(provider.deliveries().iter().all(|d| d.channel == Channel::Whatsapp));
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn a_taken_over_lease_resends_the_same_attempt_and_the_provider_dedupes(db: PgPool) {
    let app = TestApp::new(db).await;
    let ids = customers(&app, 3).await;
    let id = campaign(&app, sms("crash")).await;
    send(&app, id, json!({"customer_ids": ids})).await;
    let provider = Arc::new(MockProvider::new(fast_mock()));
    // A worker that died: it claimed every message (attempt 1), the provider accepted the first one, and
    // nothing was recorded. Its lease has run out.
    let claimed: Vec<(i64, String, String)> = sqlx::query_as(
        "UPDATE messages SET status = 'sending', attempts = 1, key_seq = 1, idempotency_key = 'msg-' || id || '-1',
             lease_owner = 'dead', lease_until = now() - interval '1 second'
         RETURNING id, phone, body",
    )
    .fetch_all(&app.state.db)
    .await
    .unwrap();
    let (first, phone, body) = claimed.iter().min_by_key(|(id, _, _)| *id).cloned().unwrap();
    let outbound = Outbound {
        message_id: first,
        attempt: 1,
        idempotency_key: idempotency_key(first, 1),
        channel: Channel::Sms,
        to: phone,
        body,
    };
    let accepted = provider.send(&outbound).await.unwrap();

    let running = RunningWorker::start(&app.state.db, provider.clone(), fast_options());
    let db = app.state.db.clone();
    wait_until("the campaign to be sent", Duration::from_secs(30), || {
        let db = db.clone();
        async move { campaign_status(&db, id).await == "sent" }
    })
    .await;
    running.stop().await;
    let rows: Vec<(i64, i32, Option<String>)> =
        sqlx::query_as("SELECT id, attempts, provider_message_id FROM messages ORDER BY id")
            .fetch_all(&app.state.db)
            .await
            .unwrap();
    assert!(rows.iter().all(|(_, attempts, _)| *attempts == 1), "taken over without a new attempt: {rows:?}");
    assert_eq!(rows[0].2.as_deref(), Some(accepted.as_str()), "the first result is recorded");
    let deliveries = provider.deliveries();
    assert_eq!(deliveries.len(), 3, "one delivery per message: {deliveries:?}");
    assert_eq!(
        provider.received().iter().filter(|(m, _, _)| *m == first).count(),
        2,
        "sent again, deduplicated"
    );
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn a_message_that_outlives_every_worker_fails_instead_of_looping(db: PgPool) {
    let app = TestApp::new(db).await;
    let ids = customers(&app, 2).await;
    let id = campaign(&app, sms("poison")).await;
    send(&app, id, json!({"customer_ids": ids})).await;
    // Both messages' leases ran out: one was taken over as many times as allowed, one only once.
    sqlx::query(
        "UPDATE messages SET status = 'sending', attempts = 1, key_seq = 1, idempotency_key = 'msg-' || id || '-1',
             lease_owner = 'dead', lease_until = now() - interval '1 second',
             takeovers = CASE WHEN id = (SELECT min(id) FROM messages) THEN $1 ELSE 1 END",
    )
    .bind(worker::MAX_TAKEOVERS)
    .execute(&app.state.db)
    .await
    .unwrap();
    let provider = Arc::new(MockProvider::new(fast_mock()));
    let running = RunningWorker::start(&app.state.db, provider.clone(), fast_options());
    let db = app.state.db.clone();
    wait_until("the campaign to settle", Duration::from_secs(30), || {
        let db = db.clone();
        async move { campaign_status(&db, id).await == "sent" }
    })
    .await;
    running.stop().await;
    let rows: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT status, last_error FROM messages ORDER BY id")
            .fetch_all(&app.state.db)
            .await
            .unwrap();
    assert_eq!(rows[0].0, "failed");
    assert!(rows[0].1.as_deref().unwrap_or_default().starts_with("abandoned"), "{rows:?}");
    assert_eq!(rows[1].0, "sent", "a message taken over fewer times is still sent");
    assert_eq!(provider.received().len(), 1, "the abandoned message was not sent again");
    // Re-queued from the dead letters, it starts afresh and goes out.
    let (status, body) =
        app.admin(Method::POST, "/admin/v1/messages/dead/requeue", json!({"campaign_id": id})).await;
    assert!(status.is_success(), "{status} {body}");
    let takeovers: i32 = sqlx::query_scalar("SELECT takeovers FROM messages ORDER BY id LIMIT 1")
        .fetch_one(&app.state.db)
        .await
        .unwrap();
    assert_eq!(takeovers, 0);
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn a_worker_that_lost_its_lease_does_not_record_over_the_new_holder(db: PgPool) {
    let app = TestApp::new(db).await;
    let ids = customers(&app, 1).await;
    let id = campaign(&app, sms("slow")).await;
    send(&app, id, json!({"customer_ids": ids})).await;
    // A slow provider that fails: the outcome comes back after another worker took the message over.
    let provider = Arc::new(MockProvider::new(MockOptions {
        latency_min: Duration::from_millis(800),
        latency_max: Duration::from_millis(800),
        failure_rate: 1.0,
        ..Default::default()
    }));
    let options = WorkerOptions { worker_id: "slow-worker".into(), ..fast_options() };
    let running = RunningWorker::start(&app.state.db, provider.clone(), options);
    let db = app.state.db.clone();
    wait_until("the worker to claim the message", Duration::from_secs(10), || {
        let db = db.clone();
        async move {
            let owner: Option<String> =
                sqlx::query_scalar("SELECT lease_owner FROM messages").fetch_one(&db).await.unwrap();
            owner.as_deref() == Some("slow-worker")
        }
    })
    .await;
    // Meanwhile its lease ran out and another worker took the same attempt over (as `claim` does).
    sqlx::query(
        "UPDATE messages SET lease_owner = 'other-worker', lease_until = now() + interval '1 minute'",
    )
    .execute(&app.state.db)
    .await
    .unwrap();
    wait_until("the slow send to fail", Duration::from_secs(10), || {
        let provider = provider.clone();
        async move { !provider.received().is_empty() }
    })
    .await;
    running.stop().await;
    let (status, owner, attempts): (String, Option<String>, i32) =
        sqlx::query_as("SELECT status, lease_owner, attempts FROM messages")
            .fetch_one(&app.state.db)
            .await
            .unwrap();
    assert_eq!(
        (status.as_str(), owner.as_deref(), attempts),
        ("sending", Some("other-worker"), 1),
        "the late failure must not put the message back in the queue under the new holder's feet"
    );
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn stopping_the_worker_drains_the_sends_in_flight(db: PgPool) {
    let app = TestApp::new(db).await;
    let ids = customers(&app, 300).await;
    let id = campaign(&app, sms("drain")).await;
    send(&app, id, json!({"customer_ids": ids})).await;
    let provider = Arc::new(MockProvider::new(MockOptions {
        latency_min: Duration::from_millis(300),
        latency_max: Duration::from_millis(400),
        ..Default::default()
    }));
    let running = RunningWorker::start(
        &app.state.db,
        provider.clone(),
        WorkerOptions { concurrency: 50, ..fast_options() },
    );
    let metrics = running.metrics.clone();
    wait_until("sends in flight", Duration::from_secs(10), || {
        let metrics = metrics.clone();
        async move { metrics.in_flight.load(std::sync::atomic::Ordering::Relaxed) > 0 }
    })
    .await;
    running.stop().await;
    let s = stats(&app, id).await;
    assert_eq!(s["sending"], 0, "every send in flight was finished and recorded: {s}");
    assert_eq!(s["sent"].as_u64().unwrap(), provider.deliveries().len() as u64);
    assert!(s["pending"].as_u64().unwrap() > 0, "it stopped before the end: {s}");
    assert_eq!(campaign_status(&app.state.db, id).await, "sending");
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn a_segment_can_be_messaged_through_external_ids(db: PgPool) {
    let app = TestApp::new(db).await;
    let (status, body) = import(
        &app,
        "phone,external_id,first_name\n+6281000001,cif-1,Ani\n+6281000002,cif-2,Budi\n+6281000003,,Citra\n",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = app.upload("vip", "cif-1\ncif-2\ncif-9\n").await;
    assert_eq!(status, StatusCode::OK);
    let id = campaign(&app, sms("vip")).await;
    let (status, body) = send(&app, id, json!({"segment": "vip"})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!((body["messages_queued"].as_i64(), body["skipped"].as_i64()), (Some(2), Some(1)));
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn pages_stay_stable_while_rows_are_inserted(db: PgPool) {
    let app = TestApp::new(db).await;
    customers(&app, 45).await;
    let (status, first) = app.admin(Method::GET, "/admin/v1/customers", Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (
            first["pagination"]["page_size"].as_i64(),
            first["pagination"]["total_count"].as_i64(),
            first["pagination"]["total_pages"].as_i64()
        ),
        (Some(20), Some(45), Some(3))
    );
    let as_of = first["pagination"]["as_of"].as_i64().unwrap();
    let mut seen: Vec<i64> =
        first["data"].as_array().unwrap().iter().map(|c| c["id"].as_i64().unwrap()).collect();
    for page in 2..=3 {
        // Someone adds customers between two page fetches.
        customer(&app, &format!("+62899{page:07}"), None).await;
        import(&app, &format!("phone\n+62898{page:07}\n+62897{page:07}\n")).await;
        let (status, body) = app
            .admin(Method::GET, &format!("/admin/v1/customers?page={page}&as_of={as_of}"), Value::Null)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["pagination"]["total_count"], 45, "the snapshot's total");
        assert_eq!(body["pagination"]["as_of"], as_of);
        seen.extend(body["data"].as_array().unwrap().iter().map(|c| c["id"].as_i64().unwrap()));
    }
    let all: Vec<i64> = sqlx::query_scalar("SELECT id FROM customers WHERE id <= $1 ORDER BY id DESC")
        .bind(as_of)
        .fetch_all(&app.state.db)
        .await
        .unwrap();
    assert_eq!(seen, all, "every row once, newest first, none of the new ones");
    let (_, now) = app.admin(Method::GET, "/admin/v1/customers", Value::Null).await;
    assert_eq!(now["pagination"]["total_count"], 51, "a fresh first page sees the new rows");

    for query in ["page=x", "page_size=1.5", "page=1000001", "as_of=-1"] {
        let (status, _) = app.admin(Method::GET, &format!("/admin/v1/customers?{query}"), Value::Null).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
    }
    let (_, body) = app.admin(Method::GET, "/admin/v1/customers?page_size=100", Value::Null).await;
    assert_eq!(body["data"].as_array().unwrap().len(), 51);

    // Campaign lists: filters and the same snapshot rule.
    for i in 0..3 {
        campaign(&app, sms(&format!("s{i}"))).await;
        campaign(&app, json!({"name": format!("w{i}"), "channel": "whatsapp", "base_template": "x"})).await;
    }
    let (_, list) =
        app.admin(Method::GET, "/admin/v1/message-campaigns?channel=whatsapp&page_size=2", Value::Null).await;
    assert_eq!(
        (list["pagination"]["total_count"].as_i64(), list["pagination"]["total_pages"].as_i64()),
        (Some(3), Some(2))
    );
    let names: Vec<&str> =
        list["data"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["w2", "w1"]);
    let (_, list) = app.admin(Method::GET, "/admin/v1/message-campaigns?status=draft", Value::Null).await;
    assert_eq!(list["pagination"]["total_count"], 6);
    let (status, _) = app.admin(Method::GET, "/admin/v1/message-campaigns?status=bogus", Value::Null).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn an_attempt_without_an_answer_is_retried_under_the_same_key(db: PgPool) {
    let app = TestApp::new(db).await;
    let ids = customers(&app, 8).await;
    let id = campaign(&app, sms("timeouts")).await;
    send(&app, id, json!({"customer_ids": ids})).await;
    // The provider accepts every first send but the answer never arrives (a client timeout).
    let provider = Arc::new(MockProvider::new(MockOptions { lose_first_answer: true, ..fast_mock() }));
    let options = WorkerOptions { backoff_base: Duration::from_millis(20), ..fast_options() };
    let running = RunningWorker::start(&app.state.db, provider.clone(), options);
    let db = app.state.db.clone();
    wait_until("the campaign to be sent", Duration::from_secs(30), || {
        let db = db.clone();
        async move { campaign_status(&db, id).await == "sent" }
    })
    .await;
    running.stop().await;
    let rows: Vec<(i64, i32, String)> = sqlx::query_as("SELECT id, attempts, idempotency_key FROM messages")
        .fetch_all(&app.state.db)
        .await
        .unwrap();
    for (message, attempts, key) in rows {
        assert_eq!(attempts, 2, "message {message}: one retry");
        assert_eq!(key, idempotency_key(message, 1), "message {message}: the retry reused the first key");
    }
    assert_eq!(provider.deliveries().len(), 8, "each delivered once");
    assert_eq!(provider.received().len(), 16);
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn a_backlog_on_one_channel_does_not_starve_the_other(db: PgPool) {
    let app = TestApp::new(db).await;
    let ids = customers(&app, 200).await;
    let sms_campaign = campaign(&app, sms("big sms")).await;
    send(&app, sms_campaign, json!({"customer_ids": ids})).await;
    let wa =
        campaign(&app, json!({"name": "small wa", "channel": "whatsapp", "base_template": "Halo"})).await;
    send(&app, wa, json!({"customer_ids": ids[..20]})).await;
    let provider = Arc::new(MockProvider::new(fast_mock()));
    let running = RunningWorker::start(
        &app.state.db,
        provider.clone(),
        WorkerOptions { concurrency: 8, ..fast_options() },
    );
    let db = app.state.db.clone();
    wait_until("both campaigns to be sent", Duration::from_secs(60), || {
        let db = db.clone();
        async move {
            campaign_status(&db, sms_campaign).await == "sent" && campaign_status(&db, wa).await == "sent"
        }
    })
    .await;
    running.stop().await;
    let mut deliveries = provider.deliveries();
    deliveries.sort_by_key(|d| d.at);
    let last_whatsapp = deliveries.iter().rposition(|d| d.channel == Channel::Whatsapp).unwrap();
    // Taking turns, the 20 WhatsApp messages go out among the first ~40 sends; one after the other, they
    // would wait for all 200 SMS.
    assert!(last_whatsapp < 120, "the last WhatsApp message was send number {last_whatsapp} of 220");
}

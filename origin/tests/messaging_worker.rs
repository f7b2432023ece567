//! The `popup-origin messenger` process against a fake Twilio in this test: killed with SIGKILL mid-run and
//! restarted, every message ends sent or failed and none is delivered twice; stopped with SIGTERM, it
//! finishes and records the sends in flight.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use common::*;
use popup_origin::messaging::provider::{
    idempotency_key, random_below, Outbound, Provider, TwilioProvider, INVALID_NUMBER,
};
use popup_origin::messaging::Channel;
use serde_json::json;
use sqlx::PgPool;

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "fake-auth-token";
const FROM: &str = "+15005550006";

/// What the fake Twilio saw.
#[derive(Default)]
struct Fake {
    /// First answer per idempotency key: Twilio replays it for a repeated key instead of sending again.
    accepted: HashMap<String, String>,
    /// Requests that were repeats of an accepted key.
    replays: u64,
    /// Requests received and not yet answered.
    in_progress: u64,
    requests: u64,
    last_to: Option<String>,
}

type Shared = Arc<Mutex<Fake>>;

fn twilio_error(status: StatusCode, code: u32, message: &str) -> Response {
    let body = json!({"code": code, "message": message,
                      "more_info": format!("https://www.twilio.com/docs/errors/{code}"), "status": status.as_u16()});
    (status, Json(body)).into_response()
}

/// `POST /2010-04-01/Accounts/{sid}/Messages.json` as Twilio answers it: basic auth, form body, 201 with the
/// message's sid; errors in Twilio's JSON. A request is accepted when it arrives, before the latency, as at
/// a real provider: a client that dies while waiting does not undo it.
async fn messages(
    State(fake): State<Shared>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let expected =
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{SID}:{TOKEN}")));
    if sid != SID || headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&expected) {
        return twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap();
    // WhatsApp messages go to and from `whatsapp:`-prefixed numbers.
    let number = |field: &str| form.get(field).map(|n| n.trim_start_matches("whatsapp:").to_string());
    if number("From").as_deref() != Some(FROM) || !form.contains_key("Body") {
        return twilio_error(StatusCode::BAD_REQUEST, 21603, "A 'From' phone number is required.");
    }
    fake.lock().unwrap().last_to = form.get("To").cloned();
    if number("To").as_deref() == Some(INVALID_NUMBER) {
        return twilio_error(StatusCode::BAD_REQUEST, 21211, "The 'To' number is not a valid phone number.");
    }
    let Some(key) = headers.get("i-twilio-idempotency-token").and_then(|v| v.to_str().ok()).map(String::from)
    else {
        return twilio_error(StatusCode::BAD_REQUEST, 20001, "missing idempotency token");
    };
    // One request in twenty fails as a server error, which the worker retries.
    let unavailable = random_below(20) == 0;
    let sid = {
        let mut fake = fake.lock().unwrap();
        fake.requests += 1;
        fake.in_progress += 1;
        match fake.accepted.get(&key).cloned() {
            Some(sid) => {
                fake.replays += 1;
                Some(sid)
            }
            None if unavailable => None,
            None => {
                let sid = format!("SM{:032}", fake.accepted.len());
                fake.accepted.insert(key.clone(), sid.clone());
                Some(sid)
            }
        }
    };
    tokio::time::sleep(Duration::from_millis(50 + random_below(151))).await;
    fake.lock().unwrap().in_progress -= 1;
    match sid {
        Some(sid) => (StatusCode::CREATED, Json(json!({"sid": sid, "status": "queued", "to": form["To"]})))
            .into_response(),
        None => twilio_error(StatusCode::SERVICE_UNAVAILABLE, 20503, "Service unavailable"),
    }
}

async fn fake_twilio() -> (String, Shared) {
    let fake = Shared::default();
    let app = Router::new()
        .route("/2010-04-01/Accounts/{sid}/Messages.json", post(messages))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}"), fake)
}

/// A port free at the time of asking.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A messenger; its metrics on `ops_port`.
fn messenger(database_url: &str, twilio: &str, ops_port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_popup-origin"))
        .arg("messenger")
        .env("RUST_LOG", "warn")
        .env("POPUP_OPS_ADDR", format!("127.0.0.1:{ops_port}"))
        .env("DATABASE_URL", database_url)
        .env("POPUP_MESSAGING_PROVIDER", "twilio")
        .env("POPUP_MESSAGING_TWILIO_BASE_URL", twilio)
        .env("POPUP_MESSAGING_TWILIO_ACCOUNT_SID", SID)
        .env("POPUP_MESSAGING_TWILIO_AUTH_TOKEN", TOKEN)
        .env("POPUP_MESSAGING_TWILIO_FROM", FROM)
        .env("POPUP_MESSAGING_CONCURRENCY", "32")
        .env("POPUP_MESSAGING_LEASE_SECONDS", "2")
        .env("POPUP_MESSAGING_BACKOFF_BASE_MS", "50")
        .env("POPUP_MESSAGING_POLL_MS", "50")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

async fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn wait_for_exit(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "the messenger did not exit within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn count(db: &PgPool, status: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM messages WHERE status = $1")
        .bind(status)
        .fetch_one(db)
        .await
        .unwrap()
}

/// Queues `n` SMS through the admin API; returns the campaign id.
async fn queue_messages(app: &TestApp, n: usize) -> i64 {
    let mut csv = String::from("phone,first_name\n");
    for i in 0..n {
        csv.push_str(&format!("+628120{i:06},N{i}\n"));
    }
    let (status, body) = app
        .call(axum::http::Method::POST, "/admin/v1/customers/import", Some(ADMIN_KEY), csv.into(), "text/csv")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, created) = app
        .admin(
            axum::http::Method::POST,
            "/admin/v1/message-campaigns",
            json!({"name": "crash", "channel": "sms", "base_template": "Halo {first_name}"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let id = created["id"].as_i64().unwrap();
    let ids: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM customers").fetch_all(&app.state.db).await.unwrap();
    let (status, body) = app
        .admin(
            axum::http::Method::POST,
            &format!("/admin/v1/message-campaigns/{id}/send"),
            json!({"customer_ids": ids}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    id
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn a_killed_worker_loses_nothing_and_sends_nothing_twice(db: PgPool) {
    let app = TestApp::new(db.clone()).await;
    let total = 600;
    let campaign = queue_messages(&app, total).await;
    let (twilio, fake) = fake_twilio().await;
    let url = database_url(&db);

    let mut first = messenger(&url, &twilio, free_port());
    // Kill it while the fake holds requests it has accepted but not answered: the crash window.
    wait_for("a third of the messages accepted, with sends in flight", Duration::from_secs(60), || {
        let fake = fake.lock().unwrap();
        fake.accepted.len() >= total / 3 && fake.in_progress > 0
    })
    .await;
    first.kill().unwrap();
    first.wait().unwrap();
    let stranded = count(&db, "sending").await;
    assert!(stranded > 0, "messages were in flight when the worker died");

    let ops_port = free_port();
    let mut second = messenger(&url, &twilio, ops_port);
    let deadline = Instant::now() + Duration::from_secs(90);
    while count(&db, "pending").await + count(&db, "sending").await > 0 {
        assert!(Instant::now() < deadline, "messages left unfinished after the restart");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The second worker's own deliveries, on its operations address.
    let metrics =
        reqwest::get(format!("http://127.0.0.1:{ops_port}/metrics")).await.unwrap().text().await.unwrap();
    let sent_by_second: f64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("popup_message_attempts_total{channel=\"sms\",outcome=\"sent\"} "))
        .unwrap_or_else(|| panic!("no sent attempts in {metrics}"))
        .parse()
        .unwrap();
    let sent_now = count(&db, "sent").await as f64;
    assert!(sent_by_second > 0.0 && sent_by_second <= sent_now, "{sent_by_second} of {sent_now}: {metrics}");
    assert!(metrics.contains("popup_messages_in_flight 0"), "{metrics}");
    sigterm(&second);
    assert!(wait_for_exit(&mut second, Duration::from_secs(15)).await.success());

    let sent = count(&db, "sent").await;
    let failed = count(&db, "failed").await;
    assert_eq!(sent + failed, total as i64, "every message is sent or failed");
    let rows: Vec<(i64, String, Option<String>, Option<String>)> =
        sqlx::query_as("SELECT id, status, idempotency_key, provider_message_id FROM messages")
            .fetch_all(&db)
            .await
            .unwrap();
    let status: String = sqlx::query_scalar("SELECT status FROM message_campaigns WHERE id = $1")
        .bind(campaign)
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(status, "sent");
    let fake = fake.lock().unwrap();
    // Accepted keys per message: a message accepted under two attempts would have been delivered twice.
    let mut accepted: HashMap<i64, Vec<(&String, &String)>> = HashMap::new();
    for (key, sid) in &fake.accepted {
        let id: i64 = key.strip_prefix("msg-").unwrap().rsplit_once('-').unwrap().0.parse().unwrap();
        accepted.entry(id).or_default().push((key, sid));
    }
    for (id, status, key, provider_id) in &rows {
        let keys = accepted.get(id).map(Vec::as_slice).unwrap_or_default();
        assert!(keys.len() <= 1, "message {id} was accepted {} times: {keys:?}", keys.len());
        if status == "sent" {
            assert_eq!(keys.len(), 1, "message {id} is sent but the provider never accepted it");
            assert_eq!(provider_id.as_ref(), Some(keys[0].1), "message {id} records the provider's sid");
            assert_eq!(Some(keys[0].0), key.as_ref(), "message {id} records the key that was accepted");
        } else {
            assert!(keys.is_empty(), "message {id} failed but was accepted");
        }
    }
    assert_eq!(fake.accepted.len() as i64, sent);
    assert!(
        fake.replays > 0,
        "the restarted worker sent the dead one's attempts again, and the fake deduplicated"
    );
    let distinct: HashSet<&String> = fake.accepted.values().collect();
    assert_eq!(distinct.len(), fake.accepted.len());
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn sigterm_drains_the_sends_in_flight_and_exits(db: PgPool) {
    let app = TestApp::new(db.clone()).await;
    queue_messages(&app, 400).await;
    let (twilio, fake) = fake_twilio().await;
    let mut worker = messenger(&database_url(&db), &twilio, free_port());
    wait_for("sends in flight", Duration::from_secs(60), || {
        let fake = fake.lock().unwrap();
        fake.accepted.len() >= 50 && fake.in_progress > 0
    })
    .await;
    sigterm(&worker);
    let exit = wait_for_exit(&mut worker, Duration::from_secs(15)).await;
    assert!(exit.success(), "exit status {exit:?}");
    assert_eq!(count(&db, "sending").await, 0, "every send in flight was finished and recorded");
    let sent = count(&db, "sent").await;
    assert_eq!(
        sent,
        fake.lock().unwrap().accepted.len() as i64,
        "what the provider accepted is recorded as sent"
    );
    assert!(count(&db, "pending").await > 0, "it stopped claiming before the end");
}

/// SIGTERM through `kill`, as an orchestrator sends it.
fn sigterm(child: &Child) {
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn the_twilio_client_speaks_twilios_protocol() {
    let (twilio, fake) = fake_twilio().await;
    let client =
        |token: &str| TwilioProvider::new(&twilio, SID, token, FROM, Duration::from_secs(5)).unwrap();
    let provider = client(TOKEN);
    let message = |id: i64, to: &str| Outbound {
        message_id: id,
        attempt: 1,
        idempotency_key: idempotency_key(id, 1),
        channel: Channel::Whatsapp,
        to: to.into(),
        body: "Halo, promo & diskon 50%!".into(),
    };
    // The fake fails one request in twenty with a 503: retry those as the worker would.
    let mut first = provider.send(&message(1, "+6281234567")).await;
    while first.as_ref().is_err_and(|e| e.retryable && !e.maybe_delivered) {
        first = provider.send(&message(1, "+6281234567")).await;
    }
    let sid = first.unwrap();
    assert!(sid.starts_with("SM"), "{sid}");
    assert_eq!(
        provider.send(&message(1, "+6281234567")).await.unwrap(),
        sid,
        "the same key gets the same answer"
    );
    assert_eq!(fake.lock().unwrap().accepted.len(), 1);
    assert_eq!(fake.lock().unwrap().last_to.as_deref(), Some("whatsapp:+6281234567"));

    let error = provider.send(&message(2, INVALID_NUMBER)).await.unwrap_err();
    assert!(!error.retryable, "an invalid number is permanent");
    assert_eq!(error.message, "21211: The 'To' number is not a valid phone number.");
    let error = client("wrong-token").send(&message(3, "+6281234567")).await.unwrap_err();
    assert!(!error.retryable);
    assert!(error.message.starts_with("20003"), "{}", error.message);

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let nowhere =
        TwilioProvider::new(&format!("http://{closed}"), SID, TOKEN, FROM, Duration::from_secs(5)).unwrap();
    let error = nowhere.send(&message(4, "+6281234567")).await.unwrap_err();
    assert!(error.retryable && !error.maybe_delivered, "refused before sending: {error:?}");
}

//! A test origin: the real router over a fresh Postgres database (from `#[sqlx::test]`) and the real Redis
//! under a key prefix of its own, driven in-process with `oneshot`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod redis_server;
pub mod ui;

use std::sync::atomic::{AtomicU32, Ordering};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use clap::Parser;
use http_body_util::BodyExt;
use popup_origin::{app, AppState, Config};
use redis::Commands;
use serde_json::{json, Value};
use sqlx::PgPool;
use tower::ServiceExt;

pub const ADMIN_KEY: &str = "test-admin-key-0123456789";
pub const TOKEN_SECRET: &str = "test-token-secret-0123456789abcdef";

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    config: Config,
}

/// The machine's Redis, without a database number.
pub fn redis_server() -> String {
    std::env::var("REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
        .trim_end_matches('/')
        .to_string()
}

/// Origin tests work in logical database 12, apart from whatever else the machine's Redis holds, so that
/// cleaning up never walks someone else's keys.
pub fn redis_url() -> String {
    format!("{}/12", redis_server())
}

pub fn config(redis_url: &str, prefix: &str) -> Config {
    let args = Args::try_parse_from([
        "origin",
        "--database-url",
        "postgres://unused",
        "--redis-url",
        redis_url,
        "--key-prefix",
        prefix,
        "--token-secret",
        TOKEN_SECRET,
        "--day-offset",
        "+07:00",
        "--max-segment-bytes",
        "65536",
        // Generous, so a loaded test machine does not turn slow answers into 503s.
        "--redis-timeout-ms",
        "5000",
    ])
    .unwrap();
    args.config
}

/// The URL of the database `db` (one `sqlx::test` made), for a process the test starts.
pub fn database_url(db: &PgPool) -> String {
    let options = db.connect_options();
    format!(
        "postgres://{}@{}:{}/{}",
        options.get_username(),
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap()
    )
}

pub struct TestApp {
    pub router: Router,
    pub state: AppState,
    pub prefix: String,
    redis_url: String,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl TestApp {
    pub async fn new(db: PgPool) -> TestApp {
        TestApp::with_redis(db, &redis_url()).await
    }

    pub async fn with_redis(db: PgPool, redis_url: &str) -> TestApp {
        TestApp::with_config(db, redis_url, |_| {}).await
    }

    /// With the settings of [`config`] changed by `edit`.
    pub async fn with_config(db: PgPool, redis_url: &str, edit: impl FnOnce(&mut Config)) -> TestApp {
        let prefix = format!("t{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        popup_origin::db::keys::bootstrap_admin_key(&db, ADMIN_KEY).await.unwrap();
        let mut config = config(redis_url, &prefix);
        edit(&mut config);
        let state = AppState::new(&config, db).unwrap();
        TestApp { router: app(state.clone()), state, prefix, redis_url: redis_url.into() }
    }

    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        key: Option<&str>,
        body: Body,
        content_type: &str,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(uri).header("content-type", content_type);
        if let Some(key) = key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        let response = self.router.clone().oneshot(request.body(body).unwrap()).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        (status, value)
    }

    pub async fn admin(&self, method: Method, uri: &str, body: Value) -> (StatusCode, Value) {
        self.as_key(ADMIN_KEY, method, uri, body).await
    }

    pub async fn as_key(&self, key: &str, method: Method, uri: &str, body: Value) -> (StatusCode, Value) {
        let body = if body.is_null() { Body::empty() } else { Body::from(body.to_string()) };
        self.call(method, uri, Some(key), body, "application/json").await
    }

    pub async fn upload(&self, segment: &str, ids: &str) -> (StatusCode, Value) {
        self.call(
            Method::PUT,
            &format!("/admin/v1/segments/{segment}"),
            Some(ADMIN_KEY),
            Body::from(ids.to_string()),
            "text/csv",
        )
        .await
    }

    pub async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.call(Method::GET, uri, None, Body::empty(), "application/json").await
    }

    /// What the operations listener's `/metrics` shows (it is off the public port, see `popup_origin::ops`).
    pub async fn metrics(&self) -> String {
        let request = Request::get("/metrics").body(Body::empty()).unwrap();
        let response = popup_origin::ops::router().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
    }

    pub async fn post(&self, uri: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, uri, None, Body::from(body.to_string()), "application/json").await
    }

    /// Creates a campaign from `spec` and activates it; returns its id.
    pub async fn live_campaign(&self, spec: Value) -> i64 {
        let (status, body) = self.admin(Method::POST, "/admin/v1/campaigns", spec).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let id = body["id"].as_i64().unwrap();
        let (status, body) =
            self.admin(Method::POST, &format!("/admin/v1/campaigns/{id}/activate"), Value::Null).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        id
    }

    /// The campaign id of the popup `user` gets now, or None for 204.
    pub async fn popup_for(&self, user: &str) -> Option<(i64, String)> {
        let (status, body) = self.get(&format!("/v1/campaigns/popup?user_id={user}")).await;
        match status {
            StatusCode::OK => Some((
                body["campaign_id"].as_i64().unwrap(),
                body["impression_token"].as_str().unwrap().to_string(),
            )),
            StatusCode::NO_CONTENT => None,
            other => panic!("popup for {user}: {other} {body}"),
        }
    }

    pub async fn impression(&self, campaign: i64, user: &str, token: &str) -> StatusCode {
        self.post(
            &format!("/v1/campaigns/{campaign}/impression"),
            json!({"user_id": user, "impression_token": token}),
        )
        .await
        .0
    }

    pub fn redis(&self) -> redis::Connection {
        redis::Client::open(self.redis_url.as_str()).unwrap().get_connection().unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let Ok(client) = redis::Client::open(self.redis_url.as_str()) else { return };
        let Ok(mut connection) = client.get_connection() else { return };
        // SCAN, not KEYS: KEYS blocks Redis for everyone while it walks a large keyspace.
        let options =
            redis::ScanOptions::default().with_pattern(format!("{}:*", self.prefix)).with_count(1000);
        let keys: Vec<String> = match connection.scan_options::<String>(options) {
            Ok(keys) => keys.filter_map(Result::ok).collect(),
            Err(_) => return,
        };
        if !keys.is_empty() {
            let _: Result<(), _> = redis::cmd("DEL").arg(keys).query(&mut connection);
        }
    }
}

/// A campaign anyone may see, from 2026-01-01, as often as they like.
pub fn spec(name: &str) -> Value {
    json!({
        "name": name,
        "schedule": {"start": "2026-01-01T00:00:00Z"},
        "creative": {"title": format!("{name} title"), "body": "Body", "action_url": "bankapp://promo"}
    })
}

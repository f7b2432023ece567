//! The popup API's abuse limits against the real router, Postgres and Redis: a customer over their limit
//! gets 429 with `Retry-After` and is served again once it has passed; a client address over its limit is
//! refused whichever customer it asks for; a refused request changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sqlx::PgPool;
use tower::ServiceExt;

/// A popup request: its status, `Retry-After` and body.
async fn ask(app: &TestApp, user: &str, address: Option<&str>) -> (StatusCode, Option<u64>, Value) {
    let mut request = Request::get(format!("/v1/campaigns/popup?user_id={user}&placement=home&platform=ios"));
    if let Some(address) = address {
        request = request.header("x-client-ip", address);
    }
    let response = app.router.clone().oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|value| value.to_str().unwrap().parse::<u64>().expect("Retry-After is whole seconds"));
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, retry_after, body)
}

/// `popup_rate_limited_total` for `scope` in the metrics' text.
fn limited(scope: &str, metrics: &str) -> f64 {
    let name = format!("popup_rate_limited_total{{scope=\"{scope}\"}}");
    metrics
        .lines()
        .find(|line| line.starts_with(&name))
        .and_then(|line| line.rsplit(' ').next())
        .map_or(0.0, |value| value.parse().unwrap())
}

#[sqlx::test(migrations = "../migrations")]
async fn a_customer_over_the_limit_gets_429_then_is_served_again(db: PgPool) {
    // 600 a minute: a burst of 600, then one every 100 ms.
    let app = TestApp::with_config(db, &redis_url(), |config| {
        config.rate_limit_per_customer = 600;
        config.rate_limit_per_address = 0;
    })
    .await;
    let id = app.live_campaign(spec("Limited")).await;

    let mut admitted = 0;
    let (retry_after, body) = loop {
        let (status, retry_after, body) = ask(&app, "c-1", None).await;
        match status {
            StatusCode::OK => admitted += 1,
            StatusCode::TOO_MANY_REQUESTS => break (retry_after, body),
            other => panic!("{other}: {body}"),
        }
        assert!(admitted <= 700, "never limited");
    };
    assert!(admitted >= 600, "the burst is the whole limit, {admitted} admitted");
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    assert_eq!(retry_after, Some(1), "the next request is admitted within 100 ms, rounded up to 1 s");

    // Another customer has a limit of their own; a refused request records nothing.
    assert_eq!(ask(&app, "c-2", None).await.0, StatusCode::OK);
    let (status, _) = app
        .post(&format!("/v1/campaigns/{id}/impression"), json!({"user_id": "c-1", "impression_token": "x"}))
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "events share the customer's limit");
    let metrics = app.metrics().await;
    assert!(limited("customer", &metrics) >= 2.0, "{metrics}");

    // Recovery: after Retry-After the customer is served again.
    tokio::time::sleep(Duration::from_secs(retry_after.unwrap())).await;
    let (status, _, body) = ask(&app, "c-1", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["campaign_id"], id);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_client_address_over_the_limit_is_refused_whoever_it_asks_for(db: PgPool) {
    let app = TestApp::with_config(db, &redis_url(), |config| {
        config.rate_limit_per_customer = 0;
        config.rate_limit_per_address = 3;
        config.client_address_header = Some("x-client-ip".parse().unwrap());
    })
    .await;
    app.live_campaign(spec("Limited")).await;

    for user in ["c-1", "c-2", "c-3"] {
        assert_eq!(ask(&app, user, Some("203.0.113.7")).await.0, StatusCode::OK, "{user}");
    }
    let (status, retry_after, body) = ask(&app, "c-4", Some("203.0.113.7")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(retry_after, Some(20), "3 a minute: the next one in 20 s");
    assert_eq!(body["error"]["code"], "rate_limited");
    // Refused before anything else is read: even a malformed request is only told to wait.
    let response = app
        .router
        .clone()
        .oneshot(
            Request::get("/v1/campaigns/popup?platform=nope")
                .header("x-client-ip", "203.0.113.7")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);

    // Another address is not affected, nor is the same customer from it.
    assert_eq!(ask(&app, "c-1", Some("198.51.100.2")).await.0, StatusCode::OK);
    let metrics = app.metrics().await;
    assert_eq!(limited("address", &metrics), 2.0, "{metrics}");
    assert_eq!(limited("customer", &metrics), 0.0, "{metrics}");
}

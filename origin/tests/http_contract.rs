//! What every route answers the same way, whatever it does: a path id that is not a number is our JSON 400,
//! and a Postgres outage is 503 `store_unavailable`, never a 500 or axum's plain text.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{json, Value};
use sqlx::PgPool;

/// Every route that takes a numeric id in its path, with a body it would accept otherwise.
fn routes_with_an_id() -> Vec<(Method, &'static str, Value)> {
    vec![
        (Method::GET, "/admin/v1/campaigns/{id}", Value::Null),
        (Method::PUT, "/admin/v1/campaigns/{id}", spec("x")),
        (Method::DELETE, "/admin/v1/campaigns/{id}", Value::Null),
        (Method::POST, "/admin/v1/campaigns/{id}/activate", Value::Null),
        (Method::POST, "/admin/v1/campaigns/{id}/pause", Value::Null),
        (Method::POST, "/admin/v1/campaigns/{id}/end", Value::Null),
        (Method::GET, "/admin/v1/campaigns/{id}/preview?user_id=c-1", Value::Null),
        (Method::GET, "/admin/v1/campaigns/{id}/stats", Value::Null),
        (Method::DELETE, "/admin/v1/keys/{id}", Value::Null),
        (Method::GET, "/admin/v1/customers/{id}", Value::Null),
        (Method::GET, "/admin/v1/message-campaigns/{id}", Value::Null),
        (Method::GET, "/admin/v1/message-campaigns/{id}/messages", Value::Null),
        (Method::POST, "/admin/v1/message-campaigns/{id}/send", json!({"customer_ids": [1]})),
        (Method::POST, "/v1/campaigns/{id}/impression", json!({"user_id": "c-1", "impression_token": "t"})),
    ]
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn a_path_id_that_is_not_a_number_is_a_json_400_on_every_route(db: PgPool) {
    let app = TestApp::new(db).await;
    for (method, template, body) in routes_with_an_id() {
        for bad in ["abc", "1.5", "99999999999999999999", "-"] {
            let uri = template.replace("{id}", bad);
            let (status, answer) = app.admin(method.clone(), &uri, body.clone()).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {uri}: {answer}");
            assert_eq!(answer["error"]["code"], "invalid_request", "{method} {uri}: {answer}");
        }
    }
}

/// Every admin route, with a body it would accept.
fn admin_routes() -> Vec<(Method, &'static str, Value)> {
    let mut routes = routes_with_an_id();
    routes.retain(|(_, path, _)| path.starts_with("/admin/"));
    routes.extend([
        (Method::GET, "/admin/v1/campaigns", Value::Null),
        (Method::POST, "/admin/v1/campaigns", spec("x")),
        (Method::GET, "/admin/v1/preview?user_id=c-1", Value::Null),
        (Method::GET, "/admin/v1/segments", Value::Null),
        (Method::GET, "/admin/v1/segments/vip", Value::Null),
        (Method::DELETE, "/admin/v1/segments/vip", Value::Null),
        (Method::GET, "/admin/v1/keys", Value::Null),
        (Method::POST, "/admin/v1/keys", json!({"name": "k", "role": "viewer"})),
        (Method::GET, "/admin/v1/audit", Value::Null),
        (Method::GET, "/admin/v1/settings", Value::Null),
        (Method::PUT, "/admin/v1/settings", json!({"max_popups_per_day": 3})),
        (Method::GET, "/admin/v1/customers", Value::Null),
        (Method::POST, "/admin/v1/customers", json!({"phone": "+6281234567890"})),
        (Method::GET, "/admin/v1/message-campaigns", Value::Null),
        (
            Method::POST,
            "/admin/v1/message-campaigns",
            json!({"name": "m", "channel": "sms", "base_template": "Hi {first_name|Nasabah}"}),
        ),
        (Method::GET, "/admin/v1/messages/dead", Value::Null),
        (Method::POST, "/admin/v1/messages/dead/requeue", json!({"ids": [1]})),
    ]);
    routes
}

/// A pool whose statements give up after a short while, as a request's should behind a stuck database.
async fn impatient_pool(db: &PgPool) -> PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::Executor::execute(conn, "SET statement_timeout = '300ms'").await?;
                Ok(())
            })
        })
        .connect_with((*db.connect_options()).clone())
        .await
        .unwrap()
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn postgres_unable_to_answer_is_503_on_every_admin_route(db: PgPool) {
    let app = TestApp::new(impatient_pool(&db).await).await;
    // Every table but the keys is locked, so a request gets past authentication and then waits on its own
    // queries until its statement timeout: Postgres cannot answer, and the route must say so with 503.
    let mut blocker = db.begin().await.unwrap();
    sqlx::query(
        "LOCK TABLE campaigns, segments, segment_members, audit_log, settings, campaign_totals, events,
             customers, message_campaigns, messages IN ACCESS EXCLUSIVE MODE",
    )
    .execute(&mut *blocker)
    .await
    .unwrap();
    // Listing keys reads only the table authentication needs, which stays open.
    let routes =
        admin_routes().into_iter().filter(|(m, path, _)| !(*m == Method::GET && *path == "/admin/v1/keys"));
    for (method, path, body) in routes {
        let uri = path.replace("{id}", "1");
        let (status, answer) = app.admin(method.clone(), &uri, body).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{method} {uri}: {answer}");
        assert_eq!(answer["error"]["code"], "store_unavailable", "{method} {uri}: {answer}");
    }
    for (method, uri, body) in [
        (Method::PUT, "/admin/v1/segments/vip", "c-1\n"),
        (Method::POST, "/admin/v1/customers/import", "phone\n+6281234567890\n"),
    ] {
        let (status, answer) =
            app.call(method.clone(), uri, Some(ADMIN_KEY), Body::from(body), "text/csv").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{method} {uri}: {answer}");
    }
    blocker.rollback().await.unwrap();
    // With Postgres answering again, the same app serves.
    let (status, _) = app.admin(Method::GET, "/admin/v1/campaigns", Value::Null).await;
    assert_eq!(status, StatusCode::OK);
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn a_postgres_that_cannot_be_reached_is_503_on_every_admin_route(db: PgPool) {
    let app = TestApp::new(db.clone()).await;
    // The pool closed: every query fails as when Postgres cannot be reached (authentication included).
    app.state.db.close().await;
    for (method, path, body) in admin_routes() {
        let uri = path.replace("{id}", "1");
        let (status, answer) = app.admin(method.clone(), &uri, body).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{method} {uri}: {answer}");
        assert_eq!(answer["error"]["code"], "store_unavailable", "{method} {uri}: {answer}");
    }
}

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

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn a_postgres_outage_is_503_on_every_admin_route(db: PgPool) {
    let app = TestApp::new(db.clone()).await;
    // The pool closed: every query fails as when Postgres cannot be reached.
    app.state.db.close().await;
    let mut routes = admin_routes();
    for id_route in routes.iter_mut() {
        id_route.1 = Box::leak(id_route.1.replace("{id}", "1").into_boxed_str());
    }
    for (method, uri, body) in routes {
        let (status, answer) = app.admin(method.clone(), uri, body).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{method} {uri}: {answer}");
        assert_eq!(answer["error"]["code"], "store_unavailable", "{method} {uri}: {answer}");
    }
    for (uri, content_type, body) in [
        ("/admin/v1/segments/vip", "text/csv", "c-1\n"),
        ("/admin/v1/customers/import", "text/csv", "phone\n+6281234567890\n"),
    ] {
        let method = if uri.contains("segments") { Method::PUT } else { Method::POST };
        let (status, answer) =
            app.call(method.clone(), uri, Some(ADMIN_KEY), Body::from(body), content_type).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{method} {uri}: {answer}");
    }
}

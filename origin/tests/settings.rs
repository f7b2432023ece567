//! `/admin/v1/settings`: the daily cap across campaigns, read, validated, audited, and applied by resolvers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{json, Value};
use sqlx::PgPool;

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn the_daily_cap_across_campaigns_is_set_validated_audited_and_served(db: PgPool) {
    let app = TestApp::new(db).await;
    let (status, settings) = app.admin(Method::GET, "/admin/v1/settings", Value::Null).await;
    assert_eq!((status, settings), (StatusCode::OK, json!({"max_popups_per_day": null})));
    let first = app.live_campaign(spec("First")).await;
    let (campaign, token) = app.popup_for("c-1").await.unwrap();
    assert_eq!(campaign, first);
    assert_eq!(app.impression(campaign, "c-1", &token).await, StatusCode::ACCEPTED);
    assert!(app.popup_for("c-1").await.is_some(), "no cap yet");

    let (status, body) = app.admin(Method::PUT, "/admin/v1/settings", json!({"max_popups_per_day": 1})).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"max_popups_per_day": 1})));
    let (_, settings) = app.admin(Method::GET, "/admin/v1/settings", Value::Null).await;
    assert_eq!(settings, json!({"max_popups_per_day": 1}));
    assert_eq!(app.popup_for("c-1").await, None, "one popup today already");
    assert_eq!(app.popup_for("c-2").await.map(|p| p.0), Some(first), "others are not capped");
    let (_, audit) = app.admin(Method::GET, "/admin/v1/audit?entity=settings", Value::Null).await;
    assert_eq!(audit["data"][0]["before"], json!({"max_popups_per_day": null}));
    assert_eq!(audit["data"][0]["after"], json!({"max_popups_per_day": 1}));

    // Back to no cap.
    let (status, _) = app.admin(Method::PUT, "/admin/v1/settings", json!({"max_popups_per_day": null})).await;
    assert_eq!(status, StatusCode::OK);
    assert!(app.popup_for("c-1").await.is_some());
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn bad_settings_are_refused_and_change_nothing(db: PgPool) {
    let app = TestApp::new(db).await;
    let cases = [
        (json!({"max_popups_per_day": 0}), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        (json!({"max_popups_per_day": 101}), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        (json!({"max_popups_per_day": -1}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        (json!({"max_popups_per_day": 1e30}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        (json!({"max_popups_per_day": "3"}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        (json!({"max_popups": 3}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
    ];
    for (body, status, code) in cases {
        let (got, answer) = app.admin(Method::PUT, "/admin/v1/settings", body.clone()).await;
        assert_eq!(got, status, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{body}: {answer}");
    }
    let (_, settings) = app.admin(Method::GET, "/admin/v1/settings", Value::Null).await;
    assert_eq!(settings, json!({"max_popups_per_day": null}));
    // A viewer reads but does not write.
    let (_, key) = app.admin(Method::POST, "/admin/v1/keys", json!({"name": "v", "role": "viewer"})).await;
    let viewer = key["key"].as_str().unwrap();
    let (status, _) = app.as_key(viewer, Method::GET, "/admin/v1/settings", Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) =
        app.as_key(viewer, Method::PUT, "/admin/v1/settings", json!({"max_popups_per_day": 2})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

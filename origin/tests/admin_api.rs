//! The admin API against the real Postgres and Redis: CRUD, validation, auth and roles, lifecycle, audit,
//! pagination.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{json, Value};
use sqlx::PgPool;

#[sqlx::test(migrations = "../migrations")]
async fn campaigns_are_created_read_updated_listed_and_deleted(db: PgPool) {
    let app = TestApp::new(db).await;
    let (status, created) = app.admin(Method::POST, "/admin/v1/campaigns", spec("Cashback")).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["status"], "draft");
    let id = created["id"].as_i64().unwrap();

    let (status, read) = app.admin(Method::GET, &format!("/admin/v1/campaigns/{id}"), Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["name"], "Cashback");
    assert_eq!(read["schedule"]["start"], "2026-01-01T00:00:00Z");

    let mut changed = spec("Cashback 2");
    changed["priority"] = json!(7);
    let (status, updated) = app.admin(Method::PUT, &format!("/admin/v1/campaigns/{id}"), changed).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!((updated["name"].as_str(), updated["priority"].as_i64()), (Some("Cashback 2"), Some(7)));

    let (status, _) = app.admin(Method::DELETE, &format!("/admin/v1/campaigns/{id}"), Value::Null).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app.admin(Method::GET, &format!("/admin/v1/campaigns/{id}"), Value::Null).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
    let (_, list) = app.admin(Method::GET, "/admin/v1/campaigns", Value::Null).await;
    assert_eq!(list["pagination"]["total_count"], 0, "a deleted campaign is not listed");
}

#[sqlx::test(migrations = "../migrations")]
async fn invalid_campaigns_are_refused_with_every_field_path(db: PgPool) {
    let app = TestApp::new(db).await;
    let mut bad = spec("");
    bad["schedule"]["end"] = json!("2025-12-31T00:00:00Z");
    bad["variants"] = json!([{"key": "a", "weight": 0}, {"key": "b", "weight": 0}]);
    bad["audience"] = json!({"include": {"any_of": ["nobody"]}});
    bad["schedule"]["time_zone"] = json!("Mars/Olympus");
    let (status, body) = app.admin(Method::POST, "/admin/v1/campaigns", bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let fields: Vec<&str> =
        body["error"]["fields"].as_array().unwrap().iter().map(|f| f["field"].as_str().unwrap()).collect();
    for expected in ["name", "schedule.end", "variants", "audience.include.any_of[0]", "schedule.time_zone"] {
        assert!(fields.contains(&expected), "{expected} missing from {fields:?}");
    }
    let (_, list) = app.admin(Method::GET, "/admin/v1/campaigns", Value::Null).await;
    assert_eq!(list["pagination"]["total_count"], 0, "nothing was stored");
}

#[sqlx::test(migrations = "../migrations")]
async fn malformed_bodies_and_unknown_ids_get_clear_errors(db: PgPool) {
    let app = TestApp::new(db).await;
    let (status, body) = app
        .call(
            Method::POST,
            "/admin/v1/campaigns",
            Some(ADMIN_KEY),
            Body::from("{not json"),
            "application/json",
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "invalid_request");
    let (status, _) =
        app.admin(Method::POST, "/admin/v1/campaigns", json!({"name": "x", "unknown": 1})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "unknown fields are refused, not ignored");
    let (status, _) = app.admin(Method::GET, "/admin/v1/campaigns/999", Value::Null).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.admin(Method::GET, "/admin/v1/campaigns/abc", Value::Null).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = app.admin(Method::POST, "/admin/v1/campaigns/999/activate", Value::Null).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.admin(Method::GET, "/admin/v1/campaigns?page_size=ten", Value::Null).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = app.get("/v1/nothing").await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    let (status, body) = app.post("/v1/campaigns/popup", Value::Null).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed"))
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn keys_authenticate_and_roles_limit_what_they_may_do(db: PgPool) {
    let app = TestApp::new(db).await;
    let (status, body) =
        app.call(Method::GET, "/admin/v1/campaigns", None, Body::empty(), "application/json").await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthorized")));
    let (status, _) = app.as_key("not-a-key", Method::GET, "/admin/v1/campaigns", Value::Null).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let mut keys = std::collections::HashMap::new();
    for role in ["viewer", "editor"] {
        let (status, created) =
            app.admin(Method::POST, "/admin/v1/keys", json!({"name": role, "role": role})).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        keys.insert(role, (created["id"].as_i64().unwrap(), created["key"].as_str().unwrap().to_string()));
    }
    let (viewer_id, viewer) = keys["viewer"].clone();
    let (_, editor) = keys["editor"].clone();

    assert_eq!(app.as_key(&viewer, Method::GET, "/admin/v1/campaigns", Value::Null).await.0, StatusCode::OK);
    assert_eq!(
        app.as_key(&viewer, Method::POST, "/admin/v1/campaigns", spec("x")).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.as_key(&editor, Method::POST, "/admin/v1/campaigns", spec("x")).await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        app.as_key(&editor, Method::GET, "/admin/v1/keys", Value::Null).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.as_key(&editor, Method::POST, "/admin/v1/keys", json!({"name": "x", "role": "admin"})).await.0,
        StatusCode::FORBIDDEN
    );
    let upload =
        app.call(Method::PUT, "/admin/v1/segments/s", Some(&viewer), Body::from("c-1"), "text/plain").await;
    assert_eq!(upload.0, StatusCode::FORBIDDEN);

    // A revoked key stops working at once.
    assert_eq!(
        app.admin(Method::DELETE, &format!("/admin/v1/keys/{viewer_id}"), Value::Null).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.as_key(&viewer, Method::GET, "/admin/v1/campaigns", Value::Null).await.0,
        StatusCode::UNAUTHORIZED
    );
    // Keys are stored hashed: the secret appears nowhere in the database.
    let stored: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT key_hash FROM api_keys").fetch_all(&app.state.db).await.unwrap();
    assert!(stored.iter().all(|hash| hash.len() == 32 && hash != editor.as_bytes()));
}

#[sqlx::test(migrations = "../migrations")]
async fn lifecycle_transitions_follow_the_rules_and_invalid_ones_conflict(db: PgPool) {
    let app = TestApp::new(db).await;
    let (_, created) = app.admin(Method::POST, "/admin/v1/campaigns", spec("Lifecycle")).await;
    let id = created["id"].as_i64().unwrap();
    let act = |action: &'static str| {
        let app = &app;
        async move { app.admin(Method::POST, &format!("/admin/v1/campaigns/{id}/{action}"), Value::Null).await }
    };
    assert_eq!(act("pause").await.0, StatusCode::CONFLICT, "a draft cannot be paused");
    assert_eq!(act("end").await.0, StatusCode::CONFLICT, "a draft cannot be ended");
    let (status, body) = act("activate").await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("active")));
    assert_eq!(act("activate").await.0, StatusCode::CONFLICT);
    assert_eq!(act("pause").await.1["status"], "paused");
    assert_eq!(act("activate").await.1["status"], "active");
    assert_eq!(act("end").await.1["status"], "ended");
    let (status, body) = act("activate").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["message"], "cannot activate a campaign that is ended");
    assert_eq!(
        app.admin(Method::PUT, &format!("/admin/v1/campaigns/{id}"), spec("x")).await.0,
        StatusCode::CONFLICT
    );
    assert_eq!(act("restart").await.0, StatusCode::NOT_FOUND);

    // A campaign starting later shows as scheduled.
    let mut later = spec("Later");
    later["schedule"]["start"] = json!("2099-01-01T00:00:00Z");
    let later = app.live_campaign(later).await;
    let (_, body) = app.admin(Method::GET, &format!("/admin/v1/campaigns/{later}"), Value::Null).await;
    assert_eq!(body["status"], "scheduled");
}

#[sqlx::test(migrations = "../migrations")]
async fn every_write_leaves_an_audit_row_with_who_before_and_after(db: PgPool) {
    let app = TestApp::new(db).await;
    let (_, created) = app.admin(Method::POST, "/admin/v1/campaigns", spec("Audited")).await;
    let id = created["id"].as_i64().unwrap();
    app.admin(Method::PUT, &format!("/admin/v1/campaigns/{id}"), spec("Audited 2")).await;
    app.admin(Method::POST, &format!("/admin/v1/campaigns/{id}/activate"), Value::Null).await;
    // An active campaign is paused before it can be deleted; the refused delete writes nothing.
    let (status, _) = app.admin(Method::DELETE, &format!("/admin/v1/campaigns/{id}"), Value::Null).await;
    assert_eq!(status, StatusCode::CONFLICT);
    app.admin(Method::POST, &format!("/admin/v1/campaigns/{id}/pause"), Value::Null).await;
    app.admin(Method::DELETE, &format!("/admin/v1/campaigns/{id}"), Value::Null).await;
    let (status, audit) =
        app.admin(Method::GET, &format!("/admin/v1/audit?entity=campaign&entity_id={id}"), Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    let items = audit["data"].as_array().unwrap();
    let actions: Vec<&str> = items.iter().map(|i| i["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["delete", "pause", "activate", "update", "create"]);
    assert!(items.iter().all(|i| i["actor_name"] == "bootstrap"));
    let update = &items[3];
    assert_eq!(update["before"]["spec"]["name"], "Audited");
    assert_eq!(update["after"]["spec"]["name"], "Audited 2");
    assert_eq!(items[2]["after"]["status"], "active");
    assert_eq!(items[1]["after"]["status"], "paused");
    assert_eq!(items[0]["before"]["status"], "paused");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_live_campaign_cannot_be_deleted_until_it_is_paused_or_ended(db: PgPool) {
    let app = TestApp::new(db).await;
    let delete = |id: i64| {
        let app = &app;
        async move { app.admin(Method::DELETE, &format!("/admin/v1/campaigns/{id}"), Value::Null).await }
    };
    let act = |id: i64, action: &'static str| {
        let app = &app;
        async move { app.admin(Method::POST, &format!("/admin/v1/campaigns/{id}/{action}"), Value::Null).await }
    };

    let live = app.live_campaign(spec("Live")).await;
    let (status, body) = delete(live).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "conflict");
    assert_eq!(body["error"]["message"], "cannot delete a campaign that is active; pause or end it first");
    let (status, read) = app.admin(Method::GET, &format!("/admin/v1/campaigns/{live}"), Value::Null).await;
    assert_eq!((status, read["status"].as_str()), (StatusCode::OK, Some("active")), "still there");
    assert_eq!(app.popup_for("c-1").await.map(|(id, _)| id), Some(live), "and still served");
    assert_eq!(act(live, "pause").await.0, StatusCode::OK);
    assert_eq!(delete(live).await.0, StatusCode::NO_CONTENT);
    assert_eq!(app.popup_for("c-1").await, None);

    // Scheduled is live too: it starts by itself.
    let mut later = spec("Later");
    later["schedule"]["start"] = json!("2099-01-01T00:00:00Z");
    let later = app.live_campaign(later).await;
    let (status, body) = delete(later).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["message"], "cannot delete a campaign that is scheduled; pause or end it first");

    // Ended, or past its end, it is served to nobody and can go.
    assert_eq!(act(later, "end").await.0, StatusCode::OK);
    assert_eq!(delete(later).await.0, StatusCode::NO_CONTENT);
    let mut over = spec("Over");
    over["schedule"]["end"] = json!("2026-01-02T00:00:00Z");
    let over = app.live_campaign(over).await;
    let (_, read) = app.admin(Method::GET, &format!("/admin/v1/campaigns/{over}"), Value::Null).await;
    assert_eq!(read["status"], "ended");
    assert_eq!(delete(over).await.0, StatusCode::NO_CONTENT);
    let (_, list) = app.admin(Method::GET, "/admin/v1/campaigns", Value::Null).await;
    assert_eq!(list["pagination"]["total_count"], 0, "every campaign was deleted in the end");
}

#[sqlx::test(migrations = "../migrations")]
async fn pagination_is_stable_newest_first_and_filters_apply(db: PgPool) {
    let app = TestApp::new(db).await;
    for i in 0..25 {
        let (status, _) = app.admin(Method::POST, "/admin/v1/campaigns", spec(&format!("Promo {i}"))).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (_, first) = app.admin(Method::GET, "/admin/v1/campaigns?page=1&page_size=10", Value::Null).await;
    assert_eq!(
        (first["pagination"]["total_count"].as_i64(), first["pagination"]["total_pages"].as_i64()),
        (Some(25), Some(3))
    );
    let ids = |page: &Value| {
        page["data"].as_array().unwrap().iter().map(|i| i["id"].as_i64().unwrap()).collect::<Vec<_>>()
    };
    let page1 = ids(&first);
    assert!(page1.windows(2).all(|w| w[0] > w[1]), "newest first");
    // Rows added meanwhile do not shift later pages of ids below the first page's.
    let (_, third) = app.admin(Method::GET, "/admin/v1/campaigns?page=3&page_size=10", Value::Null).await;
    assert_eq!(ids(&third).len(), 5);
    let (_, filtered) =
        app.admin(Method::GET, "/admin/v1/campaigns?q=promo%201&status=draft", Value::Null).await;
    assert_eq!(filtered["pagination"]["total_count"], 11, "Promo 1 and Promo 10-19");
    let (status, _) = app.admin(Method::GET, "/admin/v1/campaigns?status=bogus", Value::Null).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

//! Segment uploads against the real Postgres and Redis: parsing and errors, limits, the atomic swap under
//! concurrent resolves, and deletion rules.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{json, Value};
use sqlx::PgPool;

#[sqlx::test(migrations = "../migrations")]
async fn an_upload_reads_csv_or_lines_and_ignores_duplicates(db: PgPool) {
    let app = TestApp::new(db).await;
    let (status, body) = app.upload("vip", "customer_id,name\nc-1,Ani\nc-2,Budi\nc-1,Ani\n\n").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((body["member_count"].as_i64(), body["lines_accepted"].as_i64()), (Some(2), Some(3)));
    let (status, detail) = app.admin(Method::GET, "/admin/v1/segments/vip", Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(detail["member_count"], 2);
    let first_version = detail["version"].as_i64().unwrap();
    let (_, body) = app.upload("vip", "c-3").await;
    assert!(body["version"].as_i64().unwrap() > first_version);
    let (_, list) = app.admin(Method::GET, "/admin/v1/segments", Value::Null).await;
    assert_eq!(list["pagination"]["total_count"], 1);
    // Members are kept in Postgres, so Redis can be rebuilt.
    let stored: Vec<Vec<String>> =
        sqlx::query_scalar("SELECT user_ids FROM segment_members").fetch_all(&app.state.db).await.unwrap();
    assert_eq!(stored, [vec!["c-3".to_string()]], "only the current version is kept");
}

#[sqlx::test(migrations = "../migrations")]
async fn malformed_lines_are_reported_by_number_and_nothing_changes(db: PgPool) {
    let app = TestApp::new(db).await;
    app.upload("vip", "c-1\n").await;
    let (status, body) = app.upload("vip", "c-2\nnot valid\nc-3\n{c-4}\n").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let fields: Vec<&str> =
        body["error"]["fields"].as_array().unwrap().iter().map(|f| f["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["line 2", "line 4"]);
    let (_, detail) = app.admin(Method::GET, "/admin/v1/segments/vip", Value::Null).await;
    assert_eq!(detail["member_count"], 1, "the previous upload stands");
    let (status, _) = app.upload("vip", "\n\n").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "an empty upload is refused");
    let (status, _) = app.upload("Bad%20Name", "c-1").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[sqlx::test(migrations = "../migrations")]
async fn an_upload_over_the_limit_is_refused_with_413(db: PgPool) {
    let app = TestApp::new(db).await;
    // The test origin allows 64 KiB.
    let big: String = (0..10_000).map(|i| format!("customer-{i}\n")).collect();
    let (status, body) = app.upload("big", &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    let (status, _) = app.admin(Method::GET, "/admin/v1/segments/big", Value::Null).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was created");
}

/// Members of the old upload only, of both, and of the new one only: concurrent resolves must see each
/// switch exactly once, never a mix, and the members of both never drop out.
#[sqlx::test(migrations = "../migrations")]
async fn a_new_upload_becomes_visible_atomically_under_concurrent_resolves(db: PgPool) {
    let app = Arc::new(TestApp::new(db).await);
    let old: Vec<String> = (0..400).map(|i| format!("old-{i}")).collect();
    let new: Vec<String> = (0..400).map(|i| format!("new-{i}")).collect();
    let both: Vec<String> = (0..400).map(|i| format!("both-{i}")).collect();
    assert_eq!(app.upload("wave", &[old.clone(), both.clone()].concat().join("\n")).await.0, StatusCode::OK);
    let mut targeted = spec("Wave");
    targeted["audience"] = json!({"include": {"any_of": ["wave"]}});
    app.live_campaign(targeted).await;

    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (app, done) = (app.clone(), done.clone());
        tokio::spawn(async move {
            let mut seen: Vec<(bool, bool, bool)> = Vec::new();
            while !done.load(Ordering::Relaxed) {
                let a = app.popup_for("old-7").await.is_some();
                let b = app.popup_for("both-7").await.is_some();
                let c = app.popup_for("new-7").await.is_some();
                seen.push((a, b, c));
            }
            seen
        })
    };
    let (status, _) = app.upload("wave", &[new.clone(), both.clone()].concat().join("\n")).await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    done.store(true, Ordering::Relaxed);
    let seen = watcher.await.unwrap();
    assert!(seen.len() > 3, "the watcher resolved during the upload");
    assert!(seen.iter().all(|(_, both, _)| *both), "a member of both uploads never dropped out");
    // Old members switch off exactly once, and new ones on exactly once...
    let switches = |pick: fn(&(bool, bool, bool)) -> bool| {
        seen.windows(2).filter(|w| pick(&w[0]) != pick(&w[1])).count()
    };
    assert!(switches(|s| s.0) <= 1 && switches(|s| s.2) <= 1, "{seen:?}");
    assert_eq!(seen.first().map(|s| (s.0, s.2)), Some((true, false)));
    assert_eq!(seen.last().map(|s| (s.0, s.2)), Some((false, true)));
    // ...and with no moment in between: each round asks for the old member before the new one, so a round
    // where neither is served would mean the old upload left before the new one arrived. (Both served is
    // fine: the switch fell between the two requests.)
    assert!(seen.iter().all(|(old, _, new)| *old || *new), "a round saw neither upload: {seen:?}");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_segment_in_use_cannot_be_deleted(db: PgPool) {
    let app = TestApp::new(db).await;
    app.upload("vip", "c-1").await;
    let mut targeted = spec("VIP");
    targeted["audience"] = json!({"include": {"any_of": ["vip"]}});
    let (_, created) = app.admin(Method::POST, "/admin/v1/campaigns", targeted).await;
    let id = created["id"].as_i64().unwrap();
    let (status, body) = app.admin(Method::DELETE, "/admin/v1/segments/vip", Value::Null).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    app.admin(Method::DELETE, &format!("/admin/v1/campaigns/{id}"), Value::Null).await;
    assert_eq!(
        app.admin(Method::DELETE, "/admin/v1/segments/vip", Value::Null).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.admin(Method::GET, "/admin/v1/segments/vip", Value::Null).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        app.admin(Method::DELETE, "/admin/v1/segments/vip", Value::Null).await.0,
        StatusCode::NOT_FOUND
    );
}

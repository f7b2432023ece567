//! Uploaded files, segment uploads and customer imports alike, against the real Postgres and Redis: the CSV
//! they accept (quotes, CRLF, a BOM, extra columns, the id column anywhere), the same errors numbered by
//! line, and segment uploads streamed chunk by chunk: duplicates across chunks counted once, and an upload
//! that fails part-way (a bad line late in the file, the client gone, Redis gone, another upload of the
//! same segment) leaving the old version serving.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{Method, StatusCode};
use common::redis_server::RedisServer;
use common::*;
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio::sync::mpsc;

/// Ids per Postgres row and Redis batch in the origin (`admin/segments.rs`): the tests cross it.
const CHUNK: usize = 10_000;

/// An app whose uploads may be 4 MiB, so that they span several chunks.
async fn big_app(db: PgPool) -> TestApp {
    TestApp::with_config(db, &redis_url(), |config| config.max_segment_bytes = 4 << 20).await
}

fn ids(prefix: &str, range: std::ops::Range<usize>) -> String {
    range.map(|i| format!("{prefix}-{i:06}\n")).collect()
}

fn field_names(body: &Value) -> Vec<String> {
    body["error"]["fields"]
        .as_array()
        .map(|fields| fields.iter().map(|f| f["field"].as_str().unwrap_or_default().to_string()).collect())
        .unwrap_or_default()
}

async fn segment(app: &TestApp, name: &str) -> (StatusCode, Value) {
    app.admin(Method::GET, &format!("/admin/v1/segments/{name}"), Value::Null).await
}

/// Every version of `name`'s members stored in Postgres, and the ids of each.
async fn stored_versions(app: &TestApp, name: &str) -> Vec<(i64, Vec<String>)> {
    let rows: Vec<(i64, Vec<String>)> = sqlx::query_as(
        "SELECT m.version, array_agg(u ORDER BY u) FROM segment_members m
         JOIN segments s ON s.id = m.segment_id, unnest(m.user_ids) AS u
         WHERE s.name = $1 GROUP BY m.version ORDER BY m.version",
    )
    .bind(name)
    .fetch_all(&app.state.db)
    .await
    .unwrap();
    rows
}

/// A live campaign shown to members of `segment`; returns its id.
async fn campaign_for(app: &TestApp, segment: &str) -> i64 {
    let mut targeted = spec(&format!("For {segment}"));
    targeted["audience"] = json!({"include": {"any_of": [segment]}});
    app.live_campaign(targeted).await
}

/// Uploads `text` to segment `name` in pieces of 16 KiB, as it comes off a network, so that the origin
/// writes chunks while the rest is still arriving.
async fn upload_in_pieces(app: &TestApp, name: &str, text: &str) -> (StatusCode, Value) {
    let pieces: Vec<Result<Bytes, std::io::Error>> =
        text.as_bytes().chunks(16 << 10).map(|piece| Ok(Bytes::copy_from_slice(piece))).collect();
    let body = Body::from_stream(futures_util::stream::iter(pieces));
    app.call(Method::PUT, &format!("/admin/v1/segments/{name}"), Some(ADMIN_KEY), body, "text/csv").await
}

/// A request body the test sends piece by piece, and can break off.
struct BodySender(mpsc::Sender<Result<Bytes, std::io::Error>>);

fn streamed_body() -> (BodySender, Body) {
    let (sender, receiver) = mpsc::channel(4);
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    });
    (BodySender(sender), Body::from_stream(stream))
}

impl BodySender {
    async fn send(&self, text: String) {
        self.0.send(Ok(Bytes::from(text))).await.unwrap();
    }

    async fn break_off(self) {
        self.0.send(Err(std::io::Error::other("connection reset"))).await.unwrap();
    }
}

/// Starts an upload of `body` to segment `name` in the background.
fn start_upload(app: &Arc<TestApp>, name: &str, body: Body) -> tokio::task::JoinHandle<(StatusCode, Value)> {
    let (app, uri) = (app.clone(), format!("/admin/v1/segments/{name}"));
    tokio::spawn(async move { app.call(Method::PUT, &uri, Some(ADMIN_KEY), body, "text/csv").await })
}

/// Waits until Postgres holds at least `chunks` chunks of a version of `name` other than `live`.
async fn wait_for_chunks(app: &TestApp, name: &str, live: i64, chunks: i64) {
    let started = Instant::now();
    loop {
        let written: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM segment_members m JOIN segments s ON s.id = m.segment_id
             WHERE s.name = $1 AND m.version <> $2",
        )
        .bind(name)
        .bind(live)
        .fetch_one(&app.state.db)
        .await
        .unwrap();
        if written >= chunks {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the upload wrote {written} chunks");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The fields of `user`'s hash in Redis.
fn redis_hash(app: &TestApp, user: &str) -> std::collections::HashMap<String, String> {
    redis::cmd("HGETALL").arg(format!("{}:u:{{{user}}}", app.prefix)).query(&mut app.redis()).unwrap()
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn a_segment_upload_reads_quotes_crlf_a_bom_and_extra_columns(db: PgPool) {
    let app = TestApp::new(db).await;
    // A spreadsheet's export: a BOM, CRLF, the id column third and quoted, a comma and a line break inside
    // quotes, doubled quotes, an empty row.
    let csv = "\u{feff}Name,Phone,\"CIF\"\r\n\
               Ani,+62811,\"cif-1\"\r\n\
               \"Budi, Jr\",+62812,cif-2\r\n\
               \"Citra\r\nDewi\",+62813,\" cif-3 \"\r\n\
               ,,\r\n\
               \"Eka \"\"E\"\"\",+62814,cif-4\r\n";
    let (status, body) = app.upload("vip", csv).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((body["member_count"].as_i64(), body["lines_accepted"].as_i64()), (Some(4), Some(4)));
    let versions = stored_versions(&app, "vip").await;
    assert_eq!(versions[0].1, ["cif-1", "cif-2", "cif-3", "cif-4"]);
    let campaign = campaign_for(&app, "vip").await;
    assert_eq!(app.popup_for("cif-3").await.map(|p| p.0), Some(campaign));
    assert_eq!(app.popup_for("Ani").await, None, "names are not ids");

    // Without a header the first column holds the ids, from the first line on; other columns are ignored.
    let (status, body) = app.upload("vip", "c-1,\"Ani, A\"\nc-2,\"x\ny\"\n\"c-3\"\n").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["member_count"], 3);
    assert_eq!(stored_versions(&app, "vip").await[0].1, ["c-1", "c-2", "c-3"]);
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn segment_uploads_and_imports_number_bad_lines_alike(db: PgPool) {
    let app = TestApp::new(db).await;
    assert_eq!(app.upload("vip", "c-1\n").await.0, StatusCode::OK);
    // Line 2 starts a record that ends on line 3; line 4 is blank; a quoted id cannot hold a comma.
    let segment_file = "customer_id,note\nc-2,\"two\nlines\"\n\nbad id,x\n\"c,5\"\nc-6\n";
    let (status, body) = app.upload("vip", segment_file).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "validation_failed");
    assert_eq!(field_names(&body), ["line 5", "line 6"]);
    assert_eq!(segment(&app, "vip").await.1["member_count"], 1, "the previous upload stands");

    let import_file = "phone,first_name\n+6281000001,\"two\nlines\"\n\n0812,x\n+6281000002,\"B\0di\"\n";
    let (status, body) = app
        .call(
            Method::POST,
            "/admin/v1/customers/import",
            Some(ADMIN_KEY),
            Body::from(import_file),
            "text/csv",
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "validation_failed");
    assert_eq!(field_names(&body), ["line 5", "line 6"]);

    // Both read the same CSV: a BOM, CRLF and quotes in an import too.
    let import_file = "\u{feff}first_name,phone\r\n\"Siti, S\",\"+6281000003\"\r\n";
    let (status, body) = app
        .call(
            Method::POST,
            "/admin/v1/customers/import",
            Some(ADMIN_KEY),
            Body::from(import_file),
            "text/csv",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let name: String = sqlx::query_scalar("SELECT first_name FROM customers WHERE phone = '+6281000003'")
        .fetch_one(&app.state.db)
        .await
        .unwrap();
    assert_eq!(name, "Siti, S");
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn duplicates_across_chunks_are_counted_once(db: PgPool) {
    let app = big_app(db).await;
    // Unsorted: the first 5,000 ids come again in the third chunk.
    let file = ids("u", 0..25_000) + &ids("u", 0..5_000);
    let (status, body) = upload_in_pieces(&app, "wide", &file).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["member_count"].as_i64(), body["lines_accepted"].as_i64()),
        (Some(25_000), Some(30_000))
    );
    let chunks: i64 =
        sqlx::query_scalar("SELECT count(*) FROM segment_members").fetch_one(&app.state.db).await.unwrap();
    assert_eq!(chunks, 3, "the upload was stored in chunks");
    let campaign = campaign_for(&app, "wide").await;
    for member in ["u-000000", "u-004999", "u-024999"] {
        assert_eq!(app.popup_for(member).await.map(|p| p.0), Some(campaign), "{member}");
    }

    // Sorted, with one id repeated exactly across the boundary of the first two chunks.
    let boundary = format!("s-{:06}\n", CHUNK - 1);
    let file = ids("s", 0..CHUNK) + &boundary + &ids("s", CHUNK..2 * CHUNK);
    let (status, body) = upload_in_pieces(&app, "sorted", &file).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["member_count"].as_i64(), body["lines_accepted"].as_i64()),
        (Some(2 * CHUNK as i64), Some(2 * CHUNK as i64 + 1))
    );
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn a_bad_line_late_in_a_large_upload_leaves_the_old_version_serving(db: PgPool) {
    let app = big_app(db).await;
    assert_eq!(app.upload("wave", &ids("old", 0..100)).await.0, StatusCode::OK);
    let campaign = campaign_for(&app, "wave").await;
    let (_, before) = segment(&app, "wave").await;
    assert_eq!(app.popup_for("old-000007").await.map(|p| p.0), Some(campaign));

    // Three chunks are written before the reader meets line 34,001.
    let file = ids("new", 0..34_000) + "not an id\n" + &ids("new", 34_000..40_000);
    let (status, body) = upload_in_pieces(&app, "wave", &file).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(field_names(&body), ["line 34001"]);

    let (_, after) = segment(&app, "wave").await;
    assert_eq!(after, before, "the segment did not change");
    assert_eq!(app.popup_for("old-000007").await.map(|p| p.0), Some(campaign), "the old version serves");
    assert_eq!(app.popup_for("new-000007").await, None, "a member only of the failed upload gets nothing");
    // The failed upload did reach Redis, under a version no catalog names: its field is there and counts
    // for nothing.
    let hash = redis_hash(&app, "new-000007");
    assert!(hash.keys().any(|field| field.starts_with("s:")), "{hash:?}");
    let versions: Vec<i64> = stored_versions(&app, "wave").await.into_iter().map(|v| v.0).collect();
    assert_eq!(versions, [before["version"].as_i64().unwrap()], "its rows were deleted from Postgres");

    // And the next upload goes through.
    let (status, body) = app.upload("wave", &ids("new", 0..40_000)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(app.popup_for("new-000007").await.map(|p| p.0), Some(campaign));
    assert_eq!(app.popup_for("old-000007").await, None);
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn a_second_upload_of_a_segment_in_progress_is_refused_with_409(db: PgPool) {
    let app = Arc::new(big_app(db).await);
    assert_eq!(app.upload("wave", &ids("old", 0..100)).await.0, StatusCode::OK);
    let live = segment(&app, "wave").await.1["version"].as_i64().unwrap();
    let (body, request) = streamed_body();
    let first = start_upload(&app, "wave", request);
    body.send(ids("a", 0..CHUNK + 1)).await;
    wait_for_chunks(&app, "wave", live, 1).await;

    let (status, answer) = app.upload("wave", "b-1\n").await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_eq!(answer["error"]["code"], "conflict");
    let (status, answer) = app.upload("other", "b-1\n").await;
    assert_eq!(status, StatusCode::OK, "another segment is not held up: {answer}");

    body.send(ids("a", CHUNK + 1..CHUNK + 50)).await;
    drop(body);
    let (status, answer) = first.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["member_count"], CHUNK + 50);
    let (status, answer) = app.upload("wave", "b-1\n").await;
    assert_eq!(status, StatusCode::OK, "once the first is done: {answer}");
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn a_client_that_goes_away_leaves_the_old_version_and_nothing_else(db: PgPool) {
    let app = Arc::new(big_app(db).await);
    assert_eq!(app.upload("wave", &ids("old", 0..100)).await.0, StatusCode::OK);
    let campaign = campaign_for(&app, "wave").await;
    let (_, before) = segment(&app, "wave").await;
    let live = before["version"].as_i64().unwrap();

    // The body breaks off after two chunks were written: the upload answers 400 and cleans up.
    let (body, request) = streamed_body();
    let upload = start_upload(&app, "wave", request);
    body.send(ids("new", 0..2 * CHUNK + 1)).await;
    wait_for_chunks(&app, "wave", live, 2).await;
    body.break_off().await;
    let (status, answer) = upload.await.unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(segment(&app, "wave").await.1, before);
    assert_eq!(stored_versions(&app, "wave").await.into_iter().map(|v| v.0).collect::<Vec<_>>(), [live]);
    assert_eq!(app.popup_for("old-000001").await.map(|p| p.0), Some(campaign));
    assert_eq!(app.popup_for("new-000001").await, None);

    // The request itself is dropped mid-upload (the server gave up on the connection): the same, from a
    // task of its own, and the segment can be uploaded again once it has run.
    let (body, request) = streamed_body();
    let upload = start_upload(&app, "wave", request);
    body.send(ids("new", 0..CHUNK + 1)).await;
    wait_for_chunks(&app, "wave", live, 1).await;
    upload.abort();
    let started = Instant::now();
    while stored_versions(&app, "wave").await.len() > 1 {
        assert!(started.elapsed() < Duration::from_secs(20), "the dropped upload was not cleaned up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(segment(&app, "wave").await.1, before);
    assert_eq!(app.popup_for("old-000001").await.map(|p| p.0), Some(campaign));
    let started = Instant::now();
    loop {
        let (status, answer) = app.upload("wave", "c-1\n").await;
        if status == StatusCode::OK {
            break;
        }
        assert_eq!(status, StatusCode::CONFLICT, "{answer}");
        assert!(started.elapsed() < Duration::from_secs(20), "the dropped upload kept the lock");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A first upload that fails leaves no segment behind.
    let (body, request) = streamed_body();
    let upload = start_upload(&app, "fresh", request);
    body.send(ids("f", 0..CHUNK + 1)).await;
    body.break_off().await;
    assert_eq!(upload.await.unwrap().0, StatusCode::BAD_REQUEST);
    assert_eq!(segment(&app, "fresh").await.0, StatusCode::NOT_FOUND);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM segments WHERE name = 'fresh'")
        .fetch_one(&app.state.db)
        .await
        .unwrap();
    assert_eq!(rows, 0);
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn a_first_upload_is_not_seen_before_it_is_complete(db: PgPool) {
    let app = Arc::new(big_app(db).await);
    let (body, request) = streamed_body();
    let upload = start_upload(&app, "fresh", request);
    body.send(ids("f", 0..CHUNK + 1)).await;
    wait_for_chunks(&app, "fresh", 0, 1).await;
    assert_eq!(segment(&app, "fresh").await.0, StatusCode::NOT_FOUND, "not listed mid-upload");
    let (_, list) = app.admin(Method::GET, "/admin/v1/segments", Value::Null).await;
    assert_eq!(list["pagination"]["total_count"], 0);
    drop(body);
    let (status, answer) = upload.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(segment(&app, "fresh").await.1["member_count"], CHUNK + 1);
    let (_, audit) = app.admin(Method::GET, "/admin/v1/audit?entity=segment", Value::Null).await;
    assert_eq!(audit["data"][0]["action"], "create", "{audit}");
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn redis_going_away_mid_upload_leaves_the_old_version_in_postgres(db: PgPool) {
    let mut redis = RedisServer::start();
    let app = TestApp::with_config(db, &redis.url(), |config| config.max_segment_bytes = 4 << 20).await;
    let app = Arc::new(app);
    assert_eq!(app.upload("wave", &ids("old", 0..100)).await.0, StatusCode::OK);
    let (_, before) = segment(&app, "wave").await;
    let live = before["version"].as_i64().unwrap();

    let (body, request) = streamed_body();
    let upload = start_upload(&app, "wave", request);
    body.send(ids("new", 0..CHUNK + 1)).await;
    wait_for_chunks(&app, "wave", live, 1).await;
    redis.kill();
    // The rest may not all be read: the upload stops at the first write that fails.
    let _ = tokio::time::timeout(Duration::from_secs(30), body.send(ids("new", CHUNK + 1..3 * CHUNK))).await;
    drop(body);
    let (status, answer) = upload.await.unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(answer["error"]["code"], "store_unavailable");
    assert_eq!(segment(&app, "wave").await.1, before);
    let versions: Vec<i64> = stored_versions(&app, "wave").await.into_iter().map(|v| v.0).collect();
    assert_eq!(versions, [live], "Postgres holds the old version, from which the healer restores Redis");
}

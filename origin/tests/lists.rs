//! Every list answers one shape, `{"data": [...], "pagination": {"page", "page_size", "total_count",
//! "total_pages"}}` (with `as_of` where it pages through a snapshot), and brings paging values into range as
//! the messaging document says: `page_size` above 100 is 100, below 1 the default (20), `page` below 1 is 1.
//!
//! The lists are found in the OpenAPI document (every operation whose answer has `pagination`), so a new
//! list route fails here until it is in [`LISTS`], where it gets every check.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use common::{spec, TestApp};
use serde_json::{json, Value};
use sqlx::PgPool;

/// Every list route, with whether it answers `as_of` (it pages through a snapshot); `{m}` is a message
/// campaign with messages.
const LISTS: &[(&str, bool)] = &[
    ("/admin/v1/campaigns", false),
    ("/admin/v1/segments", false),
    ("/admin/v1/keys", false),
    ("/admin/v1/audit", false),
    ("/admin/v1/customers", true),
    ("/admin/v1/message-campaigns", true),
    ("/admin/v1/message-campaigns/{id}/messages", true),
    ("/admin/v1/messages/dead", true),
];

/// The list routes of the OpenAPI document: GET operations whose 200 answer has a `pagination` property.
fn lists_in_the_spec() -> BTreeSet<String> {
    let document = serde_json::to_value(popup_origin::openapi()).unwrap();
    let schemas = &document["components"]["schemas"];
    let mut lists = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        let Some(schema) =
            item["get"]["responses"]["200"]["content"]["application/json"]["schema"].as_object()
        else {
            continue;
        };
        let schema = match schema.get("$ref").and_then(Value::as_str) {
            Some(reference) => &schemas[reference.trim_start_matches("#/components/schemas/")],
            None => &Value::Object(schema.clone()),
        };
        if schema["properties"].get("pagination").is_some() {
            lists.insert(path.clone());
        }
    }
    lists
}

/// Three rows in every list.
async fn seeded(db: PgPool) -> (TestApp, i64) {
    let app = TestApp::new(db).await;
    for i in 0..3 {
        let (status, body) = app.admin(Method::POST, "/admin/v1/campaigns", spec(&format!("C{i}"))).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, body) = app.upload(&format!("s{i}"), "c-1\nc-2\n").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let customer = json!({"phone": format!("+628120000000{i}"), "first_name": "Ani"});
        let (status, body) = app.admin(Method::POST, "/admin/v1/customers", customer).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let campaign = json!({"name": format!("M{i}"), "channel": "sms", "base_template": "Hi"});
        let (status, body) = app.admin(Method::POST, "/admin/v1/message-campaigns", campaign).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    for name in ["k1", "k2"] {
        let (status, body) =
            app.admin(Method::POST, "/admin/v1/keys", json!({"name": name, "role": "viewer"})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (_, campaigns) = app.admin(Method::GET, "/admin/v1/message-campaigns", Value::Null).await;
    let message_campaign = campaigns["data"][0]["id"].as_i64().unwrap();
    let (_, customers) = app.admin(Method::GET, "/admin/v1/customers", Value::Null).await;
    let ids: Vec<i64> =
        customers["data"].as_array().unwrap().iter().map(|c| c["id"].as_i64().unwrap()).collect();
    let send = format!("/admin/v1/message-campaigns/{message_campaign}/send");
    let (status, body) = app.admin(Method::POST, &send, json!({"customer_ids": ids})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    // Dead letters without waiting for a worker to give up on them.
    sqlx::query("UPDATE messages SET status = 'failed', last_error = 'gave up'")
        .execute(&app.state.db)
        .await
        .unwrap();
    (app, message_campaign)
}

/// The body of a list, checked for the shape: exactly `data` and `pagination`, and in `pagination` the four
/// numbers (and `as_of` when the list has it), `total_pages` being `ceil(total_count / page_size)`.
fn checked(path: &str, snapshot: bool, status: StatusCode, body: &Value) -> (Vec<Value>, [i64; 4]) {
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    let keys: BTreeSet<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, BTreeSet::from(["data", "pagination"]), "{path}: {body}");
    let pagination = &body["pagination"];
    let mut expected = BTreeSet::from(["page", "page_size", "total_count", "total_pages"]);
    if snapshot {
        expected.insert("as_of");
    }
    let keys: BTreeSet<&str> = pagination.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, expected, "{path}: {body}");
    let number =
        |field: &str| pagination[field].as_i64().unwrap_or_else(|| panic!("{path}: {field} in {body}"));
    let numbers = [number("page"), number("page_size"), number("total_count"), number("total_pages")];
    let [_, size, total, pages] = numbers;
    assert_eq!(pages, (total + size - 1) / size, "{path}: {body}");
    (body["data"].as_array().unwrap().clone(), numbers)
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn every_list_has_one_shape_and_clamps_paging_values(db: PgPool) {
    let listed: BTreeSet<String> = LISTS.iter().map(|(path, _)| path.to_string()).collect();
    assert_eq!(lists_in_the_spec(), listed, "the list routes of the OpenAPI document");

    let (app, message_campaign) = seeded(db).await;
    for (template, snapshot) in LISTS {
        let path = template.replace("{id}", &message_campaign.to_string());
        let get = |query: &str| {
            let uri = format!("{path}?{query}");
            let app = &app;
            async move {
                let (status, body) = app.admin(Method::GET, &uri, Value::Null).await;
                checked(&uri, *snapshot, status, &body)
            }
        };
        let (rows, [page, size, total, pages]) = get("").await;
        assert_eq!((page, size), (1, 20), "{path}: the defaults");
        assert!(total >= 3, "{path}: seeded with three rows at least, has {total}");
        assert_eq!(rows.len() as i64, total.min(20), "{path}");
        assert_eq!(pages, (total + 19) / 20, "{path}");

        // (query, the page and page size served)
        let cases: &[(&str, (i64, i64))] = &[
            ("page_size=1", (1, 1)),
            ("page=2&page_size=1", (2, 1)),
            ("page_size=100", (1, 100)),
            ("page_size=101", (1, 100)),
            ("page_size=9223372036854775807", (1, 100)),
            ("page_size=0", (1, 20)),
            ("page_size=-3", (1, 20)),
            ("page_size=-9223372036854775808", (1, 20)),
            ("page=0", (1, 20)),
            ("page=-5&page_size=1", (1, 1)),
            ("page=-9223372036854775808", (1, 20)),
            ("page=1000000&page_size=100", (1_000_000, 100)),
        ];
        for (query, served) in cases {
            let (data, [page, size, count, pages]) = get(query).await;
            assert_eq!((page, size), *served, "{path}?{query}");
            assert_eq!(count, total, "{path}?{query}: the same list");
            assert_eq!(pages, (total + size - 1) / size, "{path}?{query}");
            let expected_rows = (total - (page - 1) * size).clamp(0, size);
            assert_eq!(data.len() as i64, expected_rows, "{path}?{query}");
        }
        // Clamped values serve the same rows as the values they stand for.
        let (first, _) = get("page_size=1").await;
        let (clamped, _) = get("page=-5&page_size=1").await;
        let (second, _) = get("page=2&page_size=1").await;
        assert_eq!(first, clamped, "{path}: page -5 is page 1");
        assert_ne!(first, second, "{path}: page 2 is the next row");
        let (all, _) = get("page_size=100").await;
        let (over, _) = get("page_size=1000").await;
        assert_eq!(all, over, "{path}: page_size 1000 is 100");

        // What is not a page number, or beyond the deepest page, is still refused, naming the field.
        for (query, field) in [("page=two", "page"), ("page_size=1.5", "page_size"), ("page=1000001", "page")]
        {
            let (status, body) = app.admin(Method::GET, &format!("{path}?{query}"), Value::Null).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path}?{query}: {body}");
            assert_eq!(body["error"]["fields"][0]["field"], field, "{path}?{query}: {body}");
        }
    }
}

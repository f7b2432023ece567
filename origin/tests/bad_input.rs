//! Bad input on every kind of route gets a 4xx JSON error in the origin's shape, and stores nothing: NUL in a
//! query, a path or a JSON body (Postgres refuses NUL in text), pages near 2^63 on every list, and bodies
//! over the route's limit.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use common::*;
use popup_origin::http::page::MAX_PAGE;
use serde_json::{json, Value};
use sqlx::PgPool;

/// Every table a request could write to.
const TABLES: &[&str] = &[
    "campaigns",
    "segments",
    "segment_members",
    "customers",
    "message_campaigns",
    "messages",
    "api_keys",
    "audit_log",
    "events",
];

/// Every list route of the admin and messaging APIs, `{c}` and `{m}` standing for a campaign and a message
/// campaign that exist.
const LISTS: &[&str] = &[
    "/admin/v1/campaigns",
    "/admin/v1/segments",
    "/admin/v1/keys",
    "/admin/v1/audit",
    "/admin/v1/customers",
    "/admin/v1/message-campaigns",
    "/admin/v1/message-campaigns/{m}/messages",
    "/admin/v1/messages/dead",
];

/// A body as sent: its text and content type.
#[derive(Clone)]
enum Payload {
    None,
    Json(String),
    Csv(&'static str),
}

impl Payload {
    fn json(value: Value) -> Payload {
        Payload::Json(value.to_string())
    }

    /// `value` followed by whitespace (still valid JSON) up to `bytes` in all.
    fn padded(value: Value, bytes: usize) -> Payload {
        let text = value.to_string();
        let padding = bytes.saturating_sub(text.len());
        Payload::Json(format!("{text}{}", " ".repeat(padding)))
    }
}

struct Case {
    method: Method,
    path: String,
    body: Payload,
    status: StatusCode,
    code: &'static str,
    /// A field the error names, when the error names fields.
    field: Option<String>,
}

fn case(method: Method, path: &str, body: Payload, status: StatusCode, code: &'static str) -> Case {
    Case { method, path: path.to_string(), body, status, code, field: None }
}

impl Case {
    fn naming(mut self, field: &str) -> Case {
        self.field = Some(field.to_string());
        self
    }
}

const BAD: StatusCode = StatusCode::BAD_REQUEST;

struct Fixture {
    app: TestApp,
    campaign: i64,
    message_campaign: i64,
}

/// A campaign, a segment, a customer in it and a message campaign, so that routes naming them reach their
/// handlers' reads and writes.
async fn fixture(db: PgPool) -> Fixture {
    let app = TestApp::new(db).await;
    let (status, body) = app.admin(Method::POST, "/admin/v1/campaigns", spec("Cashback")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let campaign = body["id"].as_i64().unwrap();
    let (status, body) = app.upload("vip", "c-1\nc-2\n").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let customer = json!({"phone": "+6281200000001", "external_id": "c-1", "first_name": "Ani"});
    let (status, body) = app.admin(Method::POST, "/admin/v1/customers", customer).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let promo = json!({"name": "Promo", "channel": "sms", "base_template": "Hi {first_name|Nasabah}"});
    let (status, body) = app.admin(Method::POST, "/admin/v1/message-campaigns", promo).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let message_campaign = body["id"].as_i64().unwrap();
    Fixture { app, campaign, message_campaign }
}

impl Fixture {
    fn path(&self, template: &str) -> String {
        template.replace("{c}", &self.campaign.to_string()).replace("{m}", &self.message_campaign.to_string())
    }

    async fn send(&self, case: &Case) -> (StatusCode, Value) {
        let (body, content_type) = match &case.body {
            Payload::None => (Body::empty(), "application/json"),
            Payload::Json(text) => (Body::from(text.clone()), "application/json"),
            Payload::Csv(text) => (Body::from(*text), "text/csv"),
        };
        let path = self.path(&case.path);
        self.app.call(case.method.clone(), &path, Some(ADMIN_KEY), body, content_type).await
    }

    /// Everything stored: every row of every table, and every Redis key of this app with its value.
    async fn stored(&self) -> Vec<String> {
        let mut stored = Vec::new();
        for table in TABLES {
            let rows: String = sqlx::query_scalar(&format!(
                "SELECT COALESCE(string_agg(t::text, E'\\n' ORDER BY t::text), '') FROM {table} t"
            ))
            .fetch_one(&self.app.state.db)
            .await
            .unwrap();
            stored.push(format!("{table}: {rows}"));
        }
        let mut redis = self.app.redis();
        let options =
            redis::ScanOptions::default().with_pattern(format!("{}:*", self.app.prefix)).with_count(1000);
        let mut keys: Vec<String> = redis::Commands::scan_options::<String>(&mut redis, options)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        keys.sort();
        for key in keys {
            let dump: Vec<u8> = redis::cmd("DUMP").arg(&key).query(&mut redis).unwrap();
            stored.push(format!("{key}: {dump:?}"));
        }
        stored
    }
}

/// Runs each case and checks the status, that the body is the JSON error with the code (naming the field
/// where one is given), and that nothing stored changed.
async fn run(fixture: &Fixture, cases: &[Case]) {
    let before = fixture.stored().await;
    for case in cases {
        let label = format!("{} {}", case.method, fixture.path(&case.path));
        let (status, body) = fixture.send(case).await;
        assert_eq!(status, case.status, "{label}: {body}");
        assert_eq!(body["error"]["code"], case.code, "{label}: the body is the JSON error: {body}");
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{label}: {body}");
        if let Some(field) = &case.field {
            let named = body["error"]["fields"]
                .as_array()
                .is_some_and(|fields| fields.iter().any(|f| f["field"] == field.as_str()));
            assert!(named, "{label}: the error names {field}: {body}");
        }
        assert!(fixture.stored().await == before, "{label}: nothing was stored");
    }
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn nul_in_a_query_a_path_or_a_json_body_is_refused_naming_it(db: PgPool) {
    let fixture = fixture(db).await;
    let named = spec("Cash\0back");
    let mut titled = spec("Cashback");
    titled["creative"]["title"] = json!("Title\0");
    let mut extra = spec("Cashback");
    extra["creative"]["extra"] = json!({"label": "Go\0"});
    let cases = [
        // Queries: filters that reach Postgres, and parameters of the popup API and the preview.
        case(Method::GET, "/admin/v1/campaigns?q=%00", Payload::None, BAD, "invalid_request").naming("q"),
        case(
            Method::GET,
            "/admin/v1/campaigns?q=cash%00back&status=draft",
            Payload::None,
            BAD,
            "invalid_request",
        )
        .naming("q"),
        case(Method::GET, "/admin/v1/campaigns?q%00=x", Payload::None, BAD, "invalid_request").naming("q%00"),
        case(Method::GET, "/admin/v1/customers?phone=%2B62%00", Payload::None, BAD, "invalid_request")
            .naming("phone"),
        case(Method::GET, "/admin/v1/audit?entity=campaign%00", Payload::None, BAD, "invalid_request")
            .naming("entity"),
        case(Method::GET, "/admin/v1/audit?entity_id=%00", Payload::None, BAD, "invalid_request")
            .naming("entity_id"),
        case(
            Method::GET,
            "/admin/v1/message-campaigns?channel=sms%00",
            Payload::None,
            BAD,
            "invalid_request",
        )
        .naming("channel"),
        case(
            Method::GET,
            "/admin/v1/message-campaigns/{m}/messages?status=%00",
            Payload::None,
            BAD,
            "invalid_request",
        )
        .naming("status"),
        case(Method::GET, "/admin/v1/campaigns/{c}/stats?from=%00", Payload::None, BAD, "invalid_request")
            .naming("from"),
        case(
            Method::GET,
            "/admin/v1/preview?user_id=c-1&locale=id%00",
            Payload::None,
            BAD,
            "invalid_request",
        )
        .naming("locale"),
        case(
            Method::GET,
            "/admin/v1/campaigns/{c}/preview?user_id=%00",
            Payload::None,
            BAD,
            "invalid_request",
        )
        .naming("user_id"),
        case(
            Method::GET,
            "/v1/campaigns/popup?user_id=c-1&placement=home%00",
            Payload::None,
            BAD,
            "invalid_request",
        )
        .naming("placement"),
        case(Method::GET, "/v1/campaigns/popup?user_id=%00", Payload::None, BAD, "invalid_request")
            .naming("user_id"),
        // Paths: parameters are named after the route's template.
        case(Method::GET, "/admin/v1/segments/vip%00", Payload::None, BAD, "invalid_request").naming("name"),
        case(Method::DELETE, "/admin/v1/segments/vip%00", Payload::None, BAD, "invalid_request")
            .naming("name"),
        case(Method::PUT, "/admin/v1/segments/new%00", Payload::Csv("c-1\n"), BAD, "invalid_request")
            .naming("name"),
        case(Method::GET, "/admin/v1/campaigns/%00", Payload::None, BAD, "invalid_request").naming("id"),
        case(Method::POST, "/admin/v1/campaigns/{c}/activate%00", Payload::None, BAD, "invalid_request")
            .naming("action"),
        case(Method::GET, "/admin/v1/customers/1%00", Payload::None, BAD, "invalid_request").naming("id"),
        case(
            Method::POST,
            "/v1/campaigns/{c}/click%00",
            Payload::json(json!({"user_id": "c-1", "impression_token": "t"})),
            BAD,
            "invalid_request",
        )
        .naming("kind"),
        case(Method::GET, "/nowhere/%00", Payload::None, BAD, "invalid_request").naming("path"),
        // JSON bodies, by field path, on writes of every kind.
        case(Method::POST, "/admin/v1/campaigns", Payload::json(named.clone()), BAD, "invalid_request")
            .naming("name"),
        case(Method::POST, "/admin/v1/campaigns", Payload::json(titled), BAD, "invalid_request")
            .naming("creative.title"),
        case(Method::PUT, "/admin/v1/campaigns/{c}", Payload::json(named), BAD, "invalid_request")
            .naming("name"),
        case(Method::PUT, "/admin/v1/campaigns/{c}", Payload::json(extra), BAD, "invalid_request")
            .naming("creative.extra.label"),
        case(
            Method::POST,
            "/admin/v1/customers",
            Payload::json(json!({"phone": "+6281200000002", "first_name": "B\0di"})),
            BAD,
            "invalid_request",
        )
        .naming("first_name"),
        case(
            Method::POST,
            "/admin/v1/message-campaigns",
            Payload::json(json!({"name": "Promo 2", "channel": "sms", "base_template": "Hi\0 {first_name}"})),
            BAD,
            "invalid_request",
        )
        .naming("base_template"),
        case(
            Method::POST,
            "/admin/v1/message-campaigns/{m}/send",
            Payload::json(json!({"segment": "vip\0"})),
            BAD,
            "invalid_request",
        )
        .naming("segment"),
        case(
            Method::POST,
            "/admin/v1/keys",
            Payload::json(json!({"name": "k\0", "role": "viewer"})),
            BAD,
            "invalid_request",
        )
        .naming("name"),
        case(
            Method::POST,
            "/v1/campaigns/{c}/impression",
            Payload::json(json!({"user_id": "c-1", "impression_token": "t\0"})),
            BAD,
            "invalid_request",
        )
        .naming("impression_token"),
        case(
            Method::POST,
            "/v1/conversions",
            Payload::json(json!({"user_id": "c-1", "impression_token": "\0"})),
            BAD,
            "invalid_request",
        )
        .naming("impression_token"),
        // Streamed uploads are not buffered: their parsers refuse the row, by number, with the route's 422.
        case(
            Method::PUT,
            "/admin/v1/segments/fresh",
            Payload::Csv("c-1\nc-\u{0}2\n"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .naming("line 2"),
        case(
            Method::POST,
            "/admin/v1/customers/import",
            Payload::Csv("phone,first_name\n+6281200000003,Citra\n+6281200000004,D\u{0}ewi\n"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .naming("line 3"),
    ];
    run(&fixture, &cases).await;
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn an_escaped_backslash_before_u0000_is_text_and_is_accepted(db: PgPool) {
    let fixture = fixture(db).await;
    let app = &fixture.app;
    // The JSON text `"Cash\\u0000back"`: a backslash, then the characters u0000.
    let name = "Cash\\u0000back";
    let (status, created) = app.admin(Method::POST, "/admin/v1/campaigns", spec(name)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_i64().unwrap();
    let (_, read) = app.admin(Method::GET, &format!("/admin/v1/campaigns/{id}"), Value::Null).await;
    assert_eq!(read["name"], name, "stored as sent");

    let customer = json!({"phone": "+6281200000009", "first_name": "\\u0000"});
    let (status, created) = app.admin(Method::POST, "/admin/v1/customers", customer).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["first_name"], "\\u0000");

    // The same text in a query (`%5C` is the backslash), and a `%` escaped as `%25`: neither is NUL.
    let (status, list) = app.admin(Method::GET, "/admin/v1/campaigns?q=%5Cu0000", Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["data"][0]["id"], id);
    assert_eq!(list["pagination"]["total_count"], 1);
    let (status, list) = app.admin(Method::GET, "/admin/v1/campaigns?q=%2500", Value::Null).await;
    assert_eq!((status, list["pagination"]["total_count"].as_i64()), (StatusCode::OK, Some(0)), "{list}");
    let (status, body) = app.admin(Method::GET, "/admin/v1/segments/vip%2500", Value::Null).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a segment named `vip%00`, which does not exist: {body}");
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn pages_near_2_to_the_63_are_refused_on_every_list_naming_the_field(db: PgPool) {
    let fixture = fixture(db).await;
    let too_deep = format!("page={}", MAX_PAGE + 1);
    // Values within i64 that the paging rules bring into range (page_size=9223372036854775807 is 100) are
    // served; `tests/lists.rs` checks them.
    let queries: [(&str, &str); 6] = [
        ("page=9223372036854775807", "page"),
        ("page=9223372036854775807&page_size=100", "page"),
        ("page=99999999999999999999", "page"),
        (&too_deep, "page"),
        ("page=-99999999999999999999", "page"),
        ("page_size=99999999999999999999", "page_size"),
    ];
    let mut cases = Vec::new();
    for list in LISTS {
        for (query, field) in queries {
            let path = format!("{list}?{query}");
            cases.push(case(Method::GET, &path, Payload::None, BAD, "invalid_request").naming(field));
        }
    }
    run(&fixture, &cases).await;

    // The bound itself is served: an empty page past the last row, in the usual shape.
    for list in LISTS {
        let path = fixture.path(&format!("{list}?page={MAX_PAGE}&page_size=100"));
        let (status, body) = fixture.app.admin(Method::GET, &path, Value::Null).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_eq!(body["data"], json!([]), "{path}");
        assert_eq!(
            (body["pagination"]["page"].as_i64(), body["pagination"]["page_size"].as_i64()),
            (Some(MAX_PAGE), Some(100)),
            "{path}"
        );
        assert!(
            body["pagination"]["total_count"].is_i64() && body["pagination"]["total_pages"].is_i64(),
            "{path}: {body}"
        );
    }
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn a_body_over_the_limit_is_413_on_every_kind_of_json_route(db: PgPool) {
    let fixture = fixture(db).await;
    // axum's default limit is 2 MiB; the send route allows 4 MiB.
    let over_default = 2 * 1024 * 1024 + 200 * 1024;
    let over_send = 4 * 1024 * 1024 + 200 * 1024;
    let too_large = StatusCode::PAYLOAD_TOO_LARGE;
    let mut long = spec("Cashback");
    long["creative"]["body"] = json!("x".repeat(over_default));
    let cases = [
        case(
            Method::POST,
            "/admin/v1/campaigns",
            Payload::json(long.clone()),
            too_large,
            "payload_too_large",
        ),
        case(
            Method::POST,
            "/admin/v1/campaigns",
            Payload::padded(spec("Cashback"), over_default),
            too_large,
            "payload_too_large",
        ),
        case(Method::PUT, "/admin/v1/campaigns/{c}", Payload::json(long), too_large, "payload_too_large"),
        case(
            Method::POST,
            "/admin/v1/customers",
            Payload::padded(json!({"phone": "+6281200000002"}), over_default),
            too_large,
            "payload_too_large",
        ),
        case(
            Method::POST,
            "/admin/v1/message-campaigns",
            Payload::padded(json!({"name": "P", "channel": "sms", "base_template": "x"}), over_default),
            too_large,
            "payload_too_large",
        ),
        case(
            Method::POST,
            "/admin/v1/keys",
            Payload::padded(json!({"name": "k", "role": "viewer"}), over_default),
            too_large,
            "payload_too_large",
        ),
        case(
            Method::POST,
            "/admin/v1/messages/dead/requeue",
            Payload::padded(json!({"campaign_id": 1}), over_default),
            too_large,
            "payload_too_large",
        ),
        case(
            Method::POST,
            "/v1/campaigns/{c}/impression",
            Payload::padded(json!({"user_id": "c-1", "impression_token": "t"}), over_default),
            too_large,
            "payload_too_large",
        ),
        case(
            Method::POST,
            "/v1/conversions",
            Payload::padded(json!({"user_id": "c-1", "campaign_id": 1}), over_default),
            too_large,
            "payload_too_large",
        ),
        case(
            Method::POST,
            "/admin/v1/message-campaigns/{m}/send",
            Payload::padded(json!({"segment": "vip"}), over_send),
            too_large,
            "payload_too_large",
        ),
        // Under its own limit, though over the default, a send is read: this segment does not exist.
        case(
            Method::POST,
            "/admin/v1/message-campaigns/{m}/send",
            Payload::padded(json!({"segment": "nobody"}), over_default),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    run(&fixture, &cases).await;
}

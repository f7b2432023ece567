//! The popup API natively, against the real Postgres and Redis: serving, caps through impressions, forged
//! tokens, preview traces, the projection healing after Redis loses everything, and Redis being down.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{json, Value};
use sqlx::PgPool;

#[sqlx::test(migrations = "../migrations")]
async fn a_live_campaign_is_served_until_its_cap_then_nothing(db: PgPool) {
    let app = TestApp::new(db).await;
    assert_eq!(app.popup_for("c-1").await, None, "no campaign yet");
    let mut capped = spec("Capped");
    capped["caps"] = json!({"lifetime": 2});
    let id = app.live_campaign(capped).await;

    let (status, popup) = app.get("/v1/campaigns/popup?user_id=c-1&placement=home&platform=ios").await;
    assert_eq!(status, StatusCode::OK, "{popup}");
    assert_eq!(popup["campaign_id"], id);
    assert_eq!(popup["title"], "Capped title");
    assert_eq!(popup["variant"], "default");
    assert_eq!(popup["action_url"], "bankapp://promo");
    let token = popup["impression_token"].as_str().unwrap();
    assert_eq!(app.impression(id, "c-1", token).await, StatusCode::ACCEPTED);
    // A retried impression changes nothing.
    let (status, body) = app
        .post(&format!("/v1/campaigns/{id}/impression"), json!({"user_id": "c-1", "impression_token": token}))
        .await;
    assert_eq!((status, body["recorded"].as_bool()), (StatusCode::ACCEPTED, Some(false)));

    let (_, second) = app.popup_for("c-1").await.unwrap();
    assert_eq!(app.impression(id, "c-1", &second).await, StatusCode::ACCEPTED);
    assert_eq!(app.popup_for("c-1").await, None, "the lifetime cap of 2 is reached");
    assert!(app.popup_for("c-2").await.is_some(), "caps are per customer");
    // Clicks and dismissals are accepted and do not count as impressions.
    let (_, third) = app.popup_for("c-2").await.unwrap();
    for kind in ["click", "dismiss"] {
        let (status, _) = app
            .post(&format!("/v1/campaigns/{id}/{kind}"), json!({"user_id": "c-2", "impression_token": third}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    assert!(app.popup_for("c-2").await.is_some());
}

#[sqlx::test(migrations = "../migrations")]
async fn forged_and_misdirected_tokens_are_refused_and_change_nothing(db: PgPool) {
    let app = TestApp::new(db).await;
    let mut capped = spec("Once");
    capped["caps"] = json!({"lifetime": 1});
    let id = app.live_campaign(capped).await;
    let other = app.live_campaign(spec("Other")).await;
    let (_, token) = app.popup_for("c-1").await.unwrap();

    let mut tampered = token.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let cases = [
        (id, "c-2", token.as_str(), "another user"),
        (other, "c-1", token.as_str(), "another campaign"),
        (id, "c-1", tampered.as_str(), "a tampered signature"),
        (id, "c-1", "v1.bm90.aXQ", "garbage"),
    ];
    for (campaign, user, token, case) in cases {
        let (status, body) = app
            .post(
                &format!("/v1/campaigns/{campaign}/impression"),
                json!({"user_id": user, "impression_token": token}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{case}: {body}");
        assert_eq!(body["error"]["fields"][0]["field"], "impression_token", "{case}");
    }
    assert!(app.popup_for("c-1").await.is_some(), "none of them counted against the cap");

    for (uri, body) in [
        ("/v1/campaigns/popup", Value::Null),
        ("/v1/campaigns/popup?user_id=a%20b", Value::Null),
        ("/v1/campaigns/popup?user_id=c-1&platform=nokia", Value::Null),
    ] {
        let (status, response) = app.get(uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {response} {body}");
    }
    let (status, _) = app.post(&format!("/v1/campaigns/{id}/impression"), json!({"user_id": "c-1"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = app
        .post(&format!("/v1/campaigns/{id}/purchase"), json!({"user_id": "c-1", "impression_token": token}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[sqlx::test(migrations = "../migrations")]
async fn pausing_stops_serving_on_the_next_request(db: PgPool) {
    let app = TestApp::new(db).await;
    let id = app.live_campaign(spec("Pausable")).await;
    assert_eq!(app.popup_for("c-1").await.map(|p| p.0), Some(id));
    app.admin(Method::POST, &format!("/admin/v1/campaigns/{id}/pause"), Value::Null).await;
    assert_eq!(app.popup_for("c-1").await, None);
    app.admin(Method::POST, &format!("/admin/v1/campaigns/{id}/activate"), Value::Null).await;
    assert_eq!(app.popup_for("c-1").await.map(|p| p.0), Some(id));
}

#[sqlx::test(migrations = "../migrations")]
async fn the_preview_explains_every_skip(db: PgPool) {
    let app = TestApp::new(db).await;
    assert_eq!(app.upload("vip", "c-1\n").await.0, StatusCode::OK);
    let mut vip = spec("VIP only");
    vip["priority"] = json!(9);
    vip["audience"] = json!({"include": {"any_of": ["vip"]}});
    let vip = app.live_campaign(vip).await;
    let mut ios = spec("iOS only");
    ios["priority"] = json!(5);
    ios["rules"] = json!({"platforms": ["ios"]});
    let ios = app.live_campaign(ios).await;
    let fallback = app.live_campaign(spec("Everyone")).await;
    let (_, draft) = app.admin(Method::POST, "/admin/v1/campaigns", spec("Draft")).await;
    let draft = draft["id"].as_i64().unwrap();

    let (status, preview) =
        app.admin(Method::GET, "/admin/v1/preview?user_id=c-2&platform=android", Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(preview["chosen"]["campaign_id"], fallback);
    let reasons: Vec<(i64, Value)> = preview["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["campaign_id"].as_i64().unwrap(), s["reason"].clone()))
        .collect();
    assert_eq!(reasons[0], (vip, json!("not_in_audience")));
    assert_eq!(reasons[1], (ios, json!("rule_mismatch")));
    assert_eq!(preview["skipped"][1]["rule"], "platform");

    let (_, preview) =
        app.admin(Method::GET, "/admin/v1/preview?user_id=c-1&platform=ios", Value::Null).await;
    assert_eq!(preview["chosen"]["campaign_id"], vip);
    let (_, preview) =
        app.admin(Method::GET, "/admin/v1/preview?user_id=c-1&at=2025-06-01T00:00:00Z", Value::Null).await;
    assert_eq!(preview["chosen"], Value::Null, "nothing had started");

    // A draft can be previewed as if it were live.
    let (status, preview) = app
        .admin(Method::GET, &format!("/admin/v1/campaigns/{draft}/preview?user_id=c-2"), Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(
        preview["this_campaign"],
        json!({"shown": false, "campaign_id": draft, "reason": "lower_priority"})
    );
    let (_, preview) =
        app.admin(Method::GET, &format!("/admin/v1/campaigns/{vip}/preview?user_id=c-1"), Value::Null).await;
    assert_eq!(preview["this_campaign"], json!({"shown": true}));
    let (status, _) = app.admin(Method::GET, "/admin/v1/preview", Value::Null).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "user_id is required");
}

#[sqlx::test(migrations = "../migrations")]
async fn after_redis_loses_everything_one_reconcile_heals_it(db: PgPool) {
    // A logical database of its own, so flushing it touches no other test.
    let app = TestApp::with_redis(db, &format!("{}/9", redis_server())).await;
    assert_eq!(app.upload("vip", "c-1\nc-2\n").await.0, StatusCode::OK);
    let mut vip = spec("VIP");
    vip["audience"] = json!({"include": {"any_of": ["vip"]}});
    let id = app.live_campaign(vip).await;
    assert_eq!(app.popup_for("c-1").await.map(|p| p.0), Some(id));

    let _: () = redis::cmd("FLUSHDB").query(&mut app.redis()).unwrap();
    assert_eq!(app.popup_for("c-1").await, None, "nothing to serve from an empty Redis");
    popup_origin::projection::reconcile(&app.state).await.unwrap();
    assert_eq!(app.popup_for("c-1").await.map(|p| p.0), Some(id), "catalog and memberships are back");
    assert_eq!(app.popup_for("c-3").await, None, "and only for members");
}

#[sqlx::test(migrations = "../migrations")]
async fn redis_down_gives_a_quick_503_and_admin_writes_still_land(db: PgPool) {
    // Nothing listens on port 1.
    let app = TestApp::with_redis(db, "redis://127.0.0.1:1").await;
    let started = Instant::now();
    let (status, body) = app.get("/v1/campaigns/popup?user_id=c-1").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["code"], "store_unavailable");
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    let (status, _) = app.get("/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    // Postgres is the source of truth: the write succeeds and waits for the next reconcile.
    let (status, _) = app.admin(Method::POST, "/admin/v1/campaigns", spec("Later")).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = app.get("/healthz").await;
    assert_eq!(status, StatusCode::OK);
}

#[sqlx::test(migrations = "../migrations")]
async fn metrics_count_requests_and_outcomes_off_the_public_port(db: PgPool) {
    let app = TestApp::new(db).await;
    app.popup_for("c-1").await;
    let (status, body) = app.get("/metrics").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not on the public port: {body}");
    let text = &app.metrics().await;
    assert!(text.contains("http_requests_total{route=\"/v1/campaigns/popup\",status=\"204\"}"), "{text}");
    assert!(text.contains("popup_resolves_total{outcome=\"none\"}"), "{text}");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_broken_key_in_redis_is_an_internal_error_not_an_outage(db: PgPool) {
    let app = TestApp::new(db).await;
    app.live_campaign(spec("Any")).await;
    // Something else wrote the customer's hash key as a string: HGETALL fails with WRONGTYPE.
    let key = format!("{}:u:{{c-1}}", app.prefix);
    let _: () = redis::cmd("SET").arg(&key).arg("x").query(&mut app.redis()).unwrap();
    let (status, body) = app.get("/v1/campaigns/popup?user_id=c-1").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(body["error"]["message"], "internal error", "details stay in the log");
    assert!(app.popup_for("c-2").await.is_some(), "other customers are served");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_draft_in_a_time_zone_no_live_campaign_uses_can_be_previewed(db: PgPool) {
    let app = TestApp::new(db).await;
    app.live_campaign(spec("Live everywhere")).await;
    let mut draft = spec("Evenings in New York");
    draft["priority"] = json!(9);
    draft["schedule"]["time_zone"] = json!("America/New_York");
    let every_day = json!(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]);
    draft["schedule"]["windows"] = json!([{"days": every_day, "start": "18:00", "end": "22:00"}]);
    let (status, body) = app.admin(Method::POST, "/admin/v1/campaigns", draft).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_i64().unwrap();
    // 19:00 in New York (EST, UTC-5) and 03:00 there.
    for (at, shown) in [("2026-01-15T00:00:00Z", true), ("2026-01-15T08:00:00Z", false)] {
        let uri = format!("/admin/v1/campaigns/{id}/preview?user_id=c-1&at={at}");
        let (status, preview) = app.admin(Method::GET, &uri, Value::Null).await;
        assert_eq!(status, StatusCode::OK, "{preview}");
        assert_eq!(preview["this_campaign"]["shown"], shown, "{at}: {preview}");
        if !shown {
            assert_eq!(preview["this_campaign"]["reason"], "outside_window");
        }
    }
}

/// The campaign served to `user` with these request headers, or None for 204.
async fn served_with(app: &TestApp, user: &str, headers: &[(&str, &str)]) -> Option<i64> {
    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let mut request = axum::http::Request::get(format!("/v1/campaigns/popup?user_id={user}&country=ID"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = app.router.clone().oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    match status {
        StatusCode::OK => serde_json::from_slice::<Value>(&bytes).unwrap()["campaign_id"].as_i64(),
        StatusCode::NO_CONTENT => None,
        other => panic!("{other}: {}", String::from_utf8_lossy(&bytes)),
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn country_rules_read_the_configured_trusted_header_only(db: PgPool) {
    let db_again = db.clone();
    let app = TestApp::with_config(db, &redis_url(), |config| {
        config.country_header = Some("cf-ipcountry".parse().unwrap());
    })
    .await;
    let mut indonesia = spec("Indonesia");
    indonesia["rules"] = json!({"countries": ["ID"]});
    let id = app.live_campaign(indonesia).await;

    // (headers, served): normalised as the edge normalises the platform's country.
    type Headers<'a> = &'a [(&'a str, &'a str)];
    let cases: &[(Headers, Option<i64>)] = &[
        (&[("CF-IPCountry", "ID")], Some(id)),
        (&[("cf-ipcountry", "id")], Some(id)),
        (&[("CF-IPCountry", " ID ")], Some(id)),
        (&[("CF-IPCountry", "SG")], None),
        (&[("CF-IPCountry", "XX")], None),
        (&[("CF-IPCountry", "IDN")], None),
        // The query's `country=ID` is never read, nor another header.
        (&[], None),
        (&[("X-Country", "ID")], None),
    ];
    for (headers, expected) in cases {
        assert_eq!(served_with(&app, "c-1", headers).await, *expected, "{headers:?}");
    }

    // Without the setting, the header is not trusted: no country, whatever it says.
    drop(app);
    let plain = TestApp::new(db_again).await;
    let mut indonesia = spec("Indonesia again");
    indonesia["rules"] = json!({"countries": ["ID"]});
    plain.live_campaign(indonesia).await;
    assert_eq!(served_with(&plain, "c-1", &[("CF-IPCountry", "ID")]).await, None);
}

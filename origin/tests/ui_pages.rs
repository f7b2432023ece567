//! The dashboard's pages and forms over HTTP, against the real Postgres and Redis: campaigns, segments
//! (upload, line errors, delete refused while used), the simulator's reasons, settings (the daily cap,
//! people, API keys, the audit diff), each as the roles that may and may not use them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use common::ui::{person, Browser};
use common::TestApp;
use popup_core::access::Role;
use popup_origin::db::people::Language;
use serde_json::json;
use sqlx::PgPool;

const MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

fn spec(name: &str, priority: i32, include: serde_json::Value) -> serde_json::Value {
    json!({
        "name": name,
        "priority": priority,
        "schedule": {"start": "2020-01-01T00:00:00Z"},
        "creative": {"title": format!("{name} title"), "body": "Hello"},
        "audience": {"include": include},
    })
}

async fn upload<'a>(browser: &Browser<'a>, name: &str, body: &str) -> common::ui::Page {
    let csrf = browser.csrf.clone();
    browser
        .send(
            Method::POST,
            &format!("/ui/segments/{name}/upload"),
            (Body::from(body.to_string()), "text/csv"),
            &[("x-csrf-token", &csrf)],
        )
        .await
}

#[sqlx::test(migrator = "MIGRATIONS")]
async fn the_campaign_list_filters_searches_and_pages(db: PgPool) {
    let app = TestApp::new(db).await;
    person(&app, "vera@bank.example", Role::Viewer, Language::En).await;
    for n in 0..30 {
        let (status, _) = app
            .admin(Method::POST, "/admin/v1/campaigns", spec(&format!("Promo {n}"), n, json!("everyone")))
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    app.live_campaign(spec("Kartu Platinum", 5, json!("everyone"))).await;
    let browser = Browser::signed_in(&app, "vera@bank.example").await;
    let page = browser.get("/ui/campaigns").await;
    assert!(page.body.contains("Page 1 of 2"), "{}", page.body);
    assert!(page.body.contains("31 campaigns"));
    assert!(page.body.contains("Kartu Platinum"));
    let page = browser.get("/ui/campaigns?status=active").await;
    assert!(page.body.contains("Kartu Platinum") && !page.body.contains("Promo 3<"), "{}", page.body);
    let page = browser.get("/ui/campaigns?q=promo%202").await;
    assert!(page.body.contains("Promo 2<") && page.body.contains("Promo 29") && !page.body.contains("Kartu"));
    let page = browser.get("/ui/campaigns?q=nothing-like-this").await;
    assert!(page.body.contains("No campaign matches this filter."));
    let page = browser.get("/ui/campaigns?page=2").await;
    assert!(page.body.contains("Page 2 of 2"));
    assert_eq!(browser.get("/ui/campaigns?status=bogus").await.status, StatusCode::BAD_REQUEST);
    // A page below 1 is the first, as on every list; a page that is not a number is refused.
    assert!(browser.get("/ui/campaigns?page=0").await.body.contains("Page 1 of 2"));
    assert_eq!(browser.get("/ui/campaigns?page=x").await.status, StatusCode::BAD_REQUEST);
}

#[sqlx::test(migrator = "MIGRATIONS")]
async fn segments_upload_show_their_count_list_line_errors_and_refuse_deletion_while_used(db: PgPool) {
    let app = TestApp::new(db).await;
    person(&app, "ani@bank.example", Role::Editor, Language::En).await;
    person(&app, "vera@bank.example", Role::Viewer, Language::Id).await;
    let editor = Browser::signed_in(&app, "ani@bank.example").await;
    let page = editor.get("/ui/segments").await;
    assert!(page.body.contains("No segments yet."), "{}", page.body);
    assert!(page.body.contains("id=\"segment-upload\""));

    let ids: String = (0..2500).map(|i| format!("c-{i}\n")).collect();
    let answer = upload(&editor, "vip", &format!("customer_id\n{ids}c-1\n")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert!(answer.body.contains("Segment vip now has 2500 members."), "{}", answer.body);
    let page = editor.get("/ui/segments/table").await;
    assert!(page.body.contains("<code>vip</code>") && page.body.contains(">2500<"), "{}", page.body);

    let answer = upload(&editor, "bad", "c-1\nnot an id\nc-2\n{x}\n").await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(answer.body.contains("2 lines cannot be read"), "{}", answer.body);
    assert!(answer.body.contains("line 2:") && answer.body.contains("line 4:"), "{}", answer.body);
    let answer = upload(&editor, "Bad%20Name", "c-1\n").await;
    assert!(answer.body.contains("The name must be"), "{}", answer.body);
    let answer = upload(&editor, "big", &"c-1234567890\n".repeat(6000)).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE, "the test origin takes 64 KiB");

    // The audit names the person.
    let actor: (Option<i64>, String) = sqlx::query_as(
        "SELECT actor_person, actor_name FROM audit_log WHERE entity = 'segment' ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&app.state.db)
    .await
    .unwrap();
    assert!(actor.0.is_some());
    assert_eq!(actor.1, "Editor person");

    let id = app.live_campaign(spec("VIP offer", 1, json!({"any_of": ["vip"]}))).await;
    let page = editor.post_form("/ui/segments/vip/delete", &[]).await;
    assert_eq!(page.status, StatusCode::CONFLICT);
    assert!(page.body.contains(&format!("these campaigns use it: VIP offer (#{id})")), "{}", page.body);
    assert!(
        page.body.contains(&format!("href=\"/ui/campaigns/{id}\">VIP offer</a>")),
        "the table names its users"
    );

    // A viewer sees no upload form nor delete button, and a forged delete is refused.
    let viewer = Browser::signed_in(&app, "vera@bank.example").await;
    let page = viewer.get("/ui/segments").await;
    assert!(
        page.body.contains("Segmen")
            && !page.body.contains("id=\"segment-upload\"")
            && !page.body.contains("Hapus")
    );
    assert_eq!(viewer.post_form("/ui/segments/vip/delete", &[]).await.status, StatusCode::FORBIDDEN);
    assert_eq!(upload(&viewer, "vip", "c-9\n").await.status, StatusCode::FORBIDDEN);

    app.admin(Method::POST, &format!("/admin/v1/campaigns/{id}/end"), serde_json::Value::Null).await;
    let page = editor.post_form("/ui/segments/vip/delete", &[]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let page = editor.get(page.header("location")).await;
    assert!(page.body.contains("Segment vip deleted."), "{}", page.body);
}

#[sqlx::test(migrator = "MIGRATIONS")]
async fn the_simulator_shows_the_popup_and_why_not_the_others_in_both_languages(db: PgPool) {
    let app = TestApp::new(db).await;
    person(&app, "vera@bank.example", Role::Viewer, Language::En).await;
    person(&app, "sari@bank.example", Role::Viewer, Language::Id).await;
    let (status, _) = app.upload("vip", "c-1\nc-2\n").await;
    assert_eq!(status, StatusCode::OK);
    let vip = app.live_campaign(spec("VIP offer", 10, json!({"any_of": ["vip"]}))).await;
    let mut ios = spec("iOS only", 5, json!("everyone"));
    ios["rules"] = json!({"platforms": ["ios"]});
    app.live_campaign(ios).await;
    app.live_campaign(spec("For everyone", 1, json!("everyone"))).await;

    let browser = Browser::signed_in(&app, "vera@bank.example").await;
    let page = browser.get("/ui/simulator").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("id=\"simulator-shown\""), "nothing simulated before a customer is given");

    let member = browser.get("/ui/simulator?user_id=c-1&platform=android").await;
    assert!(
        member.body.contains(&format!("href=\"/ui/campaigns/{vip}\">VIP offer</a> · variant default")),
        "{}",
        member.body
    );
    assert!(member.body.contains("VIP offer title"), "the popup as the app shows it");
    assert!(member.body.contains("A campaign of higher priority is shown instead."));

    let outsider = browser.get("/ui/simulator?user_id=c-9&platform=android").await;
    assert!(outsider.body.contains("The customer is not in the segments it targets."), "{}", outsider.body);
    assert!(outsider.body.contains("For everyone</a> · variant default"), "{}", outsider.body);
    assert!(outsider.body.contains("Meant for another platform"), "{}", outsider.body);

    let past = browser.get("/ui/simulator?user_id=c-1&at=2019-06-01T10:00").await;
    assert!(past.body.contains("Has not started yet at this time."), "{}", past.body);
    assert!(past.body.contains("No popup."));

    let bad = browser.get("/ui/simulator?user_id=c-1&at=yesterday").await;
    assert!(bad.body.contains("The time cannot be read."));
    let bad = browser.get("/ui/simulator?user_id=c-1&app_version=banana").await;
    assert!(bad.body.contains("Check the fields: app_version"), "{}", bad.body);

    let indonesian = Browser::signed_in(&app, "sari@bank.example").await;
    let page = indonesian.get("/ui/simulator?user_id=c-9").await;
    assert!(page.body.contains("Nasabah tidak termasuk segmen sasarannya."), "{}", page.body);
    assert!(page.body.contains("Ditujukan untuk platform lain"));
}

#[sqlx::test(migrator = "MIGRATIONS")]
async fn settings_the_cap_people_keys_and_the_audit_diff(db: PgPool) {
    let app = TestApp::new(db).await;
    person(&app, "adi@bank.example", Role::Admin, Language::En).await;
    person(&app, "ani@bank.example", Role::Editor, Language::En).await;
    person(&app, "vera@bank.example", Role::Viewer, Language::En).await;
    let admin = Browser::signed_in(&app, "adi@bank.example").await;
    let editor = Browser::signed_in(&app, "ani@bank.example").await;
    let viewer = Browser::signed_in(&app, "vera@bank.example").await;

    // The cap: editors set it, viewers only read it.
    let answer = editor.post_form("/ui/settings/cap", &[("max_popups_per_day", "3")]).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    let (_, settings) = app.admin(Method::GET, "/admin/v1/settings", serde_json::Value::Null).await;
    assert_eq!(settings["max_popups_per_day"], 3);
    for bad in ["0", "101", "three"] {
        let page = editor.post_form("/ui/settings/cap", &[("max_popups_per_day", bad)]).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert!(page.body.contains("a whole number from 1 to 100"), "{bad}");
    }
    let page = viewer.get("/ui/settings").await;
    assert!(page.body.contains("3 popups per customer per day"), "{}", page.body);
    assert!(!page.body.contains("action=\"/ui/settings/cap\""));
    assert_eq!(
        viewer.post_form("/ui/settings/cap", &[("max_popups_per_day", "5")]).await.status,
        StatusCode::FORBIDDEN
    );

    // People and keys: admins only.
    let page = editor.get("/ui/settings").await;
    assert!(!page.body.contains("id=\"people\"") && !page.body.contains("id=\"api-keys\""));
    let forged = editor
        .post_form(
            "/ui/settings/people",
            &[
                ("email", "x@bank.example"),
                ("display_name", "X"),
                ("role", "admin"),
                ("language", "en"),
                ("password", "a long enough password"),
            ],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(
        editor.post_form("/ui/settings/keys", &[("name", "k"), ("role", "admin")]).await.status,
        StatusCode::FORBIDDEN
    );

    let answer = admin
        .post_form(
            "/ui/settings/people",
            &[
                ("email", "budi@bank.example"),
                ("display_name", "Budi"),
                ("role", "viewer"),
                ("language", "id"),
                ("password", common::ui::PASSWORD),
            ],
        )
        .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    let page = admin
        .post_form(
            "/ui/settings/people",
            &[
                ("email", "BUDI@bank.example"),
                ("display_name", "Budi 2"),
                ("role", "viewer"),
                ("language", "id"),
                ("password", "budi's long password"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::CONFLICT);
    assert!(page.body.contains("exists already"));
    let page = admin
        .post_form(
            "/ui/settings/people",
            &[
                ("email", "c@bank.example"),
                ("display_name", "C"),
                ("role", "viewer"),
                ("language", "en"),
                ("password", "short"),
            ],
        )
        .await;
    assert!(page.body.contains("at least 12 characters"));
    let budi = Browser::signed_in(&app, "budi@bank.example").await;
    assert!(budi.get("/ui/campaigns").await.body.contains("Kampanye"));
    let budi_id: i64 = sqlx::query_scalar("SELECT id FROM people WHERE email = 'budi@bank.example'")
        .fetch_one(&app.state.db)
        .await
        .unwrap();
    let answer = admin.post_form(&format!("/ui/settings/people/{budi_id}"), &[("role", "editor")]).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert!(budi.get("/ui/segments").await.body.contains("id=\"segment-upload\""), "now an editor");
    let answer = admin
        .post_form(&format!("/ui/settings/people/{budi_id}"), &[("password", "a brand new password")])
        .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(budi.get("/ui/campaigns").await.status, StatusCode::SEE_OTHER, "a reset ends the sessions");
    let adi_id: i64 = sqlx::query_scalar("SELECT id FROM people WHERE email = 'adi@bank.example'")
        .fetch_one(&app.state.db)
        .await
        .unwrap();
    let page = admin.post_form(&format!("/ui/settings/people/{adi_id}"), &[("disabled", "true")]).await;
    assert_eq!(page.status, StatusCode::CONFLICT, "an admin cannot lock themselves out");

    let page =
        admin.post_form("/ui/settings/keys", &[("name", "core-banking"), ("role", "conversions")]).await;
    assert_eq!(page.status, StatusCode::OK);
    let at = page.body.find("id=\"new-key\"").unwrap();
    let key = &page.body[at..];
    let key = &key[key.find("<code>").unwrap() + 6..key.find("</code>").unwrap()];
    let (status, _) = app.as_key(key, Method::GET, "/admin/v1/campaigns", serde_json::Value::Null).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a conversions key, usable and limited to its role");
    let key_id: i64 = sqlx::query_scalar("SELECT id FROM api_keys WHERE name = 'core-banking'")
        .fetch_one(&app.state.db)
        .await
        .unwrap();
    assert_eq!(
        admin.post_form(&format!("/ui/settings/keys/{key_id}/revoke"), &[]).await.status,
        StatusCode::SEE_OTHER
    );
    let (status, _) = app.as_key(key, Method::GET, "/admin/v1/campaigns", serde_json::Value::Null).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The audit log, with the diff of the cap's change and the person named.
    editor.post_form("/ui/settings/cap", &[("max_popups_per_day", "4")]).await;
    let page = viewer.get("/ui/settings").await;
    assert!(page.body.contains("<span class=\"del\">- max_popups_per_day: 3</span>"), "{}", page.body);
    assert!(page.body.contains("<span class=\"add\">+ max_popups_per_day: 4</span>"));
    assert!(page.body.contains("Editor person <small>person</small>"));
}

#[sqlx::test(migrator = "MIGRATIONS")]
async fn stats_show_the_chart_data_and_the_tables_of_posted_events(db: PgPool) {
    let app = TestApp::new(db).await;
    person(&app, "vera@bank.example", Role::Viewer, Language::En).await;
    let id = app.live_campaign(spec("Kartu Platinum", 1, json!("everyone"))).await;
    let browser = Browser::signed_in(&app, "vera@bank.example").await;
    let page = browser.get(&format!("/ui/stats?campaign={id}")).await;
    assert!(page.body.contains("id=\"stats-empty\""), "no events yet: {}", page.body);

    for user in ["c-1", "c-2", "c-3"] {
        let (campaign, token) = app.popup_for(user).await.unwrap();
        assert_eq!(app.impression(campaign, user, &token).await, StatusCode::ACCEPTED);
        if user == "c-1" {
            let (status, _) = app
                .post(
                    &format!("/v1/campaigns/{campaign}/click"),
                    json!({"user_id": user, "impression_token": token}),
                )
                .await;
            assert_eq!(status, StatusCode::ACCEPTED);
        }
    }
    let settings = popup_origin::ingest::IngestSettings {
        batch: 100,
        claim_idle: std::time::Duration::from_secs(60),
        block: std::time::Duration::from_millis(50),
        retention_days: 30,
    };
    let mut ingester = popup_origin::ingest::Ingester::connect(
        app.state.clone(),
        &common::redis_url(),
        "ui".into(),
        settings,
    )
    .await
    .unwrap();
    for _ in 0..100 {
        ingester.step().await.unwrap();
        let stored: i64 =
            sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&app.state.db).await.unwrap();
        if stored == 4 {
            break;
        }
    }

    let page = browser.get(&format!("/ui/stats?campaign={id}&metric=click_through_rate")).await;
    assert_eq!(page.status, StatusCode::OK);
    let totals = &page.body[page.body.find("id=\"stats-totals\"").expect("the totals table")..];
    assert!(totals.contains("<td>default</td><td class=\"num\">3</td><td class=\"num\">3</td><td class=\"num\">1</td><td class=\"num\">33.3%</td>"), "{totals}");
    assert!(page.body.contains("id=\"stats-days\""));
    assert!(
        page.body.contains("data-chart=\"{&#34;metric&#34;:&#34;click_through_rate&#34;")
            || page.body.contains("data-chart=\"{&quot;metric&quot;"),
        "{}",
        page.body
    );
    assert!(page.body.contains("uPlot.iife.min.js"));

    let page = browser.get(&format!("/ui/stats?campaign={id}&from=2026-02-10&to=2026-01-01")).await;
    assert!(page.body.contains("Check the range: from"), "{}", page.body);
    let page = browser.get("/ui/stats").await;
    assert!(page.body.contains("Choose a campaign") && !page.body.contains("stats-totals"));
}

#[sqlx::test(migrator = "MIGRATIONS")]
async fn message_campaigns_are_created_checked_and_sent_to_a_segment(db: PgPool) {
    let app = TestApp::new(db).await;
    person(&app, "ani@bank.example", Role::Editor, Language::En).await;
    person(&app, "vera@bank.example", Role::Viewer, Language::En).await;
    let editor = Browser::signed_in(&app, "ani@bank.example").await;
    assert!(editor.get("/ui/messaging").await.body.contains("No message campaigns yet."));

    let page = editor
        .post_form(
            "/ui/messaging/campaigns",
            &[("name", "Promo"), ("channel", "sms"), ("base_template", "Hi {nickname}")],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("Check the fields: base_template"), "{}", page.body);
    let answer = editor
        .post_form(
            "/ui/messaging/campaigns",
            &[("name", "Promo"), ("channel", "sms"), ("base_template", "Hi {first_name|Nasabah}")],
        )
        .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);

    let (status, body) = app
        .admin(
            Method::POST,
            "/admin/v1/customers",
            json!({"phone": "+6281100000001", "external_id": "c-1", "first_name": "Ani"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(app.upload("vip", "c-1\nc-2\n").await.0, StatusCode::OK);
    let id: i64 =
        sqlx::query_scalar("SELECT id FROM message_campaigns").fetch_one(&app.state.db).await.unwrap();
    let page = editor
        .post_form(
            &format!("/ui/messaging/campaigns/{id}/send"),
            &[("to", "segment"), ("recipients", "nope")],
        )
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    let page = editor
        .post_form(&format!("/ui/messaging/campaigns/{id}/send"), &[("to", "segment"), ("recipients", "vip")])
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("1 messages are queued for delivery."), "{}", page.body);
    assert!(page.body.contains("0 of 1"), "the delivery progress");

    let viewer = Browser::signed_in(&app, "vera@bank.example").await;
    let page = viewer.get("/ui/messaging").await;
    assert!(page.body.contains("Promo") && !page.body.contains("id=\"new-message-campaign\""));
    let forged = viewer
        .post_form("/ui/messaging/campaigns", &[("name", "X"), ("channel", "sms"), ("base_template", "Hi")])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
}

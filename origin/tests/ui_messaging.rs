//! The dashboard's messaging tabs over HTTP, against the real Postgres: the customer import (counts, row
//! errors, nothing kept from a bad file), the sample a template renders for a customer, sending to
//! customer ids with the delivery table refreshing itself, and dead letters requeued; each as the roles
//! that may and may not use them, in English and Indonesian.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::body::Body;
use axum::http::{header, Method, StatusCode};
use common::ui::{person, Browser, Page};
use common::TestApp;
use popup_core::access::Role;
use popup_origin::db::people::Language;
use sqlx::PgPool;

const MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

async fn import(browser: &Browser<'_>, csv: &str) -> Page {
    let csrf = browser.csrf.clone();
    browser
        .send(
            Method::POST,
            "/ui/messaging/customers/import",
            (Body::from(csv.to_string()), "text/csv"),
            &[("x-csrf-token", &csrf)],
        )
        .await
}

async fn customer_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM customers").fetch_one(&app.state.db).await.unwrap()
}

const GOOD_CSV: &str = "phone,external_id,first_name,location\n\
                        +6281100000001,cif-1,Ani,Jakarta\n\
                        +6281100000002,cif-2,Budi,Bandung\n";

#[sqlx::test(migrator = "MIGRATIONS")]
async fn customers_are_imported_all_or_none_with_row_errors_and_found_by_bank_id(db: PgPool) {
    let app = TestApp::new(db).await;
    person(&app, "ani@bank.example", Role::Editor, Language::En).await;
    person(&app, "sari@bank.example", Role::Editor, Language::Id).await;
    person(&app, "vera@bank.example", Role::Viewer, Language::En).await;
    let editor = Browser::signed_in(&app, "ani@bank.example").await;

    let page = editor.get("/ui/messaging/customers").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("No customers yet.") && page.body.contains("id=\"customer-import\""));

    let bad = "phone,first_name\n+6281100000001,Ani\n0811,Budi\n+6281100000003,Citra\nnope,Dewi\n";
    let answer = import(&editor, bad).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", answer.body);
    assert!(answer.body.contains("2 rows need fixing; nothing was imported."), "{}", answer.body);
    assert!(
        answer.body.contains("line 3: phone:") && answer.body.contains("line 5: phone:"),
        "{}",
        answer.body
    );
    assert_eq!(customer_count(&app).await, 0, "a bad row keeps the whole file out");

    let answer = import(&editor, "name,phone\nAni,+6281100000001\n").await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(answer.body.contains("The header row cannot be used") && answer.body.contains("unknown column"));

    let answer = import(&editor, GOOD_CSV).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert!(answer.body.contains("2 customers added, 0 updated.") && answer.body.contains("2 rows read."));
    let answer = import(&editor, "phone,preferred_product\n+6281100000002,Platinum\n").await;
    assert!(answer.body.contains("0 customers added, 1 updated."), "{}", answer.body);
    assert_eq!(customer_count(&app).await, 2);

    let page = editor.get("/ui/messaging/customers").await;
    assert!(
        page.body.contains("cif-1") && page.body.contains("Platinum") && page.body.contains("2 customers")
    );
    let page = editor.get("/ui/messaging/customers?q=cif-2").await;
    assert!(page.body.contains("Budi") && !page.body.contains("Ani"), "{}", page.body);
    let page = editor.get("/ui/messaging/customers?q=%2B6281100000001").await;
    assert!(page.body.contains("Ani") && !page.body.contains("Budi"));
    let page = editor.get("/ui/messaging/customers?q=cif-9").await;
    assert!(page.body.contains("No customer has the id or phone cif-9."));
    let table = editor.get("/ui/messaging/customers/table").await;
    assert!(table.body.starts_with("<div id=\"customer-table\"") && !table.body.contains("<html"));

    let indonesian = Browser::signed_in(&app, "sari@bank.example").await;
    let answer = import(&indonesian, "phone\n0811\n").await;
    assert!(answer.body.contains("1 baris perlu diperbaiki; tidak ada yang diimpor."), "{}", answer.body);
    assert!(indonesian.get("/ui/messaging/customers").await.body.contains("Impor nasabah"));

    let viewer = Browser::signed_in(&app, "vera@bank.example").await;
    let page = viewer.get("/ui/messaging/customers").await;
    assert!(page.body.contains("cif-1") && !page.body.contains("id=\"customer-import\""));
    assert_eq!(import(&viewer, GOOD_CSV).await.status, StatusCode::FORBIDDEN);
    let no_csrf = editor
        .send(Method::POST, "/ui/messaging/customers/import", (Body::from(GOOD_CSV), "text/csv"), &[])
        .await;
    assert_eq!(no_csrf.status, StatusCode::FORBIDDEN, "an import without the CSRF token is refused");
}

#[sqlx::test(migrator = "MIGRATIONS")]
async fn the_sample_renders_the_template_for_the_customer_named(db: PgPool) {
    let app = TestApp::new(db).await;
    person(&app, "ani@bank.example", Role::Editor, Language::En).await;
    let editor = Browser::signed_in(&app, "ani@bank.example").await;
    assert_eq!(import(&editor, GOOD_CSV).await.status, StatusCode::OK);
    let template = "Hi {first_name|Nasabah}, see us in {location|your city}";

    let sample = |customer: &'static str, template: &'static str| {
        let editor = &editor;
        async move {
            editor
                .post_form(
                    "/ui/messaging/sample",
                    &[("base_template", template), ("sample_customer", customer)],
                )
                .await
        }
    };
    let page = sample("cif-2", template).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Hi Budi, see us in Bandung"), "{}", page.body);
    assert!(page.body.contains("As Budi (+6281100000002) will read it"), "{}", page.body);
    let page = sample("+6281100000001", template).await;
    assert!(page.body.contains("Hi Ani, see us in Jakarta"));
    let page = sample("", template).await;
    assert!(
        page.body.contains("Hi Nasabah, see us in your city") && page.body.contains("With every fallback")
    );
    let page = sample("cif-404", template).await;
    assert!(page.body.contains("No customer has the id or phone cif-404."));
    let page = sample("cif-1", "Hi {nickname}").await;
    assert!(page.body.contains("unknown placeholder {nickname} at column 4"), "{}", page.body);
    let page = sample("cif-1", "   ").await;
    assert!(page.body.contains("Type a message"));
    let escaped = sample("", "<script>alert(1)</script>").await;
    assert!(escaped.body.contains("alert(1)") && !escaped.body.contains("<script>"), "{}", escaped.body);
}

#[sqlx::test(migrator = "MIGRATIONS")]
async fn a_campaign_is_sent_to_customer_ids_and_its_table_refreshes_while_in_flight(db: PgPool) {
    let app = TestApp::new(db).await;
    person(&app, "ani@bank.example", Role::Editor, Language::En).await;
    let editor = Browser::signed_in(&app, "ani@bank.example").await;
    assert_eq!(import(&editor, GOOD_CSV).await.status, StatusCode::OK);
    let ids: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM customers ORDER BY id").fetch_all(&app.state.db).await.unwrap();
    let answer = editor
        .post_form(
            "/ui/messaging/campaigns",
            &[("name", "Promo"), ("channel", "whatsapp"), ("base_template", "Hi {first_name|Nasabah}")],
        )
        .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    let campaign: i64 =
        sqlx::query_scalar("SELECT id FROM message_campaigns").fetch_one(&app.state.db).await.unwrap();
    let send = format!("/ui/messaging/campaigns/{campaign}/send");

    let page = editor.post_form(&send, &[("to", "customers"), ("recipients", "1, x, 0")]).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("customer_ids: not customer ids: x, 0"), "{}", page.body);
    let page = editor.post_form(&send, &[("to", "customers"), ("recipients", "999999")]).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.body.contains("Not found: customer"));
    let page = editor.post_form(&send, &[("to", "nobody"), ("recipients", "1")]).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);

    let recipients = format!("{}\n{}", ids[0], ids[1]);
    let page = editor.post_form(&send, &[("to", "customers"), ("recipients", &recipients)]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("2 messages are queued for delivery."));
    assert!(page.body.contains("0 of 2") && page.body.contains("hx-trigger=\"every 2s\""));
    let bodies: Vec<String> = sqlx::query_scalar("SELECT body FROM messages ORDER BY customer_id")
        .fetch_all(&app.state.db)
        .await
        .unwrap();
    assert_eq!(bodies, ["Hi Ani", "Hi Budi"]);
    let again = editor.post_form(&send, &[("to", "customers"), ("recipients", &recipients)]).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "a campaign is sent once");

    sqlx::query("UPDATE messages SET status = 'sent', sent_at = now()").execute(&app.state.db).await.unwrap();
    let table = editor.get("/ui/messaging/table").await;
    assert!(table.body.starts_with("<div id=\"message-campaigns-table\""), "a fragment: {}", table.body);
    assert!(table.body.contains("2 of 2") && table.body.contains("hx-trigger=\"refresh\""), "{}", table.body);
    assert!(!table.body.contains("every 2s"), "nothing in flight, no polling");
}

#[sqlx::test(migrator = "MIGRATIONS")]
async fn dead_letters_are_listed_with_their_error_and_requeued(db: PgPool) {
    let app = TestApp::new(db).await;
    person(&app, "ani@bank.example", Role::Editor, Language::En).await;
    person(&app, "vera@bank.example", Role::Viewer, Language::Id).await;
    let editor = Browser::signed_in(&app, "ani@bank.example").await;
    assert!(editor.get("/ui/messaging/dead").await.body.contains("No dead letters"));
    assert_eq!(import(&editor, GOOD_CSV).await.status, StatusCode::OK);
    editor
        .post_form(
            "/ui/messaging/campaigns",
            &[("name", "Promo"), ("channel", "sms"), ("base_template", "Hi {first_name|Nasabah}")],
        )
        .await;
    let campaign: i64 =
        sqlx::query_scalar("SELECT id FROM message_campaigns").fetch_one(&app.state.db).await.unwrap();
    let ids: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM customers ORDER BY id").fetch_all(&app.state.db).await.unwrap();
    let recipients = format!("{},{}", ids[0], ids[1]);
    let page = editor
        .post_form(
            &format!("/ui/messaging/campaigns/{campaign}/send"),
            &[("to", "customers"), ("recipients", &recipients)],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK);
    sqlx::query(
        "UPDATE messages SET status = 'failed', attempts = 5, last_error = 'provider: 21211 invalid number'",
    )
    .execute(&app.state.db)
    .await
    .unwrap();
    let messages: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM messages ORDER BY id").fetch_all(&app.state.db).await.unwrap();

    let page = editor.get("/ui/messaging/dead").await;
    assert!(page.body.contains("provider: 21211 invalid number") && page.body.contains("2 dead letters"));
    assert!(page.body.contains(&format!("name=\"id\" value=\"{}\"", messages[0])));
    let page = editor.get(&format!("/ui/messaging/dead?campaign={campaign}")).await;
    assert!(page.body.contains("Campaign Promo") && page.body.contains("Requeue all 2"));
    assert_eq!(editor.get("/ui/messaging/dead?campaign=424242").await.status, StatusCode::NOT_FOUND);
    assert_eq!(editor.get("/ui/messaging/dead?campaign=x").await.status, StatusCode::BAD_REQUEST);

    let first = messages[0].to_string();
    let answer = editor.post_form("/ui/messaging/dead/requeue", &[("id", &first)]).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(answer.headers[header::LOCATION], "/ui/messaging/dead?requeued=1");
    let statuses: Vec<String> =
        sqlx::query_scalar("SELECT status FROM messages ORDER BY id").fetch_all(&app.state.db).await.unwrap();
    assert_eq!(statuses, ["pending", "failed"]);
    assert!(editor.get("/ui/messaging/dead?requeued=1").await.body.contains("1 messages are back in line"));

    let viewer = Browser::signed_in(&app, "vera@bank.example").await;
    let page = viewer.get("/ui/messaging/dead").await;
    assert!(page.body.contains("1 pesan gagal") && !page.body.contains("type=\"checkbox\""), "{}", page.body);
    let forged = viewer.post_form("/ui/messaging/dead/requeue", &[("campaign", &campaign.to_string())]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);

    let none = editor.post_form("/ui/messaging/dead/requeue", &[]).await;
    assert_eq!(none.status, StatusCode::BAD_REQUEST);
    assert!(none.body.contains("Choose at least one message"));
    let answer = editor.post_form("/ui/messaging/dead/requeue", &[("campaign", &campaign.to_string())]).await;
    assert_eq!(
        answer.headers[header::LOCATION],
        format!("/ui/messaging/dead?requeued=1&campaign={campaign}")
    );
    let failed: i64 = sqlx::query_scalar("SELECT count(*) FROM messages WHERE status = 'failed'")
        .fetch_one(&app.state.db)
        .await
        .unwrap();
    assert_eq!(failed, 0);
    let audits: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'requeue'")
        .fetch_one(&app.state.db)
        .await
        .unwrap();
    assert_eq!(audits, 2, "each requeue is audited");
}

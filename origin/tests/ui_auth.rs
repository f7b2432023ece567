//! The dashboard's accounts over HTTP, against the real Postgres: sign-in and its throttling, sessions and
//! their expiry, CSRF refusals, roles (a viewer sees no write button, a forged write gets 403), the
//! security headers, and English and Indonesian.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use axum::http::{header, Method, StatusCode};
use common::ui::{form, person, Browser, PASSWORD};
use common::TestApp;
use popup_core::access::Role;
use popup_origin::db::people::Language;
use sqlx::PgPool;

const MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

#[sqlx::test(migrator = "MIGRATIONS")]
async fn pages_need_a_session_and_sign_in_comes_back_to_them(db: PgPool) {
    let app = TestApp::new(db).await;
    person(&app, "Ani@Bank.example", Role::Editor, Language::En).await;
    let browser = Browser::new(&app);
    let page = browser.get("/ui/campaigns?page=2").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.header("location"), "/ui/signin?next=/ui/campaigns%3Fpage%3D2");
    assert_eq!(browser.get("/").await.header("location"), "/ui/");
    assert_eq!(browser.get("/ui/").await.header("location"), "/ui/campaigns");

    let signin = browser.get("/ui/signin?next=/ui/segments").await;
    assert_eq!(signin.status, StatusCode::OK);
    assert!(signin.body.contains("name=\"next\" value=\"/ui/segments\""), "{}", signin.body);

    // The email matches whatever its case.
    let mut browser = Browser::new(&app);
    let body = serde_urlencoded::to_string([
        ("email", "ani@bank.EXAMPLE"),
        ("password", PASSWORD),
        ("next", "/ui/segments"),
    ])
    .unwrap();
    let answer = browser.send(Method::POST, "/ui/signin", form(body), &[]).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    assert_eq!(answer.header("location"), "/ui/segments");
    let cookie = answer
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|v| v.contains("popup_session="))
        .unwrap();
    assert!(cookie.starts_with("__Host-popup_session="), "{cookie}");
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    browser.cookie = Some(cookie.split(';').next().unwrap().to_string());
    let page = browser.get("/ui/campaigns").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Editor person"), "the person's name is shown");

    // A next that leaves the dashboard is ignored.
    let other = Browser::new(&app);
    let body = serde_urlencoded::to_string([
        ("email", "ani@bank.example"),
        ("password", PASSWORD),
        ("next", "//evil.example/"),
    ])
    .unwrap();
    let answer = other.send(Method::POST, "/ui/signin", form(body), &[]).await;
    assert_eq!(answer.header("location"), "/ui/campaigns");
}

#[sqlx::test(migrator = "MIGRATIONS")]
async fn a_wrong_password_or_an_unknown_or_disabled_account_is_refused_alike(db: PgPool) {
    let app = TestApp::new(db).await;
    let ani = person(&app, "ani@bank.example", Role::Editor, Language::En).await;
    let mut browser = Browser::new(&app);
    for (email, password) in [("ani@bank.example", "wrong password 123"), ("nobody@bank.example", PASSWORD)] {
        let page = browser.sign_in(email, password).await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
        assert!(page.body.contains("Wrong email or password."), "{}", page.body);
        assert!(browser.cookie.is_none());
    }
    // Disabling ends the sessions and refuses the next sign-in.
    let signed_in = Browser::signed_in(&app, "ani@bank.example").await;
    let change = popup_origin::db::people::Change { disabled: Some(true), ..Default::default() };
    popup_origin::db::people::change(
        &app.state.db,
        &popup_origin::db::audit::Actor::system(),
        ani.id,
        &change,
    )
    .await
    .unwrap();
    assert_eq!(signed_in.get("/ui/campaigns").await.status, StatusCode::SEE_OTHER);
    assert_eq!(
        Browser::new(&app).sign_in("ani@bank.example", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[sqlx::test(migrator = "MIGRATIONS")]
async fn sign_in_is_throttled_per_account_and_per_address(db: PgPool) {
    let app = TestApp::new(db).await;
    person(&app, "ani@bank.example", Role::Editor, Language::En).await;
    person(&app, "budi@bank.example", Role::Editor, Language::En).await;
    let mut browser = Browser::new(&app);
    for _ in 0..5 {
        assert_eq!(
            browser.sign_in("ani@bank.example", "wrong password 123").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    // The sixth, even with the right password, waits.
    let page = browser.sign_in("ani@bank.example", PASSWORD).await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS, "{}", page.body);
    let retry: u64 = page.header("retry-after").parse().unwrap();
    assert!((850..=900).contains(&retry), "about 15 minutes: {retry}");
    assert!(page.body.contains("Too many failed sign-ins"), "{}", page.body);
    assert!(browser.cookie.is_none());
    // Every request of this browser comes from the same address, which is now held back too.
    assert_eq!(browser.sign_in("budi@bank.example", PASSWORD).await.status, StatusCode::TOO_MANY_REQUESTS);

    // Per address: failures against different accounts from one address add up.
    let from = |ip: [u8; 4]| ConnectInfo(SocketAddr::from((ip, 40000)));
    let attempt = |email: &'static str, password: &'static str, ip: [u8; 4]| {
        let router = app.router.clone();
        async move {
            use tower::ServiceExt;
            let body = serde_urlencoded::to_string([("email", email), ("password", password)]).unwrap();
            let mut request = axum::http::Request::post("/ui/signin")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(axum::body::Body::from(body))
                .unwrap();
            request.extensions_mut().insert(from(ip));
            router.oneshot(request).await.unwrap().status()
        }
    };
    for n in 0..5 {
        let email =
            ["c1@bank.example", "c2@bank.example", "c3@bank.example", "c4@bank.example", "c5@bank.example"]
                [n];
        assert_eq!(attempt(email, "wrong password 123", [10, 0, 0, 9]).await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(attempt("budi@bank.example", PASSWORD, [10, 0, 0, 9]).await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(attempt("budi@bank.example", PASSWORD, [10, 0, 0, 10]).await, StatusCode::SEE_OTHER);
}

#[sqlx::test(migrator = "MIGRATIONS")]
async fn sessions_end_when_idle_at_their_absolute_end_and_at_sign_out(db: PgPool) {
    let app = TestApp::new(db).await;
    person(&app, "ani@bank.example", Role::Editor, Language::En).await;

    let browser = Browser::signed_in(&app, "ani@bank.example").await;
    sqlx::query("UPDATE sessions SET last_seen_at = now() - interval '31 minutes'")
        .execute(&app.state.db)
        .await
        .unwrap();
    let page = browser.get("/ui/campaigns").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "idle for longer than 30 minutes");
    assert!(page.header("location").starts_with("/ui/signin"));

    let browser = Browser::signed_in(&app, "ani@bank.example").await;
    sqlx::query("UPDATE sessions SET last_seen_at = now() - interval '29 minutes'")
        .execute(&app.state.db)
        .await
        .unwrap();
    assert_eq!(browser.get("/ui/campaigns").await.status, StatusCode::OK, "29 minutes idle is still open");
    sqlx::query("UPDATE sessions SET expires_at = now() - interval '1 second'")
        .execute(&app.state.db)
        .await
        .unwrap();
    assert_eq!(browser.get("/ui/campaigns").await.status, StatusCode::SEE_OTHER, "past its absolute end");

    let browser = Browser::signed_in(&app, "ani@bank.example").await;
    let answer = browser.post_form("/ui/signout", &[]).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert!(answer.header("set-cookie").contains("Max-Age=0"));
    assert_eq!(
        browser.get("/ui/campaigns").await.status,
        StatusCode::SEE_OTHER,
        "the old cookie opens nothing"
    );
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sessions").fetch_one(&app.state.db).await.unwrap();
    assert_eq!(stored, 0, "signed out, and the expired sessions were removed at the last sign-in");

    let browser = Browser::signed_in(&app, "ani@bank.example").await;
    let token = browser.cookie.as_ref().unwrap().split_once('=').unwrap().1.to_string();
    let raw: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sessions WHERE token_hash = convert_to($1, 'UTF8')")
            .bind(&token)
            .fetch_one(&app.state.db)
            .await
            .unwrap();
    assert_eq!(raw, 0, "the token itself is never stored");
}

#[sqlx::test(migrator = "MIGRATIONS")]
async fn writes_without_the_csrf_token_or_from_another_site_are_refused(db: PgPool) {
    let app = TestApp::new(db).await;
    person(&app, "ani@bank.example", Role::Editor, Language::En).await;
    let browser = Browser::signed_in(&app, "ani@bank.example").await;
    let good = browser.csrf.clone();

    type Pairs<'a> = Vec<(&'a str, &'a str)>;
    let cases: Vec<(Pairs, Pairs, &str)> = vec![
        (vec![], vec![], "no token"),
        (vec![("csrf", "forged")], vec![], "a wrong token in the form"),
        (vec![], vec![("x-csrf-token", "forged")], "a wrong token in the header"),
        (vec![("csrf", &good)], vec![("origin", "https://evil.example")], "another origin"),
        (vec![("csrf", &good)], vec![("sec-fetch-site", "cross-site")], "another site"),
    ];
    for (fields, headers, why) in cases {
        let body = serde_urlencoded::to_string(&fields).unwrap();
        let page = browser.send(Method::POST, "/ui/language", form(body), &headers).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{why}");
        assert!(page.body.contains("did not come from a page of the dashboard"), "{why}: {}", page.body);
    }
    // The same request with the token (form or header) and our own origin passes.
    let body = serde_urlencoded::to_string([("csrf", good.as_str()), ("lang", "id")]).unwrap();
    let page = browser
        .send(
            Method::POST,
            "/ui/language",
            form(body),
            &[("origin", "https://backoffice.example"), ("sec-fetch-site", "same-origin")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let body = serde_urlencoded::to_string([("lang", "en")]).unwrap();
    let page = browser.send(Method::POST, "/ui/language", form(body), &[("x-csrf-token", &good)]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    // A write without a session is refused, not redirected.
    let page = Browser::new(&app).post_form("/ui/language", &[("lang", "id")]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
}

#[sqlx::test(migrator = "MIGRATIONS")]
async fn a_viewer_sees_no_write_button_and_a_forged_write_is_refused(db: PgPool) {
    let app = TestApp::new(db).await;
    person(&app, "vera@bank.example", Role::Viewer, Language::En).await;
    person(&app, "ani@bank.example", Role::Editor, Language::En).await;
    let viewer = Browser::signed_in(&app, "vera@bank.example").await;
    let editor = Browser::signed_in(&app, "ani@bank.example").await;
    assert!(editor.get("/ui/campaigns").await.body.contains("id=\"new-campaign\""));
    let page = viewer.get("/ui/campaigns").await;
    assert!(!page.body.contains("id=\"new-campaign\""), "no write button for a viewer");
    let page = viewer.get("/ui/campaigns/new").await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.body.contains("Your role does not allow this"), "{}", page.body);
}

#[sqlx::test(migrator = "MIGRATIONS")]
async fn pages_speak_the_persons_language_and_it_can_be_switched(db: PgPool) {
    let app = TestApp::new(db).await;
    person(&app, "sari@bank.example", Role::Editor, Language::Id).await;
    let browser = Browser::signed_in(&app, "sari@bank.example").await;
    let page = browser.get("/ui/campaigns").await;
    assert!(page.body.contains("<html lang=\"id\">"));
    assert!(page.body.contains("Belum ada kampanye."), "{}", page.body);
    assert!(page.body.contains(">Keluar<"));
    let answer = browser.post_form("/ui/language", &[("lang", "en"), ("next", "/ui/campaigns")]).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    let page = browser.get("/ui/campaigns").await;
    assert!(page.body.contains("<html lang=\"en\">"));
    assert!(page.body.contains("No campaigns yet."));
    assert!(page.body.contains(">Sign out<"));
    // Before sign-in, the browser's language.
    let anonymous = Browser::new(&app);
    let page = anonymous
        .send(
            Method::GET,
            "/ui/signin",
            (axum::body::Body::empty(), "text/html"),
            &[("accept-language", "id-ID,id;q=0.9")],
        )
        .await;
    assert!(page.body.contains("Kata sandi"), "{}", page.body);
    let page = anonymous.get("/ui/signin").await;
    assert!(page.body.contains("Password"));
}

#[sqlx::test(migrator = "MIGRATIONS")]
async fn every_answer_carries_the_security_headers_and_assets_are_cached_by_content(db: PgPool) {
    let app = TestApp::new(db).await;
    person(&app, "ani@bank.example", Role::Editor, Language::En).await;
    let browser = Browser::signed_in(&app, "ani@bank.example").await;
    let page = browser.get("/ui/campaigns").await;
    for p in [&page, &Browser::new(&app).get("/ui/signin").await, &browser.get("/ui/nowhere").await] {
        let csp = p.header("content-security-policy");
        assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
        assert_eq!(p.header("x-frame-options"), "DENY");
        assert_eq!(p.header("x-content-type-options"), "nosniff");
        assert_eq!(p.header("referrer-policy"), "same-origin");
        // The server's share of the answer, for browsers' network panels and scripts/bench-pages.
        let timing = p.header("server-timing");
        let millis = timing.strip_prefix("app;dur=").and_then(|d| d.parse::<f64>().ok());
        assert!(millis.is_some_and(|ms| ms >= 0.0), "{timing:?}");
    }
    assert_eq!(browser.get("/ui/nowhere").await.status, StatusCode::NOT_FOUND);
    assert!(!page.body.contains("<script>"), "no inline script");
    let at = page.body.find("/ui/assets/").unwrap();
    let url = &page.body[at..];
    let url = &url[..url.find('"').unwrap()];
    let asset = browser.get(url).await;
    assert_eq!(asset.status, StatusCode::OK);
    assert_eq!(asset.header("cache-control"), "public, max-age=31536000, immutable");
    assert!(asset.header("content-type").starts_with("text/css"), "{url}");
    assert_eq!(browser.get("/ui/assets/000000000000/ui.css").await.status, StatusCode::NOT_FOUND);
}

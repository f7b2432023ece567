//! The campaign editor over HTTP, against the real Postgres: create and edit through the form, a field
//! error the server finds shown next to its field, the lifecycle buttons and their confirmation, a viewer
//! who reads but cannot write (no button, a forged write refused with 403), CSRF refusals; field errors in
//! the person's language; start and end typed and shown in the campaign's time zone; and the editor's
//! WebAssembly validation (the same crate, built natively) agreeing with the admin API on a table of specs,
//! with the same codes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::{Method, StatusCode};
use common::ui::{form, person, Browser};
use common::{spec, TestApp};
use popup_core::access::Role;
use popup_editor_wasm::Editor;
use popup_origin::db::campaign_spec::zone_names;
use popup_origin::db::people::Language;
use serde_json::{json, Value};
use sqlx::PgPool;

const MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

const EDITOR: &str = "edi@bank.example";
const VIEWER: &str = "vi@bank.example";
/// An editor who reads the dashboard in Bahasa Indonesia.
const PENYUNTING: &str = "penyunting@bank.example";

async fn people(app: &TestApp) {
    person(app, EDITOR, Role::Editor, Language::En).await;
    person(app, VIEWER, Role::Viewer, Language::En).await;
    person(app, PENYUNTING, Role::Editor, Language::Id).await;
}

/// The fields of a small valid campaign, as the editor's form sends them.
fn fields(name: &str) -> Vec<(&str, &str)> {
    vec![
        ("name", name),
        ("priority", "5"),
        ("placements", "login, home"),
        ("schedule.start", "2026-01-01T08:00"),
        ("schedule.time_zone", "Asia/Jakarta"),
        ("schedule.windows[0].days", "mon"),
        ("schedule.windows[0].days", "tue"),
        ("schedule.windows[0].start", "09:00"),
        ("schedule.windows[0].end", "17:00"),
        // The empty row the page offers.
        ("schedule.windows[1].start", ""),
        ("schedule.windows[1].end", ""),
        ("creative.title", "Platinum card"),
        ("creative.body", "Apply today"),
        ("creative.action_url", "bankapp://cards/platinum"),
        ("creative.extra", "button=Apply now"),
        ("variants[0].key", "a"),
        ("variants[0].weight", "9"),
        ("variants[1].key", "holdout"),
        ("variants[1].weight", "1"),
        ("variants[1].control", "on"),
        ("variants[2].key", ""),
        ("variants[2].weight", ""),
        ("caps.per_day", "1"),
        ("caps.lifetime", "3"),
        ("audience.include", "any_of"),
        ("audience.include.any_of", "vip"),
        ("rules.platforms", "ios"),
        ("rules.app_version.min", "5.2"),
        ("rules.countries", "ID"),
        ("rules.locales", "id"),
    ]
}

fn created_id(location: &str) -> i64 {
    let rest = location.strip_prefix("/ui/campaigns/").unwrap();
    rest.split('?').next().unwrap().parse().unwrap()
}

/// The HTML of the field wrapper `data-field="name"`, up to the next wrapper.
fn wrapper<'a>(body: &'a str, name: &str) -> &'a str {
    let marker = format!("data-field=\"{name}\"");
    let at = body.find(&marker).unwrap_or_else(|| panic!("no field {name}"));
    let rest = &body[at + marker.len()..];
    &rest[..rest.find("data-field=").unwrap_or(rest.len())]
}

#[sqlx::test(migrator = "MIGRATIONS")]
async fn a_campaign_is_created_and_edited_through_the_form(db: PgPool) {
    let app = TestApp::new(db).await;
    people(&app).await;
    app.upload("vip", "c1\nc2\n").await;
    let browser = Browser::signed_in(&app, EDITOR).await;

    let page = browser.get("/ui/campaigns/new").await;
    assert_eq!(page.status, StatusCode::OK);
    for input in
        ["name=\"name\"", "name=\"schedule.time_zone\"", "name=\"variants[0].weight\"", "value=\"vip\""]
    {
        assert!(page.body.contains(input), "{input} missing");
    }
    assert!(page.body.contains("<option value=\"Asia/Jakarta\">"), "the zone picker lists the tz database");
    assert!(page.body.contains("popup_editor_wasm_bg.wasm"), "the page loads the validation");
    // Only the editor's pages may compile WebAssembly; still no inline script or JavaScript eval anywhere.
    let csp = page.header("content-security-policy");
    assert!(csp.contains("script-src 'self' 'wasm-unsafe-eval';"), "{csp}");
    assert!(!csp.contains("unsafe-inline") && !csp.contains(" 'unsafe-eval'"), "{csp}");
    assert!(!browser.get("/ui/campaigns").await.header("content-security-policy").contains("wasm"));
    assert!(!page.body.contains("<script>"), "no inline script");

    let answer = browser.post_form("/ui/campaigns/new", &fields("Platinum")).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    let id = created_id(answer.header("location"));
    let (status, stored) = app.admin(Method::GET, &format!("/admin/v1/campaigns/{id}"), Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stored["status"], "draft");
    assert_eq!(stored["placements"], json!(["login", "home"]));
    // Typed as 08:00 in Jakarta (UTC+7): 01:00 UTC.
    assert_eq!(stored["schedule"]["start"], "2026-01-01T01:00:00Z");
    assert_eq!(
        stored["schedule"]["windows"],
        json!([{"days": ["mon", "tue"], "start": "09:00", "end": "17:00"}])
    );
    assert_eq!(
        stored["variants"],
        json!([{"key": "a", "weight": 9, "control": false}, {"key": "holdout", "weight": 1, "control": true}])
    );
    assert_eq!(stored["creative"]["extra"], json!({"button": "Apply now"}));
    assert_eq!(stored["audience"]["include"], json!({"any_of": ["vip"]}));
    assert_eq!(stored["rules"]["app_version"], json!({"min": "5.2.0"}));

    // The page shows it back as stored, with the preview of each variant.
    let page = browser.get(&format!("/ui/campaigns/{id}?notice=created")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("value=\"Platinum\""));
    // Shown back in Jakarta time, labelled with the zone, with the UTC instant beside it.
    assert!(wrapper(&page.body, "schedule.start").contains("value=\"2026-01-01T08:00:00\""));
    assert!(wrapper(&page.body, "schedule.start").contains("(Asia/Jakarta)"));
    assert!(wrapper(&page.body, "schedule.start").contains("in UTC: 2026-01-01 01:00:00 UTC"));
    assert!(page.body.contains("The campaign was created as a draft."));
    assert!(page.body.contains("data-variant=\"a\""));
    assert!(page.body.contains("<span class=\"popup-button\">Apply now</span>"));
    assert!(page.body.contains("Holdout: these customers see nothing"));

    // Edited: a new name, the control dropped, its own creative for the variant.
    let mut edited = fields("Platinum, second try");
    edited.retain(|(name, _)| !name.starts_with("variants[1]"));
    edited.push(("variants[0].creative.title", "Only for A"));
    let answer = browser.post_form(&format!("/ui/campaigns/{id}"), &edited).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    assert_eq!(answer.header("location"), format!("/ui/campaigns/{id}?notice=saved"));
    let (_, stored) = app.admin(Method::GET, &format!("/admin/v1/campaigns/{id}"), Value::Null).await;
    assert_eq!(stored["name"], "Platinum, second try");
    assert_eq!(
        stored["variants"],
        json!([{"key": "a", "weight": 9, "control": false, "creative": {"title": "Only for A", "body": ""}}])
    );

    // The audit log names the person, for the create and the update.
    let (_, audit) =
        app.admin(Method::GET, &format!("/admin/v1/audit?entity=campaign&entity_id={id}"), Value::Null).await;
    let actions: Vec<(&str, &str)> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["actor_name"].as_str().unwrap()))
        .collect();
    assert_eq!(actions, [("update", "Editor person"), ("create", "Editor person")]);
}

#[sqlx::test(migrator = "MIGRATIONS")]
async fn the_servers_errors_are_shown_next_to_their_fields_and_nothing_is_saved(db: PgPool) {
    let app = TestApp::new(db).await;
    people(&app).await;
    let browser = Browser::signed_in(&app, EDITOR).await;
    let mut sent = fields("Too many a day");
    // More a day than ever, a segment that does not exist, a country in lower case, a weight that is no number.
    sent.retain(|(name, _)| !["caps.per_day", "variants[0].weight", "rules.countries"].contains(name));
    sent.extend([("caps.per_day", "4"), ("rules.countries", "id"), ("variants[0].weight", "lots")]);
    let answer = browser.post_form("/ui/campaigns/new", &sent).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", answer.body);
    let body = &answer.body;
    // Each in the person's words (the English catalog's, not the API's terser English).
    assert!(
        wrapper(body, "caps.per_day").contains("<li>Must not be more than the cap on impressions ever.</li>")
    );
    assert!(
        wrapper(body, "audience.include.any_of")
            .contains("<li>There is no segment named &#34;vip&#34;.</li>"),
        "{}",
        wrapper(body, "audience.include.any_of")
    );
    assert!(wrapper(body, "rules.countries")
        .contains("<li>Use two-letter country codes in capitals, such as ID or SG.</li>"));
    assert!(wrapper(body, "variants[0].weight").contains("<li>Must be a whole number, 0 or more.</li>"));
    assert!(!wrapper(body, "name").contains("<li>"), "a valid field has no error");
    // The summary names each by the API's path, and the form keeps what was typed.
    assert!(body.contains("<code>caps.per_day</code>"));
    assert!(body.contains("<code>audience.include.any_of[0]</code>"));
    assert!(body.contains("value=\"lots\""));
    assert!(body.contains("value=\"Too many a day\""));
    let (_, list) = app.admin(Method::GET, "/admin/v1/campaigns", Value::Null).await;
    assert_eq!(list["pagination"]["total_count"], 0, "nothing was created");

    // An update refused the same way leaves the campaign as it was.
    let (_, created) = app.admin(Method::POST, "/admin/v1/campaigns", spec("Kept")).await;
    let id = created["id"].as_i64().unwrap();
    let answer =
        browser.post_form(&format!("/ui/campaigns/{id}"), &[("name", " "), ("schedule.start", "")]).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(wrapper(&answer.body, "name").contains("<li>Must not be empty.</li>"));
    assert!(wrapper(&answer.body, "schedule.start").contains("<li>Required.</li>"));
    let (_, stored) = app.admin(Method::GET, &format!("/admin/v1/campaigns/{id}"), Value::Null).await;
    assert_eq!(stored["name"], "Kept");
}

#[sqlx::test(migrator = "MIGRATIONS")]
async fn field_errors_are_in_the_persons_language(db: PgPool) {
    let app = TestApp::new(db).await;
    people(&app).await;
    let mut sent = fields("Bahasa");
    // More a day than ever, a segment that does not exist, an end before the start.
    sent.retain(|(name, _)| name != &"caps.per_day");
    sent.extend([("caps.per_day", "4"), ("schedule.end", "2025-12-31T08:00")]);
    let indonesian = Browser::signed_in(&app, PENYUNTING).await;
    let english = Browser::signed_in(&app, EDITOR).await;
    let answer = indonesian.post_form("/ui/campaigns/new", &sent).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", answer.body);
    let body = &answer.body;
    assert!(
        wrapper(body, "caps.per_day").contains("<li>Tidak boleh melebihi batas tayangan seumur hidup.</li>")
    );
    assert!(
        wrapper(body, "audience.include.any_of").contains("<li>Tidak ada segmen bernama &#34;vip&#34;.</li>"),
        "{}",
        wrapper(body, "audience.include.any_of")
    );
    assert!(wrapper(body, "schedule.end").contains("<li>Harus setelah waktu mulai.</li>"));
    // The summary too, still by the API's field paths.
    assert!(body.contains("<code>schedule.end</code> Harus setelah waktu mulai."));

    let answer = english.post_form("/ui/campaigns/new", &sent).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(wrapper(&answer.body, "schedule.end").contains("<li>Must be after the start.</li>"));
    assert!(!answer.body.contains("Harus"), "no Indonesian for an English reader");

    // The browser's validation gets the texts of the person's language, by code, with no inline script.
    let page = indonesian.get("/ui/campaigns/new").await;
    let texts = attribute(&page.body, "data-validation");
    let texts: Value = serde_json::from_str(&texts).unwrap();
    assert_eq!(texts["end_not_after_start"], "Harus setelah waktu mulai.");
    assert_eq!(texts["unknown_segment"], "Tidak ada segmen bernama \"{segment}\".");
    let page = english.get("/ui/campaigns/new").await;
    let texts: Value = serde_json::from_str(&attribute(&page.body, "data-validation")).unwrap();
    assert_eq!(texts["end_not_after_start"], "Must be after the start.");
}

/// The value of the first `name="..."` attribute in `body`, with the HTML escapes of askama undone.
fn attribute(body: &str, name: &str) -> String {
    let marker = format!("{name}=\"");
    let at = body.find(&marker).unwrap_or_else(|| panic!("no {name}"));
    let rest = &body[at + marker.len()..];
    let raw = &rest[..rest.find('"').unwrap()];
    raw.replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[sqlx::test(migrator = "MIGRATIONS")]
async fn start_and_end_are_typed_and_shown_in_the_campaigns_time_zone(db: PgPool) {
    let app = TestApp::new(db).await;
    people(&app).await;
    app.upload("vip", "c1\n").await;
    let browser = Browser::signed_in(&app, PENYUNTING).await;
    let mut sent = fields("Jakarta");
    sent.push(("schedule.end", "2026-02-01T00:00"));
    let answer = browser.post_form("/ui/campaigns/new", &sent).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    let id = created_id(answer.header("location"));
    let (_, stored) = app.admin(Method::GET, &format!("/admin/v1/campaigns/{id}"), Value::Null).await;
    // 08:00 and midnight in Jakarta (UTC+7) are 01:00 and 17:00 the day before, in UTC.
    assert_eq!(stored["schedule"]["start"], "2026-01-01T01:00:00Z");
    assert_eq!(stored["schedule"]["end"], "2026-01-31T17:00:00Z");
    assert_eq!(stored["schedule"]["time_zone"], "Asia/Jakarta");

    let page = browser.get(&format!("/ui/campaigns/{id}")).await;
    let start = wrapper(&page.body, "schedule.start");
    assert!(start.contains("value=\"2026-01-01T08:00:00\""), "{start}");
    assert!(
        start.contains("Mulai <span class=\"zone-label\" data-zone-label>(Asia/Jakarta)</span>"),
        "{start}"
    );
    assert!(start.contains("dalam UTC: 2026-01-01 01:00:00 UTC"), "{start}");
    assert!(wrapper(&page.body, "schedule.end").contains("value=\"2026-02-01T00:00:00\""));

    // A campaign written through the API in UTC shows in its zone as well; one without a zone, in UTC.
    let mut api = spec("Through the API");
    api["schedule"] = json!({"start": "2026-06-30T20:00:00Z", "time_zone": "Asia/Jakarta"});
    let (_, created) = app.admin(Method::POST, "/admin/v1/campaigns", api).await;
    let page = browser.get(&format!("/ui/campaigns/{}", created["id"])).await;
    assert!(wrapper(&page.body, "schedule.start").contains("value=\"2026-07-01T03:00:00\""));
    let (_, plain) = app.admin(Method::POST, "/admin/v1/campaigns", spec("UTC")).await;
    let page = browser.get(&format!("/ui/campaigns/{}", plain["id"])).await;
    let start = wrapper(&page.body, "schedule.start");
    assert!(start.contains("(UTC)") && !start.contains("dalam UTC: 2"), "{start}");

    // Saved again unchanged, the instants stay: what is shown is read back in the same zone.
    let mut again = fields("Jakarta");
    again.retain(|(name, _)| name != &"schedule.start");
    again.extend([("schedule.start", "2026-01-01T08:00:00"), ("schedule.end", "2026-02-01T00:00:00")]);
    let answer = browser.post_form(&format!("/ui/campaigns/{id}"), &again).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    let (_, stored) = app.admin(Method::GET, &format!("/admin/v1/campaigns/{id}"), Value::Null).await;
    assert_eq!(stored["schedule"]["start"], "2026-01-01T01:00:00Z");

    // The same wall-clock times in another zone are other instants; an end before the start there is
    // still the end's error.
    let mut tokyo = again.clone();
    tokyo.retain(|(name, _)| !["schedule.time_zone", "schedule.end"].contains(name));
    tokyo.extend([("schedule.time_zone", "Asia/Tokyo"), ("schedule.end", "2026-01-01T07:59")]);
    let answer = browser.post_form(&format!("/ui/campaigns/{id}"), &tokyo).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(wrapper(&answer.body, "schedule.end").contains("<li>Harus setelah waktu mulai.</li>"));
    assert!(wrapper(&answer.body, "schedule.start").contains("(Asia/Tokyo)"));
    tokyo.retain(|(name, _)| name != &"schedule.end");
    let answer = browser.post_form(&format!("/ui/campaigns/{id}"), &tokyo).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    let (_, stored) = app.admin(Method::GET, &format!("/admin/v1/campaigns/{id}"), Value::Null).await;
    assert_eq!(stored["schedule"]["start"], "2025-12-31T23:00:00Z");
}

async fn status_of(app: &TestApp, id: i64) -> String {
    let (_, body) = app.admin(Method::GET, &format!("/admin/v1/campaigns/{id}"), Value::Null).await;
    body["status"].as_str().unwrap().to_string()
}

#[sqlx::test(migrator = "MIGRATIONS")]
async fn lifecycle_buttons_ask_first_and_offer_only_what_the_lifecycle_allows(db: PgPool) {
    let app = TestApp::new(db).await;
    people(&app).await;
    let browser = Browser::signed_in(&app, EDITOR).await;
    let (_, created) = app.admin(Method::POST, "/admin/v1/campaigns", spec("Life")).await;
    let id = created["id"].as_i64().unwrap();
    let page_uri = format!("/ui/campaigns/{id}");
    let lifecycle = format!("/ui/campaigns/{id}/lifecycle");

    let page = browser.get(&page_uri).await;
    let offered = |body: &str| -> Vec<String> {
        body.match_indices("data-action=\"")
            .map(|(at, m)| body[at + m.len()..].split('"').next().unwrap().to_string())
            .collect()
    };
    assert_eq!(offered(&page.body), ["activate", "delete"]);
    assert!(page.body.contains("data-confirm=\"Activate this campaign?"));

    // Without the confirmation: a page that asks, and nothing changes.
    let ask = browser.post_form(&lifecycle, &[("action", "activate")]).await;
    assert_eq!(ask.status, StatusCode::OK);
    assert!(ask.body.contains("Activate this campaign?"));
    assert!(ask.body.contains("name=\"confirmed\" value=\"yes\""));
    assert_eq!(status_of(&app, id).await, "draft");

    let done = browser.post_form(&lifecycle, &[("action", "activate"), ("confirmed", "yes")]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.header("location"), format!("{page_uri}?notice=activate"));
    assert_eq!(status_of(&app, id).await, "active");
    let page = browser.get(&format!("{page_uri}?notice=activate")).await;
    assert_eq!(offered(&page.body), ["pause", "end"], "a live campaign cannot be deleted");
    assert!(page.body.contains("The campaign is active."));

    // A refused action (a live campaign deleted) is a 409 that says why, and the campaign stays.
    let refused = browser.post_form(&lifecycle, &[("action", "delete"), ("confirmed", "yes")]).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert!(refused.body.contains("cannot delete a campaign that is active"), "{}", refused.body);
    assert_eq!(status_of(&app, id).await, "active");

    let paused = browser.post_form(&lifecycle, &[("action", "pause"), ("confirmed", "yes")]).await;
    assert_eq!(paused.status, StatusCode::SEE_OTHER);
    assert_eq!(status_of(&app, id).await, "paused");
    let ended = browser.post_form(&lifecycle, &[("action", "end"), ("confirmed", "yes")]).await;
    assert_eq!(ended.status, StatusCode::SEE_OTHER);
    let page = browser.get(&page_uri).await;
    assert_eq!(offered(&page.body), ["delete"]);
    assert!(page.body.contains("<fieldset class=\"sections\" disabled>"), "an ended campaign is read-only");
    let deleted = browser.post_form(&lifecycle, &[("action", "delete"), ("confirmed", "yes")]).await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER);
    assert_eq!(browser.get(&page_uri).await.status, StatusCode::NOT_FOUND);
    let unknown = browser.post_form(&lifecycle, &[("action", "explode"), ("confirmed", "yes")]).await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
}

#[sqlx::test(migrator = "MIGRATIONS")]
async fn a_viewer_reads_the_campaign_and_a_forged_write_is_refused(db: PgPool) {
    let app = TestApp::new(db).await;
    people(&app).await;
    let (_, created) = app.admin(Method::POST, "/admin/v1/campaigns", spec("Look only")).await;
    let id = created["id"].as_i64().unwrap();
    let viewer = Browser::signed_in(&app, VIEWER).await;

    let page = viewer.get(&format!("/ui/campaigns/{id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("value=\"Look only\""));
    assert!(page.body.contains("<fieldset class=\"sections\" disabled>"));
    assert!(page.body.contains("Your role may read this campaign, not change it."));
    for write in ["/lifecycle", "id=\"save\"", "data-action=", "data-add-row"] {
        assert!(!page.body.contains(write), "a viewer sees {write}");
    }
    assert_eq!(viewer.get("/ui/campaigns/new").await.status, StatusCode::FORBIDDEN);

    // Forged with the viewer's own valid session and CSRF token: refused by role.
    let forged = viewer.post_form(&format!("/ui/campaigns/{id}"), &fields("Hijacked")).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let forged = viewer.post_form("/ui/campaigns/new", &fields("Hijacked")).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let forged = viewer
        .post_form(&format!("/ui/campaigns/{id}/lifecycle"), &[("action", "activate"), ("confirmed", "yes")])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let (_, stored) = app.admin(Method::GET, &format!("/admin/v1/campaigns/{id}"), Value::Null).await;
    assert_eq!((stored["name"].as_str(), stored["status"].as_str()), (Some("Look only"), Some("draft")));
    let (_, list) = app.admin(Method::GET, "/admin/v1/campaigns", Value::Null).await;
    assert_eq!(list["pagination"]["total_count"], 1);
}

#[sqlx::test(migrator = "MIGRATIONS")]
async fn writes_without_the_csrf_token_are_refused(db: PgPool) {
    let app = TestApp::new(db).await;
    people(&app).await;
    let (_, created) = app.admin(Method::POST, "/admin/v1/campaigns", spec("Guarded")).await;
    let id = created["id"].as_i64().unwrap();
    let editor = Browser::signed_in(&app, EDITOR).await;
    let body = || serde_urlencoded::to_string(fields("Forged")).unwrap();
    let with_token = |token: &str| {
        let mut all = vec![("csrf", token.to_string())];
        all.extend(fields("Forged").into_iter().map(|(n, v)| (n, v.to_string())));
        serde_urlencoded::to_string(all).unwrap()
    };

    for uri in ["/ui/campaigns/new".to_string(), format!("/ui/campaigns/{id}")] {
        let none = editor.send(Method::POST, &uri, form(body()), &[]).await;
        assert_eq!(none.status, StatusCode::FORBIDDEN, "{uri} without a token");
        let wrong = editor.send(Method::POST, &uri, form(with_token("not-the-token")), &[]).await;
        assert_eq!(wrong.status, StatusCode::FORBIDDEN, "{uri} with a wrong token");
        let cross = editor
            .send(Method::POST, &uri, form(with_token(&editor.csrf)), &[("sec-fetch-site", "cross-site")])
            .await;
        assert_eq!(cross.status, StatusCode::FORBIDDEN, "{uri} from another site");
    }
    let lifecycle = editor
        .send(
            Method::POST,
            &format!("/ui/campaigns/{id}/lifecycle"),
            form("action=activate&confirmed=yes".into()),
            &[],
        )
        .await;
    assert_eq!(lifecycle.status, StatusCode::FORBIDDEN);
    let (_, stored) = app.admin(Method::GET, &format!("/admin/v1/campaigns/{id}"), Value::Null).await;
    assert_eq!((stored["name"].as_str(), stored["status"].as_str()), (Some("Guarded"), Some("draft")));
    let (_, list) = app.admin(Method::GET, "/admin/v1/campaigns", Value::Null).await;
    assert_eq!(list["pagination"]["total_count"], 1);
}

/// Specs the admin API takes or refuses, each checked by the API and by the editor's validation.
fn table() -> Vec<Value> {
    let base = spec("Agree");
    let with = |patch: Value| {
        let mut value = base.clone();
        for (key, field) in patch.as_object().unwrap() {
            value[key] = field.clone();
        }
        value
    };
    vec![
        base.clone(),
        with(json!({"name": "  "})),
        with(json!({"placements": ["Home", "ok"]})),
        with(json!({"schedule": {"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}})),
        with(
            json!({"schedule": {"start": "2026-01-01T00:00:00Z", "windows": [{"days": [], "start": "09:00", "end": "09:00"}]}}),
        ),
        with(json!({"schedule": {"start": "2026-01-01T00:00:00Z", "time_zone": "Europe/Atlantis"}})),
        with(json!({"schedule": {"start": "2026-01-01T00:00:00Z", "time_zone": "Asia/Jakarta",
            "windows": [{"days": ["fri"], "start": "22:00", "end": "02:00"}]}})),
        with(json!({"creative": {"title": "", "body": "", "image_url": "http://x", "action_url": "nope"}})),
        with(
            json!({"variants": [{"key": "a", "weight": 0}, {"key": "a", "weight": 0, "control": true, "creative": {"title": "t"}}]}),
        ),
        with(json!({"variants": [{"key": "c", "weight": 1, "control": true}]})),
        with(json!({"caps": {"lifetime": 0, "per_day": 2, "min_interval_seconds": 0}})),
        with(json!({"caps": {"lifetime": 1, "per_day": 2}})),
        with(json!({"audience": {"include": {"any_of": ["vip", "gone"]}, "exclude": ["vip"]}})),
        with(json!({"audience": {"include": {"any_of": []}}})),
        with(
            json!({"rules": {"platforms": ["ios"], "app_version": {"min": "6.0", "max": "5.0"}, "countries": ["id"], "locales": ["!!"]}}),
        ),
        with(json!({"budget": 0})),
        // Bodies that do not parse: the error's path is the parser's.
        with(json!({"name": 5})),
        with(json!({"schedule": {"start": "yesterday"}})),
        with(json!({"unknown": true})),
        with(json!({"rules": {"platforms": ["symbian"]}})),
        with(json!({"variants": [{"key": "a", "weight": -1}]})),
    ]
}

#[sqlx::test(migrator = "MIGRATIONS")]
async fn the_editors_validation_agrees_with_the_api(db: PgPool) {
    let app = TestApp::new(db).await;
    app.upload("vip", "c1\n").await;
    let zones: Vec<&str> = zone_names().collect();
    let editor = Editor::new(0, r#"["vip"]"#, &serde_json::to_string(&zones).unwrap());
    for spec in table() {
        let report = editor.report(&spec.to_string());
        let browser_fields: Vec<String> = report.errors.iter().map(|e| e.field.clone()).collect();
        let (status, body) = app.admin(Method::POST, "/admin/v1/campaigns", spec.clone()).await;
        match status {
            StatusCode::CREATED => assert!(
                report.errors.is_empty(),
                "{spec}: the API took it, the editor says {browser_fields:?}"
            ),
            StatusCode::UNPROCESSABLE_ENTITY if body["error"]["code"] == "validation_failed" => {
                let api: Vec<(String, String)> = body["error"]["fields"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| (f["field"].as_str().unwrap().into(), f["message"].as_str().unwrap().into()))
                    .collect();
                let ours: Vec<(String, String)> =
                    report.errors.iter().map(|e| (e.field.clone(), e.message.clone())).collect();
                assert_eq!(ours, api, "{spec}");
                // Each a problem of the core's, with its code for the page's catalog.
                assert!(report.errors.iter().all(|e| e.code.is_some()), "{spec}: {:?}", report.errors);
            }
            _ => {
                // A body that does not parse: one error, at the path the API's message names.
                let message = body["error"]["message"].as_str().unwrap_or_default();
                assert_eq!(report.errors.len(), 1, "{spec}: {body}");
                let error = &report.errors[0];
                let at_path = error.field == "." || message.contains(&format!("{}: ", error.field));
                assert!(
                    message.ends_with(&error.message) && at_path,
                    "{spec}: the API says {message:?}, the editor {error:?}"
                );
            }
        }
    }
}

//! The backoffice: server-rendered pages under `/ui` (askama templates in `origin/templates/ui/`), for
//! people signed in with a session ([`crate::http::session`]), every write behind CSRF protection
//! ([`crate::http::csrf`]). One file per page; each handler names the role it needs in its signature and
//! calls the same functions as the admin API, so validation, lifecycles, the audit and publishing to
//! Redis exist once. Every page reads without JavaScript; htmx and our scripts (`origin/assets/ui/`) make
//! it faster. Words come from one catalog per language ([`i18n`]).

pub mod assets;
pub mod campaigns;
pub mod editor;
pub mod i18n;
pub mod messaging;
pub mod segments;
pub mod settings;
pub mod signin;
pub mod simulator;
pub mod stats;
pub mod upload;

use askama::Template;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::db::people::{Language, Person};
use crate::http::session::{self, Refusal, SignedIn};
use crate::state::AppState;
use i18n::Tr;

/// `/` and everything under `/ui`.
pub fn router() -> Router<AppState> {
    let pages = Router::new()
        .route("/", get(|| async { Redirect::to("/ui/campaigns") }))
        .route("/signin", get(signin::page).post(signin::submit))
        .route("/signout", post(signin::sign_out))
        .route("/language", post(signin::language))
        .route("/campaigns", get(campaigns::list))
        .route("/campaigns/new", get(editor::new).post(editor::create))
        .route("/campaigns/{id}", get(editor::show).post(editor::save))
        .route("/campaigns/{id}/lifecycle", post(editor::lifecycle))
        .route("/segments", get(segments::list))
        .route("/segments/table", get(segments::table))
        .route(
            "/segments/{name}/upload",
            post(segments::upload).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/segments/{name}/delete", post(segments::delete))
        .route("/simulator", get(simulator::page))
        .route("/stats", get(stats::page))
        .route("/messaging", get(messaging::campaigns::show))
        .route("/messaging/table", get(messaging::campaigns::show_table))
        .route("/messaging/sample", post(messaging::campaigns::sample))
        .route("/messaging/campaigns", post(messaging::campaigns::create))
        .route("/messaging/campaigns/{id}/send", post(messaging::campaigns::send))
        .route("/messaging/customers", get(messaging::customers::show))
        .route("/messaging/customers/table", get(messaging::customers::show_table))
        .route(
            "/messaging/customers/import",
            post(messaging::customers::import).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/messaging/dead", get(messaging::dead::show))
        .route("/messaging/dead/requeue", post(messaging::dead::requeue))
        .route("/settings", get(settings::show))
        .route("/settings/cap", post(settings::set_cap))
        .route("/settings/people", post(settings::add_person))
        .route("/settings/people/{id}", post(settings::change_person))
        .route("/settings/keys", post(settings::add_key))
        .route("/settings/keys/{id}/revoke", post(settings::revoke_key))
        .route("/assets/{hash}/{name}", get(assets::serve))
        .fallback(|| async { Refusal::NotFound })
        .layer(axum::middleware::from_fn(crate::http::csrf::protect))
        .layer(axum::middleware::from_fn(render_refusals));
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(|| async { Redirect::to("/ui/campaigns") }))
        .nest("/ui", pages)
        .layer(axum::middleware::from_fn(security_headers))
        .layer(axum::middleware::from_fn(server_timing))
}

/// `Server-Timing: app;dur=<ms>` on every dashboard response: the time from the request reaching the
/// dashboard's router to its response, the page rendered (templates render into a string before the
/// response exists), so a browser's network panel and `scripts/bench-pages` see the server's share of a
/// page apart from the network's. It says how long, never what was done, so it tells a client nothing the
/// clock on its side does not.
async fn server_timing(request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let mut response = next.run(request).await;
    let millis = started.elapsed().as_secs_f64() * 1000.0;
    if let Ok(value) = HeaderValue::from_str(&format!("app;dur={millis:.2}")) {
        response.headers_mut().insert("server-timing", value);
    }
    response
}

/// The pages of the navigation bar, in its order: (path, catalog key).
const NAV: &[(&str, &str)] = &[
    ("/ui/campaigns", "nav.campaigns"),
    ("/ui/segments", "nav.segments"),
    ("/ui/simulator", "nav.simulator"),
    ("/ui/stats", "nav.stats"),
    ("/ui/messaging", "nav.messaging"),
    ("/ui/settings", "nav.settings"),
];

/// What the base layout needs: the language, the person signed in (none on the sign-in page), the CSRF
/// token for forms and htmx, and which page is shown.
#[derive(Clone, Debug)]
pub struct Chrome {
    pub tr: Tr,
    pub person: Option<Person>,
    pub csrf: String,
    pub active: &'static str,
}

/// One entry of the navigation bar.
#[derive(Debug)]
pub struct NavItem {
    pub href: &'static str,
    pub label: String,
    pub active: bool,
}

impl Chrome {
    pub fn new(signed_in: &SignedIn, active: &'static str) -> Chrome {
        Chrome {
            tr: Tr::new(signed_in.person.language),
            person: Some(signed_in.person.clone()),
            csrf: signed_in.csrf.clone(),
            active,
        }
    }

    /// For pages without a session.
    pub fn anonymous(language: Language) -> Chrome {
        Chrome { tr: Tr::new(language), person: None, csrf: String::new(), active: "" }
    }

    pub fn t(&self, key: &str) -> String {
        self.tr.t(key)
    }

    pub fn t1(&self, key: &str, a: impl std::fmt::Display) -> String {
        self.tr.t1(key, a)
    }

    pub fn t2(&self, key: &str, a: impl std::fmt::Display, b: impl std::fmt::Display) -> String {
        self.tr.t2(key, a, b)
    }

    pub fn lang(&self) -> &'static str {
        self.tr.language.as_str()
    }

    pub fn asset(&self, name: &str) -> String {
        assets::url(name)
    }

    pub fn nav(&self) -> Vec<NavItem> {
        NAV.iter()
            .map(|(href, key)| NavItem { href, label: self.t(key), active: *href == self.active })
            .collect()
    }

    /// Whether the person may write (editors and admins): pages show write buttons only then.
    pub fn can_write(&self) -> bool {
        self.person.as_ref().is_some_and(|p| p.role.permits(popup_core::access::Permission::Write))
    }

    pub fn is_admin(&self) -> bool {
        self.person.as_ref().is_some_and(|p| p.role.permits(popup_core::access::Permission::ManageKeys))
    }

    pub fn person_name(&self) -> String {
        self.person.as_ref().map(|p| p.display_name.clone()).unwrap_or_default()
    }

    pub fn role_name(&self) -> String {
        self.person.as_ref().map(|p| self.t(&format!("role.{}", p.role.as_str()))).unwrap_or_default()
    }

    /// The other language, for the switch in the navigation bar.
    pub fn other_language(&self) -> &'static str {
        match self.tr.language {
            Language::En => "id",
            Language::Id => "en",
        }
    }
}

/// A page, rendered; a template that fails to render is a bug of ours (500, logged).
pub fn render(template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(error) => {
            tracing::error!(%error, "a dashboard template failed to render");
            Refusal::Internal.into_response()
        }
    }
}

/// A page's answer: the page, or a refusal rendered as a page.
pub type PageResult = Result<Response, Refusal>;

/// The language of a request without a session: the `popup_lang` cookie, else the browser's first choice.
pub fn request_language(headers: &HeaderMap) -> Language {
    if let Some(language) =
        session::cookie(headers, session::LANGUAGE_COOKIE).and_then(|l| Language::parse(&l))
    {
        return language;
    }
    let accepted = headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let first = accepted.split(',').next().unwrap_or("").trim().to_ascii_lowercase();
    if first == "id" || first.starts_with("id-") || first.starts_with("id;") {
        Language::Id
    } else {
        Language::En
    }
}

#[derive(Template)]
#[template(path = "ui/error.html")]
struct ErrorPage {
    c: Chrome,
    title: String,
    message: String,
}

/// Renders a [`Refusal`] (from an extractor, the CSRF check or a handler) as a page in the request's
/// language, keeping its status and headers.
async fn render_refusals(request: Request, next: Next) -> Response {
    let language = request_language(request.headers());
    let mut response = next.run(request).await;
    let Some(refusal) = response.extensions_mut().remove::<Refusal>() else { return response };
    let c = Chrome::anonymous(language);
    let (title, message) = match &refusal {
        Refusal::Forbidden => (c.t("error.forbidden.title"), c.t("error.forbidden")),
        Refusal::Csrf => (c.t("error.forbidden.title"), c.t("error.csrf")),
        Refusal::SignedOut => (c.t("error.forbidden.title"), c.t("error.signed_out")),
        Refusal::Throttled(seconds) => {
            (c.t("error.throttled.title"), c.t1("error.throttled", seconds.div_ceil(60)))
        }
        Refusal::NotFound => (c.t("error.not_found.title"), c.t("error.not_found")),
        Refusal::BadRequest(detail) => (c.t("error.bad_request.title"), detail.clone()),
        Refusal::Unavailable => (c.t("error.unavailable.title"), c.t("error.unavailable")),
        Refusal::Internal => (c.t("error.internal.title"), c.t("error.internal")),
    };
    let page = ErrorPage { c, title, message };
    let Ok(html) = page.render() else { return response };
    let (mut parts, _) = response.into_parts();
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(html))
}

/// The headers every dashboard response carries: a strict Content-Security-Policy (our own scripts only,
/// no inline script, no framing), and the rest of the usual hardening.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let set = |headers: &mut HeaderMap, name: &'static str, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    // The campaign editor compiles WebAssembly, which browsers allow only with 'wasm-unsafe-eval' (it
    // allows no JavaScript eval); only its pages say so.
    let csp = if response.extensions().get::<editor::RunsWasm>().is_some() {
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' https: data:; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    } else {
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    };
    let headers = response.headers_mut();
    set(headers, "content-security-policy", csp);
    set(headers, "x-frame-options", "DENY");
    set(headers, "referrer-policy", "same-origin");
    set(headers, "x-content-type-options", "nosniff");
    if !headers.contains_key(header::CACHE_CONTROL) {
        // Pages hold customers' data: not kept by shared caches, nor shown again from history after sign-out.
        set(headers, "cache-control", "no-store");
    }
    response
}

//! The API's contract: the OpenAPI 3.1 document at `GET /openapi.json`, and a docs UI (Swagger UI) at
//! `GET /docs`.
//!
//! The document is generated from the code: each handler carries a `#[utoipa::path]` with its parameters,
//! body and answers, each type it reads or answers derives its schema, and the routers are built with
//! utoipa-axum's `OpenApiRouter` and `routes!`, which register a handler with axum and its operation in the
//! document in the same call, so a route cannot be served without being described. The few routes outside
//! the JSON API (this module's own, the dashboard under `/ui`) are named in [`OUTSIDE_THE_SPEC`], and a test
//! (`origin/tests/openapi.rs`) fails for any other route the router serves that the document lacks.
//!
//! The answers every route shares come from the layers every route goes through, so they are added here
//! once ([`complete`]) rather than repeated on each handler: 400 (a NUL in the query or the path, refused
//! by `http::extract::refuse_nul` in front of every route), 401 and 403 (the role extractors of every
//! operation that names the `api_key` scheme), 413 (the JSON body limit), and 503 (Postgres or Redis
//! unreachable, for every route that uses them).
//!
//! The Swagger UI assets are the pinned npm package `swagger-ui-dist`, copied into `origin/assets/vendor/`
//! by `scripts/vendor-assets` and embedded in the binary: the page works with no internet. It is booted by a
//! small script of ours (`origin/assets/docs.js`), so the page needs no inline script and is served with a
//! strict Content-Security-Policy.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use popup_core::wire::ErrorResponse;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Content, OpenApi, RefOr, ResponseBuilder};
use utoipa::{Modify, ToSchema};

/// The security scheme of the admin API and of conversions: `Authorization: Bearer <API key>`.
pub const API_KEY: &str = "api_key";

/// Route prefixes served outside the JSON API, by design: the contract and its UI, the backoffice
/// dashboard (HTML pages and their assets), and `/`, which redirects a browser to the dashboard.
pub const OUTSIDE_THE_SPEC: &[&str] = &["/openapi.json", "/docs", "/ui", "/"];

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Popup platform API",
        description = "Campaign popups for a bank's mobile app, and the backoffice's admin and messaging API.\n\n\
            The operations tagged `edge` are served by the edge worker (Cloudflare) as well as by the origin, \
            with the same parameters and answers; everything else is the origin's only. The edge takes the \
            country from the platform's request metadata, the origin from the trusted header configured \
            with `POPUP_COUNTRY_HEADER`; neither ever from the query.\n\n\
            Errors are `{\"error\": {\"code\", \"message\", \"fields\"}}`. Lists answer \
            `{\"data\": [...], \"pagination\": {\"page\", \"page_size\", \"total_count\", \"total_pages\"}}`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    modifiers(&BearerKey),
    components(schemas(ErrorResponse)),
    tags(
        (name = "edge", description = "Served by the edge worker too, exactly as the origin serves it."),
        (name = "popup", description = "The mobile app's API: which popup to show, and what the customer did with it."),
        (name = "conversions", description = "Conversions, posted by the bank's backend (origin only)."),
        (name = "campaigns", description = "Popup campaigns and their lifecycle."),
        (name = "segments", description = "Customer segments, uploaded as lists of ids."),
        (name = "preview", description = "What a customer would see, and why."),
        (name = "stats", description = "Campaign analytics."),
        (name = "keys", description = "API keys (admins only)."),
        (name = "audit", description = "The audit trail of every write."),
        (name = "settings", description = "Rules across campaigns."),
        (name = "customers", description = "The people SMS and WhatsApp messages go to."),
        (name = "message-campaigns", description = "Outbound SMS and WhatsApp campaigns."),
        (name = "messages", description = "Messages that failed for good, and putting them back in line."),
        (name = "ops", description = "Liveness and readiness (metrics are served on the operations address, `POPUP_OPS_ADDR`)."),
    )
)]
#[derive(Debug)]
pub struct ApiDoc;

struct BearerKey;

impl Modify for BearerKey {
    fn modify(&self, openapi: &mut OpenApi) {
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.description = Some(
            "An API key (`POST /admin/v1/keys`). Its role decides what it may do: `viewer` reads, `editor` \
             also writes, `admin` also manages keys, `conversions` only posts conversions."
                .into(),
        );
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(API_KEY, SecurityScheme::Http(scheme));
    }
}

/// Routes that touch neither Postgres nor Redis, so cannot answer 503.
const STORELESS: &[&str] = &["/healthz"];

/// Adds the answers every route shares (see the module docs) to each operation that lacks them.
pub fn complete(openapi: &mut OpenApi) {
    for (path, item) in openapi.paths.paths.iter_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
            &mut item.head,
            &mut item.options,
            &mut item.trace,
        ];
        for operation in operations.into_iter().flatten() {
            let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
            let json_body = operation.request_body.as_ref().is_some_and(
                |body| matches!(body, RefOr::T(body) if body.content.contains_key("application/json")),
            );
            let mut answer = |status: &str, description: &str| add_error(operation, status, description);
            answer("400", "The request cannot be read: a parameter or the body is invalid, or holds NUL.");
            if secured {
                answer("401", "No API key, or an unknown or revoked one.");
                answer("403", "This API key's role may not do that.");
            }
            if json_body {
                answer("413", "The body is larger than this endpoint accepts.");
            }
            if !STORELESS.contains(&path.as_str()) {
                answer("503", "Postgres or Redis cannot be reached; try again.");
            }
        }
    }
}

fn add_error(operation: &mut Operation, status: &str, description: &str) {
    if operation.responses.responses.contains_key(status) {
        return;
    }
    let response = ResponseBuilder::new()
        .description(description)
        .content("application/json", Content::new(Some(error_schema())))
        .build();
    operation.responses.responses.insert(status.to_string(), RefOr::T(response));
}

fn error_schema() -> RefOr<utoipa::openapi::schema::Schema> {
    RefOr::Ref(utoipa::openapi::Ref::from_schema_name(ErrorResponse::name()))
}

/// `GET /openapi.json`, `GET /docs` and the UI's assets.
pub fn router<S: Clone + Send + Sync + 'static>(openapi: &OpenApi) -> Router<S> {
    // Rendered once: the document does not change while the process runs.
    let document = openapi.to_pretty_json().unwrap_or_else(|error| {
        tracing::error!(%error, "the OpenAPI document cannot be rendered");
        "{}".into()
    });
    Router::new()
        .route(
            "/openapi.json",
            get(move || {
                let document = document.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], document) }
            }),
        )
        .route("/docs", get(|| async { asset("text/html; charset=utf-8", PAGE.as_bytes()) }))
        .route("/docs/docs.js", get(|| async { asset("text/javascript", BOOT) }))
        .route("/docs/swagger-ui.css", get(|| async { asset("text/css", SWAGGER_CSS) }))
        .route("/docs/swagger-ui-bundle.js", get(|| async { asset("text/javascript", SWAGGER_JS) }))
}

/// Scripts and styles from this origin only, no inline script, nothing framed; the UI fetches the document
/// from here and draws its icons from data URLs.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static [u8]) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Popup platform API</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/docs.js"></script>
</body>
</html>
"#;

const BOOT: &[u8] = include_bytes!("../assets/docs.js");
const SWAGGER_CSS: &[u8] = include_bytes!("../assets/vendor/swagger-ui-dist/swagger-ui.css");
const SWAGGER_JS: &[u8] = include_bytes!("../assets/vendor/swagger-ui-dist/swagger-ui-bundle.js");

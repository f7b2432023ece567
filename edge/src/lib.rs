//! The Cloudflare Worker that answers popup requests near customers, against HTTP Redis.
//!
//! It is an adapter around `popup-core`: every business rule lives in the core, and the origin serves the
//! same API around the same functions, so both answer a request alike. Layout:
//! - this file: the fetch handler and the router ([`route`]);
//! - [`routes`]: the popup and event endpoints, and their request parsing; `/healthz`;
//! - [`error`]: the one error type, mapped to a status and a JSON body;
//! - [`http`]: the runtime's request and response, read and built directly;
//! - [`config`]: wrangler vars and secrets;
//! - [`identity`]: the customer from the bank's identity token (`IDENTITY=jwt`), keys from its key set;
//! - [`rest`]: the Upstash REST protocol (request bodies, replies), plain Rust tested natively;
//! - [`redis`]: that protocol over `fetch`, with a timeout;
//! - [`cache`]: the decoded catalog, kept in isolate memory while its version is current.
//!
//! Build with `scripts/build-edge`; run locally with `npx wrangler dev` (see `wrangler.toml`).

pub mod cache;
pub mod config;
pub mod error;
pub mod http;
pub mod identity;
pub mod redis;
pub mod rest;
pub mod routes;

use worker::{event, web_sys, Context, Env};

use crate::error::EdgeError;

#[event(fetch)]
async fn fetch(req: web_sys::Request, env: Env, ctx: Context) -> worker::Result<web_sys::Response> {
    let url = req.url();
    let result = match (route(http::path(&url)), req.method().as_str()) {
        (Some(Route::Health), "GET") => routes::healthz(),
        (Some(Route::Popup), "GET") => routes::popup(&req, &url, env, &ctx).await,
        (Some(Route::Event { id, kind }), "POST") => routes::event(&req, env, id, kind).await,
        (Some(_), _) => Err(EdgeError::MethodNotAllowed),
        (None, _) => Err(EdgeError::NotFound("route")),
    };
    // Every error becomes its status and JSON body here, in one place.
    result.or_else(EdgeError::into_response)
}

/// The routes of the public API, with the raw path segments they capture.
#[derive(Debug, PartialEq, Eq)]
pub enum Route<'p> {
    /// `GET /healthz`
    Health,
    /// `GET /v1/campaigns/popup`
    Popup,
    /// `POST /v1/campaigns/{id}/{kind}`
    Event { id: &'p str, kind: &'p str },
}

/// The router: a path to its route, if any. A `match` over the segments rather than `worker::Router`,
/// whose route tree and boxed handlers cost about 25 KB of the 400 KB wasm budget for three routes.
pub fn route(path: &str) -> Option<Route<'_>> {
    if path == "/healthz" {
        return Some(Route::Health);
    }
    let mut segments = path.strip_prefix('/')?.split('/');
    let route = match (segments.next()?, segments.next()?, segments.next()?, segments.next()) {
        ("v1", "campaigns", "popup", None) => Route::Popup,
        ("v1", "campaigns", id, Some(kind)) if !id.is_empty() && !kind.is_empty() => {
            Route::Event { id, kind }
        }
        _ => return None,
    };
    segments.next().is_none().then_some(route)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_route_like_the_origins() {
        assert_eq!(route("/healthz"), Some(Route::Health));
        assert_eq!(route("/v1/campaigns/popup"), Some(Route::Popup));
        assert_eq!(route("/v1/campaigns/12/click"), Some(Route::Event { id: "12", kind: "click" }));
        // The kind and the id are checked by the handler, in the origin's order (404, then 400).
        assert_eq!(route("/v1/campaigns/x/share"), Some(Route::Event { id: "x", kind: "share" }));
        assert_eq!(route("/v1/campaigns/popup/click"), Some(Route::Event { id: "popup", kind: "click" }));
        for path in [
            "/",
            "",
            "/v1",
            "/healthz/",
            "/healthz/x",
            "/v1/healthz",
            "/v1/campaigns",
            "/v1/campaigns/",
            "/v1/campaigns/popup/",
            "/v1/campaigns//click",
            "/v1/campaigns/12/",
            "/v1/campaigns/12/click/more",
            "/v2/campaigns/popup",
            "v1/campaigns/popup",
        ] {
            assert_eq!(route(path), None, "{path:?}");
        }
    }
}

//! CSRF protection for the dashboard: every request that changes state (any method but GET, HEAD and
//! OPTIONS) must come from our own pages. Three checks, each enough to stop a forged request on its own
//! in the browsers that support it, and refused with 403 when any fails:
//!
//! - `Sec-Fetch-Site`, when the browser sends it, must be `same-origin`;
//! - `Origin`, when sent, must name this host;
//! - the session's synchronizer token ([`super::session::csrf_token`]) must come back, in the
//!   `X-CSRF-Token` header (htmx and our scripts) or in the `csrf` field of a form. Sign-in has no session
//!   yet and is exempt from this one (the first two and `SameSite=Strict` cover it).

use axum::body::{Body, Bytes};
use axum::extract::{OriginalUri, Request};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::session::{csrf_token, session_token, Refusal};

/// The header htmx and our scripts send the token in.
pub const HEADER: &str = "x-csrf-token";
/// The form field forms send it in.
pub const FIELD: &str = "csrf";
/// Paths that have no session to take a token from.
const WITHOUT_TOKEN: &[&str] = &["/ui/signin"];
/// The largest form body read to find the token; forms of the dashboard are far smaller.
const MAX_FORM_BYTES: usize = 1 << 20;

/// The middleware, in front of every dashboard route.
pub async fn protect(request: Request, next: Next) -> Response {
    if matches!(request.method(), &Method::GET | &Method::HEAD | &Method::OPTIONS) {
        return next.run(request).await;
    }
    if !same_origin(request.headers()) {
        return Refusal::Csrf.into_response();
    }
    // Inside the nested router the path has lost its `/ui` prefix; the original one names the route.
    let path = match request.extensions().get::<OriginalUri>() {
        Some(OriginalUri(uri)) => uri.path().to_string(),
        None => request.uri().path().to_string(),
    };
    if WITHOUT_TOKEN.contains(&path.as_str()) {
        return next.run(request).await;
    }
    let Some(expected) = session_token(request.headers()).map(|token| csrf_token(&token)) else {
        return Refusal::SignedOut.into_response();
    };
    if let Some(sent) = request.headers().get(HEADER).and_then(|v| v.to_str().ok()) {
        return if equal(sent.as_bytes(), expected.as_bytes()) {
            next.run(request).await
        } else {
            Refusal::Csrf.into_response()
        };
    }
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Refusal::Csrf.into_response();
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
        return Refusal::BadRequest("the form is too large".into()).into_response();
    };
    let sent = form_field(&bytes, FIELD);
    if !sent.is_some_and(|sent| equal(sent.as_bytes(), expected.as_bytes())) {
        return Refusal::Csrf.into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

/// The browser says the request comes from our own origin, or says nothing that contradicts it.
fn same_origin(headers: &HeaderMap) -> bool {
    let text = |name| headers.get(name).and_then(|v: &axum::http::HeaderValue| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site") {
        if site != "same-origin" {
            return false;
        }
    }
    if let Some(origin) = text(header::ORIGIN.as_str()) {
        let host = origin.split_once("://").map(|(_, rest)| rest);
        return host.is_some() && host == text(header::HOST.as_str());
    }
    true
}

fn form_field(body: &Bytes, name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
}

/// Compares in time independent of where the first difference is.
fn equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn only_our_own_origin_passes() {
        assert!(same_origin(&headers(&[("host", "bank.example")])));
        assert!(same_origin(&headers(&[("host", "bank.example"), ("origin", "https://bank.example")])));
        assert!(!same_origin(&headers(&[("host", "bank.example"), ("origin", "https://evil.example")])));
        assert!(!same_origin(&headers(&[("host", "bank.example"), ("origin", "null")])));
        assert!(!same_origin(&headers(&[("host", "bank.example"), ("sec-fetch-site", "cross-site")])));
        assert!(!same_origin(&headers(&[("host", "bank.example"), ("sec-fetch-site", "same-site")])));
    }

    #[test]
    fn the_form_field_is_found_and_compared_whole() {
        let body = Bytes::from_static(b"name=x&csrf=abc%2Bd");
        assert_eq!(form_field(&body, "csrf").as_deref(), Some("abc+d"));
        assert!(equal(b"abc", b"abc"));
        assert!(!equal(b"abc", b"abd"));
        assert!(!equal(b"abc", b"ab"));
    }
}

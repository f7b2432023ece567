//! The runtime's own `Request` and `Response` (web_sys), read and built directly. The `worker` crate's
//! wrappers read every request's method, URL, headers and `cf` up front, and hand a response back by
//! copying its body into a new buffer and rebuilding its headers; measured in workerd run directly, those
//! conversions were about a tenth of a warm resolve's CPU.

use std::cell::RefCell;

use serde::Serialize;
use worker::js_sys::Uint8Array;
use worker::wasm_bindgen::JsValue;
use worker::wasm_bindgen_futures::JsFuture;
use worker::web_sys::{Headers, Request, Response, ResponseInit};
use worker::worker_sys::ext::RequestExt;

/// The path of a serialized URL (as `Request.url` gives it): after the authority, before the query or
/// fragment; `/` when it has none.
pub fn path(url: &str) -> &str {
    let Some(authority) = url.find("://").map(|at| at + 3) else {
        return url.split(['?', '#']).next().unwrap_or("/");
    };
    let rest = &url[authority..];
    match rest.find(['/', '?', '#']) {
        Some(at) if rest[at..].starts_with('/') => rest[at..].split(['?', '#']).next().unwrap_or("/"),
        _ => "/",
    }
}

/// A request header, if present.
pub fn header(request: &Request, name: &str) -> Result<Option<String>, JsValue> {
    request.headers().get(name)
}

/// The two-letter country the platform placed the client in (`request.cf.country`), never from anything
/// the client sends.
pub fn country(request: &Request) -> Option<String> {
    request.cf()?.country().ok().flatten()
}

/// The request's whole body.
pub async fn body(request: &Request) -> Result<Vec<u8>, JsValue> {
    let buffer = JsFuture::from(request.array_buffer()?).await?;
    Ok(Uint8Array::new(&buffer).to_vec())
}

/// A JSON response with `status`, and `header` when given.
pub fn json(status: u16, body: &impl Serialize, header: Option<(&str, &str)>) -> Result<Response, JsValue> {
    let text = serde_json::to_string(body).map_err(|error| JsValue::from_str(&error.to_string()))?;
    let headers = match header {
        None => json_headers()?,
        Some((name, value)) => {
            let headers = Headers::new()?;
            headers.set("Content-Type", "application/json")?;
            headers.set(name, value)?;
            headers
        }
    };
    respond(status, Some(&text), Some(&headers))
}

thread_local! {
    static JSON_HEADERS: RefCell<Option<Headers>> = const { RefCell::new(None) };
}

/// `Content-Type: application/json`, made once per isolate: a response copies the headers it is given.
fn json_headers() -> Result<Headers, JsValue> {
    crate::cache::kept(&JSON_HEADERS, || {
        let headers = Headers::new()?;
        headers.set("Content-Type", "application/json")?;
        Ok(headers)
    })
}

/// A plain-text response.
pub fn text(status: u16, body: &str) -> Result<Response, JsValue> {
    let headers = Headers::new()?;
    headers.set("Content-Type", "text/plain; charset=utf-8")?;
    respond(status, Some(body), Some(&headers))
}

/// A response with no body (204).
pub fn empty(status: u16) -> Result<Response, JsValue> {
    respond(status, None, None)
}

fn respond(status: u16, body: Option<&str>, headers: Option<&Headers>) -> Result<Response, JsValue> {
    let init = ResponseInit::new();
    init.set_status(status);
    if let Some(headers) = headers {
        init.set_headers(headers);
    }
    Response::new_with_opt_str_and_init(body, &init)
}

#[cfg(test)]
mod tests {
    use super::path;

    #[test]
    fn paths_are_read_as_the_runtime_serializes_urls() {
        for (url, expected) in [
            ("https://edge.example/", "/"),
            ("https://edge.example", "/"),
            ("https://edge.example/v1/campaigns/popup?user_id=a/b", "/v1/campaigns/popup"),
            ("https://edge.example/healthz#/x?y", "/healthz"),
            ("http://127.0.0.1:8787/v1/campaigns/12/click", "/v1/campaigns/12/click"),
            ("https://edge.example/a%3F%23%2Fb?c", "/a%3F%23%2Fb"),
            ("https://edge.example?q=/x", "/"),
        ] {
            assert_eq!(path(url), expected, "{url}");
        }
    }
}

//! Extractors whose rejections are our JSON errors, and the refusal of NUL in what callers send.
//!
//! Every JSON body is read with [`JsonBody`], every path parameter with [`Path`] and every query with
//! [`Query`]; [`refuse_nul`] stands in front of every route for the query and the path, before a handler
//! could store what it holds.

use axum::body::{Body, Bytes};
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Request};
use axum::http::request::Parts;
use axum::http::Uri;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use popup_core::campaign::FieldError;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A path parameter; a value that does not parse (`/keys/abc`) is our JSON 400, not axum's plain text.
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(value) = axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(Path(value))
    }
}

/// A query string; one that does not parse is our JSON 400.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Query(value) = axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Query(value))
    }
}

/// The message of every field refused for holding NUL.
const NUL_MESSAGE: &str = "must not contain the NUL character";
/// Fields named in one NUL error; the count covers them all.
const MAX_REPORTED_NUL_FIELDS: usize = 100;

/// A JSON request body, read the way axum's [`Json`] reads it (the JSON content type, the route's body
/// limit, the parser's errors mapped by `From<JsonRejection>`), and refused (400, naming the fields) when a
/// string in it holds NUL: Postgres stores neither text nor jsonb with NUL, so such a body would otherwise
/// fail at the database as a 500, or half way through a write. Every JSON body is read through this.
///
/// Axum runs it after the extractors of the request's head (the role, the path), so a caller who may not
/// act never has their body read.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let (parts, body) = request.into_parts();
        // Buffered once, within the limit the route's `DefaultBodyLimit` put in the extensions, so that the
        // same bytes can be parsed by axum and then searched for NUL.
        let bytes = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(JsonRejection::from)?;
        let Json(value) =
            Json::<T>::from_request(Request::from_parts(parts, Body::from(bytes.clone())), state).await?;
        // Searched after parsing: the text is valid JSON by then, which the search relies on.
        if has_nul_escape(&bytes) {
            return Err(ApiError::BadFields(nul_fields_in_json(&bytes)));
        }
        Ok(JsonBody(value))
    }
}

/// Whether valid JSON text holds a NUL: in valid JSON the only way to write one is the escape `\u0000`
/// (control characters must be escaped), and a backslash only ever starts an escape. Each escape is
/// skipped whole, so `\\u0000` (an escaped backslash, then the text `u0000`) is not one.
fn has_nul_escape(json: &[u8]) -> bool {
    let mut rest = json;
    while let Some(at) = rest.iter().position(|&b| b == b'\\') {
        let escape = &rest[at + 1..];
        if escape.starts_with(b"u0000") {
            return true;
        }
        // The escaped character is skipped with its backslash; the hex digits of `\uXXXX` hold none.
        rest = escape.get(1..).unwrap_or_default();
    }
    false
}

/// The fields of a JSON body that hold NUL, by path (`creative.title`, `variants[1].key`), as the
/// validation errors name them; a key holding NUL is reported at its object (`body` at the top).
fn nul_fields_in_json(json: &[u8]) -> Vec<FieldError> {
    let mut fields = Vec::new();
    let mut count = 0;
    match serde_json::from_slice::<serde_json::Value>(json) {
        Ok(value) => nul_fields_in_value(&value, "", &mut fields, &mut count),
        // Not expected: the body parsed as the handler's type a moment ago.
        Err(_) => count += 1,
    }
    if fields.is_empty() {
        fields.push(FieldError::new("body", NUL_MESSAGE));
    } else if count > fields.len() {
        let more = count - fields.len();
        fields.push(FieldError::new("body", format!("and {more} more fields with NUL")));
    }
    fields
}

fn nul_fields_in_value(
    value: &serde_json::Value,
    path: &str,
    fields: &mut Vec<FieldError>,
    count: &mut usize,
) {
    let mut report = |field: &str| {
        *count += 1;
        if fields.len() < MAX_REPORTED_NUL_FIELDS {
            let field = if field.is_empty() { "body" } else { field };
            fields.push(FieldError::new(field, NUL_MESSAGE));
        }
    };
    match value {
        serde_json::Value::String(text) if text.contains('\0') => report(path),
        serde_json::Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                nul_fields_in_value(item, &format!("{path}[{index}]"), fields, count);
            }
        }
        serde_json::Value::Object(members) => {
            if members.keys().any(|key| key.contains('\0')) {
                report(path);
            }
            for (key, member) in members {
                let member_path = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                nul_fields_in_value(member, &member_path, fields, count);
            }
        }
        _ => {}
    }
}

/// Middleware in front of every route: a NUL in the query or the path is 400 `invalid_request` naming the
/// parameter, before a handler reads it. Postgres cannot store or compare text with NUL, so a parameter
/// that reaches a query (a search, a filter, a segment name) would fail there as a 500.
///
/// A URI cannot carry the NUL byte itself, only its escape `%00`, and a `%` always starts an escape (a
/// literal one is `%25`), so the raw text holds `%00` exactly when the decoded text holds NUL; the search
/// costs one scan, and decoding is left to the rare request that fails it, to name what is refused.
/// Bodies are not read here: JSON ones are searched by [`JsonBody`], streamed uploads row by row by their
/// parsers.
pub async fn refuse_nul(request: Request, next: Next) -> Response {
    let mut fields = Vec::new();
    let uri = request.uri();
    if uri.query().is_some_and(|query| query.contains("%00")) {
        nul_in_query(uri, &mut fields);
    }
    if uri.path().contains("%00") {
        let route = request.extensions().get::<MatchedPath>().map(MatchedPath::as_str);
        nul_in_path(uri.path(), route, &mut fields);
    }
    if fields.is_empty() {
        next.run(request).await
    } else {
        ApiError::BadFields(fields).into_response()
    }
}

/// Names the query parameters holding NUL, decoded as handlers decode them.
fn nul_in_query(uri: &Uri, fields: &mut Vec<FieldError>) {
    let pairs = match axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri) {
        Ok(axum::extract::Query(pairs)) => pairs,
        Err(_) => Vec::new(),
    };
    for (name, value) in &pairs {
        if name.contains('\0') || value.contains('\0') {
            fields.push(FieldError::new(name.replace('\0', "%00"), NUL_MESSAGE));
        }
    }
    if fields.is_empty() {
        fields.push(FieldError::new("query", NUL_MESSAGE));
    }
}

/// Names the path parameters holding NUL by the route's template (`/segments/{name}` names `name`); a
/// segment that is not a parameter, or a path no route matched, is `path`.
fn nul_in_path(path: &str, route: Option<&str>, fields: &mut Vec<FieldError>) {
    let segments: Vec<&str> = path.split('/').collect();
    let template: Vec<&str> = route.map(|r| r.split('/').collect()).unwrap_or_default();
    for (index, segment) in segments.iter().enumerate() {
        if !segment.contains("%00") {
            continue;
        }
        let parameter = match template.get(index) {
            Some(part) if template.len() == segments.len() => {
                part.strip_prefix('{').and_then(|p| p.strip_suffix('}'))
            }
            _ => None,
        };
        fields.push(FieldError::new(parameter.unwrap_or("path"), NUL_MESSAGE));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_escapes_are_found_and_escaped_backslashes_are_not_one() {
        let cases: &[(&str, bool)] = &[
            (r#"{"name": "a\u0000b"}"#, true),
            (r#"{"name": "\u0000"}"#, true),
            (r#"["x", "\\", "\u0000"]"#, true),
            (r#"{"a\u0000": 1}"#, true),
            // An escaped backslash followed by the text u0000.
            (r#"{"name": "\\u0000"}"#, false),
            (r#"{"name": "\\\\u0000"}"#, false),
            // Three backslashes: an escaped one, then a real escape.
            (r#"{"name": "\\\u0000"}"#, true),
            (r#"{"name": "\u0001 \u00000"}"#, true),
            (r#"{"name": "\u0001 \u1000 \"u0000"}"#, false),
            (r#"{"name": "plain", "n": 0}"#, false),
            (r#""ends with a backslash escape \\""#, false),
        ];
        for (json, expected) in cases {
            let value: serde_json::Value = serde_json::from_str(json).unwrap();
            assert_eq!(has_nul_escape(json.as_bytes()), *expected, "{json}");
            // The parser agrees: the decoded strings hold NUL exactly when the search found one.
            let (mut fields, mut count) = (Vec::new(), 0);
            nul_fields_in_value(&value, "", &mut fields, &mut count);
            assert_eq!(count > 0, *expected, "{json}");
        }
    }

    #[test]
    fn nul_fields_are_named_by_path() {
        let json = r#"{"name": "a\u0000", "creative": {"title": "ok", "body": "\u0000"},
                       "variants": [{"key": "a"}, {"key": "\u0000"}], "extra": {"k\u0000": 1}}"#;
        let mut fields: Vec<String> =
            nul_fields_in_json(json.as_bytes()).into_iter().map(|f| f.field).collect();
        fields.sort();
        assert_eq!(fields, ["creative.body", "extra", "name", "variants[1].key"]);
    }

    #[test]
    fn many_nul_fields_are_counted_beyond_those_listed() {
        let json = serde_json::to_string(&vec!["\0"; 150]).unwrap();
        let fields = nul_fields_in_json(json.as_bytes());
        assert_eq!(fields.len(), MAX_REPORTED_NUL_FIELDS + 1);
        assert_eq!(fields[0].field, "[0]");
        assert_eq!(fields[MAX_REPORTED_NUL_FIELDS].message, "and 50 more fields with NUL");
    }

    #[test]
    fn path_parameters_are_named_by_the_route_template() {
        let mut fields = Vec::new();
        nul_in_path("/admin/v1/segments/a%00b", Some("/admin/v1/segments/{name}"), &mut fields);
        nul_in_path("/nowhere/%00", None, &mut fields);
        nul_in_path("/admin/v1/campaigns/%00/end", Some("/admin/v1/campaigns/{id}/{action}"), &mut fields);
        nul_in_path("/admin/v1/segments/%00", Some("/admin/v1/segments"), &mut fields);
        let names: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(names, ["name", "path", "id", "path"]);
    }

    #[test]
    fn query_parameters_are_named_decoded() {
        for (uri, expected) in [
            ("/x?q=%00", vec!["q"]),
            ("/x?status=draft&q=a%00b&user_id=%00", vec!["q", "user_id"]),
            ("/x?a%00=1", vec!["a%00"]),
            ("/x?%25%30%30=%2500&b=%00", vec!["b"]),
        ] {
            let mut fields = Vec::new();
            nul_in_query(&uri.parse().unwrap(), &mut fields);
            let names: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
            assert_eq!(names, expected, "{uri}");
        }
    }
}

//! The HTTP error of the origin: every handler returns [`ApiError`], mapped to a status and a JSON body here
//! and nowhere else. Internal errors are logged and answered with a plain 500.
//!
//! What the caller sent is refused here too, before a handler could store it: every JSON body is read with
//! [`JsonBody`], and [`refuse_nul`] stands in front of every route for the query and the path.

use axum::body::{Body, Bytes};
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, MatchedPath, Query, Request};
use axum::http::{StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use popup_core::campaign::{FieldError, ValidationErrors};
use popup_core::wire::ErrorResponse;
use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    /// A body that parses but does not fit the expected shape (unknown field, wrong type).
    #[error("{0}")]
    BadBody(String),
    /// Fields of a request that cannot be read (public API): 400.
    #[error("invalid request")]
    BadFields(Vec<FieldError>),
    /// Fields that were read but break a rule (admin writes): 422.
    #[error("invalid request")]
    Invalid(Vec<FieldError>),
    #[error("missing or unknown API key")]
    Unauthorized,
    #[error("this API key's role may not do that")]
    Forbidden,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{0}")]
    Conflict(String),
    #[error("the upload is larger than {0} bytes")]
    PayloadTooLarge(u64),
    /// A JSON body over the route's limit (axum's, or the route's own `DefaultBodyLimit`).
    #[error("the request body is larger than this endpoint accepts")]
    BodyTooLarge,
    #[error("the store is unavailable")]
    Unavailable,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn field(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::Invalid(vec![FieldError { field: field.into(), message: message.into() }])
    }

    pub fn bad_field(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::BadFields(vec![FieldError { field: field.into(), message: message.into() }])
    }

    /// For routes whose contract answers every body it cannot use with 400 (the public API, sends and
    /// re-queues): a body of the wrong shape is a bad request there, not `invalid_body`; a body too large
    /// is still 413.
    pub fn unreadable(self) -> ApiError {
        match self {
            ApiError::BadBody(message) => ApiError::BadRequest(message),
            other => other,
        }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            ApiError::BadBody(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
            ApiError::BadFields(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            ApiError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::PayloadTooLarge(_) | ApiError::BodyTooLarge => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
            }
            ApiError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(errors: ValidationErrors) -> ApiError {
        ApiError::Invalid(errors.0)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> ApiError {
        match &error {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                tracing::warn!(%error, "postgres unavailable");
                ApiError::Unavailable
            }
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                ApiError::Conflict("a record with that name already exists".into())
            }
            _ => ApiError::Internal(error.into()),
        }
    }
}

impl From<crate::redis_store::StoreUnavailable> for ApiError {
    fn from(error: crate::redis_store::StoreUnavailable) -> ApiError {
        tracing::warn!(%error, "redis unavailable");
        ApiError::Unavailable
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let body = match self {
            ApiError::Internal(error) => {
                tracing::error!(error = format!("{error:#}"), "internal error");
                ErrorResponse::new(code, "internal error")
            }
            ApiError::Invalid(fields) | ApiError::BadFields(fields) => {
                ErrorResponse::new(code, "the request has invalid fields").with_fields(fields)
            }
            other => ErrorResponse::new(code, other.to_string()),
        };
        (status, Json(body)).into_response()
    }
}

// Rejections of axum's extractors (bad JSON, query or path) answer in the same JSON error shape.

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> ApiError {
        // The body limit is one of axum's buffering errors, several layers down; its status says it.
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::BodyTooLarge;
        }
        match rejection {
            JsonRejection::JsonDataError(error) => ApiError::BadBody(error.body_text()),
            other => ApiError::BadRequest(other.body_text()),
        }
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::QueryRejection) -> ApiError {
        ApiError::BadRequest(rejection.body_text())
    }
}

impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::PathRejection) -> ApiError {
        ApiError::BadRequest(rejection.body_text())
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
/// Handlers take it as `Result<JsonBody<T>, ApiError>` so that their role check comes before the body's
/// errors.
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
        fields.push(FieldError { field: "body".into(), message: NUL_MESSAGE.into() });
    } else if count > fields.len() {
        let more = count - fields.len();
        fields.push(FieldError { field: "body".into(), message: format!("and {more} more fields with NUL") });
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
            fields.push(FieldError { field: field.into(), message: NUL_MESSAGE.into() });
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
    let pairs = match Query::<Vec<(String, String)>>::try_from_uri(uri) {
        Ok(Query(pairs)) => pairs,
        Err(_) => Vec::new(),
    };
    for (name, value) in &pairs {
        if name.contains('\0') || value.contains('\0') {
            fields.push(FieldError { field: name.replace('\0', "%00"), message: NUL_MESSAGE.into() });
        }
    }
    if fields.is_empty() {
        fields.push(FieldError { field: "query".into(), message: NUL_MESSAGE.into() });
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
        fields.push(FieldError { field: parameter.unwrap_or("path").into(), message: NUL_MESSAGE.into() });
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

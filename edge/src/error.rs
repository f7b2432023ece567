//! The HTTP error of the edge: every handler returns [`EdgeError`], mapped to a status and a JSON body
//! (`popup_core::wire::ErrorResponse`) here and nowhere else, with the origin's statuses and codes.
//! An unreachable store is a quick 503 the app reads as "no popup"; internal errors are logged and
//! answered with a plain 500 that shows nothing of them.

use popup_core::campaign::FieldError;
use popup_core::identity::IdentityError;
use popup_core::store::StoreError;
use popup_core::token::TokenError;
use popup_core::wire::ErrorResponse;
use worker::wasm_bindgen::JsValue;
use worker::{console_error, console_warn, web_sys};

use crate::config::ConfigError;
use crate::redis::StoreUnavailable;

/// The period of the `[[ratelimits]]` bindings in wrangler.toml, in seconds: a limited client is told to
/// retry after it (the binding does not say when its window ends).
const RATE_LIMIT_PERIOD_SECONDS: &str = "60";

#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    /// A request that cannot be read at all (its body, its path): 400.
    #[error("{0}")]
    BadRequest(String),
    /// Fields of a request that cannot be read: 400, naming them.
    #[error("invalid request")]
    BadFields(Vec<FieldError>),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A known path asked with another method: 405.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Redis did not answer, or not in its protocol, within the timeout: 503.
    #[error("the store is unavailable")]
    Unavailable(#[from] StoreUnavailable),
    /// The worker's vars or secrets are missing or wrong: a deployment mistake.
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    /// Redis answered, but not what the plan expects (an error reply, a malformed catalog).
    #[error("store reply: {0}")]
    Store(#[from] StoreError),
    #[error("token: {0}")]
    Token(#[from] TokenError),
    /// The customer could not be known from the request's identity token: 401.
    #[error(transparent)]
    InvalidToken(IdentityError),
    /// Over a rate-limiting binding's limit: 429 with `Retry-After` of its period.
    #[error("too many requests; retry after {} s", RATE_LIMIT_PERIOD_SECONDS)]
    RateLimited,
    /// The identity provider's keys could not be fetched: the customer cannot be known, so nothing is
    /// shown (503).
    #[error("the identity provider's keys are unavailable")]
    IdentityUnavailable,
    #[error("no randomness: {0}")]
    Randomness(getrandom::Error),
    #[error("runtime: {0}")]
    Runtime(#[from] worker::Error),
}

impl From<IdentityError> for EdgeError {
    fn from(error: IdentityError) -> EdgeError {
        match error {
            IdentityError::KeysUnavailable => EdgeError::IdentityUnavailable,
            other => EdgeError::InvalidToken(other),
        }
    }
}

impl EdgeError {
    pub fn bad_field(field: &str, message: impl Into<String>) -> EdgeError {
        EdgeError::BadFields(vec![FieldError::new(field, message)])
    }

    pub fn status_and_code(&self) -> (u16, &'static str) {
        match self {
            EdgeError::BadRequest(_) | EdgeError::BadFields(_) => (400, "invalid_request"),
            EdgeError::NotFound(_) => (404, "not_found"),
            EdgeError::MethodNotAllowed => (405, "method_not_allowed"),
            EdgeError::Unavailable(_) => (503, "store_unavailable"),
            EdgeError::InvalidToken(_) => (401, "unauthorized"),
            EdgeError::IdentityUnavailable => (503, "identity_unavailable"),
            EdgeError::RateLimited => (429, "rate_limited"),
            EdgeError::Config(_)
            | EdgeError::Store(_)
            | EdgeError::Token(_)
            | EdgeError::Randomness(_)
            | EdgeError::Runtime(_) => (500, "internal"),
        }
    }

    /// The JSON body the client gets. Logs what the client is not shown.
    pub fn body(self) -> ErrorResponse {
        let (_, code) = self.status_and_code();
        match self {
            EdgeError::BadFields(fields) => {
                ErrorResponse::new(code, "the request has invalid fields").with_fields(fields)
            }
            EdgeError::BadRequest(_)
            | EdgeError::NotFound(_)
            | EdgeError::MethodNotAllowed
            | EdgeError::InvalidToken(_)
            | EdgeError::RateLimited
            | EdgeError::IdentityUnavailable => ErrorResponse::new(code, self.to_string()),
            EdgeError::Unavailable(error) => {
                console_warn!("redis unavailable: {error}");
                ErrorResponse::new(code, "the store is unavailable")
            }
            internal => {
                console_error!("internal error: {internal}");
                ErrorResponse::new(code, "internal error")
            }
        }
    }

    pub fn into_response(self) -> worker::Result<web_sys::Response> {
        let (status, _) = self.status_and_code();
        let header = match self {
            EdgeError::InvalidToken(_) => Some(("WWW-Authenticate", r#"Bearer error="invalid_token""#)),
            EdgeError::RateLimited => Some(("Retry-After", RATE_LIMIT_PERIOD_SECONDS)),
            _ => None,
        };
        Ok(crate::http::json(status, &self.body(), header)?)
    }
}

impl From<JsValue> for EdgeError {
    fn from(error: JsValue) -> EdgeError {
        EdgeError::Runtime(error.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rest::RestError;

    #[test]
    fn statuses_and_codes_match_the_origin() {
        let cases = [
            (EdgeError::BadRequest("bad body".into()), 400, "invalid_request"),
            (EdgeError::bad_field("user_id", "is required"), 400, "invalid_request"),
            (EdgeError::NotFound("event kind"), 404, "not_found"),
            (EdgeError::MethodNotAllowed, 405, "method_not_allowed"),
            (EdgeError::Unavailable(StoreUnavailable::Timeout(300)), 503, "store_unavailable"),
            (EdgeError::Unavailable(RestError::Unauthorized.into()), 503, "store_unavailable"),
            (EdgeError::Config(ConfigError::Missing("TOKEN_SECRET")), 500, "internal"),
            (EdgeError::Store(StoreError::UnexpectedReply("EVAL event")), 500, "internal"),
            (EdgeError::Token(TokenError::InvalidClaims), 500, "internal"),
            (IdentityError::Expired.into(), 401, "unauthorized"),
            (IdentityError::KeysUnavailable.into(), 503, "identity_unavailable"),
            (EdgeError::RateLimited, 429, "rate_limited"),
        ];
        for (error, status, code) in cases {
            assert_eq!(error.status_and_code(), (status, code), "{error:?}");
        }
    }

    #[test]
    fn field_errors_are_listed_and_plain_errors_say_what_failed() {
        let body = EdgeError::bad_field("user_id", "is required").body();
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"error": {
                "code": "invalid_request",
                "message": "the request has invalid fields",
                "fields": [{"field": "user_id", "message": "is required"}],
            }})
        );
        let json = serde_json::to_value(EdgeError::NotFound("event kind").body()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"error": {"code": "not_found", "message": "event kind not found"}})
        );
    }
}

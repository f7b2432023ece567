//! The HTTP error of the origin: every handler returns [`ApiError`], mapped to a status and a JSON body here
//! and nowhere else. Internal errors are logged and answered with a plain 500.

use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use popup_core::campaign::{FieldError, ValidationErrors};
use popup_core::wire::ErrorResponse;

use crate::db::DbError;

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
    /// The popup API's customer could not be known from the request's identity token: 401 with
    /// `WWW-Authenticate: Bearer error="invalid_token"`.
    #[error(transparent)]
    InvalidToken(popup_core::identity::IdentityError),
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
    /// Over a request limit of the public API: 429 with `Retry-After`.
    #[error("too many requests; retry after {0} s")]
    RateLimited(u64),
    #[error("the store is unavailable")]
    Unavailable,
    #[error("the identity provider's keys are unavailable")]
    IdentityUnavailable,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn field(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::Invalid(vec![FieldError::new(field, message)])
    }

    /// A broken invariant of ours, answered 500 and logged with `message`.
    pub fn internal(message: impl std::fmt::Display) -> ApiError {
        ApiError::Internal(anyhow::anyhow!("{message}"))
    }

    pub fn bad_field(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::BadFields(vec![FieldError::new(field, message)])
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

    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        self.status_and_code().0
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            ApiError::BadBody(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
            ApiError::BadFields(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            ApiError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            ApiError::Unauthorized | ApiError::InvalidToken(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::PayloadTooLarge(_) | ApiError::BodyTooLarge => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
            }
            ApiError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
            ApiError::IdentityUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "identity_unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<popup_core::store::StoreError> for ApiError {
    /// Redis answered, but not as the layout says it should (a key of the wrong type, a reply of the wrong
    /// shape): something else wrote our keys, which is ours to look into, not an outage.
    fn from(error: popup_core::store::StoreError) -> ApiError {
        ApiError::Internal(error.into())
    }
}

impl From<popup_core::catalog::CatalogError> for ApiError {
    fn from(error: popup_core::catalog::CatalogError) -> ApiError {
        ApiError::Internal(error.into())
    }
}

impl From<popup_core::token::TokenError> for ApiError {
    fn from(error: popup_core::token::TokenError) -> ApiError {
        ApiError::Internal(error.into())
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(errors: ValidationErrors) -> ApiError {
        ApiError::Invalid(errors.0)
    }
}

impl From<DbError> for ApiError {
    fn from(error: DbError) -> ApiError {
        match error {
            DbError::Unavailable(error) => {
                tracing::warn!(%error, "postgres unavailable");
                ApiError::Unavailable
            }
            DbError::Duplicate => ApiError::Conflict(DbError::Duplicate.to_string()),
            DbError::Query(error) => ApiError::Internal(error.into()),
        }
    }
}

impl From<crate::projection::ProjectionError> for ApiError {
    fn from(error: crate::projection::ProjectionError) -> ApiError {
        use crate::projection::ProjectionError;
        match error {
            ProjectionError::Db(error) => error.into(),
            ProjectionError::Store(error) => error.into(),
            other => ApiError::Internal(other.into()),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> ApiError {
        DbError::from(error).into()
    }
}

impl From<crate::redis_store::StoreUnavailable> for ApiError {
    fn from(error: crate::redis_store::StoreUnavailable) -> ApiError {
        // The connection's own task says when Redis goes and comes back; one line per request refused
        // meanwhile would bury that.
        tracing::debug!(%error, "redis unavailable");
        ApiError::Unavailable
    }
}

impl From<popup_core::identity::IdentityError> for ApiError {
    fn from(error: popup_core::identity::IdentityError) -> ApiError {
        match error {
            popup_core::identity::IdentityError::KeysUnavailable => ApiError::IdentityUnavailable,
            other => ApiError::InvalidToken(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if matches!(self, ApiError::InvalidToken(_)) {
            let challenge = (axum::http::header::WWW_AUTHENTICATE, r#"Bearer error="invalid_token""#);
            let (status, code) = self.status_and_code();
            return (status, [challenge], Json(ErrorResponse::new(code, self.to_string()))).into_response();
        }
        let (status, code) = self.status_and_code();
        if let ApiError::RateLimited(seconds) = self {
            let retry = (axum::http::header::RETRY_AFTER, seconds.to_string());
            return (status, [retry], Json(ErrorResponse::new(code, self.to_string()))).into_response();
        }
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

//! The gateway's one error type, and its mapping to the protocol's error format (`{"error": "..."}` with a
//! status) here and nowhere else. Statuses follow Upstash: 400 for a request or command that fails, 401
//! without the right token; the official clients read the message from `error` on any status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::allow::Refusal;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// Worded as Upstash words it, which clients may match on.
    #[error("Unauthorized")]
    Unauthorized,
    /// Not JSON, or not the shape of a command or a pipeline.
    #[error("ERR {0}")]
    BadRequest(String),
    #[error(transparent)]
    NotAllowed(#[from] Refusal),
    #[error("ERR the request body is larger than the gateway's limit of {0} bytes")]
    TooLarge(usize),
    #[error("ERR a pipeline of {len} commands is longer than the gateway's limit of {max}")]
    PipelineTooLong { len: usize, max: usize },
    /// Redis refused the single command of a `POST /` (in a pipeline, errors are per command instead), or
    /// discarded a whole transaction. The message is Redis's own.
    #[error("{0}")]
    Command(String),
    /// Redis cannot be reached or did not answer in time. The cause is logged, not sent: it may name
    /// hosts of the operator's network.
    #[error("ERR redis is unavailable")]
    Unavailable,
    #[error("ERR no such endpoint: use POST /, /pipeline or /multi-exec")]
    NotFound,
    #[error("ERR method not allowed: use POST")]
    MethodNotAllowed,
}

impl GatewayError {
    fn status(&self) -> StatusCode {
        match self {
            GatewayError::Unauthorized => StatusCode::UNAUTHORIZED,
            GatewayError::BadRequest(_)
            | GatewayError::NotAllowed(_)
            | GatewayError::PipelineTooLong { .. }
            | GatewayError::Command(_) => StatusCode::BAD_REQUEST,
            GatewayError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            GatewayError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::NotFound => StatusCode::NOT_FOUND,
            GatewayError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        }
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        (self.status(), Json(json!({ "error": self.to_string() }))).into_response()
    }
}

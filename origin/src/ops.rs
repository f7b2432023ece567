//! Operations endpoints: liveness, readiness (Postgres and Redis reachable), Prometheus metrics, and the
//! request metrics middleware.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::http::ApiError;
use crate::state::AppState;
use crate::telemetry::metrics_handle;
use popup_core::wire::ErrorResponse;

#[utoipa::path(
    get,
    path = "/healthz",
    tags = ["ops", "edge"],
    summary = "Alive",
    responses((status = 200, description = "`ok`.", body = String, content_type = "text/plain"))
)]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Which stores `/readyz` reached.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    pub postgres: bool,
    pub redis: bool,
}

#[utoipa::path(
    get,
    path = "/readyz",
    tag = "ops",
    summary = "Ready: Postgres and Redis reachable",
    responses(
        (status = 200, description = "Both reachable.", body = Readiness),
        (status = 503, description = "One of them is not.", body = Readiness),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let postgres = crate::db::ping(&state.db).await;
    let redis = state.redis.ping().await;
    let status = if postgres && redis { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(Readiness { postgres, redis })).into_response()
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "ops",
    summary = "Prometheus metrics",
    responses(
        (status = 200, description = "The Prometheus text format.", body = String, content_type = "text/plain"),
        (status = 404, description = "No metrics recorder in this process.", body = ErrorResponse),
    )
)]
pub async fn metrics() -> Response {
    match metrics_handle() {
        Some(handle) => handle.render().into_response(),
        None => ApiError::NotFound("metrics recorder").into_response(),
    }
}

/// Counts requests by route and status, and records their latency by route.
pub async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "route" => route.clone(), "status" => status).increment(1);
    metrics::histogram!("http_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

//! Operations endpoints: liveness and readiness (Postgres and Redis reachable) on the public port, for load
//! balancers and the container's health check; Prometheus metrics on a listener of their own
//! (`POPUP_OPS_ADDR`, loopback by default), so that counters naming routes and outcomes are never served to
//! the internet; and the request metrics middleware.

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tokio::sync::watch;

use crate::http::ApiError;
use crate::state::AppState;
use crate::telemetry::metrics_handle;

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

/// `GET /metrics` on the operations listener: the Prometheus text format.
pub async fn metrics() -> Response {
    match metrics_handle() {
        Some(handle) => handle.render().into_response(),
        None => ApiError::NotFound("metrics recorder").into_response(),
    }
}

/// The operations listener's routes: `/metrics`, and `/healthz` for a probe of this port.
pub fn router() -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .fallback(|| async { ApiError::NotFound("route") })
}

/// Serves [`router`] on `address` until `stopped` turns true; returns the address bound (port 0 picks a
/// free one) and the task serving it.
pub async fn listen(
    address: SocketAddr,
    mut stopped: watch::Receiver<bool>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    metrics_handle();
    let listener = tokio::net::TcpListener::bind(address).await.map_err(|error| {
        std::io::Error::new(
            error.kind(),
            format!("cannot serve metrics (POPUP_OPS_ADDR) on {address}: {error}"),
        )
    })?;
    let bound = listener.local_addr()?;
    tracing::info!(address = %bound, "metrics served here (POPUP_OPS_ADDR)");
    let task = tokio::spawn(async move {
        let stop = async move {
            let _ = stopped.wait_for(|stopped| *stopped).await;
        };
        if let Err(error) = axum::serve(listener, router()).with_graceful_shutdown(stop).await {
            tracing::error!(%error, "the operations listener failed");
        }
    });
    Ok((bound, task))
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

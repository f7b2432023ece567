//! The origin service: the admin API, Postgres as the source of truth, the projection into Redis, and the
//! popup API natively, all around the rules in `popup-core`.
//!
//! - [`config`]: flags and environment.
//! - [`state`]: what handlers share.
//! - [`error`]: the one HTTP error type and its mapping to status codes.
//! - [`auth`], [`audit`]: API keys with roles; the audit trail of every write.
//! - [`admin`]: `/admin/v1`: campaigns, segments, preview, keys, audit.
//! - [`public`]: `/v1/campaigns/...`: popup and events, the edge's contract; `/v1/conversions` from the bank.
//! - [`projection`]: Postgres into Redis, and the reconcile loop.
//! - [`ingest`]: the events stream into Postgres, exactly once per event.
//! - [`redis_store`]: carries the core's command plans to Redis, with a deadline, over connections that
//!   remake themselves after Redis restarts or fails over ([`redis_store::link`]).
//! - [`ops`]: health, readiness, metrics.
//! - [`messaging`]: outbound SMS and WhatsApp: customers, message campaigns, sending, and the
//!   `popup-origin messenger` worker.
//! - [`gateway`]: `popup-origin gateway`, the Upstash REST protocol in front of Redis, for the edge.

pub mod admin;
pub mod auth;
pub mod config;
pub mod db;
pub mod gateway;
pub mod http;
pub mod ingest;
pub mod messaging;
pub mod ops;
pub mod projection;
pub mod public;
pub mod redis_store;
pub mod state;
pub mod telemetry;

use axum::routing::{get, post};
use axum::Router;
use config::ExposeSecret;
use sqlx::postgres::PgPoolOptions;

pub use config::Config;
pub use state::AppState;

/// Embedded migrations, applied at start and by tests.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Every route of the origin.
pub fn app(state: AppState) -> Router {
    telemetry::metrics_handle();
    Router::new()
        .route("/v1/campaigns/popup", get(public::popup))
        .route("/v1/campaigns/{id}/{kind}", post(public::event))
        .route("/v1/conversions", post(public::conversion))
        .nest("/admin/v1", admin::router())
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .fallback(|| async { http::ApiError::NotFound("route") })
        .method_not_allowed_fallback(|| async { http::ApiError::MethodNotAllowed })
        .layer(axum::middleware::from_fn(http::extract::refuse_nul))
        .layer(axum::middleware::from_fn(ops::track))
        .with_state(state)
}

/// Connects and migrates Postgres, bootstraps the admin key, and makes the shared state.
async fn start(config: &Config) -> anyhow::Result<AppState> {
    let db = PgPoolOptions::new()
        .max_connections(32)
        .acquire_timeout(std::time::Duration::from_secs(3))
        .connect(config.database_url.expose_secret())
        .await?;
    MIGRATOR.run(&db).await?;
    if let Some(key) = &config.bootstrap_admin_key {
        db::keys::bootstrap_admin_key(&db, key.expose_secret()).await?;
    }
    AppState::new(config, db)
}

/// Serves until SIGTERM or Ctrl-C, reconciling and ingesting in the background. In-flight requests, and
/// the ingest batches in hand, finish before it returns.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let state = start(&config).await?;
    let stop_signal = shutdown_signal();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let reconciler =
        tokio::spawn(projection::run_reconciler(state.clone(), config.reconcile_interval(), stopped.clone()));
    let ingest = tokio::spawn(ingest::run_workers(
        state.clone(),
        config.redis_url.expose_secret().to_string(),
        config.ingest_workers,
        ingest::IngestSettings::from_config(&config),
        stopped,
    ));
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    tracing::info!(address = %listener.local_addr()?, "origin listening");
    axum::serve(listener, app(state)).with_graceful_shutdown(stop_signal).await?;
    let _ = stop.send(true);
    reconciler.await?;
    ingest.await?;
    tracing::info!("stopped");
    Ok(())
}

/// Runs only ingest workers (at least one), until SIGTERM or Ctrl-C: for scaling ingest apart from serving.
pub async fn ingest_only(config: Config) -> anyhow::Result<()> {
    let state = start(&config).await?;
    let stop_signal = shutdown_signal();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let workers = ingest::run_workers(
        state,
        config.redis_url.expose_secret().to_string(),
        config.ingest_workers.max(1),
        ingest::IngestSettings::from_config(&config),
        stopped,
    );
    let workers = tokio::spawn(workers);
    stop_signal.await;
    let _ = stop.send(true);
    workers.await?;
    tracing::info!("stopped");
    Ok(())
}

/// `popup-origin healthcheck`: GETs `url` (a role's `/healthz`) and is `Ok` only for a 200 within `timeout`,
/// connection included. It stands in for curl, which the image does not have. No proxy from the environment
/// and no redirects: the answer is the role's own.
pub async fn healthcheck(url: &str, timeout: std::time::Duration) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let status = client.get(url).send().await?.status();
    anyhow::ensure!(status == reqwest::StatusCode::OK, "{url} answered {status}");
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C: every role of the binary stops on either. The handlers are installed when
/// this is called, not when the future is first polled, so a role calls it before it starts listening: a
/// SIGTERM that arrives as soon as the port opens still stops it cleanly rather than killing it.
pub(crate) fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let signals = signal(SignalKind::terminate()).and_then(|t| Ok((t, signal(SignalKind::interrupt())?)));
        async move {
            match signals {
                Ok((mut terminate, mut interrupt)) => {
                    tokio::select! {
                        _ = terminate.recv() => {}
                        _ = interrupt.recv() => {}
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for SIGTERM");
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
            tracing::info!("shutting down");
        }
    }
    #[cfg(not(unix))]
    async move {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    }
}

//! The origin service: the admin API, Postgres as the source of truth, the projection into Redis, and the
//! popup API natively, all around the rules in `popup-core`.
//!
//! Its modules form layers, and each depends only on those below it (checked by `scripts/check-layers`):
//!
//! - roles: this file and `main.rs`: `serve`, `ingest`, and the router.
//! - routes: [`public`] (`/v1/...`, the edge's contract, and conversions from the bank), [`admin`]
//!   (`/admin/v1`: campaigns, segments, preview, stats, keys, audit), the routes of [`messaging`], [`ops`]
//!   (health, readiness, metrics), [`docs`] (the OpenAPI document and its UI), [`gateway`] (`popup-origin
//!   gateway`, the Upstash REST protocol for the edge), and [`ui`] (`/ui`: the backoffice's pages, for people
//!   signed in).
//! - [`http`]: the error type and its mapping, extractors whose rejections are JSON errors, role
//!   extractors, paging, bounded uploads.
//! - background: [`projection`] (the catalog published and healed into Redis), [`ingest`] (events into
//!   Postgres, exactly once), and the delivery engine of [`messaging`] (`popup-origin messenger`).
//! - [`state`]: what handlers and jobs share.
//! - data: [`db`] (the SQL of each entity, typed errors) and [`redis_store`] (connections that reconnect by
//!   themselves, deadlines, the core's command plans over RESP).
//! - support: [`config`], [`telemetry`], [`shutdown`].

pub mod admin;
pub mod config;
pub mod db;
pub mod docs;
pub mod gateway;
pub mod http;
pub mod identity;
pub mod ingest;
pub mod messaging;
pub mod ops;
pub mod projection;
pub mod public;
pub mod rate_limit;
pub mod redis_store;
pub mod shutdown;
pub mod state;
pub mod telemetry;
pub mod ui;

use axum::Router;
use config::ExposeSecret;
use sqlx::postgres::PgPoolOptions;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use config::Config;
pub use state::AppState;

pub use db::MIGRATOR;

/// The JSON API: every route is registered with its operation in the OpenAPI document ([`docs`]).
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(docs::ApiDoc::openapi())
        .routes(routes!(public::popup))
        .routes(routes!(public::event))
        .routes(routes!(public::conversion))
        .nest("/admin/v1", admin::router())
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
}

/// The OpenAPI document of [`api`], with the answers every route shares.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut openapi = api().into_openapi();
    docs::complete(&mut openapi);
    openapi
}

/// Every route of the origin.
pub fn app(state: AppState) -> Router {
    telemetry::metrics_handle();
    let (api, mut openapi) = api().split_for_parts();
    docs::complete(&mut openapi);
    api.merge(docs::router(&openapi))
        .merge(ui::router())
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
        .connect_with(db::connect_options(config.database_url.expose_secret())?)
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
    let stop_signal = shutdown::signal();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let stopped_ops = stopped.clone();
    let reconciler =
        tokio::spawn(projection::run_reconciler(state.clone(), config.reconcile_interval(), stopped.clone()));
    let ingest = tokio::spawn(ingest::run_workers(
        state.clone(),
        config.redis_url.expose_secret().to_string(),
        config.ingest_workers,
        ingest::IngestSettings::from_config(&config),
        stopped,
    ));
    let (_, ops) = ops::listen(config.ops_listen, stopped_ops).await?;
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    tracing::info!(address = %listener.local_addr()?, "origin listening");
    // The peer's address reaches handlers: the dashboard's sign-in is throttled per address.
    let service = app(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, service).with_graceful_shutdown(stop_signal).await?;
    let _ = stop.send(true);
    reconciler.await?;
    ingest.await?;
    ops.await?;
    tracing::info!("stopped");
    Ok(())
}

/// Runs only ingest workers (at least one), until SIGTERM or Ctrl-C: for scaling ingest apart from serving.
pub async fn ingest_only(config: Config) -> anyhow::Result<()> {
    let state = start(&config).await?;
    let stop_signal = shutdown::signal();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (_, ops) = ops::listen(config.ops_listen, stopped.clone()).await?;
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
    ops.await?;
    tracing::info!("stopped");
    Ok(())
}

/// `popup-origin messenger`: the message worker, with its metrics on the operations listener.
pub async fn messenger(config: messaging::messenger::MessengerConfig) -> anyhow::Result<()> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (_, ops) = ops::listen(config.ops_listen, stopped).await?;
    let outcome = messaging::messenger::run(config).await;
    let _ = stop.send(true);
    ops.await?;
    outcome
}

/// `popup-origin person add`: creates a dashboard account (the first admin, on a new deployment), audited
/// as the system. The password is read by the caller from stdin or the environment, never an argument.
pub async fn add_person(
    database_url: &str,
    new: &db::people::NewPerson<'_>,
) -> anyhow::Result<db::people::Person> {
    if let Err(refused) = db::people::check_new(new) {
        anyhow::bail!("{}: {}", refused.field, refused.message);
    }
    let db = sqlx::PgPool::connect(database_url).await?;
    MIGRATOR.run(&db).await?;
    match db::people::create(&db, &db::audit::Actor::system(), new).await {
        Err(db::DbError::Duplicate) => {
            anyhow::bail!("an account with the email {} exists already", new.email)
        }
        other => Ok(other?),
    }
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

/// `popup-origin token`: an HS256 identity token naming `user`, valid for `ttl_seconds`, with the claims a
/// `POPUP_IDENTITY=jwt` origin (or edge) configured with the same secret, issuer and audience accepts.
pub fn demo_token(
    user: &str,
    ttl_seconds: i64,
    secret: &str,
    issuer: &str,
    audience: &str,
    user_claim: &str,
) -> anyhow::Result<String> {
    popup_core::ids::UserId::parse(user).map_err(|e| anyhow::anyhow!("--user: {e}"))?;
    anyhow::ensure!(secret.len() >= 32, "POPUP_JWT_HS256_SECRET must be at least 32 bytes");
    let now = state::now().0;
    let mut claims =
        serde_json::json!({"iss": issuer, "aud": audience, "iat": now, "nbf": now, "exp": now + ttl_seconds});
    claims[user_claim] = serde_json::Value::String(user.to_string());
    Ok(popup_core::identity::sign_hs256(secret.as_bytes(), &claims)?)
}

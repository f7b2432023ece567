//! `popup-origin gateway`: the Upstash REST protocol in front of a real Redis, so the edge (and Upstash's
//! own client libraries) can run against a Redis the operator keeps in their own network, under
//! `wrangler dev`, and in tests.
//!
//! - `POST /` with `["CMD", "arg", ...]` answers `{"result": ...}`, or `{"error": "..."}` with 400 when
//!   Redis refuses the command.
//! - `POST /pipeline` with `[["CMD", ...], ...]` answers 200 with one `{"result"}` or `{"error"}` per
//!   command, in order; `POST /multi-exec` the same inside `MULTI`/`EXEC`, so no other client's command
//!   runs between them. A transaction Redis discards as a whole answers one `{"error"}` with 400.
//! - `Authorization: Bearer <token>` on every request (401 `{"error": "Unauthorized"}` otherwise).
//! - `Upstash-Encoding: base64` base64-encodes strings in results ([`protocol`] has the details).
//! - `GET /metrics` (same token): Prometheus counters, among them the commands sent to Redis per
//!   endpoint, which is how the edge's command budget is measured.
//! - `GET /healthz`: `ok`, without the token; liveness for `popup-origin healthcheck` and orchestrators.
//!
//! Safe by default: only the edge's commands on the deployment's keys run ([`allow`]). A pipeline or
//! transaction with one refused command is refused whole (400, naming it) before anything reaches Redis,
//! so a request never half-runs. Bodies above `POPUP_GATEWAY_MAX_BODY_BYTES` get 413, pipelines longer
//! than `POPUP_GATEWAY_MAX_PIPELINE` 400. Not supported, on purpose: the token as a `_token` query
//! parameter (it would land in access logs), and commands spelled in the URL path (the clients send
//! bodies).

pub mod allow;
pub mod error;
pub mod protocol;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::Args;
use popup_core::store::{Command, KeySpace};
use sha2::{Digest, Sha256};

use self::allow::AllowList;
use self::error::GatewayError;
use self::protocol::Encoding;
use crate::config::{secret, ExposeSecret, SecretString};
use crate::redis_store::{self, Link, LinkSettings, StoreUnavailable};

/// The gateway's configuration, from flags or the environment. The token and the Redis URL (which may hold a
/// password) are secrets: `Debug` shows neither.
#[derive(Clone, Debug, Args)]
pub struct GatewayConfig {
    /// The Redis the gateway fronts.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379", hide_env_values = true, value_parser = secret)]
    pub redis_url: SecretString,

    /// Address to listen on. Loopback by default: exposing the gateway is the operator's choice.
    #[arg(long, env = "POPUP_GATEWAY_LISTEN", default_value = "127.0.0.1:8079")]
    pub listen: SocketAddr,

    /// The bearer token every request must carry (the edge's Redis REST token), at least 16 bytes.
    /// Prefer the environment to the flag: flags show in process lists.
    #[arg(long, env = "POPUP_GATEWAY_TOKEN", hide_env_values = true, value_parser = secret)]
    pub token: SecretString,

    /// Prefix of the deployment's Redis keys; only keys under it are reachable.
    #[arg(long, env = "POPUP_KEY_PREFIX", default_value = popup_core::defaults::KEY_PREFIX)]
    pub key_prefix: String,

    /// The largest request body accepted, in bytes (413 above).
    #[arg(long, env = "POPUP_GATEWAY_MAX_BODY_BYTES", default_value_t = 1 << 20)]
    pub max_body_bytes: usize,

    /// The most commands one pipeline or transaction may hold (400 above).
    #[arg(long, env = "POPUP_GATEWAY_MAX_PIPELINE", default_value_t = 32)]
    pub max_pipeline: usize,

    /// How long a request waits for Redis before answering 503.
    #[arg(long, env = "POPUP_GATEWAY_REDIS_TIMEOUT_MS", default_value_t = 1000)]
    pub redis_timeout_ms: u64,
}

/// Tokens shorter than this are refused at start: the token is all that stands between the internet and
/// the deployment's Redis.
pub const MIN_TOKEN_LEN: usize = 16;

/// What the handlers share.
#[derive(Clone, Debug)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    /// Only the digest is kept, so comparisons take the same time whatever the presented token.
    token_digest: [u8; 32],
    allow: AllowList,
    max_body_bytes: usize,
    max_pipeline: usize,
    redis: Upstream,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("allow", &self.allow)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_pipeline", &self.max_pipeline)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Checks the configuration; does not connect, so the gateway starts (and answers 503) while Redis
    /// is down.
    pub fn new(config: &GatewayConfig) -> anyhow::Result<Gateway> {
        if config.token.expose_secret().len() < MIN_TOKEN_LEN {
            anyhow::bail!("POPUP_GATEWAY_TOKEN must be at least {MIN_TOKEN_LEN} bytes");
        }
        if config.max_pipeline == 0 || config.max_body_bytes == 0 {
            anyhow::bail!("the body and pipeline limits must be positive");
        }
        let keys = KeySpace::new(&config.key_prefix, 0)?;
        let timeout = Duration::from_millis(config.redis_timeout_ms.max(1));
        let settings = LinkSettings {
            role: "gateway",
            // Attempts run in the background: a short one on a loaded machine would only fail needlessly.
            connect_timeout: timeout.max(Duration::from_secs(1)),
            response_timeout: Some(timeout),
            // A slow answer is the caller's 503, not a reason to drop a connection others are using.
            timeout_is_loss: false,
            // Pinged while idle, so a restart is noticed before the next request needs the connection.
            health_check: Some(Duration::from_secs(1)),
        };
        let redis = Upstream {
            link: Link::new(redis_store::link::client(config.redis_url.expose_secret())?, settings),
            timeout,
        };
        Ok(Gateway {
            inner: Arc::new(Inner {
                token_digest: Sha256::digest(config.token.expose_secret().as_bytes()).into(),
                allow: AllowList::new(&keys),
                max_body_bytes: config.max_body_bytes,
                max_pipeline: config.max_pipeline,
                redis,
            }),
        })
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(token) = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
        else {
            return false;
        };
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        // No early exit: every byte is compared whatever the first difference.
        presented.iter().zip(self.inner.token_digest.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }

    fn check(&self, commands: &[Command]) -> Result<(), GatewayError> {
        for command in commands {
            if let Err(refusal) = self.inner.allow.check(command) {
                tracing::warn!(command = %refusal.name, reason = refusal.reason, "gateway refused a command");
                return Err(refusal.into());
            }
        }
        Ok(())
    }
}

/// Every route of the gateway.
pub fn router(gateway: Gateway) -> Router {
    crate::telemetry::metrics_handle();
    let max_body_bytes = gateway.inner.max_body_bytes;
    Router::new()
        .route("/", post(single).fallback(method_not_allowed))
        .route("/pipeline", post(pipeline).fallback(method_not_allowed))
        .route("/multi-exec", post(multi_exec).fallback(method_not_allowed))
        .route("/metrics", get(crate::ops::metrics).fallback(method_not_allowed))
        // A route layer, so the token is checked before the body is read.
        .route_layer(axum::middleware::from_fn_with_state(gateway.clone(), authorize))
        // Liveness, without the token (it says nothing but "ok"): for `popup-origin healthcheck`.
        .route("/healthz", get(crate::ops::healthz).fallback(method_not_allowed))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::from_fn(crate::ops::track))
        .with_state(gateway)
}

/// Serves until SIGTERM or Ctrl-C; in-flight requests finish first.
pub async fn serve(config: GatewayConfig) -> anyhow::Result<()> {
    let gateway = Gateway::new(&config)?;
    let stop_signal = crate::shutdown::signal();
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    tracing::info!(address = %listener.local_addr()?, prefix = %config.key_prefix, "gateway listening");
    axum::serve(listener, router(gateway)).with_graceful_shutdown(stop_signal).await?;
    tracing::info!("gateway stopped");
    Ok(())
}

async fn authorize(State(gateway): State<Gateway>, request: Request, next: Next) -> Response {
    if gateway.authorized(request.headers()) {
        next.run(request).await
    } else {
        GatewayError::Unauthorized.into_response()
    }
}

async fn single(
    State(gateway): State<Gateway>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, GatewayError> {
    let body = read_body(&gateway, body)?;
    let command = protocol::parse_command(&body)?;
    gateway.check(std::slice::from_ref(&command))?;
    let mut replies = gateway.inner.redis.run(std::slice::from_ref(&command), false).await?;
    metrics::counter!("gateway_commands_total", "endpoint" => "single").increment(1);
    match replies.pop() {
        // Upstash answers a failed single command with 400, and its clients throw on it.
        Some(redis::Value::ServerError(error)) => {
            Err(GatewayError::Command(protocol::server_error_message(&error)))
        }
        Some(reply) => Ok(Json(protocol::encode_reply(reply, encoding(&headers)))),
        None => Err(GatewayError::Unavailable),
    }
}

async fn pipeline(
    State(gateway): State<Gateway>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, GatewayError> {
    run_many(&gateway, &headers, body, false).await
}

async fn multi_exec(
    State(gateway): State<Gateway>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, GatewayError> {
    run_many(&gateway, &headers, body, true).await
}

async fn run_many(
    gateway: &Gateway,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    atomic: bool,
) -> Result<Json<serde_json::Value>, GatewayError> {
    let body = read_body(gateway, body)?;
    let commands = protocol::parse_pipeline(&body, gateway.inner.max_pipeline)?;
    gateway.check(&commands)?;
    let replies = gateway.inner.redis.run(&commands, atomic).await?;
    let endpoint = if atomic { "multi-exec" } else { "pipeline" };
    metrics::counter!("gateway_commands_total", "endpoint" => endpoint).increment(commands.len() as u64);
    let encoding = encoding(headers);
    Ok(Json(replies.into_iter().map(|reply| protocol::encode_reply(reply, encoding)).collect()))
}

fn read_body(gateway: &Gateway, body: Result<Bytes, BytesRejection>) -> Result<Bytes, GatewayError> {
    body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => GatewayError::TooLarge(gateway.inner.max_body_bytes),
        _ => GatewayError::BadRequest(format!("cannot read the body: {rejection}")),
    })
}

fn encoding(headers: &HeaderMap) -> Encoding {
    let base64 = headers
        .get("upstash-encoding")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim().eq_ignore_ascii_case("base64"));
    if base64 {
        Encoding::Base64
    } else {
        Encoding::Text
    }
}

async fn not_found() -> GatewayError {
    GatewayError::NotFound
}

async fn method_not_allowed() -> GatewayError {
    GatewayError::MethodNotAllowed
}

/// The Redis behind the gateway: one multiplexed connection, made on first use and remade (with backoff)
/// when it is lost; while Redis is unreachable requests get 503 at once.
struct Upstream {
    link: Link,
    timeout: Duration,
}

impl Upstream {
    /// Sends `commands` as one pipeline (inside `MULTI`/`EXEC` when `atomic`) and returns one reply per
    /// command; a command Redis refuses yields its `ServerError` in place, the others still run.
    async fn run(&self, commands: &[Command], atomic: bool) -> Result<Vec<redis::Value>, GatewayError> {
        let mut pipe = redis::pipe();
        if atomic {
            // A multiplexed connection writes a pipeline in one piece, so MULTI..EXEC cannot be split
            // by another request's commands on the same connection.
            pipe.atomic();
        }
        pipe.ignore_errors();
        for command in commands {
            let mut cmd = redis::cmd(command.name());
            for argument in command.arguments() {
                cmd.arg(argument);
            }
            pipe.add_command(cmd);
        }
        let call = async {
            let (mut connection, generation) = self.link.get(self.timeout).await?;
            let result = pipe.query_async::<Vec<redis::Value>>(&mut connection).await;
            self.link.check(generation, &result);
            if let Ok(replies) = &result {
                self.link.check_replies(generation, replies);
            }
            Ok::<_, StoreUnavailable>(result)
        };
        let replies = match tokio::time::timeout(self.timeout, call).await {
            // The link logged the loss, and logs the recovery: one line per outage, not per request.
            Ok(Err(unavailable)) => {
                tracing::debug!(error = %unavailable, "redis unavailable");
                return Err(GatewayError::Unavailable);
            }
            Ok(Ok(Ok(replies))) => replies,
            // Redis discarded the transaction as a whole (a command was refused while queued): say
            // which, as the other errors are said, in Redis's words.
            Ok(Ok(Err(error)))
                if error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ExecAbort) =>
            {
                let causes = error.into_server_errors().map_or_else(String::new, |errors| {
                    let causes: Vec<String> =
                        errors.iter().map(|(_, error)| protocol::server_error_message(error)).collect();
                    causes.join("; ")
                });
                return Err(GatewayError::Command(format!(
                    "EXECABORT Transaction discarded because of previous errors: {causes}"
                )));
            }
            Ok(Ok(Err(error))) => {
                tracing::warn!(%error, "redis failed");
                return Err(GatewayError::Unavailable);
            }
            Err(_) => {
                tracing::warn!(timeout = ?self.timeout, "redis did not answer in time");
                return Err(GatewayError::Unavailable);
            }
        };
        if replies.len() != commands.len() {
            tracing::warn!(sent = commands.len(), got = replies.len(), "redis answered a different count");
            return Err(GatewayError::Unavailable);
        }
        Ok(replies)
    }
}

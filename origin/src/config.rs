//! Configuration, from flags or the environment (`POPUP_*`, and the usual `DATABASE_URL` / `REDIS_URL`).

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use popup_core::defaults;
pub use secrecy::{ExposeSecret, SecretString};

/// Secrets (and URLs, which may hold a password) are [`SecretString`]s: their `Debug` shows no content, so
/// the configuration can be logged whole.
#[derive(Clone, Debug, Args)]
pub struct Config {
    /// Postgres, the source of truth.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_parser = secret)]
    pub database_url: SecretString,

    /// Redis, which holds the projection resolvers read.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379", hide_env_values = true, value_parser = secret)]
    pub redis_url: SecretString,

    #[arg(long, env = "POPUP_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Where `/metrics` is served: off the public port, on loopback unless set otherwise (port 0 picks one).
    #[arg(long = "ops-listen", env = "POPUP_OPS_ADDR", default_value = "127.0.0.1:9464")]
    pub ops_listen: SocketAddr,

    /// Prefix of every Redis key; the edge must use the same one.
    #[arg(long, env = "POPUP_KEY_PREFIX", default_value = defaults::KEY_PREFIX)]
    pub key_prefix: String,

    /// UTC offset at which days (for daily caps) start, e.g. `+07:00`. The edge must use the same one.
    #[arg(long = "day-offset", env = "POPUP_DAY_OFFSET", default_value = defaults::DAY_OFFSET, value_parser = parse_offset)]
    pub day_offset_seconds: i32,

    /// Seconds between two rebuilds of the Redis projection from Postgres.
    #[arg(long, env = "POPUP_RECONCILE_SECONDS", default_value_t = 60)]
    pub reconcile_seconds: u64,

    /// Signs impression tokens. At least 32 bytes; shared with the edge.
    #[arg(long, env = "POPUP_TOKEN_SECRET", hide_env_values = true, value_parser = secret)]
    pub token_secret: SecretString,

    /// Earlier token secrets, comma-separated, still accepted while tokens signed with them are in flight.
    #[arg(long, env = "POPUP_TOKEN_PREVIOUS_SECRETS", hide_env_values = true, default_value = "", value_parser = secret)]
    pub token_previous_secrets: SecretString,

    /// How long an impression token is accepted, in seconds.
    #[arg(long, env = "POPUP_TOKEN_TTL_SECONDS", default_value_t = defaults::TOKEN_TTL_SECONDS)]
    pub token_ttl_seconds: i64,

    /// An admin API key created at start if no admin key exists yet, so a new deployment can be reached.
    #[arg(long, env = "POPUP_BOOTSTRAP_ADMIN_KEY", hide_env_values = true, value_parser = secret)]
    pub bootstrap_admin_key: Option<SecretString>,

    /// The largest segment upload accepted, in bytes.
    #[arg(long, env = "POPUP_MAX_SEGMENT_BYTES", default_value_t = 1 << 30)]
    pub max_segment_bytes: u64,

    /// How long a popup or event request waits for Redis before answering 503.
    #[arg(long, env = "POPUP_REDIS_TIMEOUT_MS", default_value_t = defaults::REDIS_TIMEOUT_MS)]
    pub redis_timeout_ms: u64,

    /// Consecutive Redis failures of popup and event requests after which they are answered 503 at once,
    /// without asking Redis, for a cool-down (0: never).
    #[arg(long, env = "POPUP_REDIS_BREAKER_FAILURES", default_value_t = defaults::BREAKER_FAILURES)]
    pub redis_breaker_failures: u32,

    /// How long the breaker answers 503 at once before one request probes Redis again, in ms.
    #[arg(long, env = "POPUP_REDIS_BREAKER_COOL_DOWN_MS", default_value_t = defaults::BREAKER_COOL_DOWN_MS)]
    pub redis_breaker_cool_down_ms: u64,

    /// Ingest workers moving events from Redis into Postgres in this process (0: none, another process
    /// runs `popup-origin ingest`).
    #[arg(long, env = "POPUP_INGEST_WORKERS", default_value_t = 1)]
    pub ingest_workers: usize,

    /// Events per ingest batch.
    #[arg(long, env = "POPUP_INGEST_BATCH", default_value_t = 5_000)]
    pub ingest_batch: usize,

    /// Events left pending this long by an ingest worker (it died) are taken over by another, in ms.
    #[arg(long, env = "POPUP_INGEST_CLAIM_IDLE_MS", default_value_t = 30_000)]
    pub ingest_claim_idle_ms: u64,

    /// Days of events kept in Postgres; older days are dropped whole.
    #[arg(long, env = "POPUP_EVENT_RETENTION_DAYS", default_value_t = 400)]
    pub event_retention_days: u32,

    /// The request header a trusted proxy in front of the origin sets to the client's country (e.g.
    /// Cloudflare's `CF-IPCountry`), for the popup API's country rules. Unset: requests have no country.
    /// Set it only behind a proxy that overwrites the header, since a client could send it otherwise.
    #[arg(long, env = "POPUP_COUNTRY_HEADER", value_parser = parse_header_name)]
    pub country_header: Option<axum::http::HeaderName>,
    #[command(flatten)]
    pub dashboard: DashboardConfig,

    #[command(flatten)]
    pub identity: IdentityConfig,

    /// Popup API requests a minute one customer may make (a burst of as many, then one every
    /// 60/n seconds), 429 with `Retry-After` beyond; 0: no limit.
    #[arg(long, env = "POPUP_RATE_LIMIT_PER_CUSTOMER", default_value_t = 120)]
    pub rate_limit_per_customer: u32,

    /// Popup API requests a minute from one client address; 0: no limit. High, because a mobile carrier's
    /// NAT puts many customers behind one address.
    #[arg(long, env = "POPUP_RATE_LIMIT_PER_ADDRESS", default_value_t = 6_000)]
    pub rate_limit_per_address: u32,

    /// The request header a trusted proxy in front of the origin sets to the client's address (e.g.
    /// Cloudflare's `CF-Connecting-IP`), for the per-address limit. Unset: the connection's peer address.
    #[arg(long, env = "POPUP_CLIENT_ADDRESS_HEADER", value_parser = parse_header_name)]
    pub client_address_header: Option<axum::http::HeaderName>,
}

impl Config {
    pub fn redis_timeout(&self) -> Duration {
        Duration::from_millis(self.redis_timeout_ms)
    }

    pub fn redis_breaker(&self) -> popup_core::breaker::BreakerSettings {
        popup_core::breaker::BreakerSettings {
            failures_to_open: self.redis_breaker_failures,
            cool_down_ms: i64::try_from(self.redis_breaker_cool_down_ms).unwrap_or(i64::MAX),
        }
    }

    pub fn reconcile_interval(&self) -> Duration {
        Duration::from_secs(self.reconcile_seconds.max(1))
    }
}

/// The dashboard's sessions (`/ui`).
#[derive(Clone, Debug, Args)]
pub struct DashboardConfig {
    /// Minutes without a request after which a dashboard session ends.
    #[arg(long, env = "POPUP_UI_SESSION_IDLE_MINUTES", default_value_t = 30)]
    pub session_idle_minutes: u64,

    /// Hours after sign-in at which a dashboard session ends, however busy.
    #[arg(long, env = "POPUP_UI_SESSION_HOURS", default_value_t = 12)]
    pub session_hours: u64,

    /// Send the session cookie without `Secure`, so that a browser keeps it over plain http. Only for
    /// development on 127.0.0.1; behind TLS leave it off.
    #[arg(long, env = "POPUP_UI_INSECURE_COOKIES", default_value_t = false)]
    pub insecure_cookies: bool,
}

/// How the popup API knows its customer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum IdentityMode {
    /// The `user_id` the request names: anyone who knows a customer id can ask as them. Development only.
    #[value(name = "user_id")]
    UserId,
    /// The customer named by the bank's identity token (`Authorization: Bearer <jwt>`).
    Jwt,
}

/// The customer's identity on the popup API: the same settings as the edge's, with `POPUP_` in front.
#[derive(Clone, Debug, Args)]
pub struct IdentityConfig {
    /// `jwt` in production; `user_id` trusts the query's customer id.
    #[arg(long = "identity", env = "POPUP_IDENTITY", value_enum, default_value = "user_id")]
    pub mode: IdentityMode,

    /// The identity provider's key set (RS256, ES256 and EdDSA keys), fetched and cached.
    #[arg(long = "jwt-jwks-url", env = "POPUP_JWT_JWKS_URL")]
    pub jwks_url: Option<String>,

    /// A shared secret for HS256 tokens, at least 32 bytes.
    #[arg(long = "jwt-hs256-secret", env = "POPUP_JWT_HS256_SECRET", hide_env_values = true, value_parser = secret)]
    pub hs256_secret: Option<SecretString>,

    /// The `iss` every token must carry.
    #[arg(long = "jwt-issuer", env = "POPUP_JWT_ISSUER")]
    pub issuer: Option<String>,

    /// The `aud` every token must carry (or list).
    #[arg(long = "jwt-audience", env = "POPUP_JWT_AUDIENCE")]
    pub audience: Option<String>,

    /// The claim that holds the customer id.
    #[arg(long = "jwt-user-claim", env = "POPUP_JWT_USER_CLAIM", default_value = popup_core::identity::DEFAULT_USER_CLAIM)]
    pub user_claim: String,

    /// Clock difference tolerated on `exp` and `nbf`, in seconds.
    #[arg(long = "jwt-leeway-seconds", env = "POPUP_JWT_LEEWAY_SECONDS", default_value_t = popup_core::identity::DEFAULT_LEEWAY_SECONDS)]
    pub leeway_seconds: i64,
}

/// A secret from the command line or the environment.
pub fn secret(raw: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(raw))
}

fn parse_header_name(raw: &str) -> Result<axum::http::HeaderName, String> {
    raw.trim().parse().map_err(|_| format!("{raw:?} is not a header name"))
}

/// The day offset, with the core's parser so the edge and the origin agree.
fn parse_offset(raw: &str) -> Result<i32, String> {
    popup_core::store::parse_day_offset(raw).ok_or_else(|| format!("{raw:?} is not an offset like +07:00"))
}

#[cfg(test)]
mod tests {
    use super::{parse_offset, Config};
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: Config,
    }

    /// The same values as the edge's defaults (`edge/src/config.rs`), which come from the same constants.
    #[test]
    fn defaults_match_the_edge() {
        let required = ["popup-origin", "--database-url", "postgres://db", "--token-secret", "secret"];
        let config = Cli::try_parse_from(required).unwrap().config;
        assert_eq!(config.key_prefix, "popup");
        assert_eq!(config.day_offset_seconds, 0);
        assert_eq!(config.token_ttl_seconds, 86_400);
        assert_eq!(config.redis_timeout(), std::time::Duration::from_millis(300));
    }

    #[test]
    fn debug_shows_no_secret() {
        let cli = Cli::try_parse_from([
            "origin",
            "--database-url",
            "postgres://app:db-password-123@db/popup",
            "--redis-url",
            "redis://:redis-password-456@cache:6379",
            "--token-secret",
            "token-secret-0123456789abcdef0123456789",
            "--bootstrap-admin-key",
            "admin-key-0123456789",
        ])
        .unwrap();
        let shown = format!("{:?}", cli.config);
        for secret in ["db-password-123", "redis-password-456", "token-secret-0123", "admin-key-0123"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("listen"), "the rest is shown: {shown}");
    }

    #[test]
    fn offsets_parse() {
        assert_eq!(parse_offset("+07:00"), Ok(7 * 3600));
        assert_eq!(parse_offset("-03:30"), Ok(-(3 * 3600 + 1800)));
        assert_eq!(parse_offset("Z"), Ok(0));
        assert!(parse_offset("07:00").is_err());
        assert!(parse_offset("+15:00").is_err());
    }
}

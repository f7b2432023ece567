//! What every handler shares: the pools, the key layout, the token secrets, the in-memory catalog.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use popup_core::catalog::Catalog;
use popup_core::store::KeySpace;
use popup_core::token::Secrets;
use sqlx::PgPool;

use crate::config::{Config, ExposeSecret};
use crate::identity::Identity;
use crate::rate_limit::RequestLimits;
use crate::redis_store::RedisStore;

#[derive(Clone, Debug)]
pub struct AppState(Arc<Inner>);

#[derive(Debug)]
pub struct Inner {
    pub db: PgPool,
    pub redis: RedisStore,
    pub keys: KeySpace,
    pub tokens: Secrets,
    /// How the popup API knows its customer (`POPUP_IDENTITY`).
    pub identity: Identity,
    /// The popup API's request limits, per customer and per client address.
    pub limits: RequestLimits,
    /// Where the per-address limit reads the client's address (`POPUP_CLIENT_ADDRESS_HEADER`), if not
    /// from the connection.
    pub client_address_header: Option<axum::http::HeaderName>,
    pub max_segment_bytes: u64,
    /// Where the popup API reads the client's country (`POPUP_COUNTRY_HEADER`), if anywhere.
    pub country_header: Option<axum::http::HeaderName>,
    pub dashboard: Dashboard,
    /// The catalog this process resolves with; replaced when Redis reports another version.
    pub catalog: RwLock<Option<Arc<Catalog>>>,
    /// Serializes projections within this process; the publish script orders them across processes.
    pub projection: tokio::sync::Mutex<Published>,
    /// Wakes the healer: a publish found parts of the projection missing from Redis.
    pub heal_wanted: tokio::sync::Notify,
}

impl std::ops::Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(config: &Config, db: PgPool) -> anyhow::Result<AppState> {
        let redis = RedisStore::new(
            config.redis_url.expose_secret(),
            config.redis_timeout(),
            config.redis_breaker(),
        )?;
        let keys = KeySpace::new(&config.key_prefix, config.day_offset_seconds)?;
        let tokens = Secrets::new(
            config.token_secret.expose_secret(),
            config.token_previous_secrets.expose_secret(),
            config.token_ttl_seconds,
        )?;
        Ok(AppState(Arc::new(Inner {
            db,
            redis,
            keys,
            tokens,
            identity: Identity::new(&config.identity)?,
            limits: RequestLimits::new(config.rate_limit_per_customer, config.rate_limit_per_address),
            client_address_header: config.client_address_header.clone(),
            max_segment_bytes: config.max_segment_bytes,
            country_header: config.country_header.clone(),
            dashboard: Dashboard::from_config(&config.dashboard),
            catalog: RwLock::new(None),
            projection: tokio::sync::Mutex::new(Default::default()),
            heal_wanted: tokio::sync::Notify::new(),
        })))
    }

    pub fn cached_catalog(&self) -> Option<Arc<Catalog>> {
        self.catalog.read().ok().and_then(|c| c.clone())
    }

    pub fn cache_catalog(&self, catalog: Arc<Catalog>) {
        if let Ok(mut slot) = self.catalog.write() {
            *slot = Some(catalog);
        }
    }
}

/// The dashboard's session settings.
#[derive(Clone, Copy, Debug)]
pub struct Dashboard {
    pub sessions: crate::db::sessions::Lifetimes,
    /// Whether the session cookie is `Secure` (always, but in local development over http).
    pub secure_cookies: bool,
}

impl Dashboard {
    fn from_config(config: &crate::config::DashboardConfig) -> Dashboard {
        Dashboard {
            sessions: crate::db::sessions::Lifetimes {
                idle: Duration::from_secs(config.session_idle_minutes.max(1) * 60),
                absolute: Duration::from_secs(config.session_hours.max(1) * 3600),
            },
            secure_cookies: !config.insecure_cookies,
        }
    }
}

/// What this process last published (see `projection::publish`): the content's hash, so an unchanged
/// catalog is not published again, and its version.
#[derive(Debug, Default)]
pub struct Published {
    pub content: Vec<u8>,
    pub version: u64,
}

/// The time now, as the core counts it.
pub fn now() -> popup_core::ids::Timestamp {
    popup_core::ids::Timestamp(chrono::Utc::now().timestamp())
}

/// Bulk Redis work (segment loads, reconcile) gets longer than a request.
pub const BULK_TIMEOUT: Duration = Duration::from_secs(30);

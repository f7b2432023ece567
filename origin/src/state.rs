//! What every handler shares: the pools, the key layout, the token secrets, the in-memory catalog.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use popup_core::catalog::Catalog;
use popup_core::store::KeySpace;
use sqlx::PgPool;

use crate::config::Config;
use crate::redis_store::RedisStore;

#[derive(Clone, Debug)]
pub struct AppState(Arc<Inner>);

#[derive(Debug)]
pub struct Inner {
    pub db: PgPool,
    pub redis: RedisStore,
    pub keys: KeySpace,
    pub tokens: TokenSecrets,
    pub max_segment_bytes: u64,
    /// The catalog this process resolves with; replaced when Redis reports another version.
    pub catalog: RwLock<Option<Arc<Catalog>>>,
    /// Serializes projections within this process; the publish script orders them across processes.
    pub projection: tokio::sync::Mutex<crate::projection::Published>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// The token secret and the earlier ones still accepted.
pub struct TokenSecrets {
    secrets: Vec<Vec<u8>>,
    pub ttl_seconds: i64,
}

impl std::fmt::Debug for TokenSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSecrets")
            .field("count", &self.secrets.len())
            .field("ttl_seconds", &self.ttl_seconds)
            .finish()
    }
}

impl TokenSecrets {
    pub fn new(current: &str, previous: &str, ttl_seconds: i64) -> anyhow::Result<TokenSecrets> {
        let mut secrets = vec![current.as_bytes().to_vec()];
        secrets.extend(
            previous.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| s.as_bytes().to_vec()),
        );
        if let Some(short) = secrets.iter().position(|s| s.len() < popup_core::token::MIN_SECRET_LEN) {
            anyhow::bail!(
                "token secret #{short} is shorter than {} bytes",
                popup_core::token::MIN_SECRET_LEN
            );
        }
        Ok(TokenSecrets { secrets, ttl_seconds })
    }

    pub fn current(&self) -> &[u8] {
        &self.secrets[0]
    }

    pub fn all(&self) -> Vec<&[u8]> {
        self.secrets.iter().map(Vec::as_slice).collect()
    }
}

/// Tokens issued by another resolver a little ahead of this one's clock are still accepted.
pub const TOKEN_CLOCK_SKEW_SECONDS: i64 = 60;

impl AppState {
    pub fn new(config: &Config, db: PgPool) -> anyhow::Result<AppState> {
        let redis = RedisStore::new(&config.redis_url, config.redis_timeout())?;
        let keys = KeySpace::new(&config.key_prefix, config.day_offset_seconds)?;
        let tokens = TokenSecrets::new(
            &config.token_secret,
            &config.token_previous_secrets,
            config.token_ttl_seconds,
        )?;
        Ok(AppState(Arc::new(Inner {
            db,
            redis,
            keys,
            tokens,
            max_segment_bytes: config.max_segment_bytes,
            catalog: RwLock::new(None),
            projection: tokio::sync::Mutex::new(Default::default()),
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

/// Bulk Redis work (segment loads, reconcile) gets longer than a request.
pub const BULK_TIMEOUT: Duration = Duration::from_secs(30);

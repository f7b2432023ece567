//! Admin API keys: `Authorization: Bearer <key>`, stored as SHA-256 hashes, each with a role.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::error::ApiError;
use crate::state::AppState;

/// What a key may do. `viewer`, `editor` and `admin` each include the roles before them; `conversions`,
/// for the bank's backend, only posts conversions (editors and admins may too), so the key a backend holds
/// cannot read or change campaigns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Conversions,
    Viewer,
    Editor,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Conversions => "conversions",
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }

    fn parse(raw: &str) -> Option<Role> {
        [Role::Conversions, Role::Viewer, Role::Editor, Role::Admin].into_iter().find(|r| r.as_str() == raw)
    }
}

/// The caller of an admin endpoint, authenticated.
#[derive(Clone, Debug)]
pub struct Actor {
    pub key_id: Option<i64>,
    pub name: String,
    pub role: Role,
}

impl Actor {
    /// The background jobs, for audit rows.
    pub fn system() -> Actor {
        Actor { key_id: None, name: "system".into(), role: Role::Admin }
    }

    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::Forbidden)
        }
    }

    /// Posting conversions: the `conversions` role, or editors and admins; not viewers.
    pub fn require_conversions(&self) -> Result<(), ApiError> {
        match self.role {
            Role::Conversions | Role::Editor | Role::Admin => Ok(()),
            Role::Viewer => Err(ApiError::Forbidden),
        }
    }
}

pub fn hash_key(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

/// A new random key: 32 bytes, URL-safe base64, with a prefix that makes leaked keys easy to scan for.
pub fn generate_key() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(format!("pk_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)))
}

impl FromRequestParts<AppState> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Actor, ApiError> {
        let header = parts.headers.get(axum::http::header::AUTHORIZATION).ok_or(ApiError::Unauthorized)?;
        let key =
            header.to_str().ok().and_then(|h| h.strip_prefix("Bearer ")).ok_or(ApiError::Unauthorized)?;
        let row: Option<(i64, String, String)> =
            sqlx::query_as("SELECT id, name, role FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL")
                .bind(hash_key(key.trim()))
                .fetch_optional(&state.db)
                .await?;
        let (id, name, role) = row.ok_or(ApiError::Unauthorized)?;
        let role =
            Role::parse(&role).ok_or_else(|| anyhow::anyhow!("api key {id} has unknown role {role}"))?;
        Ok(Actor { key_id: Some(id), name, role })
    }
}

/// Creates the bootstrap admin key unless an admin key exists already.
pub async fn bootstrap_admin_key(db: &PgPool, key: &str) -> anyhow::Result<()> {
    let mut tx = db.begin().await?;
    sqlx::query("LOCK TABLE api_keys IN EXCLUSIVE MODE").execute(&mut *tx).await?;
    let admins: i64 =
        sqlx::query_scalar("SELECT count(*) FROM api_keys WHERE role = 'admin' AND revoked_at IS NULL")
            .fetch_one(&mut *tx)
            .await?;
    if admins == 0 {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO api_keys (name, role, key_hash) VALUES ('bootstrap', 'admin', $1) RETURNING id",
        )
        .bind(hash_key(key))
        .fetch_one(&mut *tx)
        .await?;
        crate::audit::record(
            &mut tx,
            &Actor::system(),
            "create",
            "api_key",
            &id.to_string(),
            None,
            Some(serde_json::json!({"name": "bootstrap", "role": "admin"})),
        )
        .await?;
        tracing::info!("created the bootstrap admin key");
    }
    tx.commit().await?;
    Ok(())
}

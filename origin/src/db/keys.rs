//! API keys: stored as SHA-256 hashes (keys are 256-bit random values, so a fast hash is enough and lookups
//! stay cheap), each with a role; the secret is shown once, when created.

use base64::Engine;
use chrono::{DateTime, Utc};
use popup_core::access::Role;
use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;

use super::audit::{self, Actor};
use super::{DbError, DbResult};

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct KeyView {
    pub id: i64,
    pub name: String,
    pub role: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

pub fn hash_key(key: &str) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(key.as_bytes()).to_vec()
}

/// A new random key: 32 bytes, URL-safe base64, with a prefix that makes leaked keys easy to scan for.
fn generate_key() -> DbResult<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| DbError::Query(sqlx::Error::Protocol(format!("no randomness: {e}"))))?;
    Ok(format!("pk_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)))
}

/// The holder of an unrevoked key, if `key` is one.
pub async fn find(db: &PgPool, key: &str) -> DbResult<Option<Actor>> {
    let row: Option<(i64, String, String)> =
        sqlx::query_as("SELECT id, name, role FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL")
            .bind(hash_key(key))
            .fetch_optional(db)
            .await?;
    Ok(row.and_then(|(id, name, role)| {
        // The table's check constraint admits only known roles.
        Role::parse(&role).map(|role| Actor { key_id: Some(id), person_id: None, name, role })
    }))
}

/// Creates a key; returns it with its secret, which is not stored.
pub async fn create(db: &PgPool, actor: &Actor, name: &str, role: Role) -> DbResult<(KeyView, String)> {
    let key = generate_key()?;
    let mut tx = db.begin().await?;
    let view: KeyView = sqlx::query_as(
        "INSERT INTO api_keys (name, role, key_hash) VALUES ($1, $2, $3) RETURNING id, name, role, created_at, revoked_at",
    )
    .bind(name)
    .bind(role.as_str())
    .bind(hash_key(&key))
    .fetch_one(&mut *tx)
    .await?;
    let after = json!({"name": view.name, "role": view.role});
    audit::record(&mut tx, actor, "create", "api_key", &view.id.to_string(), None, Some(after)).await?;
    tx.commit().await?;
    Ok((view, key))
}

/// Keys newest first: `limit` from `offset`, and how many there are.
pub async fn list(db: &PgPool, limit: i64, offset: i64) -> DbResult<(Vec<KeyView>, i64)> {
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM api_keys").fetch_one(db).await?;
    let items = sqlx::query_as(
        "SELECT id, name, role, created_at, revoked_at FROM api_keys ORDER BY id DESC LIMIT $1 OFFSET $2",
    )
    .bind(limit)
    .bind(offset)
    .fetch_all(db)
    .await?;
    Ok((items, total))
}

/// Revokes key `id`; false if there is no such unrevoked key.
pub async fn revoke(db: &PgPool, actor: &Actor, id: i64) -> DbResult<bool> {
    let mut tx = db.begin().await?;
    let revoked = sqlx::query("UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    if revoked.rows_affected() == 0 {
        return Ok(false);
    }
    audit::record(&mut tx, actor, "revoke", "api_key", &id.to_string(), None, None).await?;
    tx.commit().await?;
    Ok(true)
}

/// Creates the bootstrap admin key unless an admin key exists already.
pub async fn bootstrap_admin_key(db: &PgPool, key: &str) -> DbResult<()> {
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
        let after = json!({"name": "bootstrap", "role": "admin"});
        audit::record(&mut tx, &Actor::system(), "create", "api_key", &id.to_string(), None, Some(after))
            .await?;
        tracing::info!("created the bootstrap admin key");
    }
    tx.commit().await?;
    Ok(())
}

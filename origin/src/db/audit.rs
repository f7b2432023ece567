//! The audit trail: every admin write records who did what, with the record before and after, in the
//! write's own transaction.

use chrono::{DateTime, Utc};
use popup_core::access::Role;
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgPool, Postgres, Transaction};

use super::DbResult;

/// Who acted: an API key (by id and name) with its role, a person signed in to the dashboard (by id and
/// display name), or the system (reconcile, bootstrap).
#[derive(Clone, Debug)]
pub struct Actor {
    pub key_id: Option<i64>,
    pub person_id: Option<i64>,
    pub name: String,
    pub role: Role,
}

impl Actor {
    /// The background jobs, for audit rows.
    pub fn system() -> Actor {
        Actor { key_id: None, person_id: None, name: "system".into(), role: Role::Admin }
    }
}

pub async fn record(
    tx: &mut Transaction<'_, Postgres>,
    actor: &Actor,
    action: &str,
    entity: &str,
    entity_id: &str,
    before: Option<Value>,
    after: Option<Value>,
) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO audit_log (actor_key, actor_person, actor_name, action, entity, entity_id, before, after)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(actor.key_id)
    .bind(actor.person_id)
    .bind(&actor.name)
    .bind(action)
    .bind(entity)
    .bind(entity_id)
    .bind(before)
    .bind(after)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor_key: Option<i64>,
    pub actor_person: Option<i64>,
    pub actor_name: String,
    pub action: String,
    pub entity: String,
    pub entity_id: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// Entries of `entity` (and `entity_id`), newest first: `limit` from `offset`, and how many there are.
pub async fn list(
    db: &PgPool,
    entity: Option<&str>,
    entity_id: Option<&str>,
    limit: i64,
    offset: i64,
) -> DbResult<(Vec<AuditEntry>, i64)> {
    let condition = "($1::text IS NULL OR entity = $1) AND ($2::text IS NULL OR entity_id = $2)";
    let total: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM audit_log WHERE {condition}"))
        .bind(entity)
        .bind(entity_id)
        .fetch_one(db)
        .await?;
    let items = sqlx::query_as(&format!(
        "SELECT id, at, actor_key, actor_person, actor_name, action, entity, entity_id, before, after FROM audit_log
         WHERE {condition} ORDER BY id DESC LIMIT $3 OFFSET $4"
    ))
    .bind(entity)
    .bind(entity_id)
    .bind(limit)
    .bind(offset)
    .fetch_all(db)
    .await?;
    Ok((items, total))
}

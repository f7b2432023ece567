//! The audit trail: every admin write records who did what, with the record before and after, in the
//! write's own transaction.

use serde_json::Value;
use sqlx::{Postgres, Transaction};

use crate::auth::Actor;

pub async fn record(
    tx: &mut Transaction<'_, Postgres>,
    actor: &Actor,
    action: &str,
    entity: &str,
    entity_id: &str,
    before: Option<Value>,
    after: Option<Value>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (actor_key, actor_name, action, entity, entity_id, before, after)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(actor.key_id)
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

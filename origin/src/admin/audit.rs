//! `GET /admin/v1/audit?entity=campaign&entity_id=12`: the audit trail, newest first.

use axum::extract::{Query, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::page::{PageQuery, Paged};
use crate::auth::{Actor, Role};
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor_key: Option<i64>,
    pub actor_name: String,
    pub action: String,
    pub entity: String,
    pub entity_id: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
pub struct AuditFilter {
    entity: Option<String>,
    entity_id: Option<String>,
    // Text, checked by `PageQuery::validate`, which names a bad value's field.
    page: Option<String>,
    page_size: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    actor: Actor,
    query: Result<Query<AuditFilter>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Paged<AuditEntry>>, ApiError> {
    actor.require(Role::Viewer)?;
    let Query(filter) = query?;
    let page = PageQuery { page: filter.page, page_size: filter.page_size }.validate()?;
    let condition = "($1::text IS NULL OR entity = $1) AND ($2::text IS NULL OR entity_id = $2)";
    let total: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM audit_log WHERE {condition}"))
        .bind(&filter.entity)
        .bind(&filter.entity_id)
        .fetch_one(&state.db)
        .await?;
    let items = sqlx::query_as(&format!(
        "SELECT id, at, actor_key, actor_name, action, entity, entity_id, before, after FROM audit_log
         WHERE {condition} ORDER BY id DESC LIMIT $3 OFFSET $4"
    ))
    .bind(&filter.entity)
    .bind(&filter.entity_id)
    .bind(page.page_size)
    .bind(page.offset())
    .fetch_all(&state.db)
    .await?;
    Ok(Json(Paged::new(items, page, total)))
}

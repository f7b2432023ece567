//! `/admin/v1/keys`: API keys, for admins only. A key is shown once, when it is created.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::page::{PageQuery, Paged};
use crate::audit;
use crate::auth::{generate_key, hash_key, Actor, Role};
use crate::error::{ApiError, JsonBody};
use crate::state::AppState;

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct KeyView {
    pub id: i64,
    pub name: String,
    pub role: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    pub name: String,
    pub role: Role,
}

#[derive(Debug, Serialize)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub view: KeyView,
    /// The secret; it is not stored and cannot be shown again.
    pub key: String,
}

pub async fn create(
    State(state): State<AppState>,
    actor: Actor,
    body: Result<JsonBody<NewKey>, ApiError>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    actor.require(Role::Admin)?;
    let JsonBody(new) = body?;
    if new.name.trim().is_empty() || new.name.len() > 100 {
        return Err(ApiError::field("name", "must be 1-100 characters"));
    }
    let key = generate_key()?;
    let mut tx = state.db.begin().await?;
    let view: KeyView = sqlx::query_as(
        "INSERT INTO api_keys (name, role, key_hash) VALUES ($1, $2, $3) RETURNING id, name, role, created_at, revoked_at",
    )
    .bind(&new.name)
    .bind(new.role.as_str())
    .bind(hash_key(&key))
    .fetch_one(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "create",
        "api_key",
        &view.id.to_string(),
        None,
        Some(json!({"name": view.name, "role": view.role})),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(CreatedKey { view, key })))
}

pub async fn list(
    State(state): State<AppState>,
    actor: Actor,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Paged<KeyView>>, ApiError> {
    actor.require(Role::Admin)?;
    let page = query?.0.validate()?;
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM api_keys").fetch_one(&state.db).await?;
    let items = sqlx::query_as(
        "SELECT id, name, role, created_at, revoked_at FROM api_keys ORDER BY id DESC LIMIT $1 OFFSET $2",
    )
    .bind(page.page_size)
    .bind(page.offset())
    .fetch_all(&state.db)
    .await?;
    Ok(Json(Paged::new(items, page, total)))
}

pub async fn revoke(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    actor.require(Role::Admin)?;
    let mut tx = state.db.begin().await?;
    let revoked = sqlx::query("UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    if revoked.rows_affected() == 0 {
        return Err(ApiError::NotFound("api key"));
    }
    audit::record(&mut tx, &actor, "revoke", "api_key", &id.to_string(), None, None).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

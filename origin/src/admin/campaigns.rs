//! `/admin/v1/campaigns`: create, read, list, update, delete (soft), and the lifecycle
//! `draft -> active (shown as scheduled before its start) -> paused -> ended`, whose rules are the core's
//! (`popup_core::lifecycle`): this module asks it before every write.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use popup_core::ids::Timestamp;
use popup_core::lifecycle::{self, Action, Dates, Shown, Status};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{PgConnection, Postgres, Transaction};

use super::spec::CampaignSpec;
use crate::auth::{Actor, Require, Role};
use crate::db::audit;
use crate::http::page::{Page, PageQuery, Paged};
use crate::http::{ApiError, JsonBody};
use crate::projection;
use crate::state::AppState;

#[derive(Debug, Serialize)]
pub struct CampaignView {
    pub id: i64,
    pub status: Shown,
    #[serde(flatten)]
    pub spec: CampaignSpec,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, sqlx::FromRow)]
pub struct CampaignRow {
    pub id: i64,
    #[sqlx(try_from = "String")]
    pub status: Status,
    pub spec: sqlx::types::Json<CampaignSpec>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl CampaignRow {
    fn view(self, now: DateTime<Utc>) -> CampaignView {
        let status = self.status.shown(self.dates(), timestamp(now));
        let spec = self.spec.0;
        CampaignView { id: self.id, status, spec, created_at: self.created_at, updated_at: self.updated_at }
    }

    fn dates(&self) -> Dates {
        let schedule = &self.spec.0.schedule;
        Dates { start: timestamp(schedule.start), end: schedule.end.map(timestamp) }
    }

    /// What the lifecycle says of `action` on this campaign now: the status after it, or a 409.
    fn check(&self, action: Action) -> Result<Status, ApiError> {
        lifecycle::apply(self.status, action, self.dates(), timestamp(Utc::now()))
            .map_err(|refused| ApiError::Conflict(refused.to_string()))
    }
}

/// Whole seconds, as the core (and so the resolver) reads every time.
fn timestamp(time: DateTime<Utc>) -> Timestamp {
    Timestamp(time.timestamp())
}

const SELECT: &str = "SELECT id, status, spec, created_at, updated_at FROM campaigns";

/// Names of live segments to their ids.
pub async fn segment_ids(db: &mut PgConnection) -> sqlx::Result<HashMap<String, i32>> {
    let rows: Vec<(String, i32)> =
        sqlx::query_as("SELECT name, id FROM segments WHERE deleted_at IS NULL").fetch_all(db).await?;
    Ok(rows.into_iter().collect())
}

async fn load(tx: &mut Transaction<'_, Postgres>, id: i64) -> Result<CampaignRow, ApiError> {
    sqlx::query_as::<_, CampaignRow>(&format!("{SELECT} WHERE id = $1 AND deleted_at IS NULL FOR UPDATE"))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(ApiError::NotFound("campaign"))
}

fn snapshot(row: &CampaignRow) -> serde_json::Value {
    json!({"status": row.status, "spec": row.spec.0})
}

pub async fn create(
    State(state): State<AppState>,
    actor: Actor,
    body: Result<JsonBody<CampaignSpec>, ApiError>,
) -> Result<(StatusCode, Json<CampaignView>), ApiError> {
    actor.require(Role::Editor)?;
    let JsonBody(spec) = body?;
    let mut tx = state.db.begin().await?;
    spec.to_core(0, &segment_ids(&mut tx).await?)?;
    let row: CampaignRow = sqlx::query_as(
        "INSERT INTO campaigns (name, priority, starts_at, ends_at, spec) VALUES ($1, $2, $3, $4, $5)
         RETURNING id, status, spec, created_at, updated_at",
    )
    .bind(&spec.name)
    .bind(spec.priority)
    .bind(spec.schedule.start)
    .bind(spec.schedule.end)
    .bind(sqlx::types::Json(&spec))
    .fetch_one(&mut *tx)
    .await?;
    audit::record(&mut tx, &actor, "create", "campaign", &row.id.to_string(), None, Some(snapshot(&row)))
        .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(row.view(Utc::now()))))
}

pub async fn get(
    State(state): State<AppState>,
    actor: Actor,
    id: Result<Path<i64>, axum::extract::rejection::PathRejection>,
) -> Result<Json<CampaignView>, ApiError> {
    actor.require(Role::Viewer)?;
    let Path(id) = id?;
    let row: CampaignRow = sqlx::query_as(&format!("{SELECT} WHERE id = $1 AND deleted_at IS NULL"))
        .bind(id)
        .fetch_optional(&state.db)
        .await?
        .ok_or(ApiError::NotFound("campaign"))?;
    Ok(Json(row.view(Utc::now())))
}

#[derive(Debug, Deserialize)]
pub struct ListFilter {
    /// Stored status: draft, active, paused or ended.
    status: Option<String>,
    /// Case-insensitive substring of the name.
    q: Option<String>,
    // Text, checked by `PageQuery::validate`, which names a bad value's field.
    page: Option<String>,
    page_size: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    actor: Actor,
    query: Result<Query<ListFilter>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Paged<CampaignView>>, ApiError> {
    actor.require(Role::Viewer)?;
    let Query(filter) = query?;
    let page: Page = PageQuery { page: filter.page, page_size: filter.page_size }.validate()?;
    if filter.status.as_deref().is_some_and(|status| Status::parse(status).is_none()) {
        return Err(ApiError::bad_field("status", "must be draft, active, paused or ended"));
    }
    let pattern = filter
        .q
        .as_deref()
        .map(|q| format!("%{}%", q.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")));
    let condition =
        "deleted_at IS NULL AND ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR name ILIKE $2)";
    let total: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM campaigns WHERE {condition}"))
        .bind(&filter.status)
        .bind(&pattern)
        .fetch_one(&state.db)
        .await?;
    let rows: Vec<CampaignRow> =
        sqlx::query_as(&format!("{SELECT} WHERE {condition} ORDER BY id DESC LIMIT $3 OFFSET $4"))
            .bind(&filter.status)
            .bind(&pattern)
            .bind(page.page_size)
            .bind(page.offset())
            .fetch_all(&state.db)
            .await?;
    let now = Utc::now();
    Ok(Json(Paged::new(rows.into_iter().map(|r| r.view(now)).collect(), page, total)))
}

pub async fn update(
    State(state): State<AppState>,
    actor: Actor,
    id: Result<Path<i64>, axum::extract::rejection::PathRejection>,
    body: Result<JsonBody<CampaignSpec>, ApiError>,
) -> Result<Json<CampaignView>, ApiError> {
    actor.require(Role::Editor)?;
    let Path(id) = id?;
    let JsonBody(spec) = body?;
    let mut tx = state.db.begin().await?;
    let before = load(&mut tx, id).await?;
    before.check(Action::Update)?;
    spec.to_core(id, &segment_ids(&mut tx).await?)?;
    let row: CampaignRow = sqlx::query_as(
        "UPDATE campaigns SET name = $2, priority = $3, starts_at = $4, ends_at = $5, spec = $6, updated_at = now()
         WHERE id = $1 RETURNING id, status, spec, created_at, updated_at",
    )
    .bind(id)
    .bind(&spec.name)
    .bind(spec.priority)
    .bind(spec.schedule.start)
    .bind(spec.schedule.end)
    .bind(sqlx::types::Json(&spec))
    .fetch_one(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "update",
        "campaign",
        &id.to_string(),
        Some(snapshot(&before)),
        Some(snapshot(&row)),
    )
    .await?;
    tx.commit().await?;
    projection::publish_after_write(&state).await;
    Ok(Json(row.view(Utc::now())))
}

pub async fn delete(
    State(state): State<AppState>,
    actor: Actor,
    id: Result<Path<i64>, axum::extract::rejection::PathRejection>,
) -> Result<StatusCode, ApiError> {
    actor.require(Role::Editor)?;
    let Path(id) = id?;
    let mut tx = state.db.begin().await?;
    let before = load(&mut tx, id).await?;
    before.check(Action::Delete)?;
    sqlx::query("UPDATE campaigns SET deleted_at = now(), updated_at = now() WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    audit::record(&mut tx, &actor, "delete", "campaign", &id.to_string(), Some(snapshot(&before)), None)
        .await?;
    tx.commit().await?;
    projection::publish_after_write(&state).await;
    Ok(StatusCode::NO_CONTENT)
}

async fn transition_to(
    state: &AppState,
    actor: &Actor,
    id: i64,
    action: Action,
) -> Result<Json<CampaignView>, ApiError> {
    actor.require(Role::Editor)?;
    let mut tx = state.db.begin().await?;
    let before = load(&mut tx, id).await?;
    let to = before.check(action)?;
    if action == Action::Activate {
        // Re-validate: a segment it names may have been deleted since it was saved.
        before.spec.0.to_core(id, &segment_ids(&mut tx).await?)?;
    }
    let row: CampaignRow = sqlx::query_as(
        "UPDATE campaigns SET status = $2, updated_at = now() WHERE id = $1
         RETURNING id, status, spec, created_at, updated_at",
    )
    .bind(id)
    .bind(to.as_str())
    .fetch_one(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        actor,
        action.as_str(),
        "campaign",
        &id.to_string(),
        Some(snapshot(&before)),
        Some(snapshot(&row)),
    )
    .await?;
    tx.commit().await?;
    projection::publish_after_write(state).await;
    Ok(Json(row.view(Utc::now())))
}

#[derive(Debug, Deserialize)]
pub struct LifecyclePath {
    id: String,
    action: String,
}

/// `POST /admin/v1/campaigns/{id}/{activate|pause|end}`.
pub async fn lifecycle(
    State(state): State<AppState>,
    actor: Actor,
    Path(path): Path<LifecyclePath>,
) -> Result<Json<CampaignView>, ApiError> {
    let action = Action::parse_transition(&path.action).ok_or(ApiError::NotFound("action"))?;
    let id = path.id.parse().map_err(|_| ApiError::BadRequest("the campaign id must be a number".into()))?;
    transition_to(&state, &actor, id, action).await
}

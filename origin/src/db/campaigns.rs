//! Popup campaigns: their stored spec ([`CampaignSpec`]), status and times.

use chrono::{DateTime, Utc};
use popup_core::lifecycle::Status;
use serde_json::json;
use sqlx::types::Json;
use sqlx::{PgPool, Postgres, Transaction};

use super::audit::{self, Actor};
use super::campaign_spec::CampaignSpec;
use super::DbResult;

/// Whether campaign `id` exists, deleted or not (a deleted campaign's stats stay readable).
pub async fn exists(db: &PgPool, id: i64) -> DbResult<bool> {
    Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM campaigns WHERE id = $1)")
        .bind(id)
        .fetch_one(db)
        .await?)
}

/// The spec of campaign `id`, unless it was deleted.
pub async fn spec(db: &PgPool, id: i64) -> DbResult<Option<CampaignSpec>> {
    let spec: Option<Json<CampaignSpec>> =
        sqlx::query_scalar("SELECT spec FROM campaigns WHERE id = $1 AND deleted_at IS NULL")
            .bind(id)
            .fetch_optional(db)
            .await?;
    Ok(spec.map(|spec| spec.0))
}

/// The campaigns served at `now`: active, not deleted, not past their end; by id.
pub async fn live_specs(db: &PgPool, now: DateTime<Utc>) -> DbResult<Vec<(i64, CampaignSpec)>> {
    let rows: Vec<(i64, Json<CampaignSpec>)> = sqlx::query_as(
        "SELECT id, spec FROM campaigns
         WHERE status = 'active' AND deleted_at IS NULL AND (ends_at IS NULL OR ends_at > $1) ORDER BY id",
    )
    .bind(now)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|(id, spec)| (id, spec.0)).collect())
}

/// Impressions served so far by the active campaigns that reached their budget. Only those: counts below it
/// do not change what is served, and leaving them out keeps the catalog (and its version) still while
/// impressions come in.
pub async fn budgets_reached(db: &PgPool) -> DbResult<Vec<(i64, i64)>> {
    Ok(sqlx::query_as(
        "SELECT campaign_totals.campaign_id, campaign_totals.impressions FROM campaign_totals
         JOIN campaigns ON campaigns.id = campaign_totals.campaign_id
         WHERE campaigns.status = 'active' AND (campaigns.spec ->> 'budget')::bigint <= campaign_totals.impressions",
    )
    .fetch_all(db)
    .await?)
}

/// Campaigns that may be served again (active or paused), by id.
pub async fn servable_ids(db: &PgPool) -> DbResult<Vec<i64>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM campaigns WHERE deleted_at IS NULL AND status IN ('active', 'paused') ORDER BY id",
    )
    .fetch_all(db)
    .await?)
}

/// Ids of the campaigns not ended that refer to segment `name`: such a segment may not be deleted.
pub async fn using_segment(db: &PgPool, name: &str) -> DbResult<Vec<i64>> {
    let rows: Vec<(i64, Json<CampaignSpec>)> = sqlx::query_as(
        "SELECT id, spec FROM campaigns WHERE deleted_at IS NULL AND status <> 'ended' ORDER BY id",
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .filter(|(_, spec)| spec.0.segment_names().any(|n| n == name))
        .map(|(id, _)| id)
        .collect())
}

/// For each segment name, the campaigns not ended that refer to it (id and name), in one read.
pub async fn segment_users(db: &PgPool) -> DbResult<std::collections::HashMap<String, Vec<(i64, String)>>> {
    let rows: Vec<(i64, Json<CampaignSpec>)> = sqlx::query_as(
        "SELECT id, spec FROM campaigns WHERE deleted_at IS NULL AND status <> 'ended' ORDER BY id",
    )
    .fetch_all(db)
    .await?;
    let mut users: std::collections::HashMap<String, Vec<(i64, String)>> = Default::default();
    for (id, spec) in rows {
        let mut names: Vec<&str> = spec.0.segment_names().collect();
        names.sort_unstable();
        names.dedup();
        for name in names {
            users.entry(name.to_string()).or_default().push((id, spec.0.name.clone()));
        }
    }
    Ok(users)
}

/// The names of campaigns `ids` (deleted ones included), by id.
pub async fn names(db: &PgPool, ids: &[i64]) -> DbResult<std::collections::HashMap<i64, String>> {
    let rows: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, name FROM campaigns WHERE id = ANY($1)").bind(ids).fetch_all(db).await?;
    Ok(rows.into_iter().collect())
}

/// Ends the campaigns whose end time has passed, each with an audit row by the system.
pub async fn end_expired(db: &PgPool) -> DbResult<Vec<i64>> {
    let mut tx = db.begin().await?;
    let ended: Vec<(i64, String)> = sqlx::query_as(
        "WITH expired AS (
             SELECT id, status FROM campaigns
             WHERE status IN ('active', 'paused') AND deleted_at IS NULL AND ends_at <= now() FOR UPDATE
         )
         UPDATE campaigns c SET status = 'ended', updated_at = now() FROM expired e WHERE c.id = e.id
         RETURNING c.id, e.status",
    )
    .fetch_all(&mut *tx)
    .await?;
    for (id, before) in &ended {
        let (before, after) = (json!({"status": before}), json!({"status": "ended"}));
        audit::record(
            &mut tx,
            &Actor::system(),
            "end",
            "campaign",
            &id.to_string(),
            Some(before),
            Some(after),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(ended.into_iter().map(|(id, _)| id).collect())
}

/// A campaign as stored.
#[derive(Debug, sqlx::FromRow)]
pub struct CampaignRow {
    pub id: i64,
    #[sqlx(try_from = "String")]
    pub status: Status,
    pub spec: Json<CampaignSpec>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl CampaignRow {
    /// What the audit trail keeps of it.
    pub fn snapshot(&self) -> serde_json::Value {
        json!({"status": self.status, "spec": self.spec.0})
    }
}

const SELECT: &str = "SELECT id, status, spec, created_at, updated_at FROM campaigns";
const RETURNING: &str = "RETURNING id, status, spec, created_at, updated_at";

pub async fn get(db: &PgPool, id: i64) -> DbResult<Option<CampaignRow>> {
    let query = format!("{SELECT} WHERE id = $1 AND deleted_at IS NULL");
    Ok(sqlx::query_as(&query).bind(id).fetch_optional(db).await?)
}

/// Campaign `id`, locked until the transaction ends, so a lifecycle check and the write it allows see the
/// same row.
pub async fn lock(tx: &mut Transaction<'_, Postgres>, id: i64) -> DbResult<Option<CampaignRow>> {
    let query = format!("{SELECT} WHERE id = $1 AND deleted_at IS NULL FOR UPDATE");
    Ok(sqlx::query_as(&query).bind(id).fetch_optional(&mut **tx).await?)
}

/// Campaigns newest first, with a stored `status` and a case-insensitive `name_contains`, if given: `limit`
/// from `offset`, and how many match.
pub async fn list(
    db: &PgPool,
    status: Option<Status>,
    name_contains: Option<&str>,
    limit: i64,
    offset: i64,
) -> DbResult<(Vec<CampaignRow>, i64)> {
    // The search text is a parameter; only LIKE's own wildcards in it are escaped.
    let pattern = name_contains
        .map(|q| format!("%{}%", q.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")));
    let status = status.map(Status::as_str);
    let condition =
        "deleted_at IS NULL AND ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR name ILIKE $2)";
    let total: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM campaigns WHERE {condition}"))
        .bind(status)
        .bind(&pattern)
        .fetch_one(db)
        .await?;
    let rows = sqlx::query_as(&format!("{SELECT} WHERE {condition} ORDER BY id DESC LIMIT $3 OFFSET $4"))
        .bind(status)
        .bind(&pattern)
        .bind(limit)
        .bind(offset)
        .fetch_all(db)
        .await?;
    Ok((rows, total))
}

pub async fn insert(
    tx: &mut Transaction<'_, Postgres>,
    actor: &Actor,
    spec: &CampaignSpec,
) -> DbResult<CampaignRow> {
    let query = format!(
        "INSERT INTO campaigns (name, priority, starts_at, ends_at, spec) VALUES ($1, $2, $3, $4, $5) {RETURNING}"
    );
    let row: CampaignRow = sqlx::query_as(&query)
        .bind(&spec.name)
        .bind(spec.priority)
        .bind(spec.schedule.start)
        .bind(spec.schedule.end)
        .bind(Json(spec))
        .fetch_one(&mut **tx)
        .await?;
    audit::record(tx, actor, "create", "campaign", &row.id.to_string(), None, Some(row.snapshot())).await?;
    Ok(row)
}

/// Replaces the spec of `before` (locked by [`lock`]).
pub async fn update_spec(
    tx: &mut Transaction<'_, Postgres>,
    actor: &Actor,
    before: &CampaignRow,
    spec: &CampaignSpec,
) -> DbResult<CampaignRow> {
    let query = format!(
        "UPDATE campaigns SET name = $2, priority = $3, starts_at = $4, ends_at = $5, spec = $6, updated_at = now()
         WHERE id = $1 {RETURNING}"
    );
    let row: CampaignRow = sqlx::query_as(&query)
        .bind(before.id)
        .bind(&spec.name)
        .bind(spec.priority)
        .bind(spec.schedule.start)
        .bind(spec.schedule.end)
        .bind(Json(spec))
        .fetch_one(&mut **tx)
        .await?;
    let id = before.id.to_string();
    audit::record(tx, actor, "update", "campaign", &id, Some(before.snapshot()), Some(row.snapshot()))
        .await?;
    Ok(row)
}

/// Moves `before` (locked by [`lock`]) to `status` by `action` (the lifecycle's name for it, audited).
pub async fn set_status(
    tx: &mut Transaction<'_, Postgres>,
    actor: &Actor,
    before: &CampaignRow,
    status: Status,
    action: &str,
) -> DbResult<CampaignRow> {
    let query = format!("UPDATE campaigns SET status = $2, updated_at = now() WHERE id = $1 {RETURNING}");
    let row: CampaignRow =
        sqlx::query_as(&query).bind(before.id).bind(status.as_str()).fetch_one(&mut **tx).await?;
    let id = before.id.to_string();
    audit::record(tx, actor, action, "campaign", &id, Some(before.snapshot()), Some(row.snapshot())).await?;
    Ok(row)
}

/// Deletes `before` (locked by [`lock`]); the row stays, marked, for the audit trail and the stats.
pub async fn soft_delete(
    tx: &mut Transaction<'_, Postgres>,
    actor: &Actor,
    before: &CampaignRow,
) -> DbResult<()> {
    sqlx::query("UPDATE campaigns SET deleted_at = now(), updated_at = now() WHERE id = $1")
        .bind(before.id)
        .execute(&mut **tx)
        .await?;
    let id = before.id.to_string();
    audit::record(tx, actor, "delete", "campaign", &id, Some(before.snapshot()), None).await?;
    Ok(())
}

//! Popup campaigns: their stored spec ([`CampaignSpec`]), status and times.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::types::Json;
use sqlx::PgPool;

use super::audit::{self, Actor};
use super::campaign_spec::CampaignSpec;
use super::DbResult;

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

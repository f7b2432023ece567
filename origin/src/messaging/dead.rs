//! The dead letters: messages that failed for good (a permanent provider error, or every attempt used).
//! `GET /admin/v1/messages/dead` lists them; `POST /admin/v1/messages/dead/requeue` with `{"ids": [...]}`
//! or `{"campaign_id": n}` puts them back in line with a fresh set of attempts, and their campaigns back to
//! `sending`.

use axum::extract::{Query, State};
use axum::Json;
use popup_core::delivery::{CampaignStep, MessageStatus, MessageStep};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::campaigns::{paged_messages, MessageView};
use crate::auth::{Actor, Require, Role};
use crate::db::audit;
use crate::http::page::{PageQuery, Paged};
use crate::http::{ApiError, JsonBody};
use crate::state::AppState;

/// Message ids kept in an audit row; the count covers them all.
const MAX_AUDITED_IDS: usize = 1_000;

#[derive(Debug, Deserialize)]
pub struct DeadFilter {
    campaign_id: Option<i64>,
    page: Option<String>,
    page_size: Option<String>,
    as_of: Option<i64>,
}

pub async fn list(
    State(state): State<AppState>,
    actor: Actor,
    query: Result<Query<DeadFilter>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Paged<MessageView>>, ApiError> {
    actor.require(Role::Viewer)?;
    let Query(filter) = query?;
    let page = PageQuery { page: filter.page, page_size: filter.page_size }.validate()?;
    let as_of = super::as_of(&state.db, "messages", filter.as_of).await?;
    paged_messages(&state.db, page, as_of, filter.campaign_id, Some(MessageStatus::Failed.as_str()))
        .await
        .map(Json)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequeueRequest {
    #[serde(default)]
    pub ids: Option<Vec<i64>>,
    #[serde(default)]
    pub campaign_id: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct RequeueResult {
    /// Failed messages put back to pending; ids that were not failed are left alone.
    pub requeued: u64,
    pub campaign_ids: Vec<i64>,
}

pub async fn requeue(
    State(state): State<AppState>,
    actor: Actor,
    body: Result<JsonBody<RequeueRequest>, ApiError>,
) -> Result<Json<RequeueResult>, ApiError> {
    actor.require(Role::Editor)?;
    let JsonBody(request) = body.map_err(ApiError::unreadable)?;
    let (ids, campaign) = match (request.ids, request.campaign_id) {
        (Some(ids), None) if !ids.is_empty() => (Some(ids), None),
        (None, Some(campaign)) => (None, Some(campaign)),
        _ => return Err(ApiError::bad_field("ids", "give a non-empty ids list or a campaign_id")),
    };
    let mut tx = state.db.begin().await?;
    let requeued: Vec<(i64, i64)> = sqlx::query_as(
        "UPDATE messages SET status = $3, attempts = 0, takeovers = 0, next_attempt_at = now(),
             lease_owner = NULL, lease_until = NULL, updated_at = now()
         WHERE status = 'failed' AND ($1::bigint[] IS NULL OR id = ANY($1))
           AND ($2::bigint IS NULL OR campaign_id = $2)
         RETURNING id, campaign_id",
    )
    .bind(&ids)
    .bind(campaign)
    .bind(MessageStep::Requeue.to().as_str())
    .fetch_all(&mut *tx)
    .await?;
    let mut campaign_ids: Vec<i64> = requeued.iter().map(|(_, c)| *c).collect();
    campaign_ids.sort_unstable();
    campaign_ids.dedup();
    sqlx::query(
        "UPDATE message_campaigns SET status = $2, updated_at = now()
         WHERE id = ANY($1) AND status IN ('sent', 'failed')",
    )
    .bind(&campaign_ids)
    .bind(CampaignStep::Requeue.to().as_str())
    .execute(&mut *tx)
    .await?;
    for campaign in &campaign_ids {
        let ids: Vec<i64> = requeued.iter().filter(|(_, c)| c == campaign).map(|(id, _)| *id).collect();
        let listed = &ids[..ids.len().min(MAX_AUDITED_IDS)];
        audit::record(
            &mut tx,
            &actor,
            "requeue",
            "message_campaign",
            &campaign.to_string(),
            None,
            Some(json!({"messages": ids.len(), "ids": listed})),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Json(RequeueResult { requeued: requeued.len() as u64, campaign_ids }))
}

//! The dead letters: messages that failed for good (a permanent provider error, or every attempt used).
//! `GET /admin/v1/messages/dead` lists them; `POST /admin/v1/messages/dead/requeue` with `{"ids": [...]}`
//! or `{"campaign_id": n}` puts them back in line with a fresh set of attempts, and their campaigns back to
//! `sending`.

use axum::extract::State;
use axum::Json;
use popup_core::delivery::MessageStatus;
use serde::{Deserialize, Serialize};

use crate::db::messages::{self, MessageView};
use crate::http::page::{PageQuery, Paged};
use crate::http::{ApiError, Editor, JsonBody, Query, Viewer};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct DeadFilter {
    campaign_id: Option<i64>,
    page: Option<String>,
    page_size: Option<String>,
    as_of: Option<i64>,
}

pub async fn list(
    State(state): State<AppState>,
    _: Viewer,
    Query(filter): Query<DeadFilter>,
) -> Result<Json<Paged<MessageView>>, ApiError> {
    let page = PageQuery { page: filter.page, page_size: filter.page_size }.validate()?;
    let as_of = crate::http::page::as_of(filter.as_of, || messages::newest_id(&state.db)).await?;
    let failed = Some(MessageStatus::Failed.as_str());
    let (items, total) =
        messages::list(&state.db, as_of, filter.campaign_id, failed, page.page_size, page.offset()).await?;
    Ok(Json(Paged::new(items, page, total).as_of(as_of)))
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
    Editor(actor): Editor,
    body: Result<JsonBody<RequeueRequest>, ApiError>,
) -> Result<Json<RequeueResult>, ApiError> {
    let JsonBody(request) = body.map_err(ApiError::unreadable)?;
    let (ids, campaign) = match (request.ids, request.campaign_id) {
        (Some(ids), None) if !ids.is_empty() => (Some(ids), None),
        (None, Some(campaign)) => (None, Some(campaign)),
        _ => return Err(ApiError::bad_field("ids", "give a non-empty ids list or a campaign_id")),
    };
    let requeued = messages::requeue(&state.db, &actor, ids.as_deref(), campaign).await?;
    Ok(Json(RequeueResult { requeued: requeued.messages, campaign_ids: requeued.campaign_ids }))
}

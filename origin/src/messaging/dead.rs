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

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeadFilter {
    campaign_id: Option<i64>,
    /// The page, from 1 (the default); below 1 is 1. At most 1000000; more, or not a whole number, is 400.
    #[param(value_type = Option<i64>, maximum = 1000000)]
    page: Option<String>,
    /// Rows per page, 20 by default; above 100 is 100, below 1 is the default. Not a whole number is 400.
    #[param(value_type = Option<i64>)]
    page_size: Option<String>,
    /// The `pagination.as_of` of the first page: pages through the same rows while new ones are inserted.
    #[param(minimum = 0)]
    as_of: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/messages/dead",
    tag = "messages",
    summary = "Messages that failed for good, newest first",
    security(("api_key" = [])),
    params(DeadFilter),
    responses((status = 200, body = Paged<MessageView>))
)]
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

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequeueRequest {
    #[serde(default)]
    pub ids: Option<Vec<i64>>,
    #[serde(default)]
    pub campaign_id: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RequeueResult {
    /// Failed messages put back to pending; ids that were not failed are left alone.
    pub requeued: u64,
    pub campaign_ids: Vec<i64>,
}

#[utoipa::path(
    post,
    path = "/messages/dead/requeue",
    tag = "messages",
    summary = "Put failed messages back in line with a fresh set of attempts",
    security(("api_key" = [])),
    request_body = RequeueRequest,
    responses((status = 200, body = RequeueResult))
)]
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

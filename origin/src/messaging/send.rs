//! `POST /admin/v1/message-campaigns/{id}/send` with `{"customer_ids": [...]}` or `{"segment": "name"}`.
//!
//! Renders one message per customer with the campaign's template and stores them all, with the campaign's
//! new status, in one transaction: either every message is queued or none is. Storing is dispatching:
//! workers claim pending messages from Postgres. A campaign with a `scheduled_at` in the future stays
//! `scheduled` and its messages become due at that time; otherwise it is `sending` at once.
//!
//! Errors (seed 002): 400 for a body without recipients, 404 for an unknown campaign, customer or
//! segment, 409 when the campaign was sent already (any status but draft or scheduled, or a scheduled
//! campaign already queued).
//!
//! A segment names customers by the bank's id (`external_id`); members with no customer record are
//! skipped and counted.
//!
//! The transaction is [`crate::db::messages::queue`]; this handler reads the request and answers.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;

use crate::db::messages::{self, QueueError, Queued, Recipients, MAX_RECIPIENTS};
use crate::http::{ApiError, Editor, JsonBody, Path};
use crate::state::AppState;
use popup_core::wire::ErrorResponse;

/// Customers one send reaches at most, by ids or by segment.
pub const MAX_CUSTOMER_IDS: usize = MAX_RECIPIENTS;
/// Enough for [`MAX_CUSTOMER_IDS`] ids as JSON.
pub const MAX_BODY_BYTES: usize = 4 << 20;

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    #[serde(default)]
    pub customer_ids: Option<Vec<i64>>,
    #[serde(default)]
    pub segment: Option<String>,
}

impl SendRequest {
    fn recipients(self) -> Result<Recipients, ApiError> {
        match (self.customer_ids, self.segment) {
            (Some(_), Some(_)) => {
                Err(ApiError::bad_field("customer_ids", "give customer_ids or segment, not both"))
            }
            (None, None) => Err(ApiError::bad_field("customer_ids", "required (or a segment)")),
            (Some(ids), None) if ids.is_empty() => {
                Err(ApiError::bad_field("customer_ids", "must not be empty"))
            }
            (Some(ids), None) if ids.len() > MAX_CUSTOMER_IDS => {
                Err(ApiError::bad_field("customer_ids", format!("at most {MAX_CUSTOMER_IDS} per request")))
            }
            (Some(ids), None) => Ok(Recipients::Customers(ids)),
            (None, Some(segment)) if segment.trim().is_empty() => {
                Err(ApiError::bad_field("segment", "must not be empty"))
            }
            (None, Some(segment)) => Ok(Recipients::Segment(segment)),
        }
    }
}

#[utoipa::path(
    post,
    path = "/message-campaigns/{id}/send",
    tag = "message-campaigns",
    summary = "Render and queue a message per customer, all in one transaction",
    security(("api_key" = [])),
    params(("id" = i64, Path)),
    request_body = SendRequest,
    responses(
        (status = 202, body = Queued),
        (status = 404, description = "No such campaign, customer or segment.", body = ErrorResponse),
        (status = 409, description = "The campaign was sent already.", body = ErrorResponse),
        (status = 422, description = "The segment is too large, or none of its members is a customer.", body = ErrorResponse),
    )
)]
pub async fn send(
    State(state): State<AppState>,
    Editor(actor): Editor,
    Path(id): Path<i64>,
    body: Result<JsonBody<SendRequest>, ApiError>,
) -> Result<(StatusCode, Json<Queued>), ApiError> {
    // A body that is not JSON, or has the wrong shape, is a bad request here (seed 002).
    let JsonBody(request) = body.map_err(ApiError::unreadable)?;
    Ok((StatusCode::ACCEPTED, Json(send_to(&state, &actor, id, request).await?)))
}

/// Renders and queues campaign `id`'s messages for the recipients `request` names, as `actor`: for this
/// API and the dashboard.
pub async fn send_to(
    state: &AppState,
    actor: &crate::db::audit::Actor,
    id: i64,
    request: SendRequest,
) -> Result<Queued, ApiError> {
    let recipients = request.recipients()?;
    messages::queue(&state.db, actor, id, &recipients).await.map_err(|e| refused(id, e))
}

/// Why nothing was queued, as the contract answers it (see the module docs).
fn refused(campaign_id: i64, error: QueueError) -> ApiError {
    match error {
        QueueError::UnknownCampaign => ApiError::NotFound("message campaign"),
        QueueError::UnknownCustomers(missing) => {
            tracing::debug!(campaign_id, missing, "send names unknown customers");
            ApiError::NotFound("customer")
        }
        QueueError::UnknownSegment => ApiError::NotFound("segment"),
        QueueError::Refused(refused) => ApiError::Conflict(refused.to_string()),
        QueueError::SegmentTooLarge(members) => ApiError::field(
            "segment",
            format!("has {members} members; one send reaches at most {MAX_CUSTOMER_IDS}"),
        ),
        QueueError::NoCustomerInSegment => {
            ApiError::field("segment", "no member of the segment is a customer on record")
        }
        // Checked when the campaign was created; a failure here means the rules changed since.
        error @ QueueError::StoredTemplate { .. } => ApiError::internal(error),
        QueueError::Db(error) => error.into(),
    }
}

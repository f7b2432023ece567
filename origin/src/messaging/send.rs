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

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use popup_core::delivery::{CampaignStep, MessageCampaignStatus};
use popup_core::template::{Template, CUSTOMER_PLACEHOLDERS};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::campaigns::MessageCampaign;
use super::customers::{CustomerView, SELECT as CUSTOMER_SELECT};
use crate::auth::{Actor, Require, Role};
use crate::db::audit;
use crate::http::{ApiError, JsonBody};
use crate::state::AppState;

/// Customers one send reaches at most, by ids or by segment.
pub const MAX_CUSTOMER_IDS: usize = 200_000;
/// Enough for [`MAX_CUSTOMER_IDS`] ids as JSON.
pub const MAX_BODY_BYTES: usize = 4 << 20;
/// Messages written per statement.
const MESSAGES_PER_INSERT: usize = 10_000;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    #[serde(default)]
    pub customer_ids: Option<Vec<i64>>,
    #[serde(default)]
    pub segment: Option<String>,
}

/// Who gets the messages.
#[derive(Debug, Clone)]
pub enum Recipients {
    Customers(Vec<i64>),
    Segment(String),
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

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendResult {
    pub campaign_id: i64,
    pub messages_queued: u64,
    /// Segment members without a customer record.
    pub skipped: u64,
    pub status: MessageCampaignStatus,
    /// When the messages become due.
    pub send_at: DateTime<Utc>,
}

pub async fn send(
    State(state): State<AppState>,
    actor: Actor,
    id: Result<Path<i64>, axum::extract::rejection::PathRejection>,
    body: Result<JsonBody<SendRequest>, ApiError>,
) -> Result<(StatusCode, Json<SendResult>), ApiError> {
    actor.require(Role::Editor)?;
    let Path(id) = id?;
    // A body that is not JSON, or has the wrong shape, is a bad request here (seed 002).
    let JsonBody(request) = body.map_err(ApiError::unreadable)?;
    let recipients = request.recipients()?;
    let result = queue(&state.db, &actor, id, recipients).await?;
    Ok((StatusCode::ACCEPTED, Json(result)))
}

/// Queues the campaign's messages; the handler's work without HTTP, for the benchmark too.
pub async fn queue(
    db: &sqlx::PgPool,
    actor: &Actor,
    campaign_id: i64,
    recipients: Recipients,
) -> Result<SendResult, ApiError> {
    let mut tx = db.begin().await?;
    let campaign: MessageCampaign =
        sqlx::query_as(&format!("{} WHERE id = $1 FOR UPDATE", super::campaigns::SELECT))
            .bind(campaign_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(ApiError::NotFound("message campaign"))?;
    campaign
        .status
        .check_send(campaign.send_requested_at.is_some())
        .map_err(|refused| ApiError::Conflict(refused.to_string()))?;
    // Checked when the campaign was created; a failure here means the rules changed since.
    let template = Template::parse(&campaign.base_template, CUSTOMER_PLACEHOLDERS)
        .map_err(|e| anyhow::anyhow!("campaign {campaign_id} has an invalid stored template: {e}"))?;

    let (customers, skipped) = match &recipients {
        Recipients::Customers(ids) => {
            let mut ids = ids.clone();
            ids.sort_unstable();
            ids.dedup();
            let customers: Vec<CustomerView> =
                sqlx::query_as(&format!("{CUSTOMER_SELECT} WHERE id = ANY($1) ORDER BY id"))
                    .bind(&ids)
                    .fetch_all(&mut *tx)
                    .await?;
            if customers.len() != ids.len() {
                let missing = ids.len() - customers.len();
                tracing::debug!(campaign_id, missing, "send names unknown customers");
                return Err(ApiError::NotFound("customer"));
            }
            (customers, 0)
        }
        Recipients::Segment(name) => {
            let members: Option<i64> = sqlx::query_scalar(
                "SELECT member_count FROM segments WHERE name = $1 AND deleted_at IS NULL",
            )
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
            let members = members.ok_or(ApiError::NotFound("segment"))?;
            // One send renders and stores every message in one transaction, in memory: bounded like a list.
            if members > MAX_CUSTOMER_IDS as i64 {
                return Err(ApiError::field(
                    "segment",
                    format!("has {members} members; one send reaches at most {MAX_CUSTOMER_IDS}"),
                ));
            }
            let customers: Vec<CustomerView> = sqlx::query_as(&format!(
                "{CUSTOMER_SELECT} WHERE external_id IN (
                     SELECT unnest(m.user_ids) FROM segment_members m
                     JOIN segments s ON s.id = m.segment_id AND m.version = s.version
                     WHERE s.name = $1 AND s.deleted_at IS NULL)
                 ORDER BY id"
            ))
            .bind(name)
            .fetch_all(&mut *tx)
            .await?;
            if customers.is_empty() {
                return Err(ApiError::field("segment", "no member of the segment is a customer on record"));
            }
            let skipped = (members - customers.len() as i64).max(0) as u64;
            (customers, skipped)
        }
    };

    let now = Utc::now();
    let send_at = campaign.scheduled_at.filter(|at| *at > now).unwrap_or(now);
    let status = CampaignStep::Send { due_later: send_at > now }.to();
    for chunk in customers.chunks(MESSAGES_PER_INSERT) {
        let ids: Vec<i64> = chunk.iter().map(|c| c.id).collect();
        let phones: Vec<&str> = chunk.iter().map(|c| c.phone.as_str()).collect();
        let bodies: Vec<String> = chunk.iter().map(|c| template.render(|name| c.field(name))).collect();
        sqlx::query(
            "INSERT INTO messages (campaign_id, customer_id, channel, phone, body, next_attempt_at)
             SELECT $1, customer_id, $2, phone, body, $3
             FROM unnest($4::bigint[], $5::text[], $6::text[]) AS r(customer_id, phone, body)",
        )
        .bind(campaign_id)
        .bind(&campaign.channel)
        .bind(send_at)
        .bind(&ids)
        .bind(&phones)
        .bind(&bodies)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "UPDATE message_campaigns SET status = $2, send_requested_at = now(), updated_at = now() WHERE id = $1",
    )
    .bind(campaign_id)
    .bind(status.as_str())
    .execute(&mut *tx)
    .await?;
    let result =
        SendResult { campaign_id, messages_queued: customers.len() as u64, skipped, status, send_at };
    let target = match &recipients {
        Recipients::Customers(ids) => json!({"customers": ids.len()}),
        Recipients::Segment(name) => json!({"segment": name}),
    };
    audit::record(
        &mut tx,
        actor,
        "send",
        "message_campaign",
        &campaign_id.to_string(),
        Some(json!({"status": campaign.status})),
        Some(json!({"status": status, "recipients": target, "messages_queued": result.messages_queued})),
    )
    .await?;
    tx.commit().await?;
    Ok(result)
}

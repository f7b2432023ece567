//! `/admin/v1/message-campaigns`: create (with the template checked), list with filters, detail with
//! stats, and a campaign's messages.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use popup_core::campaign::FieldError;
use popup_core::delivery::{CampaignStep, MessageCampaignStatus, MessageStatus};
use popup_core::template::{Template, CUSTOMER_PLACEHOLDERS};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::Channel;
use crate::auth::{Actor, Require, Role};
use crate::db::audit;
use crate::http::page::{PageQuery, Paged};
use crate::http::{ApiError, JsonBody};
use crate::state::AppState;

const MAX_NAME_CHARS: usize = 200;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewMessageCampaign {
    pub name: String,
    /// Read as text so a wrong value is a field error like the others, not a body error.
    pub channel: String,
    pub base_template: String,
    #[serde(default)]
    pub scheduled_at: Option<DateTime<Utc>>,
}

impl NewMessageCampaign {
    /// Every problem, in field order. The template is parsed with the core's rules, so what is accepted here
    /// renders the same everywhere.
    fn check(&self, now: DateTime<Utc>) -> Result<Channel, ApiError> {
        let mut errors = Vec::new();
        let mut add = |field: &str, message: String| errors.push(FieldError { field: field.into(), message });
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            add("name", format!("must be 1 to {MAX_NAME_CHARS} characters"));
        }
        let channel = Channel::parse(&self.channel);
        if channel.is_none() {
            add("channel", "must be sms or whatsapp".into());
        }
        if let Err(error) = Template::parse(&self.base_template, CUSTOMER_PLACEHOLDERS) {
            add(
                "base_template",
                format!("{error}; the placeholders are {}", CUSTOMER_PLACEHOLDERS.join(", ")),
            );
        }
        if self.scheduled_at.is_some_and(|at| at <= now) {
            add("scheduled_at", "must be in the future".into());
        }
        match channel {
            Some(channel) if errors.is_empty() => Ok(channel),
            _ => Err(ApiError::Invalid(errors)),
        }
    }
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct MessageCampaign {
    pub id: i64,
    pub name: String,
    pub channel: String,
    #[sqlx(try_from = "String")]
    pub status: MessageCampaignStatus,
    pub base_template: String,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub send_requested_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub const SELECT: &str = "SELECT id, name, channel, status, base_template, scheduled_at, send_requested_at, \
                          created_at, updated_at FROM message_campaigns";

/// Messages of a campaign by status. `sending` counts messages handed to a worker and not yet recorded.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub total: i64,
    pub pending: i64,
    pub sending: i64,
    pub sent: i64,
    pub failed: i64,
}

pub async fn stats(db: &sqlx::PgPool, campaign: i64) -> sqlx::Result<Stats> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM messages WHERE campaign_id = $1 GROUP BY status")
            .bind(campaign)
            .fetch_all(db)
            .await?;
    let mut stats = Stats::default();
    for (status, count) in rows {
        stats.total += count;
        match MessageStatus::parse(&status) {
            Some(MessageStatus::Pending) => stats.pending = count,
            Some(MessageStatus::Sending) => stats.sending = count,
            Some(MessageStatus::Sent) => stats.sent = count,
            Some(MessageStatus::Failed) | None => stats.failed += count,
        }
    }
    Ok(stats)
}

#[derive(Debug, Serialize)]
pub struct CampaignDetail {
    #[serde(flatten)]
    pub campaign: MessageCampaign,
    pub stats: Stats,
}

pub async fn create(
    State(state): State<AppState>,
    actor: Actor,
    body: Result<JsonBody<NewMessageCampaign>, ApiError>,
) -> Result<(StatusCode, Json<MessageCampaign>), ApiError> {
    actor.require(Role::Editor)?;
    let JsonBody(new) = body?;
    let channel = new.check(Utc::now())?;
    // Seed 002: a campaign with a time is `scheduled` from the start; it still needs a send to name its
    // customers, and goes out at that time.
    let status = CampaignStep::Create { scheduled: new.scheduled_at.is_some() }.to();
    let mut tx = state.db.begin().await?;
    let row: MessageCampaign = sqlx::query_as(
        "INSERT INTO message_campaigns (name, channel, status, base_template, scheduled_at)
         VALUES ($1, $2, $3, $4, $5)
         RETURNING id, name, channel, status, base_template, scheduled_at, send_requested_at, created_at, updated_at",
    )
    .bind(new.name.trim())
    .bind(channel.as_str())
    .bind(status.as_str())
    .bind(&new.base_template)
    .bind(new.scheduled_at)
    .fetch_one(&mut *tx)
    .await?;
    audit::record(&mut tx, &actor, "create", "message_campaign", &row.id.to_string(), None, Some(json!(row)))
        .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(row)))
}

pub async fn load(db: &sqlx::PgPool, id: i64) -> Result<MessageCampaign, ApiError> {
    sqlx::query_as(&format!("{SELECT} WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await?
        .ok_or(ApiError::NotFound("message campaign"))
}

pub async fn get(
    State(state): State<AppState>,
    actor: Actor,
    id: Result<Path<i64>, axum::extract::rejection::PathRejection>,
) -> Result<Json<CampaignDetail>, ApiError> {
    actor.require(Role::Viewer)?;
    let Path(id) = id?;
    let campaign = load(&state.db, id).await?;
    let stats = stats(&state.db, id).await?;
    Ok(Json(CampaignDetail { campaign, stats }))
}

#[derive(Debug, Deserialize)]
pub struct ListFilter {
    status: Option<String>,
    channel: Option<String>,
    // Not flattened: serde's flatten reads query values as strings only.
    page: Option<String>,
    page_size: Option<String>,
    as_of: Option<i64>,
}

pub async fn list(
    State(state): State<AppState>,
    actor: Actor,
    query: Result<Query<ListFilter>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Paged<MessageCampaign>>, ApiError> {
    actor.require(Role::Viewer)?;
    let Query(filter) = query?;
    let page = PageQuery { page: filter.page, page_size: filter.page_size }.validate()?;
    if filter.status.as_deref().is_some_and(|s| MessageCampaignStatus::parse(s).is_none()) {
        let statuses = MessageCampaignStatus::ALL.map(MessageCampaignStatus::as_str);
        return Err(ApiError::bad_field("status", format!("must be one of {}", statuses.join(", "))));
    }
    if filter.channel.as_deref().is_some_and(|c| Channel::parse(c).is_none()) {
        return Err(ApiError::bad_field("channel", "must be sms or whatsapp"));
    }
    let as_of = super::as_of(&state.db, "message_campaigns", filter.as_of).await?;
    let condition = "id <= $1 AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR channel = $3)";
    let total: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM message_campaigns WHERE {condition}"))
        .bind(as_of)
        .bind(&filter.status)
        .bind(&filter.channel)
        .fetch_one(&state.db)
        .await?;
    let items: Vec<MessageCampaign> =
        sqlx::query_as(&format!("{SELECT} WHERE {condition} ORDER BY id DESC LIMIT $4 OFFSET $5"))
            .bind(as_of)
            .bind(&filter.status)
            .bind(&filter.channel)
            .bind(page.page_size)
            .bind(page.offset())
            .fetch_all(&state.db)
            .await?;
    Ok(Json(Paged::new(items, page, total).as_of(as_of)))
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct MessageView {
    pub id: i64,
    pub campaign_id: i64,
    pub customer_id: i64,
    pub channel: String,
    pub phone: String,
    pub body: String,
    #[sqlx(try_from = "String")]
    pub status: MessageStatus,
    pub attempts: i32,
    pub idempotency_key: Option<String>,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub provider_message_id: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub const MESSAGE_SELECT: &str =
    "SELECT id, campaign_id, customer_id, channel, phone, body, status, attempts, \
                                  idempotency_key, next_attempt_at, last_error, provider_message_id, sent_at, created_at, \
                                  updated_at FROM messages";

#[derive(Debug, Deserialize)]
pub struct MessageFilter {
    status: Option<String>,
    page: Option<String>,
    page_size: Option<String>,
    as_of: Option<i64>,
}

/// `GET /admin/v1/message-campaigns/{id}/messages?status=failed`.
pub async fn messages(
    State(state): State<AppState>,
    actor: Actor,
    id: Result<Path<i64>, axum::extract::rejection::PathRejection>,
    query: Result<Query<MessageFilter>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Paged<MessageView>>, ApiError> {
    actor.require(Role::Viewer)?;
    let Path(id) = id?;
    let Query(filter) = query?;
    let page = PageQuery { page: filter.page, page_size: filter.page_size }.validate()?;
    if filter.status.as_deref().is_some_and(|s| MessageStatus::parse(s).is_none()) {
        return Err(ApiError::bad_field("status", "must be pending, sending, sent or failed"));
    }
    load(&state.db, id).await?;
    let as_of = super::as_of(&state.db, "messages", filter.as_of).await?;
    paged_messages(&state.db, page, as_of, Some(id), filter.status.as_deref()).await.map(Json)
}

/// Messages newest first, of one campaign or all, with one status or any.
pub async fn paged_messages(
    db: &sqlx::PgPool,
    page: crate::http::page::Page,
    as_of: i64,
    campaign: Option<i64>,
    status: Option<&str>,
) -> Result<Paged<MessageView>, ApiError> {
    let condition =
        "id <= $1 AND ($2::bigint IS NULL OR campaign_id = $2) AND ($3::text IS NULL OR status = $3)";
    let total: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM messages WHERE {condition}"))
        .bind(as_of)
        .bind(campaign)
        .bind(status)
        .fetch_one(db)
        .await?;
    let items: Vec<MessageView> =
        sqlx::query_as(&format!("{MESSAGE_SELECT} WHERE {condition} ORDER BY id DESC LIMIT $4 OFFSET $5"))
            .bind(as_of)
            .bind(campaign)
            .bind(status)
            .bind(page.page_size)
            .bind(page.offset())
            .fetch_all(db)
            .await?;
    Ok(Paged::new(items, page, total).as_of(as_of))
}

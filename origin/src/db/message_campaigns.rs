//! Message campaigns: an SMS or WhatsApp template sent to customers, with their status
//! (`popup_core::delivery::MessageCampaignStatus`) and the counts of their messages by status.
//!
//! Statuses in SQL follow the rule of the messaging module (see `messaging::worker`, "Statuses in SQL"):
//! the status a statement moves rows *to* is bound from the core's step (`CampaignStep::..to()`); the
//! statuses it selects rows *by* are literals, as the partial index `message_campaigns_due` needs.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use popup_core::delivery::{CampaignStep, MessageCampaignStatus, MessageStatus};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{PgExecutor, PgPool, Postgres, Transaction};

use super::audit::{self, Actor};
use super::DbResult;

/// How a message travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Sms,
    Whatsapp,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Whatsapp => "whatsapp",
        }
    }

    pub fn parse(raw: &str) -> Option<Channel> {
        [Channel::Sms, Channel::Whatsapp].into_iter().find(|c| c.as_str() == raw)
    }
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
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

const SELECT: &str = "SELECT id, name, channel, status, base_template, scheduled_at, send_requested_at, \
                      created_at, updated_at FROM message_campaigns";

/// A campaign to create, checked by the caller (the template against the core's placeholders).
#[derive(Debug, Clone, Copy)]
pub struct NewCampaign<'a> {
    pub name: &'a str,
    pub channel: Channel,
    pub base_template: &'a str,
    pub scheduled_at: Option<DateTime<Utc>>,
}

/// Creates a campaign, audited in the same transaction.
pub async fn create(db: &PgPool, actor: &Actor, new: &NewCampaign<'_>) -> DbResult<MessageCampaign> {
    // Seed 002: a campaign with a time is `scheduled` from the start; it still needs a send to name its
    // customers, and goes out at that time.
    let status = CampaignStep::Create { scheduled: new.scheduled_at.is_some() }.to();
    let mut tx = db.begin().await?;
    let row: MessageCampaign = sqlx::query_as(
        "INSERT INTO message_campaigns (name, channel, status, base_template, scheduled_at)
         VALUES ($1, $2, $3, $4, $5)
         RETURNING id, name, channel, status, base_template, scheduled_at, send_requested_at, created_at, updated_at",
    )
    .bind(new.name)
    .bind(new.channel.as_str())
    .bind(status.as_str())
    .bind(new.base_template)
    .bind(new.scheduled_at)
    .fetch_one(&mut *tx)
    .await?;
    audit::record(&mut tx, actor, "create", "message_campaign", &row.id.to_string(), None, Some(json!(row)))
        .await?;
    tx.commit().await?;
    Ok(row)
}

pub async fn get(db: &PgPool, id: i64) -> DbResult<Option<MessageCampaign>> {
    Ok(sqlx::query_as(&format!("{SELECT} WHERE id = $1")).bind(id).fetch_optional(db).await?)
}

/// Campaign `id`, locked until `tx` ends: a send reads and moves its status under this lock.
pub(super) async fn lock(tx: &mut Transaction<'_, Postgres>, id: i64) -> DbResult<Option<MessageCampaign>> {
    Ok(sqlx::query_as(&format!("{SELECT} WHERE id = $1 FOR UPDATE"))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?)
}

/// Records that campaign `id` was sent, now in `status` (the step of a send, `CampaignStep::Send`).
pub(super) async fn mark_send_requested(
    tx: &mut Transaction<'_, Postgres>,
    id: i64,
    status: MessageCampaignStatus,
) -> DbResult<()> {
    sqlx::query(
        "UPDATE message_campaigns SET status = $2, send_requested_at = now(), updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(status.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Campaigns `ids` that were `sent` or `failed` are `sending` again: some of their messages were re-queued.
pub(super) async fn requeued<'e>(db: impl PgExecutor<'e>, ids: &[i64]) -> DbResult<()> {
    sqlx::query(
        "UPDATE message_campaigns SET status = $2, updated_at = now()
         WHERE id = ANY($1) AND status IN ('sent', 'failed')",
    )
    .bind(ids)
    .bind(CampaignStep::Requeue.to().as_str())
    .execute(db)
    .await?;
    Ok(())
}

/// The newest campaign's id (0 with none): the bound of a list's snapshot (see [`list`]).
pub async fn newest_id(db: &PgPool) -> DbResult<i64> {
    Ok(sqlx::query_scalar("SELECT COALESCE(max(id), 0) FROM message_campaigns").fetch_one(db).await?)
}

/// Campaigns with ids up to `as_of`, with `status` and `channel` when given, newest first: `limit` from
/// `offset`, and how many there are. Rows inserted after `as_of` neither shift the pages nor appear twice.
pub async fn list(
    db: &PgPool,
    as_of: i64,
    status: Option<&str>,
    channel: Option<&str>,
    limit: i64,
    offset: i64,
) -> DbResult<(Vec<MessageCampaign>, i64)> {
    let condition = "id <= $1 AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR channel = $3)";
    let total: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM message_campaigns WHERE {condition}"))
        .bind(as_of)
        .bind(status)
        .bind(channel)
        .fetch_one(db)
        .await?;
    let items = sqlx::query_as(&format!("{SELECT} WHERE {condition} ORDER BY id DESC LIMIT $4 OFFSET $5"))
        .bind(as_of)
        .bind(status)
        .bind(channel)
        .bind(limit)
        .bind(offset)
        .fetch_all(db)
        .await?;
    Ok((items, total))
}

/// Messages of a campaign by status. `sending` counts messages handed to a worker and not yet recorded.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Stats {
    pub total: i64,
    pub pending: i64,
    pub sending: i64,
    pub sent: i64,
    pub failed: i64,
}

pub async fn stats(db: &PgPool, campaign: i64) -> DbResult<Stats> {
    Ok(stats_of(db, &[campaign]).await?.remove(&campaign).unwrap_or_default())
}

/// The [`Stats`] of each of `campaigns` (those without messages absent), in one statement: a page of
/// campaigns costs one query however many rows it shows.
pub async fn stats_of(db: &PgPool, campaigns: &[i64]) -> DbResult<HashMap<i64, Stats>> {
    let rows: Vec<(i64, String, i64)> = sqlx::query_as(
        "SELECT campaign_id, status, count(*) FROM messages WHERE campaign_id = ANY($1) GROUP BY campaign_id, status",
    )
    .bind(campaigns)
    .fetch_all(db)
    .await?;
    let mut all: HashMap<i64, Stats> = HashMap::new();
    for (campaign, status, count) in rows {
        let stats = all.entry(campaign).or_default();
        stats.total += count;
        match MessageStatus::parse(&status) {
            Some(MessageStatus::Pending) => stats.pending = count,
            Some(MessageStatus::Sending) => stats.sending = count,
            Some(MessageStatus::Sent) => stats.sent = count,
            Some(MessageStatus::Failed) | None => stats.failed += count,
        }
    }
    Ok(all)
}

/// The seed's rule for a campaign being sent: once no message is pending or sending, it is `failed` if
/// every message failed and `sent` otherwise (a partial success counts as sent). `None` checks every
/// campaign that is sending. Returns how many were settled.
pub async fn settle(db: &PgPool, campaigns: Option<&[i64]>) -> DbResult<u64> {
    let done = sqlx::query(
        "UPDATE message_campaigns c SET
             status = CASE WHEN EXISTS (SELECT 1 FROM messages m WHERE m.campaign_id = c.id AND m.status = 'sent')
                 THEN $2 ELSE $3 END,
             updated_at = now()
         WHERE c.status = 'sending' AND ($1::bigint[] IS NULL OR c.id = ANY($1))
           AND NOT EXISTS (SELECT 1 FROM messages m
                           WHERE m.campaign_id = c.id AND m.status IN ('pending', 'sending'))",
    )
    .bind(campaigns)
    .bind(CampaignStep::Settle { any_sent: true }.to().as_str())
    .bind(CampaignStep::Settle { any_sent: false }.to().as_str())
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Scheduled campaigns whose time has come, and which were sent (their messages became due at the same
/// time), start sending. Returns how many did.
pub async fn start_due(db: &PgPool) -> DbResult<u64> {
    let started = sqlx::query(
        "UPDATE message_campaigns SET status = $1, updated_at = now()
         WHERE status = 'scheduled' AND send_requested_at IS NOT NULL AND scheduled_at <= now()",
    )
    .bind(CampaignStep::Start.to().as_str())
    .execute(db)
    .await?;
    Ok(started.rows_affected())
}

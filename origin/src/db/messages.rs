//! Messages: one per campaign and customer, rendered when the campaign is sent. Postgres is both the record
//! and the queue: storing a message is dispatching it, and message workers (`messaging::worker`, which
//! holds the engine: concurrency, rate limits, retries) claim, send and record them through the functions
//! here.
//!
//! **Leases.** A message is `pending` until a worker claims it ([`claim`]): the claim makes it `sending`,
//! starts an attempt (`attempts + 1`) and gives the worker a lease (`lease_owner`, `lease_until`). The
//! outcome ([`record_outcomes`]) ends the lease: `sent`, `failed`, or `pending` again with
//! `next_attempt_at` pushed back while attempts remain.
//!
//! **Idempotency keys.** Each attempt gets a key for the provider, `msg-<id>-<n>`, n (`key_seq`) counting
//! the message's attempts over its whole life: a re-queue ([`requeue`]) resets `attempts` but never n, so
//! no key is used for two sends. An attempt whose outcome is unknown (a timeout, a connection lost after
//! the request went out: `outcome_unknown`) may have been delivered, so the next attempt sends the same
//! key again and the provider answers with its first result rather than delivering twice.
//!
//! **Takeovers.** A worker that dies leaves its messages `sending` under a lease that runs out; a claim
//! then takes them over *without* starting a new attempt, so the same key is sent again (the dead worker
//! may have handed the message to the provider already; a new attempt would make a new key and a second
//! delivery). A message whose lease runs out `max_takeovers` times in one attempt (it kills or hangs every
//! worker that sends it) is failed instead ([`abandon`]); failing it sends nothing, so it cannot deliver
//! twice either. An outcome is written only while the message is still `sending` under the same attempt
//! and the lease of the worker that sent it, so a slow worker whose lease was taken over cannot overwrite
//! the newer attempt (a takeover keeps the attempt number, so the attempt alone would not tell them apart).
//!
//! **Statuses in SQL** follow the rule explained in `messaging::worker`: the status a statement moves rows
//! *to* is bound from the core's step (`MessageStep::..to()`, `CampaignStep::..to()`); the statuses it
//! selects rows *by* are literals in the SQL text, because the partial indexes (`messages_due`,
//! `messages_leased`, `messages_dead`) are matched only against predicates written in the query.

use std::time::Duration;

use chrono::{DateTime, Utc};
use popup_core::delivery::{
    AttemptOutcome, CampaignStep, MessageCampaignStatus, MessageStatus, MessageStep, SendRefused,
};
use popup_core::template::{Template, CUSTOMER_PLACEHOLDERS};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgPool;

use super::audit::{self, Actor};
use super::customers::{self, CustomerView};
use super::message_campaigns::{self, Channel};
use super::{DbError, DbResult};

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
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

const SELECT: &str = "SELECT id, campaign_id, customer_id, channel, phone, body, status, attempts, \
                      idempotency_key, next_attempt_at, last_error, provider_message_id, sent_at, created_at, \
                      updated_at FROM messages";

/// The newest message's id (0 with none): the bound of a list's snapshot (see [`list`]).
pub async fn newest_id(db: &PgPool) -> DbResult<i64> {
    Ok(sqlx::query_scalar("SELECT COALESCE(max(id), 0) FROM messages").fetch_one(db).await?)
}

/// Messages with ids up to `as_of`, of one campaign or all, with one status or any, newest first: `limit`
/// from `offset`, and how many there are. Rows inserted after `as_of` neither shift the pages nor appear
/// twice.
pub async fn list(
    db: &PgPool,
    as_of: i64,
    campaign: Option<i64>,
    status: Option<&str>,
    limit: i64,
    offset: i64,
) -> DbResult<(Vec<MessageView>, i64)> {
    let condition =
        "id <= $1 AND ($2::bigint IS NULL OR campaign_id = $2) AND ($3::text IS NULL OR status = $3)";
    let total: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM messages WHERE {condition}"))
        .bind(as_of)
        .bind(campaign)
        .bind(status)
        .fetch_one(db)
        .await?;
    let items = sqlx::query_as(&format!("{SELECT} WHERE {condition} ORDER BY id DESC LIMIT $4 OFFSET $5"))
        .bind(as_of)
        .bind(campaign)
        .bind(status)
        .bind(limit)
        .bind(offset)
        .fetch_all(db)
        .await?;
    Ok((items, total))
}

/// Customers one send reaches at most, by ids or by segment: a send renders and stores every message in
/// one transaction, in memory.
pub const MAX_RECIPIENTS: usize = 200_000;
/// Messages written per statement.
const MESSAGES_PER_INSERT: usize = 10_000;

/// Who gets the messages.
#[derive(Debug, Clone)]
pub enum Recipients {
    Customers(Vec<i64>),
    Segment(String),
}

/// What a send queued.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Queued {
    pub campaign_id: i64,
    pub messages_queued: u64,
    /// Segment members without a customer record.
    pub skipped: u64,
    pub status: MessageCampaignStatus,
    /// When the messages become due.
    pub send_at: DateTime<Utc>,
}

/// Why a send queued nothing.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("no such message campaign")]
    UnknownCampaign,
    /// Some customer ids name no customer: how many.
    #[error("{0} customers named are not on record")]
    UnknownCustomers(usize),
    #[error("no such segment")]
    UnknownSegment,
    /// The campaign's status does not allow a send (the core's rule).
    #[error(transparent)]
    Refused(SendRefused),
    /// The segment has more members than one send reaches ([`MAX_RECIPIENTS`]).
    #[error("the segment has {0} members; one send reaches at most {MAX_RECIPIENTS}")]
    SegmentTooLarge(i64),
    #[error("no member of the segment is a customer on record")]
    NoCustomerInSegment,
    /// The stored template no longer parses: checked when the campaign was created, so the rules changed
    /// since.
    #[error("campaign {campaign} has an invalid stored template: {error}")]
    StoredTemplate { campaign: i64, error: String },
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for QueueError {
    fn from(error: sqlx::Error) -> QueueError {
        QueueError::Db(error.into())
    }
}

/// Sends campaign `campaign_id`: renders one message per recipient with the campaign's template and stores
/// them all, with the campaign's new status and an audit row, in one transaction; either every message is
/// queued or none is. Messages become due at the campaign's `scheduled_at` if that is in the future (the
/// campaign stays `scheduled`), at once otherwise (it is `sending`). A segment names customers by
/// `external_id`; members with no customer record are skipped and counted.
pub async fn queue(
    db: &PgPool,
    actor: &Actor,
    campaign_id: i64,
    recipients: &Recipients,
) -> Result<Queued, QueueError> {
    let mut tx = db.begin().await?;
    let campaign = message_campaigns::lock(&mut tx, campaign_id).await?.ok_or(QueueError::UnknownCampaign)?;
    campaign.status.check_send(campaign.send_requested_at.is_some()).map_err(QueueError::Refused)?;
    let template = Template::parse(&campaign.base_template, CUSTOMER_PLACEHOLDERS)
        .map_err(|e| QueueError::StoredTemplate { campaign: campaign_id, error: e.to_string() })?;

    let (customers, skipped): (Vec<CustomerView>, u64) = match recipients {
        Recipients::Customers(ids) => {
            let mut ids = ids.clone();
            ids.sort_unstable();
            ids.dedup();
            let customers = customers::by_ids(&mut *tx, &ids).await?;
            if customers.len() != ids.len() {
                return Err(QueueError::UnknownCustomers(ids.len() - customers.len()));
            }
            (customers, 0)
        }
        Recipients::Segment(name) => {
            let members =
                super::segments::member_count(&mut *tx, name).await?.ok_or(QueueError::UnknownSegment)?;
            if members > MAX_RECIPIENTS as i64 {
                return Err(QueueError::SegmentTooLarge(members));
            }
            let customers = customers::in_segment(&mut *tx, name).await?;
            if customers.is_empty() {
                return Err(QueueError::NoCustomerInSegment);
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
    message_campaigns::mark_send_requested(&mut tx, campaign_id, status).await?;
    let queued = Queued { campaign_id, messages_queued: customers.len() as u64, skipped, status, send_at };
    let target = match recipients {
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
        Some(json!({"status": status, "recipients": target, "messages_queued": queued.messages_queued})),
    )
    .await?;
    tx.commit().await?;
    Ok(queued)
}

/// Message ids kept in an audit row of a re-queue; the count covers them all.
const MAX_AUDITED_IDS: usize = 1_000;

/// What a re-queue put back in line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requeued {
    /// Failed messages put back to pending; ids that were not failed are left alone.
    pub messages: u64,
    /// Their campaigns, by id, back to `sending` if they had settled.
    pub campaign_ids: Vec<i64>,
}

/// Puts failed messages back to `pending`, due now, with a fresh set of attempts (their idempotency keys
/// stay unique, see the module docs): those of `ids` if given, of campaign `campaign` if given (both:
/// those of `ids` in that campaign). Their campaigns go back to `sending`; an audit row per campaign.
pub async fn requeue(
    db: &PgPool,
    actor: &Actor,
    ids: Option<&[i64]>,
    campaign: Option<i64>,
) -> DbResult<Requeued> {
    let mut tx = db.begin().await?;
    let requeued: Vec<(i64, i64)> = sqlx::query_as(
        "UPDATE messages SET status = $3, attempts = 0, takeovers = 0, next_attempt_at = now(),
             lease_owner = NULL, lease_until = NULL, updated_at = now()
         WHERE status = 'failed' AND ($1::bigint[] IS NULL OR id = ANY($1))
           AND ($2::bigint IS NULL OR campaign_id = $2)
         RETURNING id, campaign_id",
    )
    .bind(ids)
    .bind(campaign)
    .bind(MessageStep::Requeue.to().as_str())
    .fetch_all(&mut *tx)
    .await?;
    let mut campaign_ids: Vec<i64> = requeued.iter().map(|(_, c)| *c).collect();
    campaign_ids.sort_unstable();
    campaign_ids.dedup();
    message_campaigns::requeued(&mut *tx, &campaign_ids).await?;
    for campaign in &campaign_ids {
        let ids: Vec<i64> = requeued.iter().filter(|(_, c)| c == campaign).map(|(id, _)| *id).collect();
        let listed = &ids[..ids.len().min(MAX_AUDITED_IDS)];
        audit::record(
            &mut tx,
            actor,
            "requeue",
            "message_campaign",
            &campaign.to_string(),
            None,
            Some(json!({"messages": ids.len(), "ids": listed})),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Requeued { messages: requeued.len() as u64, campaign_ids })
}

/// A message a worker claimed, to send now under its lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedMessage {
    pub id: i64,
    /// The attempt this send is (a takeover keeps the attempt it took over).
    pub attempt: i32,
    /// A new key for a new attempt; the earlier one for a takeover or after an outcome left unknown.
    pub idempotency_key: String,
    pub phone: String,
    pub body: String,
}

/// Claims up to `limit` messages of `channel` for worker `owner`, under a lease of `lease`, with
/// `FOR UPDATE SKIP LOCKED` so that any number of workers claim at once without waiting on each other.
///
/// Expired leases come first: they are older work. One whose lease ran out is taken over as it is (the same
/// attempt, so the same idempotency key), while it has been taken over fewer than `max_takeovers` times in
/// that attempt. A pending message that is due starts a new attempt: `attempts + 1`, and a new key
/// (`key_seq + 1`) unless its last attempt's outcome is unknown, whose key it sends again. Either way it is
/// `sending` under this worker's lease.
pub async fn claim(
    db: &PgPool,
    channel: Channel,
    limit: usize,
    owner: &str,
    lease: Duration,
    max_takeovers: i32,
) -> DbResult<Vec<ClaimedMessage>> {
    let rows: Vec<(i64, i32, String, String, String)> = sqlx::query_as(
        "WITH expired AS (
             SELECT id FROM messages
             WHERE status = 'sending' AND channel = $1 AND lease_until < now() AND takeovers < $5
             LIMIT $2 FOR UPDATE SKIP LOCKED
         ), due AS (
             SELECT id FROM messages
             WHERE status = 'pending' AND channel = $1 AND next_attempt_at <= now()
             ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED
         ), picked AS (
             SELECT id FROM expired UNION ALL SELECT id FROM due LIMIT $2
         )
         UPDATE messages m SET
             attempts = CASE WHEN m.status = 'pending' THEN m.attempts + 1 ELSE m.attempts END,
             key_seq = CASE WHEN m.status = 'pending' AND NOT (m.outcome_unknown AND m.idempotency_key IS NOT NULL)
                 THEN m.key_seq + 1 ELSE m.key_seq END,
             idempotency_key = CASE
                 WHEN m.status = 'sending' THEN COALESCE(m.idempotency_key, 'msg-' || m.id || '-' || m.key_seq)
                 WHEN m.outcome_unknown AND m.idempotency_key IS NOT NULL THEN m.idempotency_key
                 ELSE 'msg-' || m.id || '-' || (m.key_seq + 1) END,
             outcome_unknown = false,
             takeovers = CASE WHEN m.status = 'sending' THEN m.takeovers + 1 ELSE 0 END,
             status = $6,
             lease_owner = $3,
             lease_until = now() + $4 * interval '1 millisecond',
             updated_at = now()
         FROM picked WHERE m.id = picked.id
         RETURNING m.id, m.attempts, m.idempotency_key, m.phone, m.body",
    )
    .bind(channel.as_str())
    .bind(limit as i64)
    .bind(owner)
    .bind(lease.as_millis() as f64)
    .bind(max_takeovers)
    // A claim and a takeover both leave the message sending.
    .bind(MessageStep::Claim.to().as_str())
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, attempt, idempotency_key, phone, body)| ClaimedMessage {
            id,
            attempt,
            idempotency_key,
            phone,
            body,
        })
        .collect())
}

/// How one attempt of a message ended, to record.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub message_id: i64,
    /// The attempt that ended: the outcome is written only if the message is still in it.
    pub attempt: i32,
    pub ended: AttemptOutcome,
    /// For a retry: how long until the next attempt is due.
    pub retry_after: Duration,
    /// The error, unless sent.
    pub error: Option<String>,
    /// The provider's id for a message sent.
    pub provider_id: Option<String>,
    /// The attempt may have been delivered: the next one sends the same idempotency key.
    pub outcome_unknown: bool,
}

/// Writes a batch of outcomes in one statement, each only while its message is still `sending` under the
/// same attempt and `owner`'s lease (see the module docs: a worker whose lease was taken over writes
/// nothing). Ends those leases. Returns the campaigns, by id, of the messages now sent or failed for good,
/// which may have nothing left to send.
pub async fn record_outcomes(db: &PgPool, batch: &[Outcome], owner: &str) -> DbResult<Vec<i64>> {
    let mut ids = Vec::with_capacity(batch.len());
    let mut attempts = Vec::with_capacity(batch.len());
    let mut statuses = Vec::with_capacity(batch.len());
    let mut delays = Vec::with_capacity(batch.len());
    let mut errors: Vec<Option<&str>> = Vec::with_capacity(batch.len());
    let mut provider_ids: Vec<Option<&str>> = Vec::with_capacity(batch.len());
    let mut unknown = Vec::with_capacity(batch.len());
    for outcome in batch {
        ids.push(outcome.message_id);
        attempts.push(outcome.attempt);
        statuses.push(MessageStep::Attempted(outcome.ended).to().as_str());
        let delay = match outcome.ended {
            AttemptOutcome::Retry => outcome.retry_after.as_secs_f64() * 1000.0,
            _ => 0.0,
        };
        delays.push(delay);
        errors.push(outcome.error.as_deref());
        provider_ids.push(outcome.provider_id.as_deref());
        unknown.push(outcome.outcome_unknown);
    }
    let mut finished: Vec<i64> = sqlx::query_scalar::<_, Option<i64>>(
        "UPDATE messages m SET
             status = o.status,
             next_attempt_at = CASE WHEN o.status = 'pending'
                 THEN now() + o.delay_ms * interval '1 millisecond' ELSE m.next_attempt_at END,
             last_error = CASE WHEN o.status = 'sent' THEN m.last_error ELSE o.error END,
             provider_message_id = o.provider_id,
             outcome_unknown = o.unknown,
             sent_at = CASE WHEN o.status = 'sent' THEN now() END,
             lease_owner = NULL,
             lease_until = NULL,
             updated_at = now()
         FROM unnest($1::bigint[], $2::int[], $3::text[], $4::float8[], $5::text[], $6::text[], $7::bool[])
             AS o(id, attempt, status, delay_ms, error, provider_id, unknown)
         WHERE m.id = o.id AND m.status = 'sending' AND m.attempts = o.attempt AND m.lease_owner = $8
         RETURNING CASE WHEN o.status = 'pending' THEN NULL ELSE m.campaign_id END",
    )
    .bind(&ids)
    .bind(&attempts)
    .bind(&statuses)
    .bind(&delays)
    .bind(&errors)
    .bind(&provider_ids)
    .bind(&unknown)
    .bind(owner)
    .fetch_all(db)
    .await?
    .into_iter()
    .flatten()
    .collect();
    finished.sort_unstable();
    finished.dedup();
    Ok(finished)
}

/// Fails the messages whose lease ran out after `max_takeovers` takeovers in one attempt, rather than
/// taking them over again, with a last error saying so. Returns how many.
pub async fn abandon(db: &PgPool, max_takeovers: i32) -> DbResult<u64> {
    let abandoned = sqlx::query(
        "UPDATE messages SET status = $2, lease_owner = NULL, lease_until = NULL, updated_at = now(),
             last_error = 'abandoned: the workers sending it died or hung ' || takeovers || ' times; \
                           the provider may have delivered it'
         WHERE status = 'sending' AND lease_until < now() AND takeovers >= $1",
    )
    .bind(max_takeovers)
    .bind(MessageStep::Abandon.to().as_str())
    .execute(db)
    .await?;
    Ok(abandoned.rows_affected())
}

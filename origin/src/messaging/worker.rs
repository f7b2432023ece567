//! The message worker: claims due messages from Postgres, hands them to the provider with up to
//! `concurrency` sends in flight, and records the outcomes in batches.
//!
//! Postgres is both the record and the queue. A message is `pending` until a worker claims it: the claim
//! makes it `sending`, starts an attempt (`attempts + 1`) and gives the worker a lease. The outcome ends the
//! lease: `sent`, `failed`, or `pending` again with `next_attempt_at` pushed back (exponential backoff with
//! jitter) while attempts remain. The statements (claims, outcomes, takeovers) are in
//! [`crate::db::messages`]; this module decides what to claim and when, and what becomes of each attempt.
//!
//! Each attempt gets an idempotency key for the provider, `msg-<id>-<n>`, n counting the message's attempts
//! over its whole life (a re-queue resets `attempts` but never n, so no key is used for two sends).
//!
//! **A worker that dies** leaves its messages `sending` with a lease that runs out; any worker then takes
//! them over *without* starting a new attempt. The dead worker may have handed such a message to the
//! provider already (the provider accepted, the worker died before writing `sent`), so the outcome of that
//! attempt is unknown. Sending the same attempt again sends the same idempotency key, and the provider
//! answers with its first result rather than delivering twice. Bumping the attempt there would make a new
//! key and a second delivery. A message whose lease runs out [`MAX_TAKEOVERS`] times in one attempt (it
//! kills or hangs every worker that sends it) is failed instead of taken over again, with a last error
//! saying so; failing it sends nothing, so it cannot deliver twice either.
//!
//! **An attempt without an answer** (a timeout, a connection lost after the request went out) may have been
//! delivered too. It is retried like any failure, with backoff and within `max_attempts`, but the next
//! attempt carries the same idempotency key (`outcome_unknown`), so again the provider cannot deliver twice.
//! If the attempts run out that way the message is `failed` with a last error saying the outcome is unknown.
//!
//! An outcome is written only while the message is still `sending` under the same attempt and the lease of
//! the worker that sent it, so a slow worker whose lease was taken over cannot overwrite the newer attempt
//! (a takeover keeps the attempt number, so the attempt alone would not tell them apart).
//!
//! **Throughput** is in-flight sends over provider latency: 256 in flight against a 50-200 ms provider is
//! about 2,000 messages a second. To keep the pipeline full, claims take many messages in one query as soon
//! as a slice of the slots is free, and outcomes go to a recorder task that writes each batch with one
//! `UPDATE ... FROM unnest(...)`, so the sends never wait for Postgres.
//!
//! **Rate limits**: a token bucket per channel. Tokens are taken before the claim, so a claimed message is
//! sent at once and never waits for a token while its lease runs.
//!
//! **Stopping**: when `stop` turns true the worker claims nothing more, waits for the sends in flight,
//! records their outcomes, and returns.
//!
//! **Statuses in SQL** (in [`crate::db::messages`] and [`crate::db::message_campaigns`], which hold the
//! messaging SQL): the statuses and the steps between them are the core's (`popup_core::delivery`). The
//! status a statement moves rows *to* is bound from the step (`MessageStep::..to()`,
//! `CampaignStep::..to()`), so every transition written comes from the core. The statuses a statement
//! selects rows *by* stay literals in the SQL text: several are the predicates of partial indexes
//! (`messages_due`, `messages_leased`, `messages_dead`, `message_campaigns_due`), and Postgres matches a
//! partial index only against a predicate written in the query, not against a parameter in a prepared
//! statement's generic plan; one rule for every selection is easier to keep than one per index. The schema's
//! `CHECK` lists the same statuses as the core's enums (a core test compares them).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use popup_core::delivery::AttemptOutcome;
use sqlx::PgPool;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::provider::{random_below, Outbound, Provider, SendError};
use super::rate::TokenBucket;
use crate::db::message_campaigns::{self, Channel};
use crate::db::messages::{self, Outcome};
use crate::db::DbResult;

#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Sends in flight at most.
    pub concurrency: usize,
    /// Attempts per message before it fails for good.
    pub max_attempts: i32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Messages per second per channel (0: unlimited), and the burst each bucket allows.
    pub rate_sms: f64,
    pub rate_whatsapp: f64,
    pub burst: u32,
    /// How long a claim holds a message; longer than the provider's timeout.
    pub lease: Duration,
    /// How often an idle worker looks for due messages, and promotes scheduled campaigns.
    pub poll_interval: Duration,
    /// Names this worker in `lease_owner`. Unique: outcomes are written only under the lease their worker
    /// holds, so one that lost its lease to another cannot overwrite the newer attempt.
    pub worker_id: String,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            concurrency: 256,
            max_attempts: 3,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            rate_sms: 0.0,
            rate_whatsapp: 0.0,
            burst: 100,
            lease: Duration::from_secs(60),
            poll_interval: Duration::from_millis(200),
            // The pid alone repeats across containers.
            worker_id: format!("worker-{}-{:08x}", std::process::id(), random_below(u64::from(u32::MAX))),
        }
    }
}

/// Counters a caller can read while the worker runs (the benchmark samples `in_flight`).
#[derive(Debug, Default)]
pub struct WorkerMetrics {
    pub in_flight: AtomicUsize,
    pub sent: AtomicU64,
    pub failed: AtomicU64,
    pub retried: AtomicU64,
}

/// What becomes of a message after an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    Sent {
        provider_id: String,
    },
    /// `reuse_key`: the attempt may have been delivered, so the next one sends the same idempotency key.
    Retry {
        after: Duration,
        error: String,
        reuse_key: bool,
    },
    Failed {
        error: String,
    },
}

/// The rule for an attempt's result: sent; or, for a retryable error with attempts left, another attempt
/// after a backoff; otherwise failed, with the reason.
pub fn decide(attempt: i32, result: Result<String, SendError>, options: &WorkerOptions, unit: f64) -> Next {
    match result {
        Ok(provider_id) => Next::Sent { provider_id },
        Err(error) if error.retryable && attempt < options.max_attempts => Next::Retry {
            after: popup_core::backoff::equal_jitter(
                attempt,
                options.backoff_base,
                options.backoff_max,
                unit,
            ),
            error: error.message,
            reuse_key: error.maybe_delivered,
        },
        Err(error) if error.maybe_delivered => Next::Failed {
            error: format!(
                "gave up after {attempt} attempts, the last one's outcome unknown: {}",
                error.message
            ),
        },
        Err(error) if error.retryable => {
            Next::Failed { error: format!("gave up after {attempt} attempts: {}", error.message) }
        }
        Err(error) => Next::Failed { error: error.message },
    }
}

fn unit_random() -> f64 {
    random_below(1 << 30) as f64 / f64::from(1u32 << 30)
}

struct Claimed {
    outbound: Outbound,
}

struct Recorded {
    message_id: i64,
    attempt: i32,
    next: Next,
}

/// Runs until `stop` is true, then drains. Errors from Postgres are logged and retried, not returned: a
/// worker outlives a database restart.
pub async fn run(
    db: PgPool,
    provider: Arc<dyn Provider>,
    options: WorkerOptions,
    metrics: Arc<WorkerMetrics>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let concurrency = options.concurrency.max(1);
    // Claim when a sixteenth of the slots is free: one query feeds many sends, and the pipeline stays
    // at least ~94% full.
    let claim_threshold = (concurrency / 16).max(1);
    let (outcomes, received) = mpsc::unbounded_channel::<Recorded>();
    let recorder = tokio::spawn(record_outcomes(db.clone(), received, options.worker_id.clone()));
    let mut in_flight: JoinSet<(Claimed, Result<String, SendError>)> = JoinSet::new();
    let start = Instant::now();
    let mut buckets = [
        (Channel::Sms, TokenBucket::new(options.rate_sms, options.burst, start)),
        (Channel::Whatsapp, TokenBucket::new(options.rate_whatsapp, options.burst, start)),
    ];
    // After a claim that found fewer messages than it asked for, that channel rests for a poll interval
    // instead of asking again on every finished send.
    let mut rest_until = [start, start];
    let mut next_sweep = start;
    // The channel that claims first takes turns, so a backlog on one cannot starve the other.
    let mut first = 0;
    tracing::info!(worker = %options.worker_id, concurrency, "message worker started");

    loop {
        if *stop.borrow() {
            break;
        }
        let now = Instant::now();
        if now >= next_sweep {
            next_sweep = now + options.poll_interval.max(Duration::from_millis(100)) * 5;
            if let Err(error) = sweep(&db).await {
                tracing::warn!(%error, "could not promote or settle campaigns");
            }
        }
        let mut wait = options.poll_interval;
        if concurrency - in_flight.len() >= claim_threshold || in_flight.is_empty() {
            first = (first + 1) % buckets.len();
            for turn in 0..buckets.len() {
                let index = (first + turn) % buckets.len();
                let (channel, bucket) = &mut buckets[index];
                let now = Instant::now();
                let free = concurrency - in_flight.len();
                if free == 0 || now < rest_until[index] {
                    continue;
                }
                let want = bucket.available(now, free);
                if want == 0 {
                    wait = wait.min(bucket.wait(now));
                    continue;
                }
                let claimed = match claim(&db, *channel, want, &options).await {
                    Ok(claimed) => claimed,
                    Err(error) => {
                        tracing::warn!(%error, "claim failed; retrying after a pause");
                        break;
                    }
                };
                bucket.take(now, claimed.len());
                if claimed.len() < want {
                    rest_until[index] = now + options.poll_interval;
                }
                for message in claimed {
                    let provider = provider.clone();
                    metrics.in_flight.fetch_add(1, Ordering::Relaxed);
                    metrics::gauge!("popup_messages_in_flight").increment(1.0);
                    in_flight.spawn(async move {
                        let result = provider.send(&message.outbound).await;
                        (message, result)
                    });
                }
            }
        }
        tokio::select! {
            biased;
            changed = stop.changed() => {
                // A dropped sender can never say "go on": stop.
                if changed.is_err() {
                    break;
                }
            }
            Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                finish(done, &options, &metrics, &outcomes);
                while let Some(done) = in_flight.try_join_next() {
                    finish(done, &options, &metrics, &outcomes);
                }
            }
            _ = tokio::time::sleep(wait) => {}
        }
    }

    tracing::info!(in_flight = in_flight.len(), "stopping: draining the sends in flight");
    while let Some(done) = in_flight.join_next().await {
        finish(done, &options, &metrics, &outcomes);
    }
    drop(outcomes);
    recorder.await?;
    if let Err(error) = sweep(&db).await {
        tracing::warn!(%error, "could not settle campaigns");
    }
    tracing::info!("message worker stopped");
    Ok(())
}

fn finish(
    done: Result<(Claimed, Result<String, SendError>), tokio::task::JoinError>,
    options: &WorkerOptions,
    metrics: &WorkerMetrics,
    outcomes: &mpsc::UnboundedSender<Recorded>,
) {
    metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
    metrics::gauge!("popup_messages_in_flight").decrement(1.0);
    let (claimed, result) = match done {
        Ok(done) => done,
        // A send task that panicked leaves its message to the lease: it is taken over later.
        Err(error) => {
            tracing::error!(%error, "a send task failed");
            return;
        }
    };
    let attempt = claimed.outbound.attempt;
    let next = decide(attempt, result, options, unit_random());
    let (counter, outcome) = match &next {
        Next::Sent { .. } => (&metrics.sent, "sent"),
        Next::Retry { .. } => (&metrics.retried, "retried"),
        Next::Failed { .. } => (&metrics.failed, "failed"),
    };
    counter.fetch_add(1, Ordering::Relaxed);
    // What the messenger's `/metrics` shows (on POPUP_OPS_ADDR): attempts by channel and outcome.
    let channel = claimed.outbound.channel.as_str();
    metrics::counter!("popup_message_attempts_total", "channel" => channel, "outcome" => outcome)
        .increment(1);
    let _ = outcomes.send(Recorded { message_id: claimed.outbound.message_id, attempt, next });
}

/// Takeovers of one attempt after which the message is failed rather than taken over again.
pub const MAX_TAKEOVERS: i32 = 5;

/// Claims up to `limit` due messages of `channel` under this worker's lease (see the module docs and
/// [`messages::claim`]).
async fn claim(
    db: &PgPool,
    channel: Channel,
    limit: usize,
    options: &WorkerOptions,
) -> DbResult<Vec<Claimed>> {
    let claimed =
        messages::claim(db, channel, limit, &options.worker_id, options.lease, MAX_TAKEOVERS).await?;
    Ok(claimed
        .into_iter()
        .map(|message| Claimed {
            outbound: Outbound {
                message_id: message.id,
                attempt: message.attempt,
                idempotency_key: message.idempotency_key,
                channel,
                to: message.phone,
                body: message.body,
            },
        })
        .collect())
}

/// Writes outcomes as they come, a batch per statement. If Postgres is unreachable the batch is retried for
/// a while, then dropped: those messages stay `sending`, their leases run out, and the attempt is sent again
/// under the same key, which the provider answers without delivering twice.
async fn record_outcomes(db: PgPool, mut received: mpsc::UnboundedReceiver<Recorded>, owner: String) {
    let mut batch = Vec::with_capacity(1024);
    while received.recv_many(&mut batch, 4096).await > 0 {
        let mut tries = 0;
        loop {
            match write_batch(&db, &batch, &owner).await {
                Ok(()) => break,
                Err(error) if tries < 20 => {
                    tries += 1;
                    tracing::warn!(%error, outcomes = batch.len(), "could not record outcomes; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(error) => {
                    tracing::error!(%error, outcomes = batch.len(), "dropping outcomes; leases will expire");
                    break;
                }
            }
        }
        batch.clear();
    }
}

/// Records a batch of outcomes in one statement, then settles the campaigns whose messages it finished.
async fn write_batch(db: &PgPool, batch: &[Recorded], owner: &str) -> DbResult<()> {
    let outcomes: Vec<Outcome> = batch.iter().map(outcome).collect();
    let finished = messages::record_outcomes(db, &outcomes, owner).await?;
    if !finished.is_empty() {
        message_campaigns::settle(db, Some(&finished)).await?;
    }
    Ok(())
}

/// What the worker decided for an attempt, as it is recorded.
fn outcome(recorded: &Recorded) -> Outcome {
    let (ended, retry_after, error, provider_id) = match &recorded.next {
        Next::Sent { provider_id } => (AttemptOutcome::Sent, Duration::ZERO, None, Some(provider_id.clone())),
        Next::Retry { after, error, .. } => (AttemptOutcome::Retry, *after, Some(error.clone()), None),
        Next::Failed { error } => (AttemptOutcome::Failed, Duration::ZERO, Some(error.clone()), None),
    };
    Outcome {
        message_id: recorded.message_id,
        attempt: recorded.attempt,
        ended,
        retry_after,
        error,
        provider_id,
        outcome_unknown: matches!(recorded.next, Next::Retry { reuse_key: true, .. }),
    }
}

/// Scheduled campaigns whose time has come start sending (their messages became due at the same time),
/// messages that every worker sending them died on are failed, and campaigns with nothing left to send are
/// settled.
async fn sweep(db: &PgPool) -> DbResult<()> {
    let started = message_campaigns::start_due(db).await?;
    if started > 0 {
        tracing::info!(campaigns = started, "scheduled campaigns started sending");
    }
    let abandoned = messages::abandon(db, MAX_TAKEOVERS).await?;
    if abandoned > 0 {
        tracing::error!(messages = abandoned, "messages failed after repeated takeovers");
    }
    message_campaigns::settle(db, None).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_errors_retry_until_the_last_attempt() {
        let options = WorkerOptions::default();
        assert_eq!(decide(1, Ok("SM1".into()), &options, 0.0), Next::Sent { provider_id: "SM1".into() });
        assert!(matches!(
            decide(1, Err(SendError::retryable("timeout")), &options, 0.0),
            Next::Retry { after, .. } if after == Duration::from_millis(500)
        ));
        assert!(matches!(decide(2, Err(SendError::retryable("timeout")), &options, 0.0), Next::Retry { .. }));
        assert_eq!(
            decide(3, Err(SendError::retryable("timeout")), &options, 0.0),
            Next::Failed { error: "gave up after 3 attempts: timeout".into() }
        );
        assert_eq!(
            decide(1, Err(SendError::permanent("21211: invalid number")), &options, 0.0),
            Next::Failed { error: "21211: invalid number".into() },
            "a permanent error fails at once"
        );
        assert!(matches!(
            decide(1, Err(SendError::unknown("timeout")), &options, 0.0),
            Next::Retry { reuse_key: true, .. }
        ));
        assert!(matches!(
            decide(1, Err(SendError::retryable("503")), &options, 0.0),
            Next::Retry { reuse_key: false, .. }
        ));
        assert_eq!(
            decide(3, Err(SendError::unknown("timeout")), &options, 0.0),
            Next::Failed {
                error: "gave up after 3 attempts, the last one's outcome unknown: timeout".into()
            }
        );
    }
}

//! Ingest: moves the events stream (`P:events`, see [`popup_core::stream`]) into Postgres.
//!
//! Every worker is a consumer of one consumer group, so several workers, in one process or many, share the
//! stream without reading an entry twice in the normal case. A worker
//! 1. reads a batch (`XREADGROUP`), or, every so often, first takes over entries another consumer left
//!    pending for longer than the claim timeout (`XAUTOCLAIM`): that consumer died or hangs;
//! 2. stores the batch in one statement (`INSERT ... SELECT FROM unnest(...) ON CONFLICT DO NOTHING`), which
//!    also adds the new impressions to `campaign_totals`;
//! 3. acknowledges the batch (`XACK`) only after that statement committed.
//!
//! Delivery is at least once: a worker that dies between 2 and 3 leaves its batch pending, and whoever
//! claims it stores it again. The table's primary key on the event id makes that second store a no-op, so
//! each event is stored exactly once. Rows are inserted in event id order, so two workers storing
//! overlapping batches wait on each other in the same order and never deadlock.
//!
//! The stream is trimmed (`XTRIM MINID`) below the oldest entry some group has not acknowledged: everything
//! below it was stored.
//!
//! Redis restarts and failovers: each worker has a connection of its own ([`Link`]), remade with backoff when
//! a command fails in a way that says it is gone (an I/O error, a dropped or refused connection, a timeout
//! far beyond the blocking read, `READONLY`). The worker waits for it, then makes the group again (a Redis
//! without persistence lost it), rereads what it had read and not acknowledged (the batch in hand when the
//! connection went; storing it again is a no-op), and goes on.
//!
//! Budgets: the store statement reports the campaigns whose lifetime impressions reached their budget; the
//! first time a worker sees one, it publishes the catalog, which then carries the campaign's served count
//! (see `projection::build_parts`) and resolvers stop choosing it.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chrono::Utc;
use popup_core::ids::Timestamp;
use popup_core::stream::Record;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamInfoConsumersReply, StreamInfoGroupsReply, StreamPendingReply};

use crate::db::events;
use crate::redis_store::{link, Link, LinkSettings, StoreUnavailable};
use crate::state::AppState;

/// The consumer group every ingest worker joins.
pub const GROUP: &str = "ingest";

/// How often a worker looks for entries abandoned by others, and trims the stream.
const MAINTENANCE_EVERY: Duration = Duration::from_secs(1);

/// Consumers idle this long with nothing pending are removed from the group (they were restarted workers).
const FORGET_CONSUMERS_AFTER: Duration = Duration::from_secs(3600);

/// How long a worker waits after a failure (Postgres down, a Redis error) before trying again. A lost Redis
/// connection is not waited for this way: the worker resumes as soon as its link is back.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// How long a worker waits for a connection attempt under way before it counts Redis as unreachable.
const CONNECT_WAIT: Duration = Duration::from_secs(5);

#[derive(Clone, Debug)]
pub struct IngestSettings {
    /// Entries per read, and so per insert.
    pub batch: usize,
    /// Entries pending this long with another consumer are taken over.
    pub claim_idle: Duration,
    /// How long a read waits for new entries.
    pub block: Duration,
    /// Days of events kept; older partitions are dropped.
    pub retention_days: u32,
}

impl IngestSettings {
    pub fn from_config(config: &crate::config::Config) -> IngestSettings {
        IngestSettings {
            batch: config.ingest_batch.max(1),
            claim_idle: Duration::from_millis(config.ingest_claim_idle_ms),
            block: Duration::from_secs(1),
            retention_days: config.event_retention_days.max(1),
        }
    }
}

/// What one step did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StepOutcome {
    /// Entries read (new or claimed).
    pub read: usize,
    /// Events inserted (not seen before).
    pub stored: usize,
    /// Entries that could not be read as events, acknowledged and left out.
    pub malformed: usize,
}

/// A batch read from the stream, not yet stored.
#[derive(Debug, Default)]
pub struct Batch {
    /// Every stream entry id of the batch, malformed ones included: all are acknowledged together.
    entry_ids: Vec<String>,
    records: Vec<Record>,
    malformed: usize,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.entry_ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entry_ids.is_empty()
    }

    /// Adds the entries of a `[[id, [field, value, ...]], ...]` reply. Read from the reply as it is, without
    /// building a map per entry: at a hundred thousand events a second, that allocation shows.
    fn add_entries(&mut self, entries: &redis::Value, accepted: &std::ops::RangeInclusive<i64>) {
        let redis::Value::Array(entries) = entries else { return };
        for entry in entries {
            let redis::Value::Array(parts) = entry else { continue };
            let [id, fields] = parts.as_slice() else { continue };
            let Some(id) = text(id) else { continue };
            let fields = match fields {
                redis::Value::Array(fields) => fields.as_slice(),
                _ => &[],
            };
            let pairs = fields.chunks_exact(2).filter_map(|pair| Some((text(&pair[0])?, text(&pair[1])?)));
            match Record::parse(pairs) {
                Ok(record) if accepted.contains(&record.served.seconds()) => self.records.push(record),
                Ok(record) => {
                    // A served time outside retention would create partitions that are dropped at once.
                    tracing::warn!(entry = id, served = record.served.seconds(), "event outside retention");
                    self.malformed += 1;
                }
                Err(error) => {
                    tracing::warn!(entry = id, %error, "malformed stream entry");
                    self.malformed += 1;
                }
            }
            self.entry_ids.push(id.to_string());
        }
    }
}

fn text(value: &redis::Value) -> Option<&str> {
    match value {
        redis::Value::BulkString(bytes) => std::str::from_utf8(bytes).ok(),
        redis::Value::SimpleString(text) => Some(text),
        _ => None,
    }
}

/// One ingest worker: a consumer of [`GROUP`].
pub struct Ingester {
    state: AppState,
    link: Link,
    /// The link's connection this worker set up (group made), and its generation.
    connection: Option<(MultiplexedConnection, u64)>,
    /// The connection is new: the group is to be made (again) before the next read.
    needs_setup: bool,
    /// Entries delivered to this consumer and perhaps not acknowledged are to be read again.
    own_pending: bool,
    stream: String,
    consumer: String,
    settings: IngestSettings,
    claim_cursor: String,
    last_maintenance: Option<Instant>,
    partitions: HashSet<i64>,
    exhausted: HashSet<(i64, i64)>,
}

impl std::fmt::Debug for Ingester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingester").field("consumer", &self.consumer).finish_non_exhaustive()
    }
}

impl Ingester {
    /// A worker that connects on its first step, and again whenever its connection is lost.
    pub fn new(
        state: AppState,
        redis_url: &str,
        consumer: String,
        settings: IngestSettings,
    ) -> anyhow::Result<Ingester> {
        // A connection of its own: a blocking read would hold up every other command on a shared one. Its
        // response timeout outlasts the blocking read, which the client would otherwise abandon while Redis
        // still hands it entries that nobody then reads; a timeout beyond that means the connection is gone.
        let link = Link::new(
            link::client(redis_url)?,
            LinkSettings {
                role: "ingest",
                connect_timeout: Duration::from_secs(5),
                response_timeout: Some(settings.block + Duration::from_secs(10)),
                timeout_is_loss: true,
                // The worker calls at least once per block time; a ping would only wait behind its read.
                health_check: None,
            },
        );
        let stream = state.keys.events();
        Ok(Ingester {
            state,
            link,
            connection: None,
            needs_setup: true,
            own_pending: true,
            stream,
            consumer,
            settings,
            claim_cursor: "0-0".into(),
            last_maintenance: None,
            partitions: HashSet::new(),
            exhausted: HashSet::new(),
        })
    }

    /// Joins the group (creating it, and the stream, if needed) as `consumer`, which must be unique; fails if
    /// Redis cannot be reached.
    pub async fn connect(
        state: AppState,
        redis_url: &str,
        consumer: String,
        settings: IngestSettings,
    ) -> anyhow::Result<Ingester> {
        let mut ingester = Ingester::new(state, redis_url, consumer, settings)?;
        ingester.prepare().await?;
        Ok(ingester)
    }

    /// Takes the link's current connection; on a new one, makes the group and rereads this consumer's
    /// pending entries.
    async fn prepare(&mut self) -> anyhow::Result<()> {
        let (connection, generation) = self.link.get(CONNECT_WAIT).await?;
        if self.connection.as_ref().is_none_or(|(_, current)| *current != generation) {
            self.connection = Some((connection, generation));
            self.needs_setup = true;
        }
        if self.needs_setup {
            create_group(connected(&mut self.connection)?, &self.stream).await?;
            // Whatever the cursor pointed at may be gone with the Redis that was lost.
            self.claim_cursor = "0-0".into();
            self.own_pending = true;
            self.needs_setup = false;
        }
        Ok(())
    }

    /// A consumer name unique across processes and machines.
    pub fn unique_consumer_name(worker: usize) -> String {
        let mut bytes = [0u8; 4];
        let suffix = match getrandom::fill(&mut bytes) {
            Ok(()) => u32::from_le_bytes(bytes),
            Err(_) => std::process::id(),
        };
        format!("ingest-{}-{worker}-{suffix:08x}", std::process::id())
    }

    /// Reads, stores and acknowledges one batch; trims and claims abandoned entries every so often.
    pub async fn step(&mut self) -> anyhow::Result<StepOutcome> {
        let outcome = match self.prepare().await {
            Ok(()) => self.try_step().await,
            Err(error) => Err(error),
        };
        let redis_error = outcome.as_ref().err().and_then(|e| e.downcast_ref::<redis::RedisError>());
        if let (Some(error), Some((_, generation))) = (redis_error, &self.connection) {
            if self.link.is_loss(error) {
                self.link.lost(*generation, error);
                return outcome;
            }
        }
        // A Redis that lost the stream (restarted without persistence, flushed) gets it back with the next
        // append, without the group: make it again, from the start of whatever the stream now holds.
        if redis_error.is_some_and(|e| e.code() == Some("NOGROUP")) {
            tracing::warn!("the events stream lost its consumer group; making it again");
            create_group(connected(&mut self.connection)?, &self.stream).await?;
            self.claim_cursor = "0-0".into();
        }
        outcome
    }

    async fn try_step(&mut self) -> anyhow::Result<StepOutcome> {
        let mut batch = Batch::default();
        if self.own_pending {
            batch = self.read_own_pending().await?;
            self.own_pending = !batch.is_empty();
        }
        let due = self.last_maintenance.is_none_or(|last| last.elapsed() >= MAINTENANCE_EVERY);
        if batch.is_empty() && due {
            self.last_maintenance = Some(Instant::now());
            self.trim().await?;
            batch = self.claim_abandoned().await?;
        }
        if batch.is_empty() {
            batch = self.read_new().await?;
        }
        if batch.is_empty() {
            return Ok(StepOutcome::default());
        }
        let stored = self.store(&batch).await?;
        self.acknowledge(&batch).await?;
        Ok(StepOutcome { read: batch.len(), stored, malformed: batch.malformed })
    }

    /// Entries delivered to this consumer and not acknowledged: after a reconnection, the batch that was in
    /// hand when the connection went, which would otherwise wait for the claim timeout.
    async fn read_own_pending(&mut self) -> anyhow::Result<Batch> {
        let reply: redis::Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(self.settings.batch)
            .arg("STREAMS")
            .arg(&self.stream)
            .arg("0")
            .query_async(connected(&mut self.connection)?)
            .await?;
        Ok(self.read_reply(&reply))
    }

    /// Entries never delivered to any consumer of the group.
    pub async fn read_new(&mut self) -> anyhow::Result<Batch> {
        // `[[stream, [entries]]]`, or nil when nothing came within the block time.
        let reply: redis::Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(self.settings.batch)
            .arg("BLOCK")
            .arg(self.settings.block.as_millis() as u64)
            .arg("STREAMS")
            .arg(&self.stream)
            .arg(">")
            .query_async(connected(&mut self.connection)?)
            .await?;
        Ok(self.read_reply(&reply))
    }

    /// The batch in an `XREADGROUP` reply.
    fn read_reply(&self, reply: &redis::Value) -> Batch {
        let mut batch = Batch::default();
        let accepted = self.accepted_served_range();
        if let redis::Value::Array(streams) = reply {
            for stream in streams {
                if let redis::Value::Array(parts) = stream {
                    if let [_, entries] = parts.as_slice() {
                        batch.add_entries(entries, &accepted);
                    }
                }
            }
        }
        batch
    }

    /// Takes over entries pending with some consumer for longer than the claim timeout.
    pub async fn claim_abandoned(&mut self) -> anyhow::Result<Batch> {
        // `[next cursor, [entries], [ids of entries deleted meanwhile]]`.
        let reply: redis::Value = redis::cmd("XAUTOCLAIM")
            .arg(&self.stream)
            .arg(GROUP)
            .arg(&self.consumer)
            .arg(self.settings.claim_idle.as_millis() as u64)
            .arg(&self.claim_cursor)
            .arg("COUNT")
            .arg(self.settings.batch)
            .query_async(connected(&mut self.connection)?)
            .await?;
        let mut batch = Batch::default();
        let accepted = self.accepted_served_range();
        if let redis::Value::Array(parts) = &reply {
            if let [cursor, entries, ..] = parts.as_slice() {
                self.claim_cursor = text(cursor).unwrap_or("0-0").to_string();
                batch.add_entries(entries, &accepted);
            }
        }
        if !batch.is_empty() {
            metrics::counter!("popup_ingest_claimed_total").increment(batch.len() as u64);
            tracing::info!(entries = batch.len(), consumer = self.consumer, "claimed abandoned events");
        }
        Ok(batch)
    }

    /// Stores the batch; returns how many events were new.
    pub async fn store(&mut self, batch: &Batch) -> anyhow::Result<usize> {
        let mut records: Vec<&Record> = batch.records.iter().collect();
        if records.is_empty() {
            return Ok(0);
        }
        // One lock order for every worker (see the module docs). Stable: of two copies of an event in one
        // batch, the first appended is stored.
        records.sort_by(|a, b| a.id.cmp(&b.id));
        let days: HashSet<i64> = records.iter().map(|r| self.state.keys.day(r.served)).collect();
        for day in days {
            if !self.partitions.contains(&day) {
                events::ensure_partition(&self.state.db, &self.state.keys, day).await?;
                self.partitions.insert(day);
            }
        }
        let (stored, exhausted, budgets) = events::store(&self.state.db, &self.state.keys, &records).await?;
        metrics::counter!("popup_ingest_events_total").increment(stored as u64);
        // Keyed by budget too: a campaign whose budget was raised is published again when it reaches it.
        let newly_exhausted: Vec<(i64, i64)> =
            exhausted.into_iter().zip(budgets).filter(|pair| !self.exhausted.contains(pair)).collect();
        if !newly_exhausted.is_empty() {
            tracing::info!(campaigns = ?newly_exhausted, "budget reached; publishing the catalog");
            // On failure the reconcile loop publishes it instead, a little later.
            if crate::projection::publish(&self.state).await.is_ok() {
                self.exhausted.extend(newly_exhausted);
            }
        }
        Ok(stored as usize)
    }

    pub async fn acknowledge(&mut self, batch: &Batch) -> anyhow::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let _: i64 = redis::cmd("XACK")
            .arg(&self.stream)
            .arg(GROUP)
            .arg(&batch.entry_ids)
            .query_async(connected(&mut self.connection)?)
            .await?;
        Ok(())
    }

    /// Drops the entries every group acknowledged, and forgets consumers long gone.
    pub async fn trim(&mut self) -> anyhow::Result<()> {
        let groups: StreamInfoGroupsReply = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(&self.stream)
            .query_async(connected(&mut self.connection)?)
            .await?;
        let mut boundary: Option<EntryId> = None;
        for group in &groups.groups {
            let pending: StreamPendingReply = redis::cmd("XPENDING")
                .arg(&self.stream)
                .arg(&group.name)
                .query_async(connected(&mut self.connection)?)
                .await?;
            // Entries up to the last delivered one are acknowledged unless pending; later ones are unread.
            let oldest_unacknowledged = match &pending {
                StreamPendingReply::Data(data) if data.count > 0 => EntryId::parse(&data.start_id),
                _ => EntryId::parse(&group.last_delivered_id).map(EntryId::next),
            };
            let Some(oldest) = oldest_unacknowledged else { return Ok(()) };
            boundary = Some(boundary.map_or(oldest, |b| b.min(oldest)));
            if group.name == GROUP {
                // Unread plus unacknowledged: how far the table is behind the stream.
                let behind = group.lag.unwrap_or(0) + group.pending;
                metrics::gauge!("popup_ingest_behind_events").set(behind as f64);
                self.forget_departed_consumers().await?;
            }
        }
        // Reading the group state first is safe: the boundary can only move forward meanwhile.
        if let Some(boundary) = boundary {
            let _: i64 = redis::cmd("XTRIM")
                .arg(&self.stream)
                .arg("MINID")
                .arg(boundary.to_string())
                .query_async(connected(&mut self.connection)?)
                .await?;
        }
        Ok(())
    }

    async fn forget_departed_consumers(&mut self) -> anyhow::Result<()> {
        let consumers: StreamInfoConsumersReply = redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg(&self.stream)
            .arg(GROUP)
            .query_async(connected(&mut self.connection)?)
            .await?;
        for consumer in consumers.consumers {
            // `idle` counts from the consumer's last attempted read, empty blocking ones included, so a live
            // worker (which reads at least every block interval) is never an hour idle and cannot be
            // removed between this listing and the delete with entries it has just read.
            let departed = consumer.pending == 0
                && consumer.idle as u128 > FORGET_CONSUMERS_AFTER.as_millis()
                && consumer.name != self.consumer;
            if departed {
                let _: i64 = redis::cmd("XGROUP")
                    .arg("DELCONSUMER")
                    .arg(&self.stream)
                    .arg(GROUP)
                    .arg(&consumer.name)
                    .query_async(connected(&mut self.connection)?)
                    .await?;
            }
        }
        Ok(())
    }

    /// Served times ingest accepts: within retention, and not beyond tomorrow.
    fn accepted_served_range(&self) -> std::ops::RangeInclusive<i64> {
        let now = Utc::now().timestamp();
        now - i64::from(self.settings.retention_days) * 86_400..=now + 86_400
    }

    /// Steps until `stopped` fires, waiting a little after failures, or, when the connection was lost, until
    /// it is back. The batch in hand when it fires is finished first.
    pub async fn run(mut self, mut stopped: tokio::sync::watch::Receiver<bool>) {
        tracing::info!(consumer = self.consumer, "ingest worker started");
        while !*stopped.borrow() {
            let Err(error) = self.step().await else { continue };
            metrics::counter!("popup_ingest_failures_total").increment(1);
            let connection_failed = error.downcast_ref::<StoreUnavailable>().is_some()
                || error.downcast_ref::<redis::RedisError>().is_some_and(|e| self.link.is_loss(e));
            if connection_failed {
                // The link says when the connection went and when it is back, once per outage.
                tracing::debug!(error = format!("{error:#}"), "ingest waits for redis");
                tokio::select! {
                    _ = self.link.wait_up() => {}
                    _ = stopped.changed() => {}
                }
            } else {
                tracing::warn!(error = format!("{error:#}"), "ingest step failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(RETRY_AFTER) => {}
                    _ = stopped.changed() => {}
                }
            }
        }
        tracing::info!(consumer = self.consumer, "ingest worker stopped");
    }
}

/// The connection a worker set up; a free function so that it borrows only that field.
fn connected(
    connection: &mut Option<(MultiplexedConnection, u64)>,
) -> anyhow::Result<&mut MultiplexedConnection> {
    match connection {
        Some((connection, _)) => Ok(connection),
        None => Err(StoreUnavailable::NotConnected.into()),
    }
}

async fn create_group(connection: &mut MultiplexedConnection, stream: &str) -> anyhow::Result<()> {
    let created: redis::RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(connection)
        .await;
    match created {
        Err(error) if error.code() != Some("BUSYGROUP") => Err(error.into()),
        _ => Ok(()),
    }
}

/// Runs `workers` ingest workers and the daily retention job until `stopped` fires.
pub async fn run_workers(
    state: AppState,
    redis_url: String,
    workers: usize,
    settings: IngestSettings,
    stopped: tokio::sync::watch::Receiver<bool>,
) {
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..workers {
        let (state, redis_url, settings, stopped) =
            (state.clone(), redis_url.clone(), settings.clone(), stopped.clone());
        tasks.spawn(async move {
            let consumer = Ingester::unique_consumer_name(worker);
            // It connects on its first step: while Redis is down it waits, with backoff, and says so.
            match Ingester::new(state, &redis_url, consumer, settings) {
                Ok(ingester) => ingester.run(stopped).await,
                Err(error) => tracing::error!(error = format!("{error:#}"), "ingest cannot start"),
            }
        });
    }
    if workers > 0 {
        tasks.spawn(build_rollup(state.clone(), stopped.clone()));
        tasks.spawn(run_retention(state, settings.retention_days, stopped));
    }
    while tasks.join_next().await.is_some() {}
}

/// Rebuilds the campaign stats' daily counts from the events when they were built with another day offset
/// or not yet (see `events::ensure_rollup`); retried until Postgres answers. Ingest runs meanwhile: the
/// rebuild makes its writes wait, and counts what they stored before.
async fn build_rollup(state: AppState, mut stopped: tokio::sync::watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let started = std::time::Instant::now();
                match events::ensure_rollup(&state.db, &state.keys).await {
                    Ok(true) => {
                        tracing::info!(seconds = started.elapsed().as_secs_f64(), "rebuilt campaign stats from the events");
                        return;
                    }
                    Ok(false) => return,
                    Err(error) => tracing::warn!(error = format!("{error:#}"), "cannot build campaign stats yet"),
                }
            }
            _ = stopped.changed() => return,
        }
    }
}

async fn run_retention(
    state: AppState,
    retention_days: u32,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let now = Timestamp(Utc::now().timestamp());
                // Today's and tomorrow's partitions exist before their first event, so ingest rarely has to
                // attach one itself.
                let today = state.keys.day(now);
                for day in [today, today + 1] {
                    if let Err(error) = events::ensure_partition(&state.db, &state.keys, day).await {
                        tracing::warn!(error = format!("{error:#}"), day, "cannot create an events partition");
                    }
                }
                match events::drop_expired_partitions(&state.db, &state.keys, now, retention_days).await {
                    Ok(days) if !days.is_empty() => tracing::info!(?days, "dropped expired event partitions"),
                    Ok(_) => {}
                    Err(error) => tracing::warn!(error = format!("{error:#}"), "retention failed"),
                }
            }
            _ = stopped.changed() => return,
        }
    }
}

/// A stream entry id, `<ms>-<seq>`, ordered as Redis orders them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct EntryId(u64, u64);

impl EntryId {
    fn parse(raw: &str) -> Option<EntryId> {
        let (ms, seq) = raw.split_once('-')?;
        Some(EntryId(ms.parse().ok()?, seq.parse().ok()?))
    }

    fn next(self) -> EntryId {
        match self.1.checked_add(1) {
            Some(seq) => EntryId(self.0, seq),
            None => EntryId(self.0.saturating_add(1), 0),
        }
    }
}

impl std::fmt::Display for EntryId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

#[cfg(test)]
mod tests {
    use super::EntryId;

    #[test]
    fn entry_ids_order_and_step_like_redis() {
        let id = EntryId::parse("1700000000000-5").unwrap();
        assert_eq!(id.next().to_string(), "1700000000000-6");
        assert!(EntryId::parse("10-0").unwrap() > EntryId::parse("9-99").unwrap());
        assert_eq!(EntryId(3, u64::MAX).next(), EntryId(4, 0));
        assert_eq!(EntryId::parse("12"), None);
    }
}

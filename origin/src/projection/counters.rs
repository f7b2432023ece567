//! Rebuilding customers' impression counters (the frequency caps' memory) from the events in Postgres,
//! after Redis lost them. Counters are only ever raised (`popup_core::projection::RESTORE_COUNTERS_SCRIPT`),
//! so impressions recorded in Redis since the loss are kept.
//!
//! What cannot be rebuilt: impressions Redis recorded but ingest had not yet moved into Postgres when Redis
//! lost them (the stream went with it), and impressions older than the events' retention.

use std::time::Instant;

use futures_util::TryStreamExt;
use popup_core::ids::{CampaignId, Timestamp, UserId};
use popup_core::projection::{
    load_script, mark, read_mark, read_script_sha, restore_counters, restore_daily_total, Part,
    RebuiltCounters, RESTORE_COUNTERS_SCRIPT,
};
use popup_core::store::{Command, Reply};

use crate::db::events;
use crate::state::{AppState, BULK_TIMEOUT};

/// Customers written per pipeline.
const CUSTOMERS_PER_PIPELINE: usize = 2_000;

/// The start of the deployment's current day, and a bound on when the popups shown today were served (an
/// impression is accepted for as long as its token is), which lets Postgres read only those partitions.
fn today(state: &AppState, now: Timestamp) -> (Timestamp, Timestamp) {
    let start = state.keys.day_start(state.keys.day(now));
    (start, Timestamp(start.seconds().saturating_sub(state.tokens.ttl_seconds)))
}

/// Whether Postgres holds any impression recorded today.
pub async fn anyone_shown_today(state: &AppState) -> Result<bool, crate::db::DbError> {
    let (start, served_since) = today(state, crate::state::now());
    events::anyone_shown_since(&state.db, start, served_since).await
}

/// Raises every customer's counters of `campaign` to what its recorded impressions say, then marks them
/// complete under `epoch`. Returns the customers written; an error if Redis lost data meanwhile.
pub async fn restore_campaign(state: &AppState, epoch: &str, campaign: CampaignId) -> anyhow::Result<u64> {
    let started = Instant::now();
    let now = crate::state::now();
    let (day_start, _) = today(state, now);
    let sha = load_restore_script(state).await?;
    let mut rows = Box::pin(events::impressions_by_customer(&state.db, campaign.0 as i64, day_start));
    let mut batch = Vec::with_capacity(CUSTOMERS_PER_PIPELINE);
    let mut customers = 0;
    while let Some((user, lifetime, last_shown, today)) = rows.try_next().await? {
        let Ok(user) = UserId::parse(&user) else { continue };
        let counters = RebuiltCounters {
            lifetime: lifetime.max(0) as u64,
            last_shown: Timestamp(last_shown),
            today: today.max(0) as u64,
        };
        batch.push(restore_counters(&state.keys, &sha, &user, campaign, &counters, now));
        if batch.len() == CUSTOMERS_PER_PIPELINE {
            customers += write(state, &mut batch).await?;
        }
    }
    drop(rows);
    customers += write(state, &mut batch).await?;
    finish(state, epoch, Part::Counters(campaign)).await?;
    metrics::histogram!("popup_counters_restore_seconds").record(started.elapsed().as_secs_f64());
    Ok(customers)
}

/// Raises every customer's impressions today across campaigns (the global daily cap's count), then marks
/// them complete under `epoch`.
pub async fn restore_daily_totals(state: &AppState, epoch: &str) -> anyhow::Result<u64> {
    let now = crate::state::now();
    let (day_start, served_since) = today(state, now);
    let sha = load_restore_script(state).await?;
    let mut rows = Box::pin(events::impressions_today_by_customer(&state.db, day_start, served_since));
    let mut batch = Vec::with_capacity(CUSTOMERS_PER_PIPELINE);
    let mut customers = 0;
    while let Some((user, today)) = rows.try_next().await? {
        let Ok(user) = UserId::parse(&user) else { continue };
        batch.push(restore_daily_total(&state.keys, &sha, &user, today.max(0) as u64, now));
        if batch.len() == CUSTOMERS_PER_PIPELINE {
            customers += write(state, &mut batch).await?;
        }
    }
    drop(rows);
    customers += write(state, &mut batch).await?;
    finish(state, epoch, Part::DailyTotals).await?;
    Ok(customers)
}

async fn load_restore_script(state: &AppState) -> anyhow::Result<String> {
    let replies = state.redis.run(&[load_script(RESTORE_COUNTERS_SCRIPT)]).await?;
    let reply = replies.into_iter().next().ok_or_else(|| anyhow::anyhow!("no reply to SCRIPT LOAD"))?;
    Ok(read_script_sha(reply)?)
}

/// Sends the batch; any command Redis refused (the script gone with a restart, say) fails the restore.
async fn write(state: &AppState, batch: &mut Vec<Command>) -> anyhow::Result<u64> {
    if batch.is_empty() {
        return Ok(0);
    }
    let replies = state.redis.run_with_timeout(batch, BULK_TIMEOUT).await?;
    if let Some(Reply::Error(message)) = replies.iter().find(|r| matches!(r, Reply::Error(_))) {
        anyhow::bail!("redis refused a counter restore: {message}");
    }
    let written = batch.len() as u64;
    batch.clear();
    Ok(written)
}

async fn finish(state: &AppState, epoch: &str, part: Part) -> anyhow::Result<()> {
    let replies = state.redis.run(&[mark(&state.keys, epoch, &part)]).await?;
    match replies.first().map(read_mark).transpose()? {
        Some(true) => Ok(()),
        _ => anyhow::bail!("redis lost data while {part:?} was restored; not marked"),
    }
}

//! Healing: finding the parts of the projection Redis lacks and writing them back from Postgres, those of
//! the highest-priority campaigns first, republishing the catalog as each one the catalog waits for is
//! complete. Until then resolvers show nothing that depends on a missing part (see `popup_core::resolve`).
//!
//! A loss is noticed within [`WATCH_EVERY`]: a new epoch (Redis was flushed, restarted or failed over, see
//! `popup_core::projection`) or a missing catalog. A publish that finds parts missing (an upload that
//! failed between Postgres and Redis) wakes the healer too, and the periodic reconcile is the backstop.
//! Several origins may heal at once: every write is idempotent, so they only repeat work.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use chrono::Utc;
use popup_core::ids::{CampaignId, SegmentId};
use popup_core::projection::{begin, fetch_readiness, read_begin, read_readiness, restore_order, Part};
use popup_core::store::{Command, Reply};

use super::catalog::{fresh_epoch, publish, report_loss};
use super::{counters, segments};
use crate::db::{self, campaigns, DbError};
use crate::state::AppState;

/// How often Redis is checked for a loss.
pub const WATCH_EVERY: Duration = Duration::from_millis(500);

/// Waits after a failed heal before the next, doubling up to the reconcile interval.
const RETRY_FIRST: Duration = Duration::from_millis(200);

/// Restores every part of the projection that Redis lacks. Returns how many parts were written back.
pub async fn heal(state: &AppState) -> anyhow::Result<usize> {
    let started = Instant::now();
    let catalog = publish(state).await?;
    let (epoch, readiness) = read_readiness_in_epoch(state).await?;
    let wanted = wanted_parts(state).await?;
    let versions: BTreeMap<SegmentId, u64> = wanted
        .iter()
        .filter_map(|part| match part {
            Part::Segment { segment, version } => Some((*segment, *version)),
            _ => None,
        })
        .collect();
    // The catalog's own wait list first, in priority order; then what no live campaign waits for (paused
    // campaigns' counters, segments no campaign uses yet), so they are complete before they are needed.
    let mut order = restore_order(&catalog, &versions);
    let awaited: BTreeSet<Part> = order.iter().copied().collect();
    order.extend(wanted.into_iter().filter(|part| !awaited.contains(part)));
    let mut restored = 0;
    for part in order.into_iter().filter(|part| !readiness.has(part)) {
        let part_started = Instant::now();
        let written = match part {
            Part::Segment { segment, version } => segments::restore_members(state, segment, version).await?,
            Part::Counters(campaign) => counters::restore_campaign(state, &epoch, campaign).await?,
            Part::DailyTotals => counters::restore_daily_totals(state, &epoch).await?,
        };
        restored += 1;
        metrics::counter!("popup_projection_parts_restored_total").increment(1);
        tracing::info!(
            part = ?part,
            written,
            seconds = part_started.elapsed().as_secs_f64(),
            "restored to redis"
        );
        if awaited.contains(&part) {
            publish(state).await?;
        }
    }
    if restored > 0 {
        publish(state).await?;
        metrics::histogram!("popup_heal_seconds").record(started.elapsed().as_secs_f64());
        tracing::info!(parts = restored, seconds = started.elapsed().as_secs_f64(), "projection healed");
    }
    Ok(restored)
}

async fn read_readiness_in_epoch(
    state: &AppState,
) -> anyhow::Result<(String, popup_core::projection::Readiness)> {
    let replies =
        state.redis.run(&[begin(&state.keys, &fresh_epoch()?), fetch_readiness(&state.keys)]).await?;
    let [began, readiness]: [Reply; 2] =
        replies.try_into().map_err(|_| anyhow::anyhow!("redis answered the wrong number of replies"))?;
    Ok((read_begin(began)?.0, read_readiness(readiness)?))
}

/// Every part Redis should hold: the current version of every live segment, the counters of every
/// campaign that may be served again (active or paused), and today's totals.
async fn wanted_parts(state: &AppState) -> Result<Vec<Part>, DbError> {
    let mut parts: Vec<Part> = db::segments::live_versions(&state.db)
        .await?
        .into_iter()
        .map(|(id, version)| Part::Segment { segment: SegmentId(id as u32), version: version as u64 })
        .collect();
    let campaigns = campaigns::servable_ids(&state.db).await?;
    parts.extend(campaigns.into_iter().map(|id| Part::Counters(CampaignId(id as u64))));
    parts.push(Part::DailyTotals);
    Ok(parts)
}

/// One reconcile: end expired campaigns, then publish and heal whatever Redis lacks.
pub async fn reconcile(state: &AppState) -> anyhow::Result<()> {
    let started = Instant::now();
    campaigns::end_expired(&state.db).await?;
    heal(state).await?;
    metrics::histogram!("popup_reconcile_seconds").record(started.elapsed().as_secs_f64());
    metrics::gauge!("popup_projection_last_reconcile_seconds").set(Utc::now().timestamp() as f64);
    Ok(())
}

/// What the watch last saw of Redis.
#[derive(Debug, Default)]
struct Watch {
    epoch: Option<String>,
}

impl Watch {
    /// Whether Redis lost the projection since the last look: a new epoch (this look may have begun it),
    /// or no catalog. An unreachable Redis is not a loss yet: it is looked at again once it answers.
    async fn lost(&mut self, state: &AppState) -> bool {
        let Ok(fresh) = fresh_epoch() else { return false };
        let commands =
            [begin(&state.keys, &fresh), Command(vec!["EXISTS".into(), state.keys.catalog_version()])];
        let Ok(replies) = state.redis.run(&commands).await else { return false };
        let [began, exists]: [Reply; 2] = match replies.try_into() {
            Ok(replies) => replies,
            Err(_) => return false,
        };
        let Ok((epoch, began)) = read_begin(began) else { return false };
        if began {
            report_loss(&epoch);
        }
        let changed = self.epoch.as_ref().is_some_and(|seen| *seen != epoch);
        let first_look = self.epoch.is_none();
        self.epoch = Some(epoch);
        changed || (!first_look && exists == Reply::Int(0))
    }
}

/// Reconciles every `interval`, and heals at once when the watch sees a loss or a publish asks for it,
/// until `shutdown` fires.
pub async fn run_reconciler(
    state: AppState,
    interval: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut watch_ticker = tokio::time::interval(WATCH_EVERY);
    watch_ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut watch = Watch::default();
    let mut retry_after = RETRY_FIRST;
    let mut not_before = tokio::time::Instant::now();
    loop {
        let full = tokio::select! {
            _ = ticker.tick() => true,
            _ = watch_ticker.tick() => {
                if !watch.lost(&state).await {
                    continue;
                }
                false
            }
            _ = state.heal_wanted.notified() => false,
            _ = shutdown.changed() => break,
        };
        // After a failure, wait before healing again, so a part that cannot be restored does not spin.
        tokio::select! {
            _ = tokio::time::sleep_until(not_before) => {}
            _ = shutdown.changed() => break,
        }
        let outcome = if full { reconcile(&state).await } else { heal(&state).await.map(|_| ()) };
        match outcome {
            Ok(()) => retry_after = RETRY_FIRST,
            Err(error) => {
                metrics::counter!("popup_reconcile_failures_total").increment(1);
                tracing::warn!(error = format!("{error:#}"), retry_in = ?retry_after, "healing failed; retrying");
                not_before = tokio::time::Instant::now() + retry_after;
                retry_after = (retry_after * 2).min(interval);
            }
        }
    }
}

//! The projection of Postgres into Redis: the catalog (built with the core, published on every admin write)
//! and segment memberships; and the reconcile loop that rebuilds both, so a flushed or restarted Redis heals
//! without anyone acting.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::{StreamExt, TryStreamExt};
use popup_core::catalog::{Catalog, CatalogParts, Settings};
use popup_core::ids::{CampaignId, SegmentId, Timestamp, UserId};
use popup_core::store::{publish_catalog, read_publish, segment_field, Command, Reply};
use sha2::{Digest, Sha256};

use crate::admin::campaigns::segment_ids;
use crate::admin::spec::CampaignSpec;
use crate::auth::Actor;
use crate::state::{AppState, BULK_TIMEOUT};

/// Zone tables cover this many days before and after today. The catalog is rebuilt every reconcile, so
/// this only matters if the origin stops for weeks; past the table's end the last offset holds.
const ZONE_DAYS_BEFORE: i64 = 2;
const ZONE_DAYS_AFTER: i64 = 35;

/// Ids written to Redis per pipeline when loading a segment, and pipelines in flight at once.
const MEMBERS_PER_PIPELINE: usize = 5_000;
const PIPELINES_IN_FLIGHT: usize = 4;

/// What this process last published.
#[derive(Debug, Default)]
pub struct Published {
    content: Vec<u8>,
    version: u64,
}

/// Builds the catalog's parts from Postgres as of `now`; the version is left 0.
pub async fn build_parts(state: &AppState, now: DateTime<Utc>) -> anyhow::Result<CatalogParts> {
    let mut db = state.db.acquire().await?;
    let max_popups_per_day: Option<i32> =
        sqlx::query_scalar("SELECT max_popups_per_day FROM settings").fetch_one(&mut *db).await?;
    let segments: Vec<(i32, i64)> =
        sqlx::query_as("SELECT id, version FROM segments WHERE deleted_at IS NULL AND version > 0")
            .fetch_all(&mut *db)
            .await?;
    let names = segment_ids(&mut db).await?;
    let rows: Vec<(i64, sqlx::types::Json<CampaignSpec>)> = sqlx::query_as(
        "SELECT id, spec FROM campaigns
         WHERE status = 'active' AND deleted_at IS NULL AND (ends_at IS NULL OR ends_at > $1) ORDER BY id",
    )
    .bind(now)
    .fetch_all(&mut *db)
    .await?;
    // Only campaigns that reached their budget: counts below it do not change what is served, and leaving
    // them out keeps the catalog (and its version) still while impressions come in.
    let served: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT campaign_totals.campaign_id, campaign_totals.impressions FROM campaign_totals
         JOIN campaigns ON campaigns.id = campaign_totals.campaign_id
         WHERE campaigns.status = 'active' AND (campaigns.spec ->> 'budget')::bigint <= campaign_totals.impressions",
    )
    .fetch_all(&mut *db)
    .await?;
    let mut campaigns = Vec::with_capacity(rows.len());
    for (id, spec) in rows {
        match spec.0.to_core(id, &names) {
            Ok(campaign) => campaigns.push(campaign),
            // Saved campaigns were valid; one that no longer is must not take the others down.
            Err(errors) => tracing::error!(campaign = id, %errors, "left out of the catalog"),
        }
    }
    let zones = compile_zones(
        campaigns
            .iter()
            .filter(|c| !c.schedule.windows.is_empty())
            .filter_map(|c| c.schedule.time_zone.as_deref()),
        now,
    )?;
    Ok(CatalogParts {
        version: 0,
        settings: Settings { max_popups_per_day: max_popups_per_day.map(|n| n as u32) },
        campaigns,
        segments: segments.into_iter().map(|(id, version)| (SegmentId(id as u32), version as u64)).collect(),
        zones,
        served: served.into_iter().map(|(id, count)| (CampaignId(id as u64), count as u64)).collect(),
    })
}

fn compile_zones<'a>(
    names: impl Iterator<Item = &'a str>,
    now: DateTime<Utc>,
) -> anyhow::Result<BTreeMap<String, popup_core::zone::ZoneOffsets>> {
    // Anchored to the day so the tables, and so the catalog, change once a day and not every reconcile.
    let today = now.timestamp().div_euclid(86_400) * 86_400;
    let from = Timestamp(today - ZONE_DAYS_BEFORE * 86_400);
    let until = Timestamp(today + ZONE_DAYS_AFTER * 86_400);
    let mut zones = BTreeMap::new();
    for name in names {
        if !zones.contains_key(name) {
            zones.insert(name.to_string(), popup_core::zone::compile(name, from, until)?);
        }
    }
    Ok(zones)
}

/// Publishes the catalog if its content changed or Redis lost it. Returns the version Redis now holds.
pub async fn publish(state: &AppState) -> anyhow::Result<u64> {
    let mut published = state.projection.lock().await;
    let parts = build_parts(state, Utc::now()).await?;
    let content = Sha256::digest(serde_json::to_vec(&parts)?).to_vec();
    let version_in_redis =
        state.redis.run(&[Command(vec!["GET".into(), state.keys.catalog_version()])]).await?;
    let redis_has_ours = matches!(version_in_redis.as_slice(), [Reply::Bulk(v)] if *v == published.version.to_string().into_bytes());
    if published.content == content && redis_has_ours {
        return Ok(published.version);
    }
    let version: i64 = sqlx::query_scalar("SELECT nextval('catalog_version')").fetch_one(&state.db).await?;
    let catalog = Catalog::build(CatalogParts { version: version as u64, ..parts })?;
    let replies =
        state.redis.run_with_timeout(&[publish_catalog(&state.keys, &catalog)], BULK_TIMEOUT).await?;
    let written = replies.first().map(read_publish).transpose()?.unwrap_or(false);
    if !written {
        // Another origin published a newer catalog; it will be read on the next request.
        tracing::info!(version, "a newer catalog is already in redis");
    }
    metrics::gauge!("popup_catalog_version").set(version as f64);
    metrics::gauge!("popup_catalog_campaigns").set(catalog.campaigns().len() as f64);
    metrics::gauge!("popup_projection_last_success_seconds").set(Utc::now().timestamp() as f64);
    *published = Published { content, version: version as u64 };
    state.cache_catalog(Arc::new(catalog));
    Ok(version as u64)
}

/// After an admin write has committed: publish now. If Redis is down the write still stands; the next
/// reconcile publishes it.
pub async fn publish_after_write(state: &AppState) {
    if let Err(error) = publish(state).await {
        tracing::warn!(error = format!("{error:#}"), "projection deferred to the next reconcile");
    }
}

/// Writes `user_ids` into Redis as members of `segment` at `version`, then marks the version loaded.
pub async fn load_members(
    state: &AppState,
    segment: SegmentId,
    version: u64,
    user_ids: impl Iterator<Item = &str>,
) -> anyhow::Result<u64> {
    let field = segment_field(segment, version);
    let version_text = version.to_string();
    let mut pipelines = Vec::new();
    let mut pipe = redis::pipe();
    let mut in_pipe = 0;
    let mut total = 0u64;
    for id in user_ids {
        let user = UserId::parse(id)?;
        pipe.cmd("HSET").arg(state.keys.user(&user)).arg(&field).arg(&version_text).ignore();
        in_pipe += 1;
        total += 1;
        if in_pipe == MEMBERS_PER_PIPELINE {
            pipelines.push(std::mem::replace(&mut pipe, redis::pipe()));
            in_pipe = 0;
        }
    }
    if in_pipe > 0 {
        pipelines.push(pipe);
    }
    futures_util::stream::iter(pipelines)
        .map(|pipe| async move { state.redis.run_pipeline(&pipe, BULK_TIMEOUT).await })
        .buffer_unordered(PIPELINES_IN_FLIGHT)
        .try_collect::<Vec<()>>()
        .await?;
    let marker = Command(vec!["SET".into(), state.keys.segment_loaded(segment), version_text]);
    state.redis.run(&[marker]).await?;
    Ok(total)
}

/// Rewrites the members of every segment whose current version Redis does not hold (after a flush, a
/// restart, or an upload that failed between Postgres and Redis).
pub async fn repair_segments(state: &AppState) -> anyhow::Result<usize> {
    let segments: Vec<(i32, i64)> =
        sqlx::query_as("SELECT id, version FROM segments WHERE deleted_at IS NULL AND version > 0")
            .fetch_all(&state.db)
            .await?;
    let markers: Vec<Command> = segments
        .iter()
        .map(|(id, _)| Command(vec!["GET".into(), state.keys.segment_loaded(SegmentId(*id as u32))]))
        .collect();
    let loaded = if markers.is_empty() { vec![] } else { state.redis.run(&markers).await? };
    let mut repaired = 0;
    for ((id, version), marker) in segments.into_iter().zip(loaded) {
        if matches!(&marker, Reply::Bulk(v) if *v == version.to_string().into_bytes()) {
            continue;
        }
        let chunks: Vec<Vec<String>> = sqlx::query_scalar(
            "SELECT user_ids FROM segment_members WHERE segment_id = $1 AND version = $2 ORDER BY chunk",
        )
        .bind(id)
        .bind(version)
        .fetch_all(&state.db)
        .await?;
        let ids = chunks.iter().flatten().map(String::as_str);
        let count = load_members(state, SegmentId(id as u32), version as u64, ids).await?;
        tracing::info!(segment = id, version, members = count, "segment members rewritten to redis");
        repaired += 1;
    }
    Ok(repaired)
}

/// Ends campaigns whose end time has passed, so the admin API shows what is no longer served.
async fn end_expired_campaigns(state: &AppState) -> anyhow::Result<()> {
    let mut tx = state.db.begin().await?;
    let ended: Vec<(i64, String)> = sqlx::query_as(
        "WITH expired AS (
             SELECT id, status FROM campaigns
             WHERE status IN ('active', 'paused') AND deleted_at IS NULL AND ends_at <= now() FOR UPDATE
         )
         UPDATE campaigns c SET status = 'ended', updated_at = now() FROM expired e WHERE c.id = e.id
         RETURNING c.id, e.status",
    )
    .fetch_all(&mut *tx)
    .await?;
    for (id, before) in ended {
        crate::audit::record(
            &mut tx,
            &Actor::system(),
            "end",
            "campaign",
            &id.to_string(),
            Some(serde_json::json!({"status": before})),
            Some(serde_json::json!({"status": "ended"})),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// One reconcile: end expired campaigns, publish the catalog if needed, repair segment memberships.
pub async fn reconcile(state: &AppState) -> anyhow::Result<()> {
    let started = Instant::now();
    end_expired_campaigns(state).await?;
    publish(state).await?;
    repair_segments(state).await?;
    metrics::histogram!("popup_reconcile_seconds").record(started.elapsed().as_secs_f64());
    Ok(())
}

/// Reconciles every `interval` until `shutdown` fires.
pub async fn run_reconciler(
    state: AppState,
    interval: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                if let Err(error) = reconcile(&state).await {
                    metrics::counter!("popup_reconcile_failures_total").increment(1);
                    tracing::warn!(error = format!("{error:#}"), "reconcile failed; retrying next interval");
                }
            }
            _ = shutdown.changed() => break,
        }
    }
}

/// Ids of the campaigns not ended that refer to segment `name`: such a segment may not be deleted.
pub async fn campaigns_using_segment(state: &AppState, name: &str) -> anyhow::Result<Vec<i64>> {
    let rows: Vec<(i64, sqlx::types::Json<CampaignSpec>)> = sqlx::query_as(
        "SELECT id, spec FROM campaigns WHERE deleted_at IS NULL AND status <> 'ended' ORDER BY id",
    )
    .fetch_all(&state.db)
    .await?;
    Ok(rows
        .into_iter()
        .filter(|(_, spec)| spec.0.segment_names().any(|n| n == name))
        .map(|(id, _)| id)
        .collect())
}

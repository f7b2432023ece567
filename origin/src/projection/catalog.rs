//! The catalog: built from Postgres with the core, assessed against what Redis holds, and published.
//!
//! A catalog names a segment version only once its members are all in Redis, and lists what it is still
//! waiting for (`Restoring`): the publish script refuses it if a mark it relied on went missing meanwhile
//! (see `popup_core::projection`). Publishing when something is missing wakes the healer.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use popup_core::catalog::{Catalog, CatalogParts, Settings};
use popup_core::ids::{CampaignId, SegmentId, Timestamp};
use popup_core::projection::{
    assess, begin, fetch_readiness, mark, publish_catalog, read_begin, read_mark, read_publish,
    read_readiness, Part, Published as Outcome, Readiness,
};
use popup_core::store::{Command, Reply};
use sha2::{Digest, Sha256};

use crate::db::campaign_spec::ToCore;
use crate::db::{campaigns, events, segments, settings, DbError};
use crate::redis_store::StoreUnavailable;
use crate::state::{AppState, Published, BULK_TIMEOUT};

/// Zone tables cover this many days before and after today. The catalog is rebuilt every reconcile, so
/// this only matters if the origin stops for weeks; past the table's end the last offset holds.
const ZONE_DAYS_BEFORE: i64 = 2;
const ZONE_DAYS_AFTER: i64 = 35;

/// Builds the catalog's parts from Postgres as of `now`; the version is left 0.
pub async fn build_parts(state: &AppState, now: DateTime<Utc>) -> Result<CatalogParts, ProjectionError> {
    let max_popups_per_day = settings::max_popups_per_day(&state.db).await?;
    let segment_versions = segments::live_versions(&state.db).await?;
    let names = segments::ids_by_name(&state.db).await?;
    let specs = campaigns::live_specs(&state.db, now).await?;
    let served = campaigns::budgets_reached(&state.db).await?;
    let mut campaigns = Vec::with_capacity(specs.len());
    for (id, spec) in specs {
        match spec.to_core(id, &names) {
            Ok(campaign) => campaigns.push(campaign),
            // Saved campaigns were valid; one that no longer is must not take the others down.
            Err(errors) => tracing::error!(campaign = id, %errors, "left out of the catalog"),
        }
    }
    let mut parts = CatalogParts {
        version: 0,
        settings: Settings { max_popups_per_day },
        campaigns,
        segments: segment_versions
            .into_iter()
            .map(|(id, version)| (SegmentId(id as u32), version as u64))
            .collect(),
        zones: BTreeMap::new(),
        served: served.into_iter().map(|(id, count)| (CampaignId(id as u64), count as u64)).collect(),
        restoring: Default::default(),
    };
    fill_zones(&mut parts, now)?;
    Ok(parts)
}

/// Why the catalog could not be built or published.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Store(#[from] StoreUnavailable),
    #[error("redis answered unexpectedly: {0}")]
    Reply(#[from] popup_core::store::StoreError),
    #[error("time zone {zone:?}: {error}")]
    Zone { zone: String, error: String },
    #[error(transparent)]
    Catalog(#[from] popup_core::catalog::CatalogError),
    #[error("no randomness for an epoch id")]
    NoRandomness,
    #[error("redis kept losing the projection while the catalog was published")]
    KeptLosing,
}

/// Compiles the offset table of every zone a campaign of `parts` uses in its windows and that `parts`
/// lacks: after adding a campaign (the preview of a draft does), call it again.
pub fn fill_zones(parts: &mut CatalogParts, now: DateTime<Utc>) -> Result<(), ProjectionError> {
    // Anchored to the day so the tables, and so the catalog, change once a day and not every reconcile.
    let today = now.timestamp().div_euclid(86_400) * 86_400;
    let from = Timestamp(today - ZONE_DAYS_BEFORE * 86_400);
    let until = Timestamp(today + ZONE_DAYS_AFTER * 86_400);
    let zones = &mut parts.zones;
    let names = parts
        .campaigns
        .iter()
        .filter(|c| !c.schedule.windows.is_empty())
        .filter_map(|c| c.schedule.time_zone.as_deref());
    for name in names {
        if !zones.contains_key(name) {
            let offsets = popup_core::zone::compile(name, from, until)
                .map_err(|error| ProjectionError::Zone { zone: name.into(), error: error.to_string() })?;
            zones.insert(name.to_string(), offsets);
        }
    }
    Ok(())
}

/// How often a publish is tried again when a mark it relied on went missing while it was being built.
const PUBLISH_ATTEMPTS: usize = 3;

/// Publishes the catalog if its content changed or Redis lost it, and returns the catalog it built (the
/// one Redis holds, unless another origin published a newer one meanwhile). When the catalog waits for
/// parts being restored, the healer is woken.
pub async fn publish(state: &AppState) -> Result<Arc<Catalog>, ProjectionError> {
    let mut published = state.projection.lock().await;
    for _ in 0..PUBLISH_ATTEMPTS {
        let mut parts = build_parts(state, Utc::now()).await?;
        let (epoch, readiness, version_in_redis) = read_projection(state).await?;
        let readiness = mark_parts_with_nothing_to_restore(state, &epoch, &parts, readiness).await?;
        let claims = assess(&mut parts, &readiness);
        let restoring = &parts.restoring;
        let waiting =
            restoring.segments.len() + restoring.counters.len() + usize::from(restoring.daily_totals);
        metrics::gauge!("popup_projection_restoring_parts").set(waiting as f64);
        if waiting > 0 {
            state.heal_wanted.notify_one();
        }
        let content = Sha256::digest(serde_json::to_vec(&parts).unwrap_or_default()).to_vec();
        let redis_has_ours = version_in_redis == Some(published.version);
        if published.content == content && redis_has_ours {
            if let Some(catalog) = state.cached_catalog().filter(|c| c.version() == published.version) {
                return Ok(catalog);
            }
        }
        let version = settings::next_catalog_version(&state.db).await?;
        let catalog = Arc::new(Catalog::build(CatalogParts { version: version as u64, ..parts })?);
        let command = publish_catalog(&state.keys, &catalog, &claims);
        let replies = state.redis.run_with_timeout(&[command], BULK_TIMEOUT).await?;
        let outcome = replies.first().map(read_publish).transpose()?;
        match outcome {
            Some(Outcome::Written) => {}
            // Another origin published a newer catalog; resolvers read it on their next request.
            Some(Outcome::Superseded) => tracing::info!(version, "a newer catalog is already in redis"),
            Some(Outcome::LostMarks) | None => {
                tracing::warn!(
                    version,
                    "redis lost part of the projection while the catalog was built; again"
                );
                continue;
            }
        }
        metrics::gauge!("popup_catalog_version").set(version as f64);
        metrics::gauge!("popup_catalog_campaigns").set(catalog.campaigns().len() as f64);
        metrics::gauge!("popup_projection_last_success_seconds").set(Utc::now().timestamp() as f64);
        *published = Published { content, version: version as u64 };
        state.cache_catalog(catalog.clone());
        return Ok(catalog);
    }
    Err(ProjectionError::KeptLosing)
}

/// The epoch in force (begun now if Redis lost the projection), the readiness hash, and the catalog
/// version Redis holds, in one round trip.
async fn read_projection(state: &AppState) -> Result<(String, Readiness, Option<u64>), ProjectionError> {
    let commands = [
        begin(&state.keys, &fresh_epoch()?),
        fetch_readiness(&state.keys),
        Command(vec!["GET".into(), state.keys.catalog_version()]),
    ];
    let [began, readiness, version]: [Reply; 3] = state
        .redis
        .run(&commands)
        .await?
        .try_into()
        .map_err(|_| popup_core::store::StoreError::UnexpectedReply("begin, HGETALL, GET"))?;
    let (epoch, began) = read_begin(began)?;
    if began {
        report_loss(&epoch);
    }
    let version = match version {
        Reply::Bulk(bytes) => std::str::from_utf8(&bytes).ok().and_then(|v| v.parse().ok()),
        _ => None,
    };
    Ok((epoch, read_readiness(readiness)?, version))
}

/// Marks complete, without writing anything, the parts Postgres has nothing to restore for: the counters
/// of campaigns never shown (a new campaign), and today's totals when nobody was shown anything today.
/// A newly activated campaign is then live at once instead of waiting for the healer.
async fn mark_parts_with_nothing_to_restore(
    state: &AppState,
    epoch: &str,
    parts: &CatalogParts,
    readiness: Readiness,
) -> Result<Readiness, ProjectionError> {
    let unmarked: Vec<i64> = parts
        .campaigns
        .iter()
        .filter(|c| !readiness.has(&Part::Counters(c.id)))
        .map(|c| c.id.0 as i64)
        .collect();
    let mut empty = Vec::new();
    if !unmarked.is_empty() {
        let shown = events::campaigns_shown(&state.db, &unmarked).await?;
        empty.extend(
            unmarked.iter().filter(|id| !shown.contains(id)).map(|&id| Part::Counters(CampaignId(id as u64))),
        );
    }
    if !readiness.has(&Part::DailyTotals) && !super::counters::anyone_shown_today(state).await? {
        empty.push(Part::DailyTotals);
    }
    if empty.is_empty() {
        return Ok(readiness);
    }
    let marks: Vec<Command> = empty.iter().map(|part| mark(&state.keys, epoch, part)).collect();
    for reply in state.redis.run(&marks).await? {
        read_mark(&reply)?;
    }
    let replies = state.redis.run(&[fetch_readiness(&state.keys)]).await?;
    let reply = replies.into_iter().next().unwrap_or(Reply::Nil);
    Ok(read_readiness(reply)?)
}

/// Says that this process found Redis without the projection and began a new epoch.
pub(crate) fn report_loss(epoch: &str) {
    metrics::counter!("popup_projection_losses_total").increment(1);
    tracing::warn!(epoch, "redis lost the projection (flushed, restarted or failed over); healing it");
}

/// A new random epoch id.
pub(crate) fn fresh_epoch() -> Result<String, ProjectionError> {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).map_err(|_| ProjectionError::NoRandomness)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// After an admin write has committed: publish now. If Redis is down the write still stands; the next
/// reconcile publishes it.
pub async fn publish_after_write(state: &AppState) {
    if let Err(error) = publish(state).await {
        tracing::warn!(error = format!("{error:#}"), "projection deferred to the next reconcile");
    }
}

//! Writing a segment version's members into Redis: one field per member in the customer's hash, then the
//! mark that says the version is complete, written only if Redis lost nothing meanwhile.

use std::time::Instant;

use futures_util::{StreamExt, TryStreamExt};
use popup_core::ids::{SegmentId, UserId};
use popup_core::projection::{begin, mark, read_begin, read_mark, unmark, Part};
use popup_core::store::segment_field;

use super::catalog::fresh_epoch;
use crate::db;
use crate::redis_store::StoreUnavailable;
use crate::state::{AppState, BULK_TIMEOUT};

/// Ids written to Redis per pipeline, and pipelines in flight at once.
const MEMBERS_PER_PIPELINE: usize = 5_000;
const PIPELINES_IN_FLIGHT: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Unavailable(#[from] StoreUnavailable),
    /// Redis lost data while the members were written (flushed, restarted, failed over): they may be
    /// incomplete, so the version is not marked.
    #[error("redis lost data while the segment was written")]
    Lost,
    #[error("{0}")]
    Invalid(String),
}

/// A segment version being written into Redis, chunk by chunk, so that no more than a chunk of ids and the
/// pipelines in flight are in memory.
#[derive(Debug)]
pub struct SegmentLoad<'a> {
    state: &'a AppState,
    part: Part,
    epoch: String,
    field: String,
    version: String,
    written: u64,
    started: Instant,
}

impl<'a> SegmentLoad<'a> {
    /// Starts writing `version` of `segment`: reads the epoch, and removes any mark of the same field (an
    /// older version of the same parity) so no catalog relies on it while it is overwritten.
    pub async fn start(
        state: &'a AppState,
        segment: SegmentId,
        version: u64,
    ) -> Result<SegmentLoad<'a>, LoadError> {
        let part = Part::Segment { segment, version };
        let epoch = fresh_epoch().map_err(|e| LoadError::Invalid(e.to_string()))?;
        let replies = state.redis.run(&[begin(&state.keys, &epoch), unmark(&state.keys, &part)]).await?;
        let (epoch, _) = replies
            .into_iter()
            .next()
            .map(read_begin)
            .transpose()
            .map_err(|e| LoadError::Invalid(e.to_string()))?
            .ok_or(LoadError::Lost)?;
        Ok(SegmentLoad {
            state,
            part,
            epoch,
            field: segment_field(segment, version),
            version: version.to_string(),
            written: 0,
            started: Instant::now(),
        })
    }

    /// Writes these members.
    pub async fn write<'i>(&mut self, user_ids: impl Iterator<Item = &'i str>) -> Result<(), LoadError> {
        let mut pipelines = Vec::new();
        let mut pipe = redis::pipe();
        let mut in_pipe = 0;
        for id in user_ids {
            let user = UserId::parse(id).map_err(|e| LoadError::Invalid(format!("{id:?}: {e}")))?;
            pipe.cmd("HSET").arg(self.state.keys.user(&user)).arg(&self.field).arg(&self.version).ignore();
            in_pipe += 1;
            if in_pipe == MEMBERS_PER_PIPELINE {
                pipelines.push(std::mem::replace(&mut pipe, redis::pipe()));
                self.written += in_pipe as u64;
                in_pipe = 0;
            }
        }
        if in_pipe > 0 {
            pipelines.push(pipe);
            self.written += in_pipe as u64;
        }
        let redis = &self.state.redis;
        futures_util::stream::iter(pipelines)
            .map(|pipe| async move { redis.run_pipeline(&pipe, BULK_TIMEOUT).await })
            .buffer_unordered(PIPELINES_IN_FLIGHT)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    /// Marks the version complete; [`LoadError::Lost`] if Redis lost data since [`SegmentLoad::start`].
    /// Returns the members written.
    pub async fn finish(self) -> Result<u64, LoadError> {
        let replies = self.state.redis.run(&[mark(&self.state.keys, &self.epoch, &self.part)]).await?;
        let marked =
            replies.first().map(read_mark).transpose().map_err(|e| LoadError::Invalid(e.to_string()))?;
        if marked != Some(true) {
            tracing::warn!(part = ?self.part, "redis lost data while the segment was written; not marked");
            return Err(LoadError::Lost);
        }
        metrics::histogram!("popup_segment_load_seconds").record(self.started.elapsed().as_secs_f64());
        Ok(self.written)
    }
}

/// Writes the members Postgres holds for `version` of `segment` back into Redis, a chunk at a time.
pub async fn restore_members(state: &AppState, segment: SegmentId, version: u64) -> anyhow::Result<u64> {
    let mut load = SegmentLoad::start(state, segment, version).await?;
    let mut chunks = Box::pin(db::segments::member_chunks(&state.db, segment.0 as i32, version as i64));
    while let Some(chunk) = chunks.try_next().await? {
        load.write(chunk.iter().map(String::as_str)).await?;
    }
    drop(chunks);
    Ok(load.finish().await?)
}

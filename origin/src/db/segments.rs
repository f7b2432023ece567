//! Segments: named lists of customers, each upload a new version; members stored in chunks of ids.

use std::collections::HashMap;

use futures_util::TryStreamExt;
use sqlx::{PgExecutor, PgPool};

use super::{DbError, DbResult};

/// Names of live segments to their ids.
pub async fn ids_by_name<'e>(db: impl PgExecutor<'e>) -> DbResult<HashMap<String, i32>> {
    let rows: Vec<(String, i32)> =
        sqlx::query_as("SELECT name, id FROM segments WHERE deleted_at IS NULL").fetch_all(db).await?;
    Ok(rows.into_iter().collect())
}

/// The version served of every live segment that has one (an upload happened).
pub async fn live_versions(db: &PgPool) -> DbResult<Vec<(i32, i64)>> {
    Ok(sqlx::query_as(
        "SELECT id, version FROM segments WHERE deleted_at IS NULL AND version > 0 ORDER BY id",
    )
    .fetch_all(db)
    .await?)
}

/// The members of `version` of `segment`, a chunk of ids at a time, in chunk order.
pub fn member_chunks(
    db: &PgPool,
    segment: i32,
    version: i64,
) -> impl futures_util::Stream<Item = DbResult<Vec<String>>> + '_ {
    sqlx::query_scalar(
        "SELECT user_ids FROM segment_members WHERE segment_id = $1 AND version = $2 ORDER BY chunk",
    )
    .bind(segment)
    .bind(version)
    .fetch(db)
    .map_err(DbError::from)
}

/// The members of live segment `name` as counted at its upload, customers on record or not; `None` if there
/// is no such segment.
pub async fn member_count<'e>(db: impl PgExecutor<'e>, name: &str) -> DbResult<Option<i64>> {
    Ok(sqlx::query_scalar("SELECT member_count FROM segments WHERE name = $1 AND deleted_at IS NULL")
        .bind(name)
        .fetch_optional(db)
        .await?)
}

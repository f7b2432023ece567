//! Segments: named lists of customers, each upload a new version; members stored in chunks of ids.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use serde::Serialize;
use serde_json::json;
use sqlx::{Connection, PgConnection, PgExecutor, PgPool};

use super::audit::{self, Actor};
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

/// A segment as the admin API shows it.
#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct SegmentView {
    pub id: i32,
    pub name: String,
    pub version: i64,
    pub member_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl SegmentView {
    /// What the audit trail keeps of it.
    fn summary(&self) -> serde_json::Value {
        json!({"name": self.name, "version": self.version, "member_count": self.member_count})
    }
}

const SELECT: &str = "SELECT id, name, version, member_count, created_at, updated_at FROM segments";
const RETURNING: &str = "RETURNING id, name, version, member_count, created_at, updated_at";

/// Live segments newest first: `limit` from `offset`, and how many there are.
pub async fn list(db: &PgPool, limit: i64, offset: i64) -> DbResult<(Vec<SegmentView>, i64)> {
    let total: i64 =
        sqlx::query_scalar("SELECT count(*) FROM segments WHERE deleted_at IS NULL").fetch_one(db).await?;
    let query = format!("{SELECT} WHERE deleted_at IS NULL ORDER BY id DESC LIMIT $1 OFFSET $2");
    let items = sqlx::query_as(&query).bind(limit).bind(offset).fetch_all(db).await?;
    Ok((items, total))
}

/// Live segment `name`.
pub async fn get<'e>(db: impl PgExecutor<'e>, name: &str) -> DbResult<Option<SegmentView>> {
    let query = format!("{SELECT} WHERE name = $1 AND deleted_at IS NULL");
    Ok(sqlx::query_as(&query).bind(name).fetch_optional(db).await?)
}

/// Deletes live segment `name` and its members; false if there is none.
pub async fn delete(db: &PgPool, actor: &Actor, name: &str) -> DbResult<bool> {
    let mut tx = db.begin().await?;
    let query = format!("{SELECT} WHERE name = $1 AND deleted_at IS NULL FOR UPDATE");
    let Some(before): Option<SegmentView> =
        sqlx::query_as(&query).bind(name).fetch_optional(&mut *tx).await?
    else {
        return Ok(false);
    };
    sqlx::query("UPDATE segments SET deleted_at = now(), updated_at = now() WHERE id = $1")
        .bind(before.id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM segment_members WHERE segment_id = $1")
        .bind(before.id)
        .execute(&mut *tx)
        .await?;
    let before_json = json!({"name": name, "version": before.version});
    audit::record(&mut tx, actor, "delete", "segment", &before.id.to_string(), Some(before_json), None)
        .await?;
    tx.commit().await?;
    Ok(true)
}

// An upload, on a connection of its own that holds the segment's upload lock (see the route's docs).

/// Takes the session-level upload lock `key`; false if another session holds it.
pub async fn try_lock_upload(conn: &mut PgConnection, key: i64) -> DbResult<bool> {
    Ok(sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(key).fetch_one(conn).await?)
}

/// Makes the row of a segment's first upload, deleted (so every read of segments skips it) until
/// [`switch_version`] brings it to life.
pub async fn create_hidden(conn: &mut PgConnection, name: &str) -> DbResult<SegmentView> {
    let query = format!("INSERT INTO segments (name, deleted_at) VALUES ($1, now()) {RETURNING}");
    Ok(sqlx::query_as(&query).bind(name).fetch_one(conn).await?)
}

/// A new segment version number, never handed out before (even to an upload that failed), of the parity
/// other than `live`'s: memberships are double-buffered by parity (see `popup_core::store`), so writing
/// the new version cannot disturb the members being served.
pub async fn next_version(conn: &mut PgConnection, live: i64) -> DbResult<i64> {
    let mut version: i64 =
        sqlx::query_scalar("SELECT nextval('segment_version')").fetch_one(&mut *conn).await?;
    if version % 2 == live % 2 {
        version = sqlx::query_scalar("SELECT nextval('segment_version')").fetch_one(&mut *conn).await?;
    }
    Ok(version)
}

/// Stores chunk number `chunk` of `version` of `segment`.
pub async fn store_chunk(
    conn: &mut PgConnection,
    segment: i32,
    version: i64,
    chunk: i32,
    ids: &[String],
) -> DbResult<()> {
    sqlx::query("INSERT INTO segment_members (segment_id, version, chunk, user_ids) VALUES ($1, $2, $3, $4)")
        .bind(segment)
        .bind(version)
        .bind(chunk)
        .bind(ids)
        .execute(conn)
        .await?;
    Ok(())
}

/// The distinct ids stored for `version` of `segment`. Compared byte for byte ("C"), as the chunks were
/// sorted: the same equality as the database's collation, and its sort is a third faster (4 s instead of
/// 6 s for 10M ids here).
pub async fn distinct_members(conn: &mut PgConnection, segment: i32, version: i64) -> DbResult<i64> {
    Ok(sqlx::query_scalar(
        "SELECT count(DISTINCT id COLLATE \"C\") FROM segment_members, unnest(user_ids) AS id
         WHERE segment_id = $1 AND version = $2",
    )
    .bind(segment)
    .bind(version)
    .fetch_one(conn)
    .await?)
}

/// Switches segment `before` to `version` with `member_count` members in one short transaction, if the
/// segment is still as it was when the version was reserved (`created`: the row was made by this upload),
/// and deletes the members of every other version. None if the segment changed meanwhile.
pub async fn switch_version(
    conn: &mut PgConnection,
    actor: &Actor,
    before: &SegmentView,
    created: bool,
    version: i64,
    member_count: i64,
) -> DbResult<Option<SegmentView>> {
    let mut tx = conn.begin().await?;
    let current: Option<(i64, bool)> =
        sqlx::query_as("SELECT version, deleted_at IS NOT NULL FROM segments WHERE id = $1 FOR UPDATE")
            .bind(before.id)
            .fetch_optional(&mut *tx)
            .await?;
    if current != Some((before.version, created)) {
        return Ok(None);
    }
    let query = format!(
        "UPDATE segments SET version = $2, member_count = $3, updated_at = now(), deleted_at = NULL,
             created_at = CASE WHEN deleted_at IS NULL THEN created_at ELSE now() END
         WHERE id = $1 {RETURNING}"
    );
    let after: SegmentView =
        sqlx::query_as(&query).bind(before.id).bind(version).bind(member_count).fetch_one(&mut *tx).await?;
    sqlx::query("DELETE FROM segment_members WHERE segment_id = $1 AND version <> $2")
        .bind(before.id)
        .bind(version)
        .execute(&mut *tx)
        .await?;
    let action = if created || before.version == 0 { "create" } else { "upload" };
    let id = before.id.to_string();
    audit::record(&mut tx, actor, action, "segment", &id, Some(before.summary()), Some(after.summary()))
        .await?;
    tx.commit().await?;
    Ok(Some(after))
}

/// Removes what a failed upload stored: the members of `version` (never the version the segment names: a
/// commit whose answer was lost may have switched to it), and the row if the upload made it (`created`).
pub async fn discard_upload(
    conn: &mut PgConnection,
    segment: i32,
    version: Option<i64>,
    created: bool,
) -> DbResult<()> {
    if let Some(version) = version {
        sqlx::query(
            "DELETE FROM segment_members WHERE segment_id = $1 AND version = $2
             AND NOT EXISTS (SELECT 1 FROM segments WHERE id = $1 AND version = $2)",
        )
        .bind(segment)
        .bind(version)
        .execute(&mut *conn)
        .await?;
    }
    if created {
        sqlx::query("DELETE FROM segments WHERE id = $1 AND version = 0 AND deleted_at IS NOT NULL")
            .bind(segment)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Releases the upload lock `key`.
pub async fn unlock_upload(conn: &mut PgConnection, key: i64) -> DbResult<()> {
    sqlx::query_scalar::<_, bool>("SELECT pg_advisory_unlock($1)").bind(key).fetch_one(conn).await?;
    Ok(())
}

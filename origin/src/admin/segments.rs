//! `/admin/v1/segments`: upload (streamed), list, detail, delete.
//!
//! An upload becomes visible atomically: members are written to Redis under a new segment version, which no
//! catalog names yet; then Postgres switches the segment to that version and the catalog is republished.
//! Until that instant resolvers see the previous upload in full, and from it the new one in full.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use chrono::{DateTime, Utc};
use popup_core::ids::{SegmentId, UserId};
use serde::Serialize;
use serde_json::json;

use super::page::{PageQuery, Paged};
use super::upload::csv::{CsvReader, LineErrors, Read, Record};
use super::upload::LimitedUpload;
use crate::audit;
use crate::auth::{Actor, Role};
use crate::error::ApiError;
use crate::projection;
use crate::state::AppState;

/// Ids stored per Postgres row.
const IDS_PER_CHUNK: usize = 10_000;
/// Header names of the id column, in order of preference when a header has several of them.
const HEADER_NAMES: &[&str] = &["customer_id", "user_id", "id", "cif", "nasabah_id"];

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct SegmentView {
    pub id: i32,
    pub name: String,
    pub version: i64,
    pub member_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const SELECT: &str = "SELECT id, name, version, member_count, created_at, updated_at FROM segments";

fn check_name(name: &str) -> Result<(), ApiError> {
    let valid = (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(ApiError::field("name", "must be 1-64 of a-z, 0-9, _ and -"))
    }
}

/// Takes customer ids from the records of an upload. The first record is a header if one of its fields is
/// named like an id column ([`HEADER_NAMES`], any case, any position), and that column holds the ids;
/// otherwise the ids are in the first column and the first record is an id like the others. Other columns
/// are ignored. Duplicates are kept here and removed later by sorting.
#[derive(Debug, Default)]
struct IdReader {
    /// The id column, known from the first record on.
    column: Option<usize>,
    /// The ids read, duplicates included.
    ids: Vec<String>,
    /// Ids read, duplicates included.
    accepted: u64,
    errors: LineErrors,
}

impl IdReader {
    fn record(&mut self, record: Read<'_>) {
        let record = match record {
            Ok(record) => record,
            Err(bad) => {
                self.column.get_or_insert(0);
                return self.error(bad.line, bad.message);
            }
        };
        let column = match self.column {
            Some(column) => column,
            None => match id_column(&record) {
                Some(column) => {
                    self.column = Some(column);
                    return;
                }
                None => *self.column.insert(0),
            },
        };
        let Some(field) = record.get(column) else {
            let message = format!("has no field {} (the id column)", column + 1);
            return self.error(record.line(), message);
        };
        let id = field.trim();
        match UserId::parse(id) {
            Ok(_) => {
                self.accepted += 1;
                if self.errors.is_empty() {
                    self.ids.push(id.to_string());
                }
            }
            Err(error) => self.error(record.line(), error),
        }
    }

    /// Once a line is bad nothing will be written: the ids waiting are dropped, and no more are kept.
    fn error(&mut self, line: u64, message: impl std::fmt::Display) {
        self.errors.add(line, message);
        self.ids = Vec::new();
    }
}

/// The position of the id column if `record` is a header.
fn id_column(record: &Record<'_>) -> Option<usize> {
    HEADER_NAMES.iter().find_map(|name| {
        (0..record.len())
            .find(|&at| record.get(at).is_some_and(|field| field.trim().eq_ignore_ascii_case(name)))
    })
}

#[derive(Debug, Serialize)]
pub struct UploadResult {
    #[serde(flatten)]
    pub segment: SegmentView,
    /// Lines read, duplicates included.
    pub lines_accepted: u64,
}

/// `PUT /admin/v1/segments/{name}`: replaces the segment's members with the uploaded ids.
pub async fn upload(
    State(state): State<AppState>,
    actor: Actor,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<UploadResult>, ApiError> {
    actor.require(Role::Editor)?;
    check_name(&name)?;
    let mut upload = LimitedUpload::new(&headers, body, state.max_segment_bytes)?;
    let mut csv = CsvReader::default();
    let mut parser = IdReader::default();
    while let Some(chunk) = upload.next_chunk().await? {
        csv.feed(&chunk, |record| parser.record(record));
    }
    csv.finish(|record| parser.record(record));
    if !parser.errors.is_empty() {
        return Err(parser.errors.into_error());
    }
    if parser.ids.is_empty() {
        return Err(ApiError::field("body", "no customer ids in the upload"));
    }
    let lines_accepted = parser.accepted;
    parser.ids.sort_unstable();
    parser.ids.dedup();
    let segment = replace_members(&state, &actor, &name, parser.ids).await?;
    projection::publish_after_write(&state).await;
    Ok(Json(UploadResult { segment, lines_accepted }))
}

async fn replace_members(
    state: &AppState,
    actor: &Actor,
    name: &str,
    ids: Vec<String>,
) -> Result<SegmentView, ApiError> {
    let mut tx = state.db.begin().await?;
    // Creates the segment on its first upload; the row lock serializes uploads of one segment.
    sqlx::query(
        "INSERT INTO segments (name) VALUES ($1) ON CONFLICT (name) WHERE deleted_at IS NULL DO NOTHING",
    )
    .bind(name)
    .execute(&mut *tx)
    .await?;
    let before: SegmentView =
        sqlx::query_as(&format!("{SELECT} WHERE name = $1 AND deleted_at IS NULL FOR UPDATE"))
            .bind(name)
            .fetch_one(&mut *tx)
            .await?;
    // The new version must have the other parity than the live one: memberships are double-buffered by
    // parity (see `popup_core::store`), so writing it cannot disturb the members being served.
    let mut version: i64 =
        sqlx::query_scalar("SELECT nextval('segment_version')").fetch_one(&mut *tx).await?;
    if version % 2 == before.version % 2 {
        version = sqlx::query_scalar("SELECT nextval('segment_version')").fetch_one(&mut *tx).await?;
    }
    for (chunk, ids) in ids.chunks(IDS_PER_CHUNK).enumerate() {
        sqlx::query(
            "INSERT INTO segment_members (segment_id, version, chunk, user_ids) VALUES ($1, $2, $3, $4)",
        )
        .bind(before.id)
        .bind(version)
        .bind(chunk as i32)
        .bind(ids)
        .execute(&mut *tx)
        .await?;
    }
    // Redis first, under a version no catalog names yet: if this fails, nothing visible changed.
    projection::load_members(
        state,
        SegmentId(before.id as u32),
        version as u64,
        ids.iter().map(String::as_str),
    )
    .await
    .map_err(|error| {
        tracing::warn!(error = format!("{error:#}"), "segment upload could not reach redis");
        ApiError::Unavailable
    })?;
    let after: SegmentView = sqlx::query_as(
        "UPDATE segments SET version = $2, member_count = $3, updated_at = now() WHERE id = $1
         RETURNING id, name, version, member_count, created_at, updated_at",
    )
    .bind(before.id)
    .bind(version)
    .bind(ids.len() as i64)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM segment_members WHERE segment_id = $1 AND version <> $2")
        .bind(before.id)
        .bind(version)
        .execute(&mut *tx)
        .await?;
    let summary =
        |s: &SegmentView| json!({"name": s.name, "version": s.version, "member_count": s.member_count});
    let action = if before.version == 0 { "create" } else { "upload" };
    audit::record(
        &mut tx,
        actor,
        action,
        "segment",
        &before.id.to_string(),
        Some(summary(&before)),
        Some(summary(&after)),
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

pub async fn list(
    State(state): State<AppState>,
    actor: Actor,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Paged<SegmentView>>, ApiError> {
    actor.require(Role::Viewer)?;
    let page = query?.0.validate()?;
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM segments WHERE deleted_at IS NULL")
        .fetch_one(&state.db)
        .await?;
    let items: Vec<SegmentView> =
        sqlx::query_as(&format!("{SELECT} WHERE deleted_at IS NULL ORDER BY id DESC LIMIT $1 OFFSET $2"))
            .bind(page.page_size)
            .bind(page.offset())
            .fetch_all(&state.db)
            .await?;
    Ok(Json(Paged::new(items, page, total)))
}

pub async fn get(
    State(state): State<AppState>,
    actor: Actor,
    Path(name): Path<String>,
) -> Result<Json<SegmentView>, ApiError> {
    actor.require(Role::Viewer)?;
    let segment: SegmentView = sqlx::query_as(&format!("{SELECT} WHERE name = $1 AND deleted_at IS NULL"))
        .bind(&name)
        .fetch_optional(&state.db)
        .await?
        .ok_or(ApiError::NotFound("segment"))?;
    Ok(Json(segment))
}

pub async fn delete(
    State(state): State<AppState>,
    actor: Actor,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    actor.require(Role::Editor)?;
    let users = projection::campaigns_using_segment(&state, &name).await?;
    if !users.is_empty() {
        return Err(ApiError::Conflict(format!("segment {name:?} is used by campaigns {users:?}")));
    }
    let mut tx = state.db.begin().await?;
    let before: SegmentView =
        sqlx::query_as(&format!("{SELECT} WHERE name = $1 AND deleted_at IS NULL FOR UPDATE"))
            .bind(&name)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(ApiError::NotFound("segment"))?;
    sqlx::query("UPDATE segments SET deleted_at = now(), updated_at = now() WHERE id = $1")
        .bind(before.id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM segment_members WHERE segment_id = $1")
        .bind(before.id)
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut tx,
        &actor,
        "delete",
        "segment",
        &before.id.to_string(),
        Some(json!({"name": name, "version": before.version})),
        None,
    )
    .await?;
    tx.commit().await?;
    projection::publish_after_write(&state).await;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(chunks: &[&str]) -> IdReader {
        let mut csv = CsvReader::default();
        let mut reader = IdReader::default();
        for chunk in chunks {
            csv.feed(chunk.as_bytes(), |record| reader.record(record));
        }
        csv.finish(|record| reader.record(record));
        reader
    }

    fn lines(reader: &IdReader) -> Vec<&str> {
        reader.errors.listed().iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn ids_are_read_across_chunk_boundaries_with_header_csv_and_blank_lines() {
        let parser = parse(&["customer_id,name\r\n c-1 ,Ani\n\nc-", "2,Budi\n\"c-3\"\nc-1", "\nc-4"]);
        assert_eq!(parser.ids, ["c-1", "c-2", "c-3", "c-1", "c-4"]);
        assert!(parser.errors.is_empty());
    }

    #[test]
    fn malformed_lines_are_reported_with_their_numbers() {
        let parser = parse(&["c-1\nbad id\nc-2\n{x}\n"]);
        assert_eq!(lines(&parser), ["line 2", "line 4"]);
    }

    #[test]
    fn a_header_is_only_recognised_on_the_first_line() {
        let parser = parse(&["c-1\nid\n"]);
        assert_eq!(parser.ids, ["c-1", "id"]);
    }

    #[test]
    fn the_id_column_is_found_by_name_anywhere_in_the_header() {
        let parser = parse(&["Name,Phone,CIF\nAni,+62811,cif-1\n\"Budi, Jr\",+62812,\"cif-2\"\n"]);
        assert_eq!(parser.ids, ["cif-1", "cif-2"]);
        let parser = parse(&["id,customer_id\n1,c-1\n"]);
        assert_eq!(parser.ids, ["c-1"], "customer_id is preferred to id");
        let parser = parse(&["c-1,Ani\nc-2\n"]);
        assert_eq!(parser.ids, ["c-1", "c-2"], "no header: the first column, from the first line");
    }

    #[test]
    fn a_line_without_the_id_column_or_with_a_bad_id_is_malformed() {
        let parser = parse(&["name,customer_id\nAni,c-1\nBudi\n\"Citra\",\"c,3\"\n,\n"]);
        assert_eq!(lines(&parser), ["line 3", "line 4"]);
        assert_eq!(parser.errors.listed()[0].message, "has no field 2 (the id column)");
        assert!(parser.ids.is_empty(), "nothing is kept once a line is bad");
    }
}

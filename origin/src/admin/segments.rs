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
use popup_core::campaign::FieldError;
use popup_core::ids::{SegmentId, UserId};
use serde::Serialize;
use serde_json::json;

use super::upload::LimitedUpload;
use crate::auth::{Actor, Require, Role};
use crate::db::audit;
use crate::http::page::{PageQuery, Paged};
use crate::http::ApiError;
use crate::projection;
use crate::state::AppState;

/// Ids stored per Postgres row.
const IDS_PER_CHUNK: usize = 10_000;
/// Malformed lines listed in an error; the count covers them all.
const MAX_REPORTED_ERRORS: usize = 100;
/// First lines taken as a CSV header rather than an id.
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

/// Reads customer ids line by line from a streamed body: one id per line, or CSV whose first column is the
/// id. Blank lines are skipped, a header line is recognised by name, duplicates are kept here and removed
/// later by sorting.
#[derive(Default)]
struct IdParser {
    partial: Vec<u8>,
    line: usize,
    seen_content: bool,
    ids: Vec<String>,
    errors: Vec<FieldError>,
    error_count: usize,
}

impl IdParser {
    fn feed(&mut self, mut bytes: &[u8]) {
        while let Some(end) = bytes.iter().position(|&b| b == b'\n') {
            if self.partial.is_empty() {
                self.line(&bytes[..end]);
            } else {
                self.partial.extend_from_slice(&bytes[..end]);
                let line = std::mem::take(&mut self.partial);
                self.line(&line);
            }
            bytes = &bytes[end + 1..];
        }
        self.partial.extend_from_slice(bytes);
    }

    fn finish(mut self) -> IdParser {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.line(&line);
        }
        self
    }

    fn line(&mut self, raw: &[u8]) {
        self.line += 1;
        let Ok(text) = std::str::from_utf8(raw) else {
            return self.error("is not UTF-8".into());
        };
        let first_column = text.split(',').next().unwrap_or_default().trim().trim_matches('"').trim();
        if first_column.is_empty() {
            return;
        }
        let first = !self.seen_content;
        self.seen_content = true;
        if first && HEADER_NAMES.contains(&first_column.to_ascii_lowercase().as_str()) {
            return;
        }
        match UserId::parse(first_column) {
            Ok(_) => self.ids.push(first_column.to_string()),
            Err(error) => self.error(error.to_string()),
        }
    }

    fn error(&mut self, message: String) {
        self.error_count += 1;
        if self.errors.len() < MAX_REPORTED_ERRORS {
            self.errors.push(FieldError { field: format!("line {}", self.line), message });
        }
    }
}

#[derive(Debug, Serialize)]
pub struct UploadResult {
    #[serde(flatten)]
    pub segment: SegmentView,
    /// Lines read, duplicates included.
    pub lines_accepted: usize,
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
    let mut parser = IdParser::default();
    while let Some(chunk) = upload.next_chunk().await? {
        parser.feed(&chunk);
    }
    let mut parser = parser.finish();
    if parser.error_count > 0 {
        let mut fields = parser.errors;
        if parser.error_count > fields.len() {
            let more = parser.error_count - fields.len();
            fields.push(FieldError {
                field: "body".into(),
                message: format!("and {more} more malformed lines"),
            });
        }
        return Err(ApiError::Invalid(fields));
    }
    if parser.ids.is_empty() {
        return Err(ApiError::field("body", "no customer ids in the upload"));
    }
    let lines_accepted = parser.ids.len();
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
    let users = crate::db::campaigns::using_segment(&state.db, &name).await?;
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
    use super::IdParser;

    fn parse(chunks: &[&str]) -> IdParser {
        let mut parser = IdParser::default();
        for chunk in chunks {
            parser.feed(chunk.as_bytes());
        }
        parser.finish()
    }

    #[test]
    fn ids_are_read_across_chunk_boundaries_with_header_csv_and_blank_lines() {
        let parser = parse(&["customer_id,name\r\n c-1 ,Ani\n\nc-", "2,Budi\n\"c-3\"\nc-1", "\nc-4"]);
        assert_eq!(parser.ids, ["c-1", "c-2", "c-3", "c-1", "c-4"]);
        assert_eq!(parser.error_count, 0);
    }

    #[test]
    fn malformed_lines_are_reported_with_their_numbers() {
        let parser = parse(&["c-1\nbad id\nc-2\n{x}\n"]);
        assert_eq!(parser.error_count, 2);
        let lines: Vec<&str> = parser.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(lines, ["line 2", "line 4"]);
    }

    #[test]
    fn a_header_is_only_recognised_on_the_first_line() {
        let parser = parse(&["c-1\nid\n"]);
        assert_eq!(parser.ids, ["c-1", "id"]);
    }
}

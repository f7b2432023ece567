//! `/admin/v1/segments`: upload (streamed), list, detail, delete.
//!
//! An upload streams from the request into Postgres and Redis. The ids are read as they arrive (the CSV
//! rules are in [`crate::http::upload::csv`]), and every [`IDS_PER_CHUNK`] of them are written at once to
//! Postgres (a `segment_members` row) and to Redis (a field in each customer's hash), under a new segment
//! version that no catalog names yet. At the end one short transaction switches the segment to that
//! version, and the catalog is republished: until that instant resolvers see the previous upload in full,
//! and from it the new one in full.
//!
//! An upload that fails anywhere (a malformed line, the size limit, Redis or Postgres down, the client
//! gone) leaves the previous version serving: the segment row is not touched until the switch, and the
//! new version's rows are deleted from Postgres. What it wrote to Redis stays, and is harmless: a customer's
//! field for the new version's parity holds a version number that no catalog will ever name (versions come
//! from a sequence, see `migrations/0001_origin.sql`), and membership is that field being equal to the
//! version the catalog names (`popup_core::store`). The next upload of that parity removes the parity's
//! readiness mark before it writes (`SegmentLoad::start`), and overwrites the fields of its own members.
//!
//! Memory is a few chunks whatever the size of the upload: duplicates are removed within each chunk, and
//! the member count is made exact at the end (see [`NewVersion::member_count`]).

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use popup_core::ids::{SegmentId, UserId};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::pool::PoolConnection;
use sqlx::Postgres;

use crate::db::audit::Actor;
use crate::db::campaigns;
use crate::db::segments::{self, SegmentView};
use crate::http::page::{PageQuery, Paged};
use crate::http::upload::csv::{CsvReader, LineErrors, Read, Record};
use crate::http::upload::LimitedUpload;
use crate::http::{ApiError, Editor, Path, Query, Viewer};
use crate::projection;
use crate::projection::segments::{LoadError, SegmentLoad};
use crate::state::AppState;
use popup_core::wire::ErrorResponse;

/// Ids stored per Postgres row, and written to Redis together.
const IDS_PER_CHUNK: usize = 10_000;
/// Chunks read ahead while one is being written, so that the body is read and parsed meanwhile.
const CHUNKS_AHEAD: usize = 2;
/// Bytes of the body parsed between two yields to the runtime. A body chunk can be hundreds of KiB, whose
/// parsing would hold a worker thread for milliseconds while popup requests wait behind it.
const PARSE_SLICE: usize = 32 << 10;
/// Header names of the id column, in order of preference when a header has several of them.
const HEADER_NAMES: &[&str] = &["customer_id", "user_id", "id", "cif", "nasabah_id"];

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
/// are ignored. Duplicates are removed within each chunk handed over, not across chunks.
#[derive(Debug, Default)]
struct IdReader {
    /// The id column, known from the first record on.
    column: Option<usize>,
    /// Ids read and not yet handed over as a chunk.
    pending: Vec<String>,
    /// Ids read, duplicates included.
    accepted: u64,
    errors: LineErrors,
}

/// What an id file says, read in memory: its ids (none once a line is bad) and its bad lines.
#[derive(Debug)]
pub struct IdFile {
    pub ids: Vec<String>,
    pub bad_lines: Vec<popup_core::campaign::FieldError>,
}

/// Reads an id file handed over in `chunks`, split wherever an upload's body may be, with the reader
/// uploads stream through: for checking the reader itself (its tests and its fuzz target).
pub fn read_id_file(chunks: &[&[u8]]) -> IdFile {
    let mut reader = IdReader::default();
    CsvReader::read_all(chunks.iter().copied(), |record| reader.record(record));
    IdFile { ids: reader.pending, bad_lines: reader.errors.listed().to_vec() }
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
        if record.has_nul() {
            return self.error(record.line(), "must not contain the NUL character");
        }
        let Some(field) = record.get(column) else {
            let message = format!("has no field {} (the id column)", column + 1);
            return self.error(record.line(), message);
        };
        let id = field.trim();
        match UserId::parse(id) {
            Ok(_) => {
                self.accepted += 1;
                if self.errors.is_empty() {
                    self.pending.push(id.to_string());
                }
            }
            Err(error) => self.error(record.line(), error),
        }
    }

    /// Once a line is bad nothing will be written: the ids waiting are dropped, and no more are kept.
    fn error(&mut self, line: u64, message: impl std::fmt::Display) {
        self.errors.add(line, message);
        self.pending = Vec::new();
    }

    /// The next full chunk of ids, if one is ready, sorted and without duplicates. Sorted here, by the
    /// reader, so that it is done while the writer waits for Redis.
    fn full_chunk(&mut self) -> Option<Vec<String>> {
        if self.pending.len() < IDS_PER_CHUNK || !self.errors.is_empty() {
            return None;
        }
        Some(sorted(self.pending.drain(..IDS_PER_CHUNK).collect()))
    }

    /// The last ids, at the end of the upload, sorted and without duplicates.
    fn last_chunk(&mut self) -> Option<Vec<String>> {
        Some(std::mem::take(&mut self.pending))
            .filter(|ids| !ids.is_empty() && self.errors.is_empty())
            .map(sorted)
    }
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The position of the id column if `record` is a header.
fn id_column(record: &Record<'_>) -> Option<usize> {
    HEADER_NAMES.iter().find_map(|name| {
        (0..record.len())
            .find(|&at| record.get(at).is_some_and(|field| field.trim().eq_ignore_ascii_case(name)))
    })
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UploadResult {
    #[serde(flatten)]
    pub segment: SegmentView,
    /// Lines read, duplicates included.
    pub lines_accepted: u64,
}

/// `PUT /admin/v1/segments/{name}`: replaces the segment's members with the uploaded ids.
#[utoipa::path(
    put,
    path = "/segments/{name}",
    tag = "segments",
    summary = "Replace a segment's members with the uploaded customer ids",
    description = "One id per line, or CSV (RFC 4180) whose id column a header names `customer_id`, `user_id`, \
                   `id`, `cif` or `nasabah_id` (else the first column). Streamed; visible atomically when complete.",
    security(("api_key" = [])),
    params(("name" = String, Path, pattern = "^[a-z0-9_-]{1,64}$")),
    request_body(content = String, content_type = "text/csv", description = "The ids."),
    responses(
        (status = 200, body = UploadResult),
        (status = 409, description = "Another upload of this segment is running.", body = ErrorResponse),
        (status = 413, description = "Larger than `POPUP_MAX_SEGMENT_BYTES`.", body = ErrorResponse),
        (status = 422, description = "A bad name, or malformed lines, listed as `line N`.", body = ErrorResponse),
    )
)]
pub async fn upload(
    State(state): State<AppState>,
    Editor(actor): Editor,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<UploadResult>, ApiError> {
    Ok(Json(replace_members(&state, &actor, &name, &headers, body).await?))
}

/// Replaces the members of segment `name` with the ids of `body`, streamed, as `actor`: for this API and
/// the dashboard's upload.
pub async fn replace_members(
    state: &AppState,
    actor: &Actor,
    name: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<UploadResult, ApiError> {
    check_name(name)?;
    let upload = LimitedUpload::new(headers, body, state.max_segment_bytes)?;
    let mut version = NewVersion::lock(state, name).await?;
    let outcome = async {
        let lines_accepted = stream_members(upload, &mut version).await?;
        let segment = version.switch(actor).await?;
        Ok::<_, ApiError>(UploadResult { segment, lines_accepted })
    }
    .await;
    // Removes the new version from Postgres unless it was switched to, then lets the next upload start.
    version.end().await;
    let result = outcome?;
    projection::publish_after_write(state).await;
    Ok(result)
}

/// Reads the ids from the body and writes them to `version` a chunk at a time, reading ahead while a chunk
/// is written. Returns the ids read, duplicates included.
async fn stream_members(mut upload: LimitedUpload, version: &mut NewVersion<'_>) -> Result<u64, ApiError> {
    let (chunks, mut to_write) = tokio::sync::mpsc::channel::<Vec<String>>(CHUNKS_AHEAD);
    let read = async move {
        let mut csv = CsvReader::default();
        let mut ids = IdReader::default();
        while let Some(body) = upload.next_chunk().await? {
            for slice in body.chunks(PARSE_SLICE) {
                csv.feed(slice, |record| ids.record(record));
                while let Some(chunk) = ids.full_chunk() {
                    if chunks.send(chunk).await.is_err() {
                        // The writer stopped on an error, which is the answer.
                        return Ok(None);
                    }
                }
                tokio::task::yield_now().await;
            }
        }
        csv.finish(|record| ids.record(record));
        if let Some(chunk) = ids.last_chunk() {
            if chunks.send(chunk).await.is_err() {
                return Ok(None);
            }
        }
        Ok::<_, ApiError>(Some(ids))
    };
    let write = async move {
        while let Some(chunk) = to_write.recv().await {
            version.write(chunk).await?;
        }
        Ok::<_, ApiError>(())
    };
    let (read, write) = tokio::join!(read, write);
    write?;
    let ids = read?.ok_or_else(|| ApiError::internal("the segment writer stopped"))?;
    if !ids.errors.is_empty() {
        return Err(ids.errors.into_error());
    }
    if ids.accepted == 0 {
        return Err(ApiError::field("body", "no customer ids in the upload"));
    }
    Ok(ids.accepted)
}

/// A new version of one segment, being written. It holds the segment's upload lock from before the body
/// is read until it ends, on a Postgres connection of its own that does all of the upload's Postgres work.
///
/// Why the lock spans the whole upload, not only the choice of version and the switch: memberships are
/// double-buffered by the parity of the version (`popup_core::store`), and an upload writes the field of
/// the parity the live version does not use. Two uploads started against the same live version would
/// write the same parity; when the first switches to its version, the second would still be overwriting
/// the fields of that parity, which are now the live ones, and members of the first would drop out.
/// Failing the second at its switch would be too late, so it is refused at its start with 409 instead
/// (an upload takes seconds, tens of seconds for ten million ids; the client retries). The switch still checks that the segment did not change,
/// which catches a delete during the upload, or an origin without this lock during a rolling upgrade.
///
/// The lock is a session-level advisory lock. It is released by [`NewVersion::end`], or, if the request
/// is dropped before (the client went away), by the task `Drop` starts; if the connection breaks, Postgres
/// releases it with the session.
struct NewVersion<'a> {
    state: &'a AppState,
    name: String,
    key: i64,
    conn: Option<PoolConnection<Postgres>>,
    /// What to remove from Postgres if the upload does not switch.
    cleanup: Cleanup,
    /// Known from the first chunk on.
    target: Option<Target<'a>>,
}

impl std::fmt::Debug for NewVersion<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewVersion").field("name", &self.name).field("cleanup", &self.cleanup).finish()
    }
}

/// What a failed upload leaves in Postgres to be removed.
#[derive(Clone, Copy, Debug, Default)]
struct Cleanup {
    segment: Option<i32>,
    /// The row was made by this upload (the segment's first): it goes too.
    created: bool,
    version: Option<i64>,
}

#[derive(Debug)]
struct Target<'a> {
    /// The segment as it was when the version was reserved.
    before: SegmentView,
    version: i64,
    load: SegmentLoad<'a>,
    chunks: i32,
    /// Ids stored, each chunk without duplicates.
    stored: i64,
    /// The greatest id of the last chunk, and whether a chunk began at or below that of the one before.
    last: Option<String>,
    overlap: bool,
}

impl<'a> NewVersion<'a> {
    /// Takes the upload lock of segment `name`, or answers 409 if another upload of it is in progress.
    async fn lock(state: &'a AppState, name: &str) -> Result<NewVersion<'a>, ApiError> {
        let conn = state.db.acquire().await?;
        let mut version = NewVersion {
            state,
            name: name.to_string(),
            key: upload_lock_key(name),
            conn: Some(conn),
            cleanup: Cleanup::default(),
            target: None,
        };
        let key = version.key;
        let locked = segments::try_lock_upload(version.connection()?, key).await?;
        if !locked {
            // Not ours to release: the connection goes back as it is.
            version.conn = None;
            return Err(ApiError::Conflict(format!(
                "segment {name:?} is being uploaded by another request; try again when it is done"
            )));
        }
        Ok(version)
    }

    fn connection(&mut self) -> Result<&mut PoolConnection<Postgres>, ApiError> {
        self.conn.as_mut().ok_or_else(|| ApiError::internal("the upload already ended"))
    }

    /// Writes one chunk of ids, sorted and without duplicates, to Postgres and to Redis at once; the
    /// first chunk reserves the version.
    async fn write(&mut self, ids: Vec<String>) -> Result<(), ApiError> {
        if self.target.is_none() {
            self.target = Some(self.reserve().await?);
        }
        let (Some(conn), Some(target)) = (self.conn.as_mut(), self.target.as_mut()) else {
            return Err(ApiError::internal("the upload already ended"));
        };
        if let (Some(last), Some(first)) = (&target.last, ids.first()) {
            target.overlap |= first <= last;
        }
        target.last = ids.last().cloned();
        let store = segments::store_chunk(conn, target.before.id, target.version, target.chunks, &ids);
        let load = target.load.write(ids.iter().map(String::as_str));
        let (stored, loaded) = tokio::join!(store, load);
        stored?;
        loaded.map_err(redis_failed)?;
        target.chunks += 1;
        target.stored += ids.len() as i64;
        Ok(())
    }

    /// Reserves the new version: the segment's row (made, unseen, for a first upload), a version number of
    /// the parity the live version does not use, and the start of its load into Redis.
    async fn reserve(&mut self) -> Result<Target<'a>, ApiError> {
        let state = self.state;
        let name = self.name.clone();
        let conn = self.connection()?;
        let live = segments::get(&mut **conn, &name).await?;
        let (before, created) = match live {
            Some(live) => (live, false),
            // A first upload makes the row deleted, which every read of segments skips, and the switch
            // brings it to life: until then nothing shows a segment that has no members yet.
            None => (segments::create_hidden(conn, &name).await?, true),
        };
        self.cleanup = Cleanup { segment: Some(before.id), created, version: None };
        let conn = self.connection()?;
        // The new version must have the other parity than the live one: memberships are double-buffered
        // by parity (see `popup_core::store`), so writing it cannot disturb the members being served. The
        // lock keeps the live version as it is until the switch.
        let version = segments::next_version(conn, before.version).await?;
        self.cleanup.version = Some(version);
        let load = SegmentLoad::start(state, SegmentId(before.id as u32), version as u64)
            .await
            .map_err(redis_failed)?;
        Ok(Target { before, version, load, chunks: 0, stored: 0, last: None, overlap: false })
    }

    /// The members of the new version, each counted once. Chunks are sorted and free of duplicates each,
    /// so when every chunk begins above the end of the one before (a sorted file), no id can be in two and
    /// the count is their sum. Otherwise Postgres counts the distinct ids of the stored chunks. An id left
    /// in two chunks is otherwise harmless: it is written to Redis twice (`HSET`, the same field and
    /// value), by the upload and by a restore, which reads the chunks in order; and the sends that read a
    /// segment's members match customers by `IN`.
    async fn member_count(&mut self, target: &Target<'_>) -> Result<i64, ApiError> {
        if !target.overlap {
            return Ok(target.stored);
        }
        let conn = self.connection()?;
        Ok(segments::distinct_members(conn, target.before.id, target.version).await?)
    }

    /// Marks the new version complete in Redis, then switches the segment to it in one short transaction
    /// (if the segment is as it was when the version was reserved) and deletes the old version's members.
    async fn switch(&mut self, actor: &Actor) -> Result<SegmentView, ApiError> {
        let target =
            self.target.take().ok_or_else(|| ApiError::field("body", "no customer ids in the upload"))?;
        let member_count = self.member_count(&target).await?;
        let Target { before, version, load, .. } = target;
        // Redis first, under a version no catalog names yet: if this fails, nothing visible changed.
        load.finish().await.map_err(redis_failed)?;
        let created = self.cleanup.created;
        let name = self.name.clone();
        let conn = self.connection()?;
        let switched = segments::switch_version(conn, actor, &before, created, version, member_count).await?;
        let Some(after) = switched else {
            return Err(ApiError::Conflict(format!(
                "segment {name:?} was deleted or replaced during the upload, which was not applied"
            )));
        };
        self.cleanup = Cleanup::default();
        Ok(after)
    }

    /// Ends the upload: removes from Postgres what it wrote unless it switched, and releases the lock.
    async fn end(mut self) {
        if let Some(conn) = self.conn.take() {
            end_upload(conn, self.key, self.cleanup).await;
        }
    }
}

impl Drop for NewVersion<'_> {
    /// The request was dropped before [`NewVersion::end`] (the client went away mid-upload): the same
    /// cleanup, in a task of its own.
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else { return };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(end_upload(conn, self.key, self.cleanup));
            }
            // Closing the session releases the lock; what is left is removed by the next upload.
            Err(_) => conn.close_on_drop(),
        }
    }
}

/// Deletes what a failed upload stored, then releases the upload lock. Run on the upload's own connection,
/// after any statement the upload left in flight. If this fails, the connection is closed, which releases
/// the lock with the session; rows left behind are under a version no segment names (never read), and the
/// next upload of the segment deletes them with every other old version.
async fn end_upload(mut conn: PoolConnection<Postgres>, key: i64, cleanup: Cleanup) {
    let result = async {
        if let Some(segment) = cleanup.segment {
            segments::discard_upload(&mut conn, segment, cleanup.version, cleanup.created).await?;
        }
        segments::unlock_upload(&mut conn, key).await
    }
    .await;
    if let Err(error) = result {
        tracing::warn!(%error, "could not clean up after a segment upload; closing its connection");
        conn.close_on_drop();
    }
}

/// The advisory lock key of uploads of segment `name`: 64 bits of a hash of the name, so that uploads of
/// different segments practically never share one. Keyed by name, not id, because a first upload has no
/// row yet.
fn upload_lock_key(name: &str) -> i64 {
    let digest = Sha256::digest(format!("popup segment upload\0{name}").as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

fn redis_failed(error: LoadError) -> ApiError {
    tracing::warn!(error = format!("{error:#}"), "segment upload could not reach redis");
    ApiError::Unavailable
}

#[utoipa::path(
    get,
    path = "/segments",
    tag = "segments",
    security(("api_key" = [])),
    params(PageQuery),
    responses((status = 200, body = Paged<SegmentView>))
)]
pub async fn list(
    State(state): State<AppState>,
    _: Viewer,
    Query(page): Query<PageQuery>,
) -> Result<Json<Paged<SegmentView>>, ApiError> {
    let page = page.validate()?;
    let (items, total) = segments::list(&state.db, page.page_size, page.offset()).await?;
    Ok(Json(Paged::new(items, page, total)))
}

#[utoipa::path(
    get,
    path = "/segments/{name}",
    tag = "segments",
    security(("api_key" = [])),
    params(("name" = String, Path)),
    responses(
        (status = 200, body = SegmentView),
        (status = 404, description = "No such segment.", body = ErrorResponse),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    _: Viewer,
    Path(name): Path<String>,
) -> Result<Json<SegmentView>, ApiError> {
    Ok(Json(segments::get(&state.db, &name).await?.ok_or(ApiError::NotFound("segment"))?))
}

#[utoipa::path(
    delete,
    path = "/segments/{name}",
    tag = "segments",
    security(("api_key" = [])),
    params(("name" = String, Path)),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "No such segment.", body = ErrorResponse),
        (status = 409, description = "A campaign still uses the segment.", body = ErrorResponse),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    Editor(actor): Editor,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    remove(&state, &actor, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes segment `name` unless a campaign that has not ended uses it (409): for this API and the
/// dashboard.
pub async fn remove(state: &AppState, actor: &Actor, name: &str) -> Result<(), ApiError> {
    let users = campaigns::using_segment(&state.db, name).await?;
    if !users.is_empty() {
        return Err(ApiError::Conflict(format!("segment {name:?} is used by campaigns {users:?}")));
    }
    if !segments::delete(&state.db, actor, name).await? {
        return Err(ApiError::NotFound("segment"));
    }
    projection::publish_after_write(state).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(chunks: &[&str]) -> IdReader {
        let mut reader = IdReader::default();
        CsvReader::read_all(chunks.iter().map(|chunk| chunk.as_bytes()), |record| reader.record(record));
        reader
    }

    fn lines(reader: &IdReader) -> Vec<&str> {
        reader.errors.listed().iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn ids_are_read_across_chunk_boundaries_with_header_csv_and_blank_lines() {
        let parser = parse(&["customer_id,name\r\n c-1 ,Ani\n\nc-", "2,Budi\n\"c-3\"\nc-1", "\nc-4"]);
        assert_eq!(parser.pending, ["c-1", "c-2", "c-3", "c-1", "c-4"]);
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
        assert_eq!(parser.pending, ["c-1", "id"]);
    }

    #[test]
    fn the_id_column_is_found_by_name_anywhere_in_the_header() {
        let parser = parse(&["Name,Phone,CIF\nAni,+62811,cif-1\n\"Budi, Jr\",+62812,\"cif-2\"\n"]);
        assert_eq!(parser.pending, ["cif-1", "cif-2"]);
        let parser = parse(&["id,customer_id\n1,c-1\n"]);
        assert_eq!(parser.pending, ["c-1"], "customer_id is preferred to id");
        let parser = parse(&["c-1,Ani\nc-2\n"]);
        assert_eq!(parser.pending, ["c-1", "c-2"], "no header: the first column, from the first line");
    }

    #[test]
    fn a_line_without_the_id_column_or_with_a_bad_id_is_malformed() {
        let mut parser = parse(&["name,customer_id\nAni,c-1\nBudi\n\"Citra\",\"c,3\"\n,\n"]);
        assert_eq!(lines(&parser), ["line 3", "line 4"]);
        assert_eq!(parser.errors.listed()[0].message, "has no field 2 (the id column)");
        assert_eq!(parser.last_chunk(), None, "nothing is handed over once a line is bad");
    }

    #[test]
    fn a_nul_anywhere_in_a_line_makes_it_malformed() {
        let parser = parse(&["c-1,Ani\nc-2,B\0di\nc-\x003\n"]);
        assert_eq!(lines(&parser), ["line 2", "line 3"]);
        assert_eq!(parser.errors.listed()[0].message, "must not contain the NUL character");
    }

    #[test]
    fn ids_are_handed_over_in_chunks() {
        let text: String = (0..IDS_PER_CHUNK + 5).map(|i| format!("c-{i}\n")).collect();
        let mut parser = parse(&[&text]);
        assert_eq!(parser.full_chunk().map(|c| c.len()), Some(IDS_PER_CHUNK));
        assert_eq!(parser.full_chunk(), None);
        assert_eq!(parser.last_chunk().map(|c| c.len()), Some(5));
        assert_eq!(parser.last_chunk(), None);
        let mut parser = parse(&["c-3\nc-1\nc-3\nc-2\n"]);
        assert_eq!(parser.last_chunk().unwrap(), ["c-1", "c-2", "c-3"], "sorted, without duplicates");
        assert_eq!(parser.accepted, 4);
    }

    #[test]
    fn lock_keys_differ_by_name() {
        assert_ne!(upload_lock_key("vip"), upload_lock_key("vip2"));
        assert_eq!(upload_lock_key("vip"), upload_lock_key("vip"));
    }
}

//! Uploaded files: segment ids (`PUT /admin/v1/segments/{name}`) and customer imports
//! (`POST /admin/v1/customers/import`).
//!
//! Both are read the same way, so that a file accepted by one is read alike by the other and their errors
//! look the same:
//! - [`LimitedUpload`]: the request body chunk by chunk within a byte limit (413 above it);
//! - [`csv::CsvReader`]: RFC 4180 CSV records fed from those chunks, numbered by line;
//! - [`csv::LineErrors`]: the malformed lines, listed as `line N` in a 422.

pub mod csv;

use axum::body::{Body, BodyDataStream, Bytes};
use axum::http::{header, HeaderMap};
use futures_util::StreamExt;

use crate::http::ApiError;

/// A request body read chunk by chunk within a byte limit: uploads are streamed so their size never sits in
/// memory, and an oversize one is refused (413) as soon as it is known to be, by its declared length or by
/// what has arrived.
#[derive(Debug)]
pub struct LimitedUpload {
    stream: BodyDataStream,
    limit: u64,
    received: u64,
}

impl LimitedUpload {
    /// Refuses at once a body whose `Content-Length` is over `limit`.
    pub fn new(headers: &HeaderMap, body: Body, limit: u64) -> Result<LimitedUpload, ApiError> {
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|length| length > limit) {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        Ok(LimitedUpload { stream: body.into_data_stream(), limit, received: 0 })
    }

    /// The next chunk, or None at the end; 413 once more than the limit has arrived.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, ApiError> {
        let Some(chunk) = self.stream.next().await else { return Ok(None) };
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("could not read the upload: {e}")))?;
        self.received += chunk.len() as u64;
        if self.received > self.limit {
            return Err(ApiError::PayloadTooLarge(self.limit));
        }
        Ok(Some(chunk))
    }
}

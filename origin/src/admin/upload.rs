//! A request body read chunk by chunk within a byte limit: uploads are streamed so their size never sits in
//! memory, and an oversize one is refused (413) as soon as it is known to be, by its declared length or by
//! what has arrived.

use axum::body::{Body, BodyDataStream, Bytes};
use axum::http::{header, HeaderMap};
use futures_util::StreamExt;

use crate::http::ApiError;

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

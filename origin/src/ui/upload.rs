//! What an upload page (segments, customers) answers its script when the admin API refuses the file: a
//! message in the person's language and the first rows to fix, with the status the API would answer. The
//! refusals every upload can meet are worded here; each page words those only it makes.

use axum::http::StatusCode;

use super::Chrome;
use crate::http::session::Refusal;
use crate::http::ApiError;

/// Row errors an answer lists; its message says how many there were in all.
const LISTED_ROW_ERRORS: usize = 20;

/// A refused upload, as the `ui/upload_refused.html` partial shows it.
#[derive(Debug)]
pub struct Refused {
    pub status: StatusCode,
    pub message: String,
    /// `line N: what is wrong`, the first [`LISTED_ROW_ERRORS`].
    pub lines: Vec<String>,
}

/// Words `error`. `bad_lines` is the catalog key of "N rows need fixing"; `particular` words the refusals
/// only this upload makes (a field it checks, a conflict it can meet) and hands the others back.
pub fn refused(
    c: &Chrome,
    error: ApiError,
    bad_lines: &str,
    particular: impl FnOnce(ApiError) -> Result<(String, Vec<String>), ApiError>,
) -> Refused {
    let status = error.status();
    let (message, lines) = match error {
        ApiError::Invalid(fields) if fields.iter().any(|f| f.field.starts_with("line ")) => (
            c.t1(bad_lines, fields.len()),
            fields.iter().take(LISTED_ROW_ERRORS).map(|f| format!("{}: {}", f.field, f.message)).collect(),
        ),
        ApiError::PayloadTooLarge(limit) => (c.t1("segments.too_large", limit / (1 << 20)), Vec::new()),
        ApiError::Unavailable => (c.t("error.unavailable"), Vec::new()),
        other => particular(other).unwrap_or_else(|other| {
            let key = if Refusal::from(other) == Refusal::Internal {
                "error.internal"
            } else {
                "error.bad_request.title"
            };
            (c.t(key), Vec::new())
        }),
    };
    Refused { status, message, lines }
}

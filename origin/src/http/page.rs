//! Stable pagination: `page` (1 to [`MAX_PAGE`]) and `page_size` (1 to 100, default 20), newest first by id,
//! with the total count and the number of pages.
//!
//! Lists that grow while someone pages through them also answer `as_of`, the newest id the first page saw;
//! a client that passes it back (`?as_of=...`) pages through that snapshot, so rows inserted meanwhile
//! neither shift later pages nor appear twice.

use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::db::DbResult;
use crate::http::ApiError;

pub const MAX_PAGE_SIZE: i64 = 100;
const DEFAULT_PAGE_SIZE: i64 = 20;
/// The deepest page served. The bound is what keeps the offset, `(page - 1) * page_size`, an ordinary
/// number: at most 10^8 rows, far from overflowing i64 (a page near 2^63 would), and a value Postgres takes
/// as `OFFSET`. It is set above any real list: with the largest page size it reaches the 100 millionth row,
/// more than the customers or messages these lists hold; a page past the last row but within the bound is
/// an empty page, as before.
pub const MAX_PAGE: i64 = 1_000_000;

/// The paging parameters as sent. They are read as text so that a value that is not a page number, one too
/// large for any integer type included, is refused naming its field, like any other out of range.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct PageQuery {
    pub page: Option<String>,
    pub page_size: Option<String>,
}

#[derive(Clone, Copy, Debug)]
pub struct Page {
    pub page: i64,
    pub page_size: i64,
}

impl PageQuery {
    pub fn validate(self) -> Result<Page, ApiError> {
        let page = number("page", self.page.as_deref(), 1, MAX_PAGE)?;
        let page_size = number("page_size", self.page_size.as_deref(), DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)?;
        Ok(Page { page, page_size })
    }
}

/// A whole number from 1 to `max`, or `default` when absent.
fn number(field: &str, raw: Option<&str>, default: i64, max: i64) -> Result<i64, ApiError> {
    let Some(raw) = raw else { return Ok(default) };
    match raw.parse::<i64>() {
        Ok(value) if (1..=max).contains(&value) => Ok(value),
        _ => Err(ApiError::bad_field(field, format!("must be a whole number from 1 to {max}"))),
    }
}

impl Page {
    /// The rows before this page. Saturating, though [`PageQuery::validate`] bounds it far below, so that a
    /// `Page` made any other way cannot overflow either; Postgres answers no rows past the end.
    pub fn offset(self) -> i64 {
        (self.page - 1).saturating_mul(self.page_size)
    }
}

#[derive(Debug, Serialize)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub page: i64,
    pub page_size: i64,
    pub total: i64,
    pub pages: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub as_of: Option<i64>,
}

impl<T> Paged<T> {
    pub fn new(items: Vec<T>, page: Page, total: i64) -> Paged<T> {
        let pages = (total + page.page_size - 1) / page.page_size;
        Paged { items, page: page.page, page_size: page.page_size, total, pages, as_of: None }
    }

    /// Marks the page as part of the snapshot of ids up to `as_of`.
    pub fn as_of(mut self, as_of: i64) -> Paged<T> {
        self.as_of = Some(as_of);
        self
    }
}

/// The id bound of a paged list's snapshot : the `as_of` the client passed back,
/// which must be an id, or the newest id now, from `newest` (the list's `newest_id` in [`crate::db`]).
pub async fn as_of<F, Fut>(requested: Option<i64>, newest: F) -> Result<i64, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = DbResult<i64>>,
{
    match requested {
        Some(id) if id < 0 => Err(ApiError::bad_field("as_of", "must be an id, 0 or more")),
        Some(id) => Ok(id),
        None => Ok(newest().await?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(page: Option<&str>, page_size: Option<&str>) -> Result<Page, ApiError> {
        PageQuery { page: page.map(String::from), page_size: page_size.map(String::from) }.validate()
    }

    #[test]
    fn pages_within_the_bounds_are_served_and_the_offset_cannot_overflow() {
        let deepest = page(Some(&MAX_PAGE.to_string()), Some(&MAX_PAGE_SIZE.to_string())).unwrap();
        assert_eq!(deepest.offset(), (MAX_PAGE - 1) * MAX_PAGE_SIZE);
        let first = page(None, None).unwrap();
        assert_eq!((first.page, first.page_size, first.offset()), (1, DEFAULT_PAGE_SIZE, 0));
        assert_eq!(Page { page: i64::MAX, page_size: i64::MAX }.offset(), i64::MAX);
    }

    #[test]
    fn pages_out_of_range_or_not_numbers_name_their_field() {
        let too_deep = (MAX_PAGE + 1).to_string();
        for (page_value, size, field) in [
            (Some("0"), None, "page"),
            (Some("-1"), None, "page"),
            (Some(too_deep.as_str()), None, "page"),
            (Some("9223372036854775807"), None, "page"),
            (Some("99999999999999999999"), None, "page"),
            (Some("2.5"), None, "page"),
            (Some(""), None, "page"),
            (None, Some("0"), "page_size"),
            (None, Some("101"), "page_size"),
            (None, Some("99999999999999999999"), "page_size"),
        ] {
            match page(page_value, size) {
                Err(ApiError::BadFields(fields)) => {
                    assert_eq!(fields[0].field, field, "{page_value:?} {size:?}")
                }
                other => panic!("{page_value:?} {size:?}: {other:?}"),
            }
        }
    }
}

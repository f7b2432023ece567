//! Stable pagination: `page` (1 to [`MAX_PAGE`]) and `page_size` (1 to 100, default 20), newest first by id,
//! answered as `{"data": [...], "pagination": {"page", "page_size", "total_count", "total_pages"}}`, the
//! shape of every list.
//!
//! Out-of-range values are brought into range as the messaging document (seed 002) specifies: a
//! `page_size` above 100 is 100 and one below 1 the default, a `page` below 1 is 1; the `pagination` of the
//! answer says which values were used. What is not a whole number, or a `page` past [`MAX_PAGE`], is still
//! refused (400 naming the field): that is not a page anyone meant.
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
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// The page, from 1 (the default); below 1 is 1. At most 1000000; more, or not a whole number, is 400.
    #[param(value_type = Option<i64>, maximum = 1000000)]
    pub page: Option<String>,
    /// Rows per page, 20 by default; above 100 is 100, below 1 is the default. Not a whole number is 400.
    #[param(value_type = Option<i64>)]
    pub page_size: Option<String>,
}

#[derive(Clone, Copy, Debug)]
pub struct Page {
    pub page: i64,
    pub page_size: i64,
}

impl PageQuery {
    pub fn validate(self) -> Result<Page, ApiError> {
        let page = match whole_number("page", self.page.as_deref())? {
            None => 1,
            Some(page) if page > MAX_PAGE => {
                return Err(ApiError::bad_field("page", format!("must be at most {MAX_PAGE}")))
            }
            Some(page) => page.max(1),
        };
        let page_size = match whole_number("page_size", self.page_size.as_deref())? {
            Some(size) if size < 1 => DEFAULT_PAGE_SIZE,
            Some(size) => size.min(MAX_PAGE_SIZE),
            None => DEFAULT_PAGE_SIZE,
        };
        Ok(Page { page, page_size })
    }
}

/// The value of a paging parameter, if given; one that is not a whole number within i64 is refused.
fn whole_number(field: &str, raw: Option<&str>) -> Result<Option<i64>, ApiError> {
    raw.map(|raw| raw.parse::<i64>().map_err(|_| ApiError::bad_field(field, "must be a whole number")))
        .transpose()
}

impl Page {
    /// The rows before this page. Saturating, though [`PageQuery::validate`] bounds it far below, so that a
    /// `Page` made any other way cannot overflow either; Postgres answers no rows past the end.
    pub fn offset(self) -> i64 {
        (self.page - 1).saturating_mul(self.page_size)
    }
}

/// One page of a list: the rows, and where they sit in it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Paged<T> {
    pub data: Vec<T>,
    pub pagination: Pagination,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Pagination {
    /// The page served, from 1.
    pub page: i64,
    /// Rows per page, 1 to 100.
    pub page_size: i64,
    /// Rows in the whole list (in its snapshot, where it has `as_of`).
    pub total_count: i64,
    /// `ceil(total_count / page_size)`; 0 for an empty list.
    pub total_pages: i64,
    /// The newest id of the snapshot this page belongs to: pass it back (`?as_of=`) to page through the
    /// same rows while new ones are inserted. Only on lists that grow while they are read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub as_of: Option<i64>,
}

impl<T> Paged<T> {
    pub fn new(data: Vec<T>, page: Page, total_count: i64) -> Paged<T> {
        let total_pages = (total_count + page.page_size - 1) / page.page_size;
        let pagination =
            Pagination { page: page.page, page_size: page.page_size, total_count, total_pages, as_of: None };
        Paged { data, pagination }
    }

    /// Marks the page as part of the snapshot of ids up to `as_of`.
    pub fn as_of(mut self, as_of: i64) -> Paged<T> {
        self.pagination.as_of = Some(as_of);
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
    fn in_range_values_are_clamped_as_the_messaging_document_says() {
        for (page_value, size, expected) in [
            (Some("0"), None, (1, DEFAULT_PAGE_SIZE)),
            (Some("-1"), None, (1, DEFAULT_PAGE_SIZE)),
            (Some("-9223372036854775808"), None, (1, DEFAULT_PAGE_SIZE)),
            (Some("3"), Some("0"), (3, DEFAULT_PAGE_SIZE)),
            (None, Some("-7"), (1, DEFAULT_PAGE_SIZE)),
            (None, Some("101"), (1, MAX_PAGE_SIZE)),
            (None, Some("9223372036854775807"), (1, MAX_PAGE_SIZE)),
            (None, Some("100"), (1, 100)),
            (None, Some("1"), (1, 1)),
        ] {
            let served = page(page_value, size).unwrap();
            assert_eq!((served.page, served.page_size), expected, "{page_value:?} {size:?}");
        }
    }

    #[test]
    fn pages_beyond_the_bound_or_not_numbers_name_their_field() {
        let too_deep = (MAX_PAGE + 1).to_string();
        for (page_value, size, field) in [
            (Some(too_deep.as_str()), None, "page"),
            (Some("9223372036854775807"), None, "page"),
            (Some("99999999999999999999"), None, "page"),
            (Some("-99999999999999999999"), None, "page"),
            (Some("2.5"), None, "page"),
            (Some(""), None, "page"),
            (Some("one"), None, "page"),
            (None, Some("99999999999999999999"), "page_size"),
            (None, Some("ten"), "page_size"),
            (None, Some(""), "page_size"),
        ] {
            match page(page_value, size) {
                Err(ApiError::BadFields(fields)) => {
                    assert_eq!(fields[0].field, field, "{page_value:?} {size:?}")
                }
                other => panic!("{page_value:?} {size:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_shape_is_data_and_pagination() {
        let first = page(None, Some("2")).unwrap();
        let body = serde_json::to_value(Paged::new(vec![1, 2], first, 5)).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"data": [1, 2],
                "pagination": {"page": 1, "page_size": 2, "total_count": 5, "total_pages": 3}})
        );
        let body = serde_json::to_value(Paged::<i32>::new(vec![], first, 0).as_of(9)).unwrap();
        assert_eq!(body["pagination"]["total_pages"], 0);
        assert_eq!(body["pagination"]["as_of"], 9);
    }
}

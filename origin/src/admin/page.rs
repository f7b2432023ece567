//! Stable pagination: `page` (from 1) and `page_size` (1 to 100, default 20), newest first by id, with the
//! total count and the number of pages.
//!
//! Lists that grow while someone pages through them also answer `as_of`, the newest id the first page saw;
//! a client that passes it back (`?as_of=...`) pages through that snapshot, so rows inserted meanwhile
//! neither shift later pages nor appear twice.

use serde::{Deserialize, Serialize};

use crate::error::ApiError;

pub const MAX_PAGE_SIZE: i64 = 100;
const DEFAULT_PAGE_SIZE: i64 = 20;

#[derive(Clone, Copy, Debug, Deserialize)]
pub struct PageQuery {
    pub page: Option<i64>,
    pub page_size: Option<i64>,
}

#[derive(Clone, Copy, Debug)]
pub struct Page {
    pub page: i64,
    pub page_size: i64,
}

impl PageQuery {
    pub fn validate(self) -> Result<Page, ApiError> {
        let page = self.page.unwrap_or(1);
        let page_size = self.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
        if page < 1 {
            return Err(ApiError::bad_field("page", "must be at least 1"));
        }
        if !(1..=MAX_PAGE_SIZE).contains(&page_size) {
            return Err(ApiError::bad_field("page_size", format!("must be between 1 and {MAX_PAGE_SIZE}")));
        }
        Ok(Page { page, page_size })
    }
}

impl Page {
    pub fn offset(self) -> i64 {
        (self.page - 1) * self.page_size
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

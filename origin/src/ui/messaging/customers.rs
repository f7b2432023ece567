//! `/ui/messaging/customers`: the customers messages go to, newest first or the one a person looks up by
//! bank id, phone or our id; and a CSV import with a progress bar (the segments page's upload script) whose
//! answer is the counts, or the rows to fix by line number. The import is the admin API's own
//! (`messaging::customers::import_csv`): all rows or none.

use askama::Template;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use super::{tabs, Tab};
use crate::db::customers::{self, CustomerView};
use crate::http::page::{PageQuery, Paged};
use crate::http::session::{Refusal, SignedIn, SignedInEditor, SignedInViewer};
use crate::http::{ApiError, Query};
use crate::messaging::customers::{import_csv, ImportResult};
use crate::state::AppState;
use crate::ui::{render, Chrome, PageResult};

/// Row errors an import's answer lists; the count says how many there were in all.
const LISTED_ROW_ERRORS: usize = 20;

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    page: Option<String>,
    /// A bank id, phone or our id.
    q: Option<String>,
}

#[derive(Template)]
#[template(path = "ui/messaging/customers_table.html")]
struct CustomersTable {
    c: Chrome,
    rows: Vec<CustomerView>,
    list: Paged<()>,
    /// What was looked up, when something was.
    q: Option<String>,
}

#[derive(Template)]
#[template(path = "ui/messaging/customers.html")]
struct CustomersPage {
    c: Chrome,
    tabs: Vec<Tab>,
    table: CustomersTable,
    max_bytes: u64,
}

async fn table(state: &AppState, signed_in: &SignedIn, query: ListQuery) -> Result<CustomersTable, Refusal> {
    let c = Chrome::new(signed_in, "/ui/messaging");
    let page = PageQuery { page: query.page, page_size: Some("50".into()) }.validate()?;
    let q = query.q.map(|q| q.trim().to_string()).filter(|q| !q.is_empty());
    let (rows, total) = match &q {
        Some(q) => {
            let found = customers::find(&state.db, q).await.map_err(ApiError::from)?;
            let total = i64::from(found.is_some());
            (found.into_iter().collect(), total)
        }
        None => {
            let as_of = customers::newest_id(&state.db).await.map_err(ApiError::from)?;
            customers::list(&state.db, as_of, None, page.page_size, page.offset())
                .await
                .map_err(ApiError::from)?
        }
    };
    Ok(CustomersTable { c, rows, list: Paged::new(Vec::new(), page, total), q })
}

/// `GET /ui/messaging/customers`.
pub async fn show(
    State(state): State<AppState>,
    SignedInViewer(signed_in): SignedInViewer,
    query: Result<Query<ListQuery>, ApiError>,
) -> PageResult {
    let Query(query) = query?;
    let table = table(&state, &signed_in, query).await?;
    let c = Chrome::new(&signed_in, "/ui/messaging");
    Ok(render(&CustomersPage {
        tabs: tabs(&c, "/ui/messaging/customers"),
        c,
        table,
        max_bytes: state.max_segment_bytes,
    }))
}

/// `GET /ui/messaging/customers/table`: the table alone, which the page reloads after an import.
pub async fn show_table(
    State(state): State<AppState>,
    SignedInViewer(signed_in): SignedInViewer,
    query: Result<Query<ListQuery>, ApiError>,
) -> PageResult {
    let Query(query) = query?;
    Ok(render(&table(&state, &signed_in, query).await?))
}

#[derive(Template)]
#[template(path = "ui/messaging/import_result.html")]
struct ImportResultFragment {
    c: Chrome,
    ok: Option<ImportResult>,
    message: Option<String>,
    /// `line N: what is wrong`, the first [`LISTED_ROW_ERRORS`].
    lines: Vec<String>,
}

/// `POST /ui/messaging/customers/import`: the body is the CSV. Answers a fragment for the page's script.
pub async fn import(
    State(state): State<AppState>,
    SignedInEditor(signed_in): SignedInEditor,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let c = Chrome::new(&signed_in, "/ui/messaging");
    let (status, fragment) = match import_csv(&state, &signed_in.person.actor(), &headers, body).await {
        Ok(result) => {
            (StatusCode::OK, ImportResultFragment { c, ok: Some(result), message: None, lines: Vec::new() })
        }
        Err(error) => {
            let status = error.status();
            let (message, lines) = match error {
                ApiError::Invalid(fields) if fields.iter().any(|f| f.field.starts_with("line ")) => (
                    c.t1("customers.bad_lines", fields.len()),
                    fields
                        .iter()
                        .take(LISTED_ROW_ERRORS)
                        .map(|f| format!("{}: {}", f.field, f.message))
                        .collect(),
                ),
                ApiError::Invalid(fields) if fields.iter().any(|f| f.field == "header") => {
                    (c.t("customers.bad_header"), fields.iter().map(|f| f.message.clone()).collect())
                }
                ApiError::Invalid(_) => (c.t("customers.empty_file"), Vec::new()),
                ApiError::Conflict(detail) => (c.t1("customers.conflict", detail), Vec::new()),
                ApiError::PayloadTooLarge(limit) => {
                    (c.t1("segments.too_large", limit / (1 << 20)), Vec::new())
                }
                ApiError::Unavailable => (c.t("error.unavailable"), Vec::new()),
                other => {
                    let refusal = Refusal::from(other);
                    let key = if refusal == Refusal::Internal {
                        "error.internal"
                    } else {
                        "error.bad_request.title"
                    };
                    (c.t(key), Vec::new())
                }
            };
            (status, ImportResultFragment { c, ok: None, message: Some(message), lines })
        }
    };
    let mut response = render(&fragment);
    *response.status_mut() = status;
    response
}

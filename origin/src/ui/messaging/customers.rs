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
use crate::ui::upload::{refused, Refused};
use crate::ui::{render, Chrome, PageResult};

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

impl CustomersTable {
    fn page_link(&self, page: i64) -> String {
        format!("/ui/messaging/customers?page={page}")
    }
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
    refused: Option<Refused>,
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
        Ok(result) => (StatusCode::OK, ImportResultFragment { c, ok: Some(result), refused: None }),
        Err(error) => {
            let refused = refused(&c, error, "customers.bad_lines", |error| match error {
                ApiError::Invalid(fields) if fields.iter().any(|f| f.field == "header") => {
                    Ok((c.t("customers.bad_header"), fields.iter().map(|f| f.message.clone()).collect()))
                }
                ApiError::Invalid(_) => Ok((c.t("customers.empty_file"), Vec::new())),
                ApiError::Conflict(detail) => Ok((c.t1("customers.conflict", detail), Vec::new())),
                other => Err(other),
            });
            (refused.status, ImportResultFragment { c, ok: None, refused: Some(refused) })
        }
    };
    let mut response = render(&fragment);
    *response.status_mut() = status;
    response
}

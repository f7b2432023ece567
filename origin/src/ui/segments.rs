//! `/ui/segments`: the segments with their member counts, versions and the campaigns using them; an upload
//! with a progress bar (our script sends the file with XMLHttpRequest and shows its upload progress, then
//! the count the server answers); delete, refused while campaigns use the segment, which it names. Uploads
//! and deletes are the admin API's own functions (`admin::segments::replace_members`, `remove`).

use std::collections::HashMap;

use askama::Template;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::upload::{refused, Refused};
use super::{render, Chrome, PageResult};
use crate::admin::segments::{remove, replace_members};
use crate::db::campaigns;
use crate::db::segments::{self, SegmentView};
use crate::http::page::{PageQuery, Paged};
use crate::http::session::{Refusal, SignedInEditor, SignedInViewer};
use crate::http::{ApiError, Path, Query};
use crate::state::AppState;

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    page: Option<String>,
    deleted: Option<String>,
}

/// A row of the table.
#[derive(Debug)]
pub struct Row {
    pub segment: SegmentView,
    /// Campaigns not ended that use it: (id, name).
    pub used_by: Vec<(i64, String)>,
}

#[derive(Template)]
#[template(path = "ui/segments.html")]
struct SegmentsPage {
    c: Chrome,
    rows: Vec<Row>,
    list: Paged<()>,
    notice: Option<String>,
    problem: Option<String>,
    max_bytes: u64,
}

#[derive(Template)]
#[template(path = "ui/segments_table.html")]
struct SegmentsTable {
    c: Chrome,
    rows: Vec<Row>,
    list: Paged<()>,
}

/// The table's pager links, on the page and on the table alone.
fn page_link(page: i64) -> String {
    format!("/ui/segments?page={page}")
}

impl SegmentsPage {
    fn page_link(&self, page: i64) -> String {
        page_link(page)
    }
}

impl SegmentsTable {
    fn page_link(&self, page: i64) -> String {
        page_link(page)
    }
}

async fn rows(state: &AppState, page: Option<String>) -> Result<(Vec<Row>, Paged<()>), Refusal> {
    let page = PageQuery { page, page_size: Some("50".into()) }.validate()?;
    let (items, total) =
        segments::list(&state.db, page.page_size, page.offset()).await.map_err(ApiError::from)?;
    let mut users: HashMap<String, Vec<(i64, String)>> =
        campaigns::segment_users(&state.db).await.map_err(ApiError::from)?;
    let rows = items
        .into_iter()
        .map(|segment| Row { used_by: users.remove(&segment.name).unwrap_or_default(), segment })
        .collect();
    Ok((rows, Paged::new(Vec::new(), page, total)))
}

/// `GET /ui/segments`.
pub async fn list(
    State(state): State<AppState>,
    SignedInViewer(signed_in): SignedInViewer,
    query: Result<Query<ListQuery>, ApiError>,
) -> PageResult {
    let Query(query) = query?;
    let (rows, list) = rows(&state, query.page).await?;
    let c = Chrome::new(&signed_in, "/ui/segments");
    let notice = query.deleted.map(|name| c.t1("segments.deleted", name));
    Ok(render(&SegmentsPage { c, rows, list, notice, problem: None, max_bytes: state.max_segment_bytes }))
}

/// `GET /ui/segments/table`: the table alone, which the page reloads after an upload.
pub async fn table(
    State(state): State<AppState>,
    SignedInViewer(signed_in): SignedInViewer,
    query: Result<Query<ListQuery>, ApiError>,
) -> PageResult {
    let Query(query) = query?;
    let (rows, list) = rows(&state, query.page).await?;
    Ok(render(&SegmentsTable { c: Chrome::new(&signed_in, "/ui/segments"), rows, list }))
}

#[derive(Template)]
#[template(path = "ui/segments_result.html")]
struct UploadResultFragment {
    c: Chrome,
    /// (name, members, version, lines accepted).
    ok: Option<(String, i64, i64, u64)>,
    refused: Option<Refused>,
}

/// `POST /ui/segments/{name}/upload`: the body is the file. Answers a fragment for the page's script.
pub async fn upload(
    State(state): State<AppState>,
    SignedInEditor(signed_in): SignedInEditor,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let c = Chrome::new(&signed_in, "/ui/segments");
    let outcome = replace_members(&state, &signed_in.person.actor(), &name, &headers, body).await;
    let (status, fragment) = match outcome {
        Ok(result) => {
            let segment = result.segment;
            let ok = Some((segment.name, segment.member_count, segment.version, result.lines_accepted));
            (StatusCode::OK, UploadResultFragment { c, ok, refused: None })
        }
        Err(error) => {
            let refused = refused(&c, error, "segments.bad_lines", |error| match error {
                ApiError::Invalid(fields) if fields.iter().any(|f| f.field == "name") => {
                    Ok((c.t("segments.bad_name"), Vec::new()))
                }
                ApiError::Invalid(_) => Ok((c.t("segments.empty_file"), Vec::new())),
                ApiError::Conflict(_) => Ok((c.t("segments.busy"), Vec::new())),
                other => Err(other),
            });
            (refused.status, UploadResultFragment { c, ok: None, refused: Some(refused) })
        }
    };
    let mut response = render(&fragment);
    *response.status_mut() = status;
    response
}

/// `POST /ui/segments/{name}/delete`.
pub async fn delete(
    State(state): State<AppState>,
    SignedInEditor(signed_in): SignedInEditor,
    Path(name): Path<String>,
) -> PageResult {
    match remove(&state, &signed_in.person.actor(), &name).await {
        Ok(()) => {
            let location = format!(
                "/ui/segments?{}",
                serde_urlencoded::to_string([("deleted", &name)]).unwrap_or_default()
            );
            Ok((StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response())
        }
        Err(ApiError::Conflict(_)) => {
            let (rows, list) = rows(&state, None).await?;
            let users =
                rows.iter().find(|r| r.segment.name == name).map(|r| r.used_by.clone()).unwrap_or_default();
            let names: Vec<String> = users.iter().map(|(id, n)| format!("{n} (#{id})")).collect();
            let c = Chrome::new(&signed_in, "/ui/segments");
            let problem = Some(c.t2("segments.in_use", &name, names.join(", ")));
            let mut response = render(&SegmentsPage {
                c,
                rows,
                list,
                notice: None,
                problem,
                max_bytes: state.max_segment_bytes,
            });
            *response.status_mut() = StatusCode::CONFLICT;
            Ok(response)
        }
        Err(other) => Err(other.into()),
    }
}

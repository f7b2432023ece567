//! `GET /ui/campaigns`: the list of campaigns, with a status filter, a search by name and paging. Each
//! row links to the campaign's page (the editor), where its lifecycle buttons are.

use askama::Template;
use axum::extract::State;
use serde::Deserialize;

use super::{render, Chrome, PageResult};
use crate::admin::campaigns::{find, CampaignView};
use crate::http::page::{PageQuery, Paged};
use crate::http::session::{Refusal, SignedInViewer};
use crate::http::Query;
use crate::state::AppState;

/// The stored statuses one can filter by.
pub const STATUSES: [&str; 4] = ["draft", "active", "paused", "ended"];

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    status: Option<String>,
    q: Option<String>,
    page: Option<String>,
}

#[derive(Template)]
#[template(path = "ui/campaigns.html")]
struct CampaignsPage {
    c: Chrome,
    status: String,
    q: String,
    list: Paged<CampaignView>,
}

impl CampaignsPage {
    fn statuses(&self) -> &'static [&'static str] {
        &STATUSES
    }

    /// The link to page `page` of the same filter.
    fn page_link(&self, page: i64) -> String {
        let mut query = vec![("page", page.to_string())];
        if !self.status.is_empty() {
            query.push(("status", self.status.clone()));
        }
        if !self.q.is_empty() {
            query.push(("q", self.q.clone()));
        }
        format!("/ui/campaigns?{}", serde_urlencoded::to_string(query).unwrap_or_default())
    }
}

pub async fn list(
    State(state): State<AppState>,
    SignedInViewer(signed_in): SignedInViewer,
    query: Result<Query<ListQuery>, crate::http::ApiError>,
) -> PageResult {
    let Query(query) = query?;
    let status = query.status.filter(|s| !s.is_empty());
    let q = query.q.map(|q| q.trim().to_string()).filter(|q| !q.is_empty());
    let page = PageQuery { page: query.page, page_size: Some("25".into()) }.validate()?;
    if status.as_deref().is_some_and(|s| !STATUSES.contains(&s)) {
        return Err(Refusal::BadRequest("status".into()));
    }
    let list = find(&state, status.as_deref(), q.as_deref(), page).await?;
    let c = Chrome::new(&signed_in, "/ui/campaigns");
    Ok(render(&CampaignsPage { c, status: status.unwrap_or_default(), q: q.unwrap_or_default(), list }))
}

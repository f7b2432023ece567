//! The campaign editor's pages: `GET /ui/campaigns/new` and `GET /ui/campaigns/{id}`. For now a page that
//! shows the campaign as stored; the editor replaces it.

use askama::Template;
use axum::extract::State;
use chrono::Utc;

use super::{render, Chrome, PageResult};
use crate::admin::campaigns::{view, CampaignView};
use crate::db::campaigns;
use crate::http::session::{Refusal, SignedInEditor, SignedInViewer};
use crate::http::Path;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "ui/editor.html")]
struct EditorPage {
    c: Chrome,
    campaign: Option<CampaignView>,
    spec_json: String,
}

/// `GET /ui/campaigns/new`.
pub async fn new(SignedInEditor(signed_in): SignedInEditor) -> PageResult {
    let c = Chrome::new(&signed_in, "/ui/campaigns");
    Ok(render(&EditorPage { c, campaign: None, spec_json: String::new() }))
}

/// `GET /ui/campaigns/{id}`.
pub async fn show(
    State(state): State<AppState>,
    SignedInViewer(signed_in): SignedInViewer,
    Path(id): Path<i64>,
) -> PageResult {
    let row =
        campaigns::get(&state.db, id).await.map_err(crate::http::ApiError::from)?.ok_or(Refusal::NotFound)?;
    let campaign = view(row, Utc::now());
    let spec_json = serde_json::to_string_pretty(&campaign.spec).unwrap_or_default();
    let c = Chrome::new(&signed_in, "/ui/campaigns");
    Ok(render(&EditorPage { c, campaign: Some(campaign), spec_json }))
}

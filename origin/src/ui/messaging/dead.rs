//! `/ui/messaging/dead`: the dead letters, messages that failed for good (a permanent provider error, or
//! every attempt used), of all campaigns or one, with the provider's last error; requeue the ones ticked,
//! or all of a campaign's, through the admin API's own `db::messages::requeue` (fresh attempts, the
//! campaign back to `sending`, audited).

use askama::Template;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Form;
use popup_core::delivery::MessageStatus;
use serde::Deserialize;

use super::{tabs, Tab};
use crate::db::message_campaigns::{self, MessageCampaign};
use crate::db::messages::{self, MessageView};
use crate::http::page::{PageQuery, Paged};
use crate::http::session::{SignedInEditor, SignedInViewer};
use crate::http::{ApiError, Query};
use crate::state::AppState;
use crate::ui::{render, Chrome, PageResult};

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    page: Option<String>,
    campaign: Option<i64>,
    /// How many the last requeue put back, for the notice.
    requeued: Option<u64>,
}

#[derive(Template)]
#[template(path = "ui/messaging/dead.html")]
struct DeadPage {
    c: Chrome,
    tabs: Vec<Tab>,
    rows: Vec<MessageView>,
    list: Paged<()>,
    /// The campaign shown, when one is.
    campaign: Option<MessageCampaign>,
    notice: Option<String>,
}

impl DeadPage {
    fn page_link(&self, page: i64) -> String {
        match &self.campaign {
            Some(campaign) => format!("/ui/messaging/dead?campaign={}&page={page}", campaign.id),
            None => format!("/ui/messaging/dead?page={page}"),
        }
    }
}

/// `GET /ui/messaging/dead`.
pub async fn show(
    State(state): State<AppState>,
    SignedInViewer(signed_in): SignedInViewer,
    query: Result<Query<ListQuery>, ApiError>,
) -> PageResult {
    let Query(query) = query?;
    let page = PageQuery { page: query.page, page_size: Some("50".into()) }.validate()?;
    let campaign = match query.campaign {
        Some(id) => Some(
            message_campaigns::get(&state.db, id)
                .await
                .map_err(ApiError::from)?
                .ok_or(ApiError::NotFound("message campaign"))?,
        ),
        None => None,
    };
    let as_of = messages::newest_id(&state.db).await.map_err(ApiError::from)?;
    let failed = Some(MessageStatus::Failed.as_str());
    let (rows, total) =
        messages::list(&state.db, as_of, query.campaign, failed, page.page_size, page.offset())
            .await
            .map_err(ApiError::from)?;
    let c = Chrome::new(&signed_in, "/ui/messaging");
    let notice = query.requeued.map(|n| c.t1("dead.requeued", n));
    Ok(render(&DeadPage {
        tabs: tabs(&c, "/ui/messaging/dead"),
        c,
        rows,
        list: Paged::new(Vec::new(), page, total),
        campaign,
        notice,
    }))
}

/// `POST /ui/messaging/dead/requeue`: `id` fields (the ticked rows), or a `campaign` for all of its
/// dead letters. A form's repeated `id` fields arrive as pairs.
pub async fn requeue(
    State(state): State<AppState>,
    SignedInEditor(signed_in): SignedInEditor,
    Form(fields): Form<Vec<(String, String)>>,
) -> PageResult {
    let ids: Vec<i64> =
        fields.iter().filter(|(k, _)| k == "id").filter_map(|(_, v)| v.parse().ok()).collect();
    let campaign: Option<i64> =
        fields.iter().filter(|(k, _)| k == "campaign").find_map(|(_, v)| v.parse().ok());
    let requeued = match (ids.is_empty(), campaign) {
        (false, _) => messages::requeue(&state.db, &signed_in.person.actor(), Some(&ids), None)
            .await
            .map_err(ApiError::from)?,
        (true, Some(campaign)) => {
            messages::requeue(&state.db, &signed_in.person.actor(), None, Some(campaign))
                .await
                .map_err(ApiError::from)?
        }
        (true, None) => {
            let c = Chrome::new(&signed_in, "/ui/messaging");
            return Err(crate::http::session::Refusal::BadRequest(c.t("dead.none_chosen")));
        }
    };
    let mut location = format!("/ui/messaging/dead?requeued={}", requeued.messages);
    if let Some(campaign) = campaign {
        location.push_str(&format!("&campaign={campaign}"));
    }
    Ok((StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response())
}

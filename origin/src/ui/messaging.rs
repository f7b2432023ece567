//! `/ui/messaging`: SMS and WhatsApp campaigns with their delivery progress, a form to create one (the
//! template checked by the core's rules, through `messaging::campaigns::create_campaign`) and one to send
//! a campaign to a segment (`messaging::send::send_to`). Customer imports and dead letters stay on the
//! admin API for now.

use askama::Template;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Form;
use serde::Deserialize;

use super::{render, Chrome, PageResult};
use crate::db::message_campaigns::{self, MessageCampaign, Stats};
use crate::http::session::{SignedIn, SignedInEditor, SignedInViewer};
use crate::http::{ApiError, Path};
use crate::messaging::campaigns::{create_campaign, NewMessageCampaign};
use crate::messaging::send::{send_to, SendRequest};
use crate::state::AppState;

#[derive(Debug)]
pub struct Row {
    pub campaign: MessageCampaign,
    pub stats: Stats,
}

impl Row {
    /// Messages settled (sent or failed), in percent of all.
    pub fn done_percent(&self) -> i64 {
        if self.stats.total == 0 {
            0
        } else {
            100 * (self.stats.sent + self.stats.failed) / self.stats.total
        }
    }
}

#[derive(Template)]
#[template(path = "ui/messaging.html")]
struct MessagingPage {
    c: Chrome,
    rows: Vec<Row>,
    problem: Option<String>,
    notice: Option<String>,
}

async fn page(
    state: &AppState,
    signed_in: &SignedIn,
    notice: Option<String>,
    problem: Option<String>,
) -> Result<MessagingPage, ApiError> {
    let as_of = message_campaigns::newest_id(&state.db).await?;
    let (items, _) = message_campaigns::list(&state.db, as_of, None, None, 50, 0).await?;
    let ids: Vec<i64> = items.iter().map(|campaign| campaign.id).collect();
    let mut stats = message_campaigns::stats_of(&state.db, &ids).await?;
    let rows = items
        .into_iter()
        .map(|campaign| Row { stats: stats.remove(&campaign.id).unwrap_or_default(), campaign })
        .collect();
    Ok(MessagingPage { c: Chrome::new(signed_in, "/ui/messaging"), rows, problem, notice })
}

/// `GET /ui/messaging`.
pub async fn show(State(state): State<AppState>, SignedInViewer(signed_in): SignedInViewer) -> PageResult {
    Ok(render(&page(&state, &signed_in, None, None).await?))
}

fn problem_text(c: &Chrome, error: &ApiError) -> String {
    match error {
        ApiError::Invalid(fields) | ApiError::BadFields(fields) => {
            let fields: Vec<String> = fields.iter().map(|f| format!("{}: {}", f.field, f.message)).collect();
            c.t1("messaging.invalid", fields.join("; "))
        }
        ApiError::NotFound(what) => c.t1("messaging.not_found", what),
        ApiError::Conflict(message) => c.t1("messaging.conflict", message),
        _ => c.t("error.internal"),
    }
}

#[derive(Debug, Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    channel: String,
    #[serde(default)]
    base_template: String,
}

/// `POST /ui/messaging/campaigns`.
pub async fn create(
    State(state): State<AppState>,
    SignedInEditor(signed_in): SignedInEditor,
    Form(form): Form<CreateForm>,
) -> PageResult {
    let new = NewMessageCampaign {
        name: form.name,
        channel: form.channel,
        base_template: form.base_template,
        scheduled_at: None,
    };
    match create_campaign(&state, &signed_in.person.actor(), &new).await {
        Ok(_) => Ok((StatusCode::SEE_OTHER, [(header::LOCATION, "/ui/messaging")]).into_response()),
        Err(error @ (ApiError::Invalid(_) | ApiError::BadFields(_))) => {
            let c = Chrome::new(&signed_in, "/ui/messaging");
            let problem = Some(problem_text(&c, &error));
            let mut response = render(&page(&state, &signed_in, None, problem).await?);
            *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(response)
        }
        Err(other) => Err(other.into()),
    }
}

#[derive(Debug, Deserialize)]
pub struct SendForm {
    #[serde(default)]
    segment: String,
}

/// `POST /ui/messaging/campaigns/{id}/send`: to the customers of a segment.
pub async fn send(
    State(state): State<AppState>,
    SignedInEditor(signed_in): SignedInEditor,
    Path(id): Path<i64>,
    Form(form): Form<SendForm>,
) -> PageResult {
    let request = SendRequest { customer_ids: None, segment: Some(form.segment) };
    let c = Chrome::new(&signed_in, "/ui/messaging");
    let (status, notice, problem) = match send_to(&state, &signed_in.person.actor(), id, request).await {
        Ok(queued) => (StatusCode::OK, Some(c.t1("messaging.queued", queued.messages_queued)), None),
        Err(
            error @ (ApiError::Invalid(_)
            | ApiError::BadFields(_)
            | ApiError::NotFound(_)
            | ApiError::Conflict(_)),
        ) => (error.status(), None, Some(problem_text(&c, &error))),
        Err(other) => return Err(other.into()),
    };
    let mut response = render(&page(&state, &signed_in, notice, problem).await?);
    *response.status_mut() = status;
    Ok(response)
}

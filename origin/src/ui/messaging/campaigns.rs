//! `/ui/messaging`: message campaigns with their delivery progress (the table reloads itself every two
//! seconds while messages are in flight), a form to create one (the template checked by the core's rules,
//! through `messaging::campaigns::create_campaign`) with a sample rendered for a customer the marketer
//! names, and sending a campaign to a segment or to customer ids (`messaging::send::send_to`).

use askama::Template;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use popup_core::template::{Template as MessageTemplate, CUSTOMER_PLACEHOLDERS};
use serde::Deserialize;

use super::{problem_text, tabs, Tab};
use crate::db::customers::{self, CustomerView};
use crate::db::message_campaigns::{self, MessageCampaign, Stats};
use crate::http::session::{Refusal, SignedIn, SignedInEditor, SignedInViewer};
use crate::http::{ApiError, Path};
use crate::messaging::campaigns::{create_campaign, NewMessageCampaign};
use crate::messaging::send::{send_to, SendRequest, MAX_CUSTOMER_IDS};
use crate::state::AppState;
use crate::ui::{render, Chrome, PageResult};

/// Campaigns the page shows, newest first.
const SHOWN: i64 = 50;

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

    /// Whether messages wait for a worker or are with one: the page keeps the table fresh then.
    pub fn in_flight(&self) -> bool {
        self.stats.pending + self.stats.sending > 0
    }
}

/// The table of campaigns, alone or in the page.
#[derive(Template)]
#[template(path = "ui/messaging/campaigns_table.html")]
struct CampaignsTable {
    c: Chrome,
    rows: Vec<Row>,
}

impl CampaignsTable {
    fn in_flight(&self) -> bool {
        self.rows.iter().any(Row::in_flight)
    }
}

#[derive(Template)]
#[template(path = "ui/messaging/campaigns.html")]
struct CampaignsPage {
    c: Chrome,
    tabs: Vec<Tab>,
    table: CampaignsTable,
    form: CreateForm,
    problem: Option<String>,
    notice: Option<String>,
}

/// The layout of these pages, built once per request.
fn chrome(signed_in: &SignedIn) -> Chrome {
    Chrome::new(signed_in, "/ui/messaging")
}

async fn table(state: &AppState, c: Chrome) -> Result<CampaignsTable, ApiError> {
    let as_of = message_campaigns::newest_id(&state.db).await?;
    let (items, _) = message_campaigns::list(&state.db, as_of, None, None, SHOWN, 0).await?;
    let ids: Vec<i64> = items.iter().map(|c| c.id).collect();
    let mut stats = message_campaigns::stats_of(&state.db, &ids).await?;
    let rows = items
        .into_iter()
        .map(|campaign| Row { stats: stats.remove(&campaign.id).unwrap_or_default(), campaign })
        .collect();
    Ok(CampaignsTable { c, rows })
}

async fn page(
    state: &AppState,
    c: Chrome,
    form: CreateForm,
    notice: Option<String>,
    problem: Option<String>,
) -> Result<CampaignsPage, ApiError> {
    Ok(CampaignsPage {
        tabs: tabs(&c, "/ui/messaging"),
        table: table(state, c.clone()).await?,
        c,
        form,
        problem,
        notice,
    })
}

/// The page with `status`: a problem with what the person sent is shown on it; our own failures are an
/// error page.
async fn answer(
    state: &AppState,
    c: Chrome,
    form: CreateForm,
    outcome: Result<String, ApiError>,
) -> PageResult {
    let (status, notice, problem) = match outcome {
        Ok(notice) => (StatusCode::OK, Some(notice), None),
        Err(error) => match problem_text(&c, &error) {
            Some(problem) => (error.status(), None, Some(problem)),
            None => return Err(error.into()),
        },
    };
    let mut response = render(&page(state, c, form, notice, problem).await?);
    *response.status_mut() = status;
    Ok(response)
}

/// `GET /ui/messaging`.
pub async fn show(State(state): State<AppState>, SignedInViewer(signed_in): SignedInViewer) -> PageResult {
    Ok(render(&page(&state, chrome(&signed_in), CreateForm::default(), None, None).await?))
}

/// `GET /ui/messaging/table`: the campaigns table alone, which reloads itself while messages are in flight.
pub async fn show_table(
    State(state): State<AppState>,
    SignedInViewer(signed_in): SignedInViewer,
) -> PageResult {
    Ok(render(&table(&state, chrome(&signed_in)).await?))
}

/// The create form's fields, kept to fill the form again after a refusal.
#[derive(Debug, Default, Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    channel: String,
    #[serde(default)]
    base_template: String,
    /// Whom the sample is rendered for; not part of the campaign.
    #[serde(default)]
    sample_customer: String,
}

/// `POST /ui/messaging/campaigns`.
pub async fn create(
    State(state): State<AppState>,
    SignedInEditor(signed_in): SignedInEditor,
    Form(form): Form<CreateForm>,
) -> PageResult {
    let new = NewMessageCampaign {
        name: form.name.clone(),
        channel: form.channel.clone(),
        base_template: form.base_template.clone(),
        scheduled_at: None,
    };
    match create_campaign(&state, &signed_in.person.actor(), &new).await {
        Ok(_) => Ok((StatusCode::SEE_OTHER, [(header::LOCATION, "/ui/messaging")]).into_response()),
        Err(error) => answer(&state, chrome(&signed_in), form, Err(error)).await,
    }
}

#[derive(Debug, Deserialize)]
pub struct SendForm {
    /// `segment` or `customers`: what `recipients` names.
    #[serde(default)]
    to: String,
    #[serde(default)]
    recipients: String,
}

impl SendForm {
    fn request(self) -> Result<SendRequest, ApiError> {
        match self.to.as_str() {
            "segment" => Ok(SendRequest { customer_ids: None, segment: Some(self.recipients.trim().into()) }),
            "customers" => {
                Ok(SendRequest { customer_ids: Some(customer_ids(&self.recipients)?), segment: None })
            }
            _ => Err(ApiError::field("to", "choose a segment or customer ids")),
        }
    }
}

/// Customer ids separated by commas, spaces or new lines.
fn customer_ids(text: &str) -> Result<Vec<i64>, ApiError> {
    let words: Vec<&str> =
        text.split(|c: char| c == ',' || c == ';' || c.is_whitespace()).filter(|w| !w.is_empty()).collect();
    if words.len() > MAX_CUSTOMER_IDS {
        return Err(ApiError::field("customer_ids", format!("at most {MAX_CUSTOMER_IDS} per send")));
    }
    let bad: Vec<&str> =
        words.iter().copied().filter(|w| w.parse::<i64>().map_or(true, |id| id < 1)).take(5).collect();
    if !bad.is_empty() {
        return Err(ApiError::field("customer_ids", format!("not customer ids: {}", bad.join(", "))));
    }
    Ok(words.iter().filter_map(|w| w.parse().ok()).collect())
}

/// `POST /ui/messaging/campaigns/{id}/send`: to the customers of a segment, or to customer ids.
pub async fn send(
    State(state): State<AppState>,
    SignedInEditor(signed_in): SignedInEditor,
    Path(id): Path<i64>,
    Form(form): Form<SendForm>,
) -> PageResult {
    let c = chrome(&signed_in);
    let outcome = match form.request() {
        Ok(request) => send_to(&state, &signed_in.person.actor(), id, request)
            .await
            .map(|queued| c.t1("messaging.queued", queued.messages_queued)),
        Err(error) => Err(error),
    };
    answer(&state, c, CreateForm::default(), outcome).await
}

/// The sample under the template field.
#[derive(Template)]
#[template(path = "ui/messaging/sample.html")]
struct SampleFragment {
    c: Chrome,
    sample: Sample,
}

enum Sample {
    /// Nothing typed yet.
    Nothing,
    /// The template breaks a rule.
    Invalid(String),
    /// No customer has that id, bank id or phone.
    UnknownCustomer(String),
    /// Rendered, for a customer or (none named) with every fallback.
    Rendered { text: String, customer: Option<CustomerView> },
}

/// `POST /ui/messaging/sample`: the template rendered for the customer the form names (a POST so that a
/// customer's phone never lands in a URL, and so in no access log).
pub async fn sample(
    State(state): State<AppState>,
    SignedInViewer(signed_in): SignedInViewer,
    Form(form): Form<CreateForm>,
) -> Result<Response, Refusal> {
    let c = chrome(&signed_in);
    let sample = if form.base_template.trim().is_empty() {
        Sample::Nothing
    } else {
        match MessageTemplate::parse(&form.base_template, CUSTOMER_PLACEHOLDERS) {
            Err(error) => Sample::Invalid(error.to_string()),
            Ok(template) => {
                let key = form.sample_customer.trim();
                if key.is_empty() {
                    Sample::Rendered { text: template.render(|_| None), customer: None }
                } else {
                    match customers::find(&state.db, key).await.map_err(ApiError::from)? {
                        None => Sample::UnknownCustomer(key.to_string()),
                        Some(customer) => Sample::Rendered {
                            text: template.render(|name| customer.field(name)),
                            customer: Some(customer),
                        },
                    }
                }
            }
        }
    };
    Ok(render(&SampleFragment { c, sample }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_ids_are_read_from_any_separator_and_bad_words_are_named() {
        assert_eq!(customer_ids("1, 2;3\n4  5").unwrap(), vec![1, 2, 3, 4, 5]);
        let Err(ApiError::Invalid(fields)) = customer_ids("1, x, 0, -3") else { panic!("accepted") };
        assert_eq!(fields[0].field, "customer_ids");
        assert_eq!(fields[0].message, "not customer ids: x, 0, -3");
        assert!(customer_ids("").unwrap().is_empty(), "empty is the send's own error");
    }
}

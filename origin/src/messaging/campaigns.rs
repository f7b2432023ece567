//! `/admin/v1/message-campaigns`: create (with the template checked), list with filters, detail with
//! stats, and a campaign's messages.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use popup_core::campaign::FieldError;
use popup_core::delivery::{MessageCampaignStatus, MessageStatus};
use popup_core::template::{Template, CUSTOMER_PLACEHOLDERS};
use serde::{Deserialize, Serialize};

use crate::db::message_campaigns::{self, Channel, MessageCampaign, NewCampaign, Stats};
use crate::db::messages::{self, MessageView};
use crate::http::page::{PageQuery, Paged};
use crate::http::{ApiError, Editor, JsonBody, Path, Query, Viewer};
use crate::state::AppState;
use popup_core::wire::ErrorResponse;

const MAX_NAME_CHARS: usize = 200;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMessageCampaign {
    pub name: String,
    /// Read as text so a wrong value is a field error like the others, not a body error.
    pub channel: String,
    pub base_template: String,
    #[serde(default)]
    pub scheduled_at: Option<DateTime<Utc>>,
}

impl NewMessageCampaign {
    /// Every problem, in field order. The template is parsed with the core's rules, so what is accepted here
    /// renders the same everywhere.
    fn check(&self, now: DateTime<Utc>) -> Result<Channel, ApiError> {
        let mut errors = Vec::new();
        let mut add = |field: &str, message: String| errors.push(FieldError::new(field, message));
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            add("name", format!("must be 1 to {MAX_NAME_CHARS} characters"));
        }
        let channel = Channel::parse(&self.channel);
        if channel.is_none() {
            add("channel", "must be sms or whatsapp".into());
        }
        if let Err(error) = Template::parse(&self.base_template, CUSTOMER_PLACEHOLDERS) {
            add(
                "base_template",
                format!("{error}; the placeholders are {}", CUSTOMER_PLACEHOLDERS.join(", ")),
            );
        }
        if self.scheduled_at.is_some_and(|at| at <= now) {
            add("scheduled_at", "must be in the future".into());
        }
        match channel {
            Some(channel) if errors.is_empty() => Ok(channel),
            _ => Err(ApiError::Invalid(errors)),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CampaignDetail {
    #[serde(flatten)]
    pub campaign: MessageCampaign,
    pub stats: Stats,
}

#[utoipa::path(
    post,
    path = "/message-campaigns",
    tag = "message-campaigns",
    security(("api_key" = [])),
    request_body = NewMessageCampaign,
    responses(
        (status = 201, body = MessageCampaign),
        (status = 422, description = "A field breaks a rule (the template's placeholders, a past `scheduled_at`), or the body does not parse.", body = ErrorResponse),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Editor(actor): Editor,
    JsonBody(new): JsonBody<NewMessageCampaign>,
) -> Result<(StatusCode, Json<MessageCampaign>), ApiError> {
    Ok((StatusCode::CREATED, Json(create_campaign(&state, &actor, &new).await?)))
}

/// Checks and creates a message campaign as `actor`: for this API and the dashboard.
pub async fn create_campaign(
    state: &AppState,
    actor: &crate::db::audit::Actor,
    new: &NewMessageCampaign,
) -> Result<MessageCampaign, ApiError> {
    let channel = new.check(Utc::now())?;
    let new = NewCampaign {
        name: new.name.trim(),
        channel,
        base_template: &new.base_template,
        scheduled_at: new.scheduled_at,
    };
    Ok(message_campaigns::create(&state.db, actor, &new).await?)
}

/// Campaign `id`, or 404.
async fn load(state: &AppState, id: i64) -> Result<MessageCampaign, ApiError> {
    message_campaigns::get(&state.db, id).await?.ok_or(ApiError::NotFound("message campaign"))
}

#[utoipa::path(
    get,
    path = "/message-campaigns/{id}",
    tag = "message-campaigns",
    security(("api_key" = [])),
    params(("id" = i64, Path)),
    responses(
        (status = 200, body = CampaignDetail),
        (status = 404, description = "No such message campaign.", body = ErrorResponse),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    _: Viewer,
    Path(id): Path<i64>,
) -> Result<Json<CampaignDetail>, ApiError> {
    let campaign = load(&state, id).await?;
    let stats = message_campaigns::stats(&state.db, id).await?;
    Ok(Json(CampaignDetail { campaign, stats }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListFilter {
    #[param(pattern = "^(draft|scheduled|sending|sent|failed)$")]
    status: Option<String>,
    #[param(pattern = "^(sms|whatsapp)$")]
    channel: Option<String>,
    // Not flattened: serde's flatten reads query values as strings only.
    /// The page, from 1 (the default); below 1 is 1. At most 1000000; more, or not a whole number, is 400.
    #[param(value_type = Option<i64>, maximum = 1000000)]
    page: Option<String>,
    /// Rows per page, 20 by default; above 100 is 100, below 1 is the default. Not a whole number is 400.
    #[param(value_type = Option<i64>)]
    page_size: Option<String>,
    /// The `pagination.as_of` of the first page: pages through the same rows while new ones are inserted.
    #[param(minimum = 0)]
    as_of: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/message-campaigns",
    tag = "message-campaigns",
    summary = "Message campaigns, newest first",
    security(("api_key" = [])),
    params(ListFilter),
    responses((status = 200, body = Paged<MessageCampaign>))
)]
pub async fn list(
    State(state): State<AppState>,
    _: Viewer,
    Query(filter): Query<ListFilter>,
) -> Result<Json<Paged<MessageCampaign>>, ApiError> {
    let page = PageQuery { page: filter.page, page_size: filter.page_size }.validate()?;
    if filter.status.as_deref().is_some_and(|s| MessageCampaignStatus::parse(s).is_none()) {
        let statuses = MessageCampaignStatus::ALL.map(MessageCampaignStatus::as_str);
        return Err(ApiError::bad_field("status", format!("must be one of {}", statuses.join(", "))));
    }
    if filter.channel.as_deref().is_some_and(|c| Channel::parse(c).is_none()) {
        return Err(ApiError::bad_field("channel", "must be sms or whatsapp"));
    }
    let as_of = crate::http::page::as_of(filter.as_of, || message_campaigns::newest_id(&state.db)).await?;
    let (items, total) = message_campaigns::list(
        &state.db,
        as_of,
        filter.status.as_deref(),
        filter.channel.as_deref(),
        page.page_size,
        page.offset(),
    )
    .await?;
    Ok(Json(Paged::new(items, page, total).as_of(as_of)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MessageFilter {
    #[param(pattern = "^(pending|sending|sent|failed)$")]
    status: Option<String>,
    /// The page, from 1 (the default); below 1 is 1. At most 1000000; more, or not a whole number, is 400.
    #[param(value_type = Option<i64>, maximum = 1000000)]
    page: Option<String>,
    /// Rows per page, 20 by default; above 100 is 100, below 1 is the default. Not a whole number is 400.
    #[param(value_type = Option<i64>)]
    page_size: Option<String>,
    /// The `pagination.as_of` of the first page: pages through the same rows while new ones are inserted.
    #[param(minimum = 0)]
    as_of: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/message-campaigns/{id}/messages",
    tag = "message-campaigns",
    summary = "A campaign's messages, newest first",
    security(("api_key" = [])),
    params(("id" = i64, Path), MessageFilter),
    responses(
        (status = 200, body = Paged<MessageView>),
        (status = 404, description = "No such message campaign.", body = ErrorResponse),
    )
)]
/// `GET /admin/v1/message-campaigns/{id}/messages?status=failed`.
pub async fn messages(
    State(state): State<AppState>,
    _: Viewer,
    Path(id): Path<i64>,
    Query(filter): Query<MessageFilter>,
) -> Result<Json<Paged<MessageView>>, ApiError> {
    let page = PageQuery { page: filter.page, page_size: filter.page_size }.validate()?;
    if filter.status.as_deref().is_some_and(|s| MessageStatus::parse(s).is_none()) {
        return Err(ApiError::bad_field("status", "must be pending, sending, sent or failed"));
    }
    load(&state, id).await?;
    let as_of = crate::http::page::as_of(filter.as_of, || messages::newest_id(&state.db)).await?;
    let (items, total) =
        messages::list(&state.db, as_of, Some(id), filter.status.as_deref(), page.page_size, page.offset())
            .await?;
    Ok(Json(Paged::new(items, page, total).as_of(as_of)))
}

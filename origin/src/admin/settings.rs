//! `/admin/v1/settings`: the rules that span campaigns. Today one: the most popups a customer sees per day,
//! all campaigns together.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::db::audit::Actor;
use crate::db::settings;
use crate::http::{ApiError, Editor, JsonBody, Viewer};
use crate::projection;
use crate::state::AppState;
use popup_core::wire::ErrorResponse;

/// The highest daily cap accepted: more popups a day than anyone sees is no cap, and a typo like 10000
/// should be caught rather than stored.
pub const MAX_DAILY_CAP: u32 = 100;

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Popups per customer per day across campaigns; `null` for no cap.
    pub max_popups_per_day: Option<u32>,
}

#[utoipa::path(get, path = "/settings", tag = "settings", security(("api_key" = [])), responses((status = 200, body = Settings)))]
pub async fn get(State(state): State<AppState>, _: Viewer) -> Result<Json<Settings>, ApiError> {
    Ok(Json(Settings { max_popups_per_day: settings::max_popups_per_day(&state.db).await? }))
}

/// `PUT /admin/v1/settings`: replaces the settings; audited; resolvers apply them from their next request.
#[utoipa::path(
    put,
    path = "/settings",
    tag = "settings",
    security(("api_key" = [])),
    request_body = Settings,
    responses(
        (status = 200, body = Settings),
        (status = 422, description = "A cap out of 1 to 100, or a body that does not parse.", body = ErrorResponse),
    )
)]
pub async fn put(
    State(state): State<AppState>,
    Editor(actor): Editor,
    JsonBody(new): JsonBody<Settings>,
) -> Result<Json<Settings>, ApiError> {
    apply(&state, &actor, &new).await?;
    Ok(Json(new))
}

/// Validates and stores `new` as `actor`, audited, and publishes it: for this API and the dashboard.
pub async fn apply(state: &AppState, actor: &Actor, new: &Settings) -> Result<(), ApiError> {
    if new.max_popups_per_day.is_some_and(|n| !(1..=MAX_DAILY_CAP).contains(&n)) {
        let message = format!("must be between 1 and {MAX_DAILY_CAP}, or null for no cap");
        return Err(ApiError::field("max_popups_per_day", message));
    }
    settings::set_max_popups_per_day(&state.db, actor, new.max_popups_per_day).await?;
    projection::publish_after_write(state).await;
    Ok(())
}

//! Campaign analytics from the ingested events: per variant and per day (days in the deployment's offset,
//! like daily caps), and per variant over the whole range.

use axum::extract::State;
use axum::Json;
use chrono::{NaiveDate, Utc};
use popup_core::ids::Timestamp;
use serde::{Deserialize, Serialize};

use crate::db::campaigns;
use crate::db::events::{self, CountsRow};
use crate::http::{ApiError, Path, Query, Viewer};
use crate::state::AppState;
use popup_core::wire::ErrorResponse;

/// The longest range one request may ask for.
const MAX_DAYS: i64 = 366;
/// How far outside a campaign's life (its creation; its end or deletion) a popup's serving time may be.
const SERVED_MARGIN_SECONDS: i64 = 2 * 86_400;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// First day, `YYYY-MM-DD`; defaults to six days before `to`.
    #[param(format = Date)]
    from: Option<String>,
    /// Last day, included; defaults to today. At most 366 days after `from`.
    #[param(format = Date)]
    to: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CampaignStats {
    pub campaign_id: i64,
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// One row per day and variant that had any event, in day then variant order.
    pub days: Vec<DayStats>,
    /// One row per variant over the whole range; unique users are counted once across days.
    pub variants: Vec<VariantStats>,
}

#[derive(Debug, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Counts {
    pub impressions: i64,
    /// Distinct customers with an impression.
    pub unique_users: i64,
    pub clicks: i64,
    pub dismissals: i64,
    pub conversions: i64,
    /// Distinct customers with a conversion.
    pub converted_users: i64,
    /// Distinct customers held out by this (control) variant: the baseline a variant's lift is read against.
    pub holdouts: i64,
    /// Clicks per impression; absent without impressions.
    pub click_through_rate: Option<f64>,
    /// Converted customers per customer exposed: those with an impression, or for a control variant those
    /// held out. A variant's lift is its rate over the control's. Absent without exposures.
    pub conversion_rate: Option<f64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DayStats {
    pub day: NaiveDate,
    pub variant: String,
    #[serde(flatten)]
    pub counts: Counts,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VariantStats {
    pub variant: String,
    #[serde(flatten)]
    pub counts: Counts,
}

#[utoipa::path(
    get,
    path = "/campaigns/{id}/stats",
    tag = "stats",
    summary = "Impressions, clicks, dismissals, conversions and holdouts per day and variant",
    security(("api_key" = [])),
    params(("id" = i64, Path), StatsQuery),
    responses(
        (status = 200, body = CampaignStats),
        (status = 404, description = "No such campaign.", body = ErrorResponse),
    )
)]
/// `GET /admin/v1/campaigns/{id}/stats?from=YYYY-MM-DD&to=YYYY-MM-DD`
pub async fn campaign(
    State(state): State<AppState>,
    _: Viewer,
    Path(id): Path<i64>,
    Query(query): Query<StatsQuery>,
) -> Result<Json<CampaignStats>, ApiError> {
    Ok(Json(of_campaign(&state, id, query.from.as_deref(), query.to.as_deref()).await?))
}

/// The stats of campaign `id` from day `from` to day `to` (`YYYY-MM-DD`, the last 7 days by default):
/// for this API and the dashboard.
pub async fn of_campaign(
    state: &AppState,
    id: i64,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<CampaignStats, ApiError> {
    let query = StatsQuery { from: from.map(String::from), to: to.map(String::from) };
    let day_offset = -state.keys.day_start(0).seconds();
    let today = state.keys.day(Timestamp(Utc::now().timestamp()));
    let to = match &query.to {
        Some(raw) => parse_day(raw, "to")?,
        None => today,
    };
    let from = match &query.from {
        Some(raw) => parse_day(raw, "from")?,
        None => to - 6,
    };
    if from > to {
        return Err(ApiError::bad_field("from", "must not be after `to`"));
    }
    if to - from >= MAX_DAYS {
        return Err(ApiError::bad_field("to", format!("the range may span at most {MAX_DAYS} days")));
    }
    let (created, last_changed) =
        campaigns::served_span(&state.db, id).await?.ok_or(ApiError::NotFound("campaign"))?;
    let start = state.keys.day_start(from);
    let end = state.keys.day_start(to + 1);
    // An event comes at most a token lifetime after its popup was served, and a popup is served only while
    // its campaign exists and is not ended or deleted. The margin covers resolvers' clocks and catalogs a
    // moment behind.
    let earliest_served =
        start.plus(-state.tokens.ttl_seconds).max(Timestamp(created.timestamp() - SERVED_MARGIN_SECONDS));
    let latest_served = match last_changed {
        Some(at) => end.min(Timestamp(at.timestamp() + SERVED_MARGIN_SECONDS)),
        None => end,
    };
    let served = (earliest_served, latest_served.max(earliest_served));
    let rows = events::campaign_counts(&state.db, id, (start, end), served, day_offset).await?;
    let (mut days, mut variants) = (Vec::new(), Vec::new());
    for row in &rows {
        match row.0 {
            Some(day) => days.push(DayStats { day: date(day), variant: row.1.clone(), counts: counts(row) }),
            None => variants.push(VariantStats { variant: row.1.clone(), counts: counts(row) }),
        }
    }
    Ok(CampaignStats { campaign_id: id, from: date(from), to: date(to), days, variants })
}

fn counts(row: &CountsRow) -> Counts {
    let &(_, _, impressions, unique_users, clicks, dismissals, conversions, converted_users, holdouts) = row;
    let rate = |n: i64, d: i64| (d > 0).then(|| n as f64 / d as f64);
    Counts {
        impressions,
        unique_users,
        clicks,
        dismissals,
        conversions,
        converted_users,
        holdouts,
        click_through_rate: rate(clicks, impressions),
        // A row is a shown variant or a control: one of the two counts is zero.
        conversion_rate: rate(converted_users, unique_users + holdouts),
    }
}

fn parse_day(raw: &str, field: &str) -> Result<i64, ApiError> {
    let date = NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .map_err(|_| ApiError::bad_field(field, "must be a date like 2026-12-01"))?;
    Ok((date - NaiveDate::default()).num_days())
}

fn date(day: i64) -> NaiveDate {
    NaiveDate::default() + chrono::Days::new(day.max(0) as u64)
}

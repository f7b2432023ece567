//! Campaign analytics from the ingested events: per variant and per day (days in the deployment's offset,
//! like daily caps), and per variant over the whole range.

use std::collections::{BTreeMap, HashMap};

use axum::extract::State;
use axum::Json;
use chrono::{NaiveDate, Utc};
use popup_core::ids::Timestamp;
use popup_core::reach::Reach;
use serde::{Deserialize, Serialize};

use crate::db::campaigns;
use crate::db::events::{self, DayCounts, DayReach};
use crate::http::{ApiError, Path, Query, Viewer};
use crate::state::AppState;
use popup_core::wire::ErrorResponse;

/// The longest range one request may ask for.
const MAX_DAYS: i64 = 366;

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
    /// One row per variant over the whole range; customers are counted once across days.
    pub variants: Vec<VariantStats>,
}

#[derive(Debug, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Counts {
    pub impressions: i64,
    /// Distinct customers with an impression. Exact up to 512 a day; beyond, an estimate whose typical
    /// error is 1.6 % (a HyperLogLog sketch, see `popup_core::reach`). The same holds for the other
    /// counts of customers.
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
    if !campaigns::exists(&state.db, id).await? {
        return Err(ApiError::NotFound("campaign"));
    }
    let days = events::campaign_days(&state.db, id, from..=to).await?;
    let reach = events::campaign_reach(&state.db, id, from..=to).await?;
    let (days, variants) = assemble(&days, reach);
    Ok(CampaignStats { campaign_id: id, from: date(from), to: date(to), days, variants })
}

/// A variant's (or a day's) sums and customers, before they are shown.
#[derive(Default)]
struct Tally {
    impressions: i64,
    clicks: i64,
    dismissals: i64,
    conversions: i64,
    holdout_events: i64,
    /// Customers with an impression, with a conversion, held out.
    reach: [Reach; 3],
}

const REACH_KINDS: [&str; 3] = ["impression", "conversion", "holdout"];

impl Tally {
    fn add(&mut self, &(_, _, impressions, clicks, dismissals, conversions, holdout_events): &DayCounts) {
        self.impressions += impressions;
        self.clicks += clicks;
        self.dismissals += dismissals;
        self.conversions += conversions;
        self.holdout_events += holdout_events;
    }

    fn counts(&self) -> Counts {
        // An estimate never shows more customers than events.
        let customers = |kind: usize, events: i64| self.reach[kind].count(events.max(0) as u64) as i64;
        let unique_users = customers(0, self.impressions);
        let converted_users = customers(1, self.conversions);
        let holdouts = customers(2, self.holdout_events);
        let rate = |n: i64, d: i64| (d > 0).then(|| n as f64 / d as f64);
        Counts {
            impressions: self.impressions,
            unique_users,
            clicks: self.clicks,
            dismissals: self.dismissals,
            conversions: self.conversions,
            converted_users,
            holdouts,
            click_through_rate: rate(self.clicks, self.impressions),
            // A row is a shown variant or a control: one of the two counts is zero.
            conversion_rate: rate(converted_users, unique_users + holdouts),
        }
    }
}

/// The rows per day and variant, in the counts' order, and per variant over the range, in variant order.
fn assemble(days: &[DayCounts], reach: Vec<DayReach>) -> (Vec<DayStats>, Vec<VariantStats>) {
    let mut reach_of: HashMap<(i64, String, String), Reach> =
        reach.into_iter().map(|row| ((row.day, row.variant, row.kind), row.reach)).collect();
    let mut totals: BTreeMap<&str, Tally> = BTreeMap::new();
    let mut rows = Vec::with_capacity(days.len());
    for counts in days {
        let (day, variant) = (counts.0, counts.1.as_str());
        let mut tally = Tally::default();
        tally.add(counts);
        let total = totals.entry(variant).or_default();
        total.add(counts);
        for (kind, name) in REACH_KINDS.iter().enumerate() {
            if let Some(customers) = reach_of.remove(&(day, variant.to_owned(), (*name).to_owned())) {
                total.reach[kind].merge(&customers);
                tally.reach[kind] = customers;
            }
        }
        rows.push(DayStats { day: date(day), variant: variant.to_owned(), counts: tally.counts() });
    }
    let variants = totals
        .into_iter()
        .map(|(variant, tally)| VariantStats { variant: variant.to_owned(), counts: tally.counts() })
        .collect();
    (rows, variants)
}

fn parse_day(raw: &str, field: &str) -> Result<i64, ApiError> {
    let date = NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .map_err(|_| ApiError::bad_field(field, "must be a date like 2026-12-01"))?;
    Ok((date - NaiveDate::default()).num_days())
}

fn date(day: i64) -> NaiveDate {
    NaiveDate::default() + chrono::Days::new(day.max(0) as u64)
}

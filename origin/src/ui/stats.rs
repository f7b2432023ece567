//! `GET /ui/stats`: one campaign's numbers per day and variant (the control included) over a chosen range,
//! as a uPlot chart of the chosen measure and, beside it, the tables the chart is drawn from (which is
//! what a reader without JavaScript gets). The numbers are the admin API's (`admin::stats::of_campaign`).

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::State;
use serde::Deserialize;
use serde_json::json;

use super::{render, Chrome, PageResult};
use crate::admin::campaigns::{find, CampaignView};
use crate::admin::stats::{of_campaign, CampaignStats, Counts};
use crate::http::page::PageQuery;
use crate::http::session::SignedInViewer;
use crate::http::{ApiError, Query};
use crate::state::AppState;

/// The measures the chart can draw: (name, catalog key).
pub const METRICS: [&str; 5] =
    ["impressions", "unique_users", "click_through_rate", "conversion_rate", "holdouts"];

#[derive(Debug, Default, Deserialize)]
pub struct StatsQuery {
    campaign: Option<String>,
    from: Option<String>,
    to: Option<String>,
    metric: Option<String>,
}

#[derive(Template)]
#[template(path = "ui/stats.html")]
struct StatsPage {
    c: Chrome,
    campaigns: Vec<CampaignView>,
    selected: Option<i64>,
    metric: String,
    stats: Option<CampaignStats>,
    chart: String,
    problem: Option<String>,
}

impl StatsPage {
    fn metrics(&self) -> &'static [&'static str] {
        &METRICS
    }

    fn is_selected(&self, id: &i64) -> bool {
        self.selected == Some(*id)
    }
}

/// A rate as a percentage with one decimal, or a dash.
pub fn percent(rate: &Option<f64>) -> String {
    rate.map_or_else(|| "–".into(), |r| format!("{:.1}%", r * 100.0))
}

fn value(counts: &Counts, metric: &str) -> Option<f64> {
    match metric {
        "unique_users" => Some(counts.unique_users as f64),
        "click_through_rate" => counts.click_through_rate.map(|r| r * 100.0),
        "conversion_rate" => counts.conversion_rate.map(|r| r * 100.0),
        "holdouts" => Some(counts.holdouts as f64),
        _ => Some(counts.impressions as f64),
    }
}

/// The chart's data for stats.js: every day of the range on the x axis (seconds), a series per variant.
fn chart(stats: &CampaignStats, metric: &str) -> String {
    let days: Vec<chrono::NaiveDate> = stats.from.iter_days().take_while(|d| *d <= stats.to).collect();
    let mut series: BTreeMap<&str, Vec<Option<f64>>> = BTreeMap::new();
    // A day without events counted nothing (0); a rate without events is unknown (a gap).
    let empty = if metric.ends_with("_rate") { None } else { Some(0.0) };
    for variant in &stats.variants {
        series.insert(&variant.variant, vec![empty; days.len()]);
    }
    for row in &stats.days {
        if let (Some(values), Some(at)) =
            (series.get_mut(row.variant.as_str()), days.iter().position(|d| *d == row.day))
        {
            values[at] = value(&row.counts, metric);
        }
    }
    let x: Vec<i64> =
        days.iter().map(|d| d.and_hms_opt(0, 0, 0).map_or(0, |t| t.and_utc().timestamp())).collect();
    let series: Vec<_> =
        series.into_iter().map(|(label, values)| json!({"label": label, "values": values})).collect();
    json!({"x": x, "series": series, "metric": metric}).to_string()
}

pub async fn page(
    State(state): State<AppState>,
    SignedInViewer(signed_in): SignedInViewer,
    query: Result<Query<StatsQuery>, ApiError>,
) -> PageResult {
    let Query(query) = query?;
    let c = Chrome::new(&signed_in, "/ui/stats");
    let page = PageQuery { page: None, page_size: Some("100".into()) }.validate()?;
    let campaigns = find(&state, None, None, page).await?.data;
    let metric =
        query.metric.filter(|m| METRICS.contains(&m.as_str())).unwrap_or_else(|| "impressions".into());
    let selected = query.campaign.as_deref().filter(|c| !c.is_empty()).and_then(|c| c.parse::<i64>().ok());
    let mut stats_page =
        StatsPage { c, campaigns, selected, metric, stats: None, chart: String::new(), problem: None };
    if let Some(id) = selected {
        let from = query.from.as_deref().filter(|s| !s.is_empty());
        let to = query.to.as_deref().filter(|s| !s.is_empty());
        match of_campaign(&state, id, from, to).await {
            Ok(stats) => {
                stats_page.chart = chart(&stats, &stats_page.metric);
                stats_page.stats = Some(stats);
            }
            Err(ApiError::BadFields(fields)) => {
                let fields: Vec<String> =
                    fields.iter().map(|f| format!("{}: {}", f.field, f.message)).collect();
                stats_page.problem = Some(stats_page.c.t1("stats.bad_range", fields.join("; ")));
            }
            Err(other) => return Err(other.into()),
        }
    }
    Ok(render(&stats_page))
}

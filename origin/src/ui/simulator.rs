//! `GET /ui/simulator`: a customer id, a time (now by default) and a device context give the popup the
//! customer would see, and for every other campaign why not, in words a marketer reads. It is the admin
//! preview (`admin::preview::explain_with`), built from Postgres as of that time, with every skip reason of
//! the core (`popup_core::resolve::Skip`) translated.

use askama::Template;
use axum::extract::State;
use chrono::{NaiveDateTime, Utc};
use popup_core::resolve::Skip;
use serde::Deserialize;

use super::{render, Chrome, PageResult};
use crate::admin::preview::explain_with;
use crate::db::campaigns;
use crate::http::session::SignedInViewer;
use crate::http::{ApiError, Query};
use crate::state::AppState;
use popup_core::campaign::Creative;

#[derive(Debug, Default, Deserialize)]
pub struct SimulatorQuery {
    #[serde(default)]
    pub user_id: String,
    /// `YYYY-MM-DDTHH:MM` in UTC, as a `datetime-local` field sends it; empty: now.
    #[serde(default)]
    pub at: String,
    #[serde(default)]
    pub placement: String,
    #[serde(default)]
    pub platform: String,
    #[serde(default)]
    pub app_version: String,
    #[serde(default)]
    pub locale: String,
    #[serde(default)]
    pub country: String,
}

/// What the customer would see.
#[derive(Debug)]
pub struct Shown {
    pub campaign_id: i64,
    pub name: String,
    pub variant: String,
    pub creative: Option<Creative>,
}

/// A campaign not shown, and why, in words.
#[derive(Debug)]
pub struct NotShown {
    pub campaign_id: i64,
    pub name: String,
    pub reason: String,
    pub code: &'static str,
}

#[derive(Template)]
#[template(path = "ui/simulator.html")]
struct SimulatorPage {
    c: Chrome,
    q: SimulatorQuery,
    at_shown: String,
    ran: bool,
    shown: Option<Shown>,
    others: Vec<NotShown>,
    problem: Option<String>,
}

impl SimulatorPage {
    fn platforms(&self) -> &'static [&'static str] {
        &["ios", "android", "web"]
    }
}

/// The catalog key of a skip reason's words.
pub fn reason_key(skip: Skip) -> String {
    match skip {
        Skip::RuleMismatch(rule) => format!("reason.rule_mismatch.{}", rule.as_str()),
        other => format!("reason.{}", other.code()),
    }
}

pub async fn page(
    State(state): State<AppState>,
    SignedInViewer(signed_in): SignedInViewer,
    query: Result<Query<SimulatorQuery>, ApiError>,
) -> PageResult {
    let Query(q) = query?;
    let c = Chrome::new(&signed_in, "/ui/simulator");
    let now = Utc::now().format("%Y-%m-%dT%H:%M").to_string();
    let mut page = SimulatorPage {
        at_shown: now,
        ran: false,
        shown: None,
        others: Vec::new(),
        problem: None,
        c,
        q: SimulatorQuery::default(),
    };
    if q.user_id.trim().is_empty() {
        page.q = q;
        return Ok(render(&page));
    }
    let mut pairs = vec![("user_id".to_string(), q.user_id.trim().to_string())];
    if !q.at.is_empty() {
        match NaiveDateTime::parse_from_str(&q.at, "%Y-%m-%dT%H:%M") {
            Ok(at) => {
                pairs.push(("at".into(), at.and_utc().to_rfc3339()));
                page.at_shown = q.at.clone();
            }
            Err(_) => page.problem = Some(page.c.t("simulator.bad_time")),
        }
    }
    for (name, value) in [
        ("placement", &q.placement),
        ("platform", &q.platform),
        ("app_version", &q.app_version),
        ("locale", &q.locale),
        ("country", &q.country),
    ] {
        if !value.trim().is_empty() {
            pairs.push((name.to_string(), value.trim().to_string()));
        }
    }
    if page.problem.is_none() {
        match explain_with(&state, pairs, None).await {
            Ok(explanation) => {
                page.ran = true;
                let mut ids: Vec<i64> = explanation.skipped.iter().map(|s| s.campaign_id.0 as i64).collect();
                if let Some(chosen) = &explanation.chosen {
                    ids.push(chosen.campaign_id.0 as i64);
                }
                let names = campaigns::names(&state.db, &ids).await.map_err(ApiError::from)?;
                if let Some(chosen) = explanation.chosen {
                    let id = chosen.campaign_id.0 as i64;
                    let spec = campaigns::spec(&state.db, id).await.map_err(ApiError::from)?;
                    let creative = spec.map(|spec| {
                        spec.variants
                            .iter()
                            .find(|v| v.key == chosen.variant)
                            .and_then(|v| v.creative.clone())
                            .unwrap_or(spec.creative)
                    });
                    page.shown =
                        Some(Shown { campaign_id: id, name: chosen.name, variant: chosen.variant, creative });
                }
                page.others = explanation
                    .skipped
                    .iter()
                    .map(|skipped| {
                        let id = skipped.campaign_id.0 as i64;
                        NotShown {
                            campaign_id: id,
                            name: names.get(&id).cloned().unwrap_or_else(|| format!("#{id}")),
                            reason: page.c.t(&reason_key(skipped.reason)),
                            code: skipped.reason.code(),
                        }
                    })
                    .collect();
            }
            Err(ApiError::BadFields(fields)) => {
                let names: Vec<String> =
                    fields.iter().map(|f| format!("{}: {}", f.field, f.message)).collect();
                page.problem = Some(page.c.t1("simulator.bad_input", names.join("; ")));
            }
            Err(other) => return Err(other.into()),
        }
    }
    page.q = q;
    Ok(render(&page))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::people::Language;
    use crate::ui::i18n::Tr;

    /// Every reason the core can give has words in both languages.
    #[test]
    fn every_skip_reason_is_translated() {
        for language in Language::ALL {
            let tr = Tr::new(language);
            for skip in Skip::ALL {
                let key = reason_key(skip);
                assert_ne!(tr.t(&key), key, "{key} in {language:?}");
            }
        }
    }
}

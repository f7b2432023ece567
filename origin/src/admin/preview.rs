//! Preview: what a customer would see now or at a given time, and why every other campaign was skipped.
//! The catalog is built from Postgres as of that time, so the preview shows the truth even before Redis
//! has it; the customer's memberships and counters come from Redis, and a campaign that depends on a part
//! Redis is still restoring after a loss is shown as `restoring`, as resolvers would treat it.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use popup_core::catalog::{Catalog, CatalogParts};
use popup_core::ids::{CampaignId, Timestamp};
use popup_core::projection::{assess, fetch_readiness, read_readiness};
use popup_core::resolve::{explain, Subject};
use popup_core::store::ResolvePlan;
use popup_core::wire::{Explanation, PopupQuery, SkippedCampaign};
use serde::Serialize;

use crate::db::campaign_spec::{CampaignSpec, ToCore};
use crate::db::{campaigns, segments};
use crate::http::{ApiError, Path, Query, Viewer};
use crate::projection::{build_parts, fill_zones};
use crate::state::AppState;
use popup_core::context::Platform;
use popup_core::wire::ErrorResponse;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CampaignPreview {
    #[serde(flatten)]
    pub explanation: Explanation,
    /// `{"shown": true}`, or `{"shown": false, "campaign_id", "reason", "rule"}` as in `skipped`.
    pub this_campaign: CampaignOutcome,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CampaignOutcome {
    pub shown: bool,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<SkippedCampaign>,
}

/// The explanation for the query `pairs` (`user_id`, `at`, the device context), with `extra` added as if
/// live: for this API and the dashboard's simulator.
pub async fn explain_with(
    state: &AppState,
    pairs: Vec<(String, String)>,
    extra: Option<(i64, CampaignSpec)>,
) -> Result<Explanation, ApiError> {
    let mut at: Option<DateTime<Utc>> = None;
    let mut country = None;
    let mut request = Vec::new();
    for (name, value) in &pairs {
        match name.as_str() {
            "at" => {
                at = Some(value.parse().map_err(|_| ApiError::bad_field("at", "must be an RFC 3339 time"))?)
            }
            "country" => country = Some(value.to_ascii_uppercase()),
            _ => request.push((name.as_str(), value.as_str())),
        }
    }
    let mut query = PopupQuery::parse(request).map_err(|error| ApiError::BadFields(vec![error]))?;
    let user = query.user.ok_or_else(|| ApiError::bad_field("user_id", "is required"))?;
    query.context.country = country;
    let at = at.unwrap_or_else(Utc::now);
    let mut parts: CatalogParts = build_parts(state, at).await?;
    if let Some((id, spec)) = extra {
        parts.campaigns.retain(|c| c.id != CampaignId(id as u64));
        parts.campaigns.push(spec.to_core(id, &segments::ids_by_name(&state.db).await?)?);
        // The added campaign may use a zone no live campaign does.
        fill_zones(&mut parts, at)?;
    }
    let now = Timestamp(at.timestamp());
    // The resolve pipeline as a resolver would send it, with the readiness of the projection: only the
    // customer's state and what Redis holds in full are used, since the catalog comes from Postgres.
    let plan = ResolvePlan::new(&state.keys, &user, now, Some(0));
    let mut commands = plan.commands().to_vec();
    commands.push(fetch_readiness(&state.keys));
    let mut replies = state.redis.run(&commands).await?;
    let readiness = replies.pop().map(read_readiness).transpose()?;
    assess(&mut parts, &readiness.unwrap_or_default());
    let catalog = Catalog::build(parts)?;
    let inputs = plan.read(replies)?;
    let decision =
        explain(&catalog, &Subject { user: &user, state: &inputs.user, context: &query.context, now });
    Ok(Explanation::new(&decision, now, catalog.version()))
}

#[utoipa::path(
    get,
    path = "/preview",
    tag = "preview",
    summary = "What a customer would see, and why each other campaign was skipped",
    security(("api_key" = [])),
    params(
        ("user_id" = String, Query, pattern = r"^[A-Za-z0-9_.:@-]{1,64}$"),
        ("at" = Option<String>, Query, format = DateTime, description = "RFC 3339; now by default."),
        ("placement" = Option<String>, Query),
        ("platform" = Option<Platform>, Query),
        ("app_version" = Option<String>, Query, example = "5.2.0"),
        ("locale" = Option<String>, Query),
        ("country" = Option<String>, Query, description = "ISO 3166-1 alpha-2, as the platform would report it."),
    ),
    responses((status = 200, body = Explanation))
)]
/// `GET /admin/v1/preview?user_id=..[&at=RFC3339][&placement=..&platform=..&app_version=..&locale=..&country=..]`
pub async fn preview(
    State(state): State<AppState>,
    _: Viewer,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<Explanation>, ApiError> {
    Ok(Json(explain_with(&state, pairs, None).await?))
}

#[utoipa::path(
    get,
    path = "/campaigns/{id}/preview",
    tag = "preview",
    summary = "The preview as if this campaign were live (drafts too)",
    security(("api_key" = [])),
    params(
        ("id" = i64, Path),
        ("user_id" = String, Query, pattern = r"^[A-Za-z0-9_.:@-]{1,64}$"),
        ("at" = Option<String>, Query, format = DateTime, description = "RFC 3339; now by default."),
        ("placement" = Option<String>, Query),
        ("platform" = Option<Platform>, Query),
        ("app_version" = Option<String>, Query, example = "5.2.0"),
        ("locale" = Option<String>, Query),
        ("country" = Option<String>, Query, description = "ISO 3166-1 alpha-2, as the platform would report it."),
    ),
    responses(
        (status = 200, body = CampaignPreview),
        (status = 404, description = "No such campaign.", body = ErrorResponse),
        (status = 422, description = "The campaign names a segment or zone that no longer exists.", body = ErrorResponse),
    )
)]
/// `GET /admin/v1/campaigns/{id}/preview?...`: as if this campaign were active, even a draft or paused one.
pub async fn campaign_preview(
    State(state): State<AppState>,
    _: Viewer,
    Path(id): Path<i64>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<CampaignPreview>, ApiError> {
    let spec = campaigns::spec(&state.db, id).await?.ok_or(ApiError::NotFound("campaign"))?;
    let explanation = explain_with(&state, pairs, Some((id, spec))).await?;
    let campaign_id = CampaignId(id as u64);
    let skipped = explanation.skipped.iter().find(|s| s.campaign_id == campaign_id).cloned();
    let shown = explanation.chosen.as_ref().is_some_and(|chosen| chosen.campaign_id == campaign_id);
    if !shown && skipped.is_none() {
        return Err(ApiError::internal(format!("campaign {id} missing from its own preview")));
    }
    Ok(Json(CampaignPreview { explanation, this_campaign: CampaignOutcome { shown, skipped } }))
}

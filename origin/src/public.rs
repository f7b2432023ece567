//! The popup API, natively: the same contract and the same decisions as the edge, because both call the
//! core with the same inputs. One Redis round trip per resolve while the cached catalog is current.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use popup_core::context::{country_code, Platform};
use popup_core::ids::{CampaignId, Timestamp, UserId};
use popup_core::resolve::{control_variant, resolve, Subject};
use popup_core::store::{Event, EventKind, EventOutcome, EventPlan, FlowStep, Reply, ResolveFlow};
use popup_core::stream::{holdout_appends, Record};
use popup_core::wire::{ErrorResponse, EventRequest, PopupQuery, PopupResponse};
use serde::{Deserialize, Serialize};

use crate::db::campaigns;
use crate::http::{ApiError, JsonBody, Path, PostsConversions};
use crate::identity::Identity;
use crate::state::{now, AppState};

/// A token's nonce, from this thread's CSPRNG (seeded by the OS, and reseeded): a popup costs no system call
/// for it.
fn random_nonce() -> u64 {
    rand::RngCore::next_u64(&mut rand::rng())
}

const IDENTITY_REFUSED: &str =
    "With `POPUP_IDENTITY=jwt`: no `Authorization: Bearer` identity token, or one \
    that is not valid (signature, algorithm, key, expiry, issuer, audience or customer claim).";
const RATE_LIMITED: &str =
    "Over the requests a minute allowed per customer (`POPUP_RATE_LIMIT_PER_CUSTOMER`) \
    or per client address (`POPUP_RATE_LIMIT_PER_ADDRESS`).";

/// `GET /v1/campaigns/popup`: 200 with the popup, or 204.
#[utoipa::path(
    get,
    path = "/v1/campaigns/popup",
    tags = ["popup", "edge"],
    summary = "The popup this customer should see now, if any",
    params(
        ("user_id" = Option<String>, Query, description = "The customer: 1 to 64 of `A-Z a-z 0-9 - _ . : @`. Required with `POPUP_IDENTITY=user_id`; refused (400) with `jwt`, where the bearer token names the customer.", pattern = r"^[A-Za-z0-9_.:@-]{1,64}$"),
        ("placement" = Option<String>, Query, description = "Where in the app (`home`, `login`, ...), at most 64 bytes."),
        ("platform" = Option<Platform>, Query),
        ("app_version" = Option<String>, Query, description = "Like `5.2.0`.", example = "5.2.0"),
        ("locale" = Option<String>, Query, description = "A BCP 47 tag, like `id-ID`, at most 64 bytes."),
    ),
    responses(
        (status = 200, description = "The popup to show; post its `impression_token` back with the events.", body = PopupResponse),
        (status = 204, description = "No popup for this customer now."),
        (status = 401, description = IDENTITY_REFUSED, body = ErrorResponse,
            headers(("WWW-Authenticate" = String, description = "`Bearer error=\"invalid_token\"`"))),
        (status = 429, description = RATE_LIMITED, body = ErrorResponse,
            headers(("Retry-After" = u64, description = "Seconds until a request is admitted again."))),
    )
)]
pub async fn popup(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    // The request's own parts, read in place: this is the busiest route, and cloning its headers or
    // allocating each query parameter shows in its CPU per request.
    let (parts, _) = request.into_parts();
    let headers = &parts.headers;
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>();
    limit_address(&state, headers, peer)?;
    let pairs: Vec<_> = form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes()).collect();
    let mut query = PopupQuery::parse(pairs.iter().map(|(k, v)| (k.as_ref(), v.as_ref())))
        .map_err(|error| ApiError::BadFields(vec![error]))?;
    query.context.country = country(&state, headers);
    let now = now();
    let user = customer(&state, headers, query.user, now).await?;
    limit_customer(&state, &user)?;
    let flow = ResolveFlow::new(&state.keys, &user, now, state.cached_catalog());
    let replies = state.redis.run(flow.commands()).await.inspect_err(|_| outcome("unavailable"))?;
    let inputs = match flow.read(replies)? {
        FlowStep::Resolve(ready) => ready,
        FlowStep::Fetch(fetch) => {
            let replies = state.redis.run(std::slice::from_ref(fetch.command())).await?;
            fetch.read(replies.into_iter().next().unwrap_or(Reply::Nil))?
        }
    };
    if inputs.fetched {
        state.cache_catalog(inputs.catalog.clone());
    }
    let decision =
        resolve(&inputs.catalog, &Subject { user: &user, state: &inputs.user, context: &query.context, now });
    record_holdouts(&state, holdout_appends(&state.keys, &user, &decision.holdouts, now));
    let Some(selection) = decision.chosen else {
        outcome("none");
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let claims = selection.token_claims(&user, now, random_nonce());
    let token = state.tokens.issue(&claims)?;
    outcome("shown");
    Ok(Json(PopupResponse::new(&selection, token)).into_response())
}

/// The request's customer: the one its identity token names (`POPUP_IDENTITY=jwt`, where a `user_id` of
/// the request is refused), or the `user_id` it names.
async fn customer(
    state: &AppState,
    headers: &HeaderMap,
    named: Option<UserId>,
    now: Timestamp,
) -> Result<UserId, ApiError> {
    match (&state.identity, named) {
        (Identity::Claimed, Some(user)) => Ok(user),
        (Identity::Claimed, None) => Err(ApiError::bad_field("user_id", "is required")),
        (Identity::Jwt(_), Some(_)) => {
            Err(ApiError::bad_field("user_id", "is not accepted: the bearer token names the customer"))
        }
        (Identity::Jwt(verifier), None) => {
            let authorization = headers.get(AUTHORIZATION).and_then(|value| value.to_str().ok());
            Ok(verifier.customer(authorization, now).await?)
        }
    }
}

/// Refuses a request over its client address's limit, before any work on it. The address is the trusted
/// proxy's header when one is configured, else the connection's peer.
fn limit_address(
    state: &AppState,
    headers: &HeaderMap,
    peer: Option<&ConnectInfo<SocketAddr>>,
) -> Result<(), ApiError> {
    let Some(limiter) = &state.limits.per_address else { return Ok(()) };
    let address = match &state.client_address_header {
        Some(header) => {
            headers.get(header).and_then(|value| value.to_str().ok()).map(str::trim).map(String::from)
        }
        None => peer.map(|ConnectInfo(peer)| peer.ip().to_string()),
    };
    let Some(address) = address else { return Ok(()) };
    admitted(limiter.admit(&address), "address")
}

/// Refuses a request over its customer's limit.
fn limit_customer(state: &AppState, user: &UserId) -> Result<(), ApiError> {
    let Some(limiter) = &state.limits.per_customer else { return Ok(()) };
    admitted(limiter.admit(user.as_str()), "customer")
}

fn admitted(admission: Result<(), i64>, scope: &'static str) -> Result<(), ApiError> {
    admission.map_err(|retry_after_ms| {
        metrics::counter!("popup_rate_limited_total", "scope" => scope).increment(1);
        ApiError::RateLimited(popup_core::limit::retry_after_seconds(retry_after_ms))
    })
}

/// The client's country from the trusted header, read as the edge reads the platform's (the core's
/// [`country_code`]); none when no header is configured, or it is absent or not a country.
fn country(state: &AppState, headers: &HeaderMap) -> Option<String> {
    let header = state.country_header.as_ref()?;
    headers.get(header)?.to_str().ok().and_then(country_code)
}

/// The body of `POST /v1/conversions`: the impression token of the popup the customer saw, or, for a
/// customer held out by a campaign's control variant (who saw nothing and holds no token), the campaign.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ConversionRequest {
    #[serde(default)]
    pub user_id: Option<UserId>,
    #[serde(default)]
    pub impression_token: Option<String>,
    #[serde(default)]
    pub campaign_id: Option<i64>,
}

/// `POST /v1/conversions`: 202. Posted by the bank's backend (an API key with the `conversions` role) when a
/// customer did what a campaign asked. With `impression_token` it counts toward the token's campaign and
/// variant, once per token; with `campaign_id` instead it counts toward the control variant that held the
/// customer out (409 if none did), once per customer and day, so a variant's conversion rate can be read
/// against the control's.
#[utoipa::path(
    post,
    path = "/v1/conversions",
    tag = "conversions",
    summary = "Record that a customer did what a campaign asked",
    security(("api_key" = [])),
    request_body = ConversionRequest,
    responses(
        (status = 202, description = "Accepted; `recorded` is false for a token already converted.", body = EventAccepted),
        (status = 404, description = "No such campaign.", body = ErrorResponse),
        (status = 409, description = "The customer is not held out by the campaign's control.", body = ErrorResponse),
    )
)]
pub async fn conversion(
    State(state): State<AppState>,
    _: PostsConversions,
    body: Result<JsonBody<ConversionRequest>, ApiError>,
) -> Result<(StatusCode, Json<EventAccepted>), ApiError> {
    let JsonBody(request) = body.map_err(ApiError::unreadable)?;
    let user = request.user_id.ok_or_else(|| ApiError::bad_field("user_id", "is required"))?;
    let now = now();
    let recorded = match (request.impression_token, request.campaign_id) {
        (Some(token), _) => {
            let (token, dedupe_ttl_seconds) = state
                .tokens
                .verify_conversion(&token, &user, now)
                .map_err(|error| ApiError::bad_field("impression_token", error.to_string()))?;
            let event = Event { kind: EventKind::Conversion, token: &token, dedupe_ttl_seconds, now };
            let plan = EventPlan::new(&state.keys, &event);
            let replies = state.redis.run(plan.commands()).await?;
            plan.read(replies)? == EventOutcome::Recorded
        }
        (None, Some(campaign)) => {
            let spec = campaigns::spec(&state.db, campaign).await?.ok_or(ApiError::NotFound("campaign"))?;
            let campaign = CampaignId(campaign as u64);
            let control = control_variant(campaign, &spec.variants, &user).ok_or_else(|| {
                ApiError::Conflict(
                    "this customer is not held out by the campaign's control; post the impression token of the \
                     popup they saw"
                        .into(),
                )
            })?;
            let append =
                Record::control_conversion(&state.keys, &user, campaign, control, now).append(&state.keys);
            if let [Reply::Error(message)] = state.redis.run(&[append]).await?.as_slice() {
                tracing::warn!(message, "redis refused a conversion");
                return Err(ApiError::Unavailable);
            }
            // Stored once per customer, campaign and day by ingest; whether this one repeats is not known here.
            true
        }
        (None, None) => return Err(ApiError::bad_field("impression_token", "is required (or campaign_id)")),
    };
    metrics::counter!("popup_events_total", "kind" => "conversion").increment(1);
    Ok((StatusCode::ACCEPTED, Json(EventAccepted { recorded })))
}

/// Appends a resolve's holdout exposures after answering: they are for reporting, and must not delay the
/// customer or fail the request.
fn record_holdouts(state: &AppState, appends: Vec<popup_core::store::Command>) {
    if appends.is_empty() {
        return;
    }
    let state = state.clone();
    tokio::spawn(async move {
        match state.redis.run(&appends).await {
            Err(error) => tracing::warn!(%error, "holdout exposures not recorded"),
            Ok(replies) if replies.iter().any(|r| matches!(r, Reply::Error(_))) => {
                tracing::warn!("holdout exposures refused by redis")
            }
            Ok(_) => {}
        }
    });
}

fn outcome(result: &'static str) {
    metrics::counter!("popup_resolves_total", "outcome" => result).increment(1);
}

/// What the app did with a popup.
#[derive(Debug, utoipa::ToSchema)]
#[schema(as = EventKind, rename_all = "lowercase")]
#[allow(dead_code)] // Only its schema is used: the path is parsed by the core.
enum EventKindParam {
    Impression,
    Click,
    Dismiss,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventAccepted {
    /// False when the same event was recorded before (a retry).
    pub recorded: bool,
}

/// `POST /v1/campaigns/{id}/{impression|click|dismiss}`: 202.
#[utoipa::path(
    post,
    path = "/v1/campaigns/{id}/{kind}",
    tags = ["popup", "edge"],
    summary = "Record that a popup was shown, clicked or dismissed",
    params(
        ("id" = u64, Path, description = "The popup's `campaign_id`."),
        ("kind" = inline(EventKindParam), Path),
    ),
    request_body = EventRequest,
    responses(
        (status = 202, description = "Accepted; `recorded` is false for a retry of an event already recorded.", body = EventAccepted),
        (status = 404, description = "Not an event kind.", body = ErrorResponse),
        (status = 401, description = IDENTITY_REFUSED, body = ErrorResponse,
            headers(("WWW-Authenticate" = String, description = "`Bearer error=\"invalid_token\"`"))),
        (status = 429, description = RATE_LIMITED, body = ErrorResponse,
            headers(("Retry-After" = u64, description = "Seconds until a request is admitted again."))),
    )
)]
pub async fn event(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Path((campaign, kind)): Path<(String, String)>,
    body: Result<JsonBody<EventRequest>, ApiError>,
) -> Result<(StatusCode, Json<EventAccepted>), ApiError> {
    limit_address(&state, &headers, peer.as_ref().map(|Extension(peer)| peer))?;
    let kind = EventKind::parse_from_app(&kind).ok_or(ApiError::NotFound("event kind"))?;
    let campaign =
        CampaignId(campaign.parse().map_err(|_| ApiError::bad_field("campaign_id", "must be a number"))?);
    // The public contract answers every unreadable body with 400.
    let JsonBody(request) = body.map_err(ApiError::unreadable)?;
    let now = now();
    let user = customer(&state, &headers, request.user_id, now).await?;
    limit_customer(&state, &user)?;
    let (token, dedupe_ttl_seconds) = state
        .tokens
        .verify_event(&request.impression_token, &user, campaign, now)
        .map_err(|error| ApiError::bad_field("impression_token", error.to_string()))?;
    let event = Event { kind, token: &token, dedupe_ttl_seconds, now };
    let plan = EventPlan::new(&state.keys, &event);
    let replies = state.redis.run(plan.commands()).await?;
    let outcome = plan.read(replies)?;
    metrics::counter!("popup_events_total", "kind" => kind.as_str()).increment(1);
    Ok((StatusCode::ACCEPTED, Json(EventAccepted { recorded: outcome == EventOutcome::Recorded })))
}

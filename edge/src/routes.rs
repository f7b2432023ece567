//! The public API, the same contract as the origin's (`origin/src/public.rs`): both parse with
//! `popup_core::wire`, plan Redis work with `popup_core::store`, decide with `popup_core::resolve` and sign
//! with `popup_core::token`, so the same request gets the same answer from either.
//!
//! - `GET /v1/campaigns/popup?user_id=..`: 200 with the popup, or 204.
//! - `POST /v1/campaigns/{id}/{impression|click|dismiss}` with `{user_id, impression_token}`: 202 with
//!   `{"recorded": bool}` (false for a retry of an event already recorded).
//! - `GET /healthz`: 200 `ok`, as the origin answers.
//!
//! Request parsing is plain functions, tested natively; the handlers add the I/O.

use std::cell::RefCell;

use popup_core::context::{country_code, RequestContext};
use popup_core::ids::{CampaignId, Timestamp, UserId};
use popup_core::resolve::{resolve, Subject};
use popup_core::store::{Event, EventKind, EventOutcome, EventPlan, FlowStep, ResolveFlow};
use popup_core::stream::holdout_appends;
use popup_core::wire::{EventRequest, PopupQuery, PopupResponse};
use serde::Serialize;
use worker::js_sys::{Object, Reflect};
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::web_sys::{Request, Response};
use worker::worker_sys::RateLimiter;
use worker::{Context, Date, Env};

use crate::cache;
use crate::config::Config;
use crate::error::EdgeError;
use crate::http;
use crate::identity;
use crate::redis::RedisClient;

/// The largest event body read, as the origin's JSON extractor allows.
const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// `GET /v1/campaigns/popup`: 200 with the popup, or 204. One request to Redis while the cached catalog
/// is current (three commands), a second only when the catalog's version moved, and one after answering
/// when the customer was held out of a campaign (its exposure, for lift).
pub async fn popup(req: &Request, url: &str, env: Env, ctx: &Context) -> Result<Response, EdgeError> {
    limit_address(&env, req).await?;
    let (named, context) = parse_popup_query(url, http::country(req))?;
    let config = Config::of_isolate(&env)?;
    let now = now();
    let user = identity::customer(&config.identity, http::header(req, "Authorization")?, named, now).await?;
    limit(&env, CUSTOMER_LIMIT, user.as_str()).await?;
    let redis = RedisClient::new(&config.redis);
    let flow = ResolveFlow::new(&config.keys, &user, now, cache::cached());
    let replies = redis.pipeline(flow.commands()).await?;
    let inputs = match flow.read(replies)? {
        FlowStep::Resolve(ready) => ready,
        FlowStep::Fetch(fetch) => {
            let reply = redis.command(fetch.command()).await?;
            fetch.read(reply)?
        }
    };
    if inputs.fetched {
        cache::remember(inputs.catalog.clone());
    }
    let decision =
        resolve(&inputs.catalog, &Subject { user: &user, state: &inputs.user, context: &context, now });
    let holdouts = holdout_appends(&config.keys, &user, &decision.holdouts, now);
    let response = match decision.chosen {
        None => http::empty(204)?,
        Some(selection) => {
            let token = config.tokens.issue(&selection.token_claims(&user, now, random_nonce()?))?;
            http::json(200, &PopupResponse::new(&selection, token), None)?
        }
    };
    if !holdouts.is_empty() {
        // After the answer: a held-out customer's exposure is for reporting, and must not delay them.
        ctx.wait_until(async move {
            if let Err(error) = RedisClient::new(&config.redis).pipeline(&holdouts).await {
                worker::console_warn!("holdout exposures not recorded: {error}");
            }
        });
    }
    Ok(response)
}

#[derive(Debug, Serialize)]
struct EventAccepted {
    /// False when the same event was recorded before (a retry).
    recorded: bool,
}

/// `POST /v1/campaigns/{id}/{kind}`: 202. `id` and `kind` are the raw path segments. One request to
/// Redis (the event pipeline).
pub async fn event(req: &Request, env: Env, id: &str, kind: &str) -> Result<Response, EdgeError> {
    limit_address(&env, req).await?;
    let (campaign, kind) = parse_event_path(id, kind)?;
    let content_type = http::header(req, "Content-Type")?;
    let body = http::body(req).await.map_err(|error| {
        let error = worker::Error::from(error);
        EdgeError::BadRequest(format!("Failed to buffer the request body: {error}"))
    })?;
    let request = parse_event_body(content_type.as_deref(), &body)?;
    let config = Config::of_isolate(&env)?;
    let now = now();
    let authorization = http::header(req, "Authorization")?;
    let user = identity::customer(&config.identity, authorization, request.user_id, now).await?;
    limit(&env, CUSTOMER_LIMIT, user.as_str()).await?;
    let (token, dedupe_ttl_seconds) = config
        .tokens
        .verify_event(&request.impression_token, &user, campaign, now)
        .map_err(|error| EdgeError::bad_field("impression_token", error.to_string()))?;
    let event = Event { kind, token: &token, dedupe_ttl_seconds, now };
    let plan = EventPlan::new(&config.keys, &event);
    let outcome = plan.read(RedisClient::new(&config.redis).pipeline(plan.commands()).await?)?;
    let accepted = EventAccepted { recorded: outcome == EventOutcome::Recorded };
    Ok(http::json(202, &accepted, None)?)
}

/// The platform's rate-limiting bindings (`[[ratelimits]]` in wrangler.toml): requests per customer, and
/// per client address (`CF-Connecting-IP`, which Cloudflare sets). A binding that is not configured limits
/// nothing.
const CUSTOMER_LIMIT: &str = "CUSTOMER_LIMIT";
const ADDRESS_LIMIT: &str = "ADDRESS_LIMIT";

thread_local! {
    /// The isolate's rate-limiting bindings, looked up on first use: an isolate's bindings never change.
    static LIMITERS: RefCell<Vec<(&'static str, Option<RateLimiter>)>> = const { RefCell::new(Vec::new()) };
}

/// The binding named `binding`, if the deployment has it.
fn limiter(env: &Env, binding: &'static str) -> Option<RateLimiter> {
    LIMITERS.with_borrow_mut(|limiters| {
        if let Some((_, limiter)) = limiters.iter().find(|(name, _)| *name == binding) {
            return limiter.clone();
        }
        let found = Reflect::get(env.as_ref(), &binding.into())
            .ok()
            .filter(|value| !value.is_undefined())
            .map(JsCast::unchecked_into::<RateLimiter>);
        limiters.push((binding, found.clone()));
        found
    })
}

async fn limit_address(env: &Env, req: &Request) -> Result<(), EdgeError> {
    // Without the binding, the header is not even read.
    if limiter(env, ADDRESS_LIMIT).is_none() {
        return Ok(());
    }
    match http::header(req, "CF-Connecting-IP")? {
        Some(address) => limit(env, ADDRESS_LIMIT, &address).await,
        None => Ok(()),
    }
}

/// Asks the rate-limiting binding `binding` to admit a request for `key`: 429 when it does not. The
/// binding counts per Cloudflare location and within its period; a binding that fails lets the request
/// through, since the limits stop abuse and never decide what a customer is entitled to.
async fn limit(env: &Env, binding: &'static str, key: &str) -> Result<(), EdgeError> {
    let Some(limiter) = limiter(env, binding) else { return Ok(()) };
    match admitted(&limiter, key).await {
        Ok(false) => Err(EdgeError::RateLimited),
        Ok(true) => Ok(()),
        Err(_) => {
            worker::console_warn!("rate limiter {binding} failed; request let through");
            Ok(())
        }
    }
}

/// The binding's answer: `limit({key})` resolves to `{success}`.
async fn admitted(limiter: &RateLimiter, key: &str) -> Result<bool, JsValue> {
    let options = Object::new();
    Reflect::set(&options, &"key".into(), &key.into())?;
    let outcome = JsFuture::from(limiter.limit(options)?).await?;
    Ok(Reflect::get(&outcome, &"success".into())?.as_bool() != Some(false))
}

/// `GET /healthz`: 200 `ok`, like the origin's. Answering is the proof of life: it reads no configuration
/// and sends nothing to Redis, so a monitor probing it costs no Redis request and passes while Redis is
/// down (the popup API then answers 503, which is what a readiness check would look at).
pub fn healthz() -> Result<Response, EdgeError> {
    Ok(http::text(200, "ok")?)
}

/// The customer and the request context from the request URL's query, as the origin reads them, plus the
/// country from the platform's metadata (never from the query, which the app controls).
pub fn parse_popup_query(
    url: &str,
    country: Option<String>,
) -> Result<(Option<UserId>, RequestContext), EdgeError> {
    let query = url.split_once('?').map_or("", |(_, query)| query);
    let query = query.split_once('#').map_or(query, |(query, _)| query);
    // Decoded like the origin's query extractor: percent escapes, and `+` as a space.
    let pairs: Vec<_> = form_urlencoded::parse(query.as_bytes()).collect();
    let query = PopupQuery::parse(pairs.iter().map(|(name, value)| (name.as_ref(), value.as_ref())))
        .map_err(|error| EdgeError::BadFields(vec![error]))?;
    let mut context = query.context;
    context.country = country.as_deref().and_then(country_code);
    Ok((query.user, context))
}

/// The campaign and the event kind from the raw path segments: an unknown kind is 404, a campaign that is
/// not a number 400, in the origin's order.
pub fn parse_event_path(id: &str, kind: &str) -> Result<(CampaignId, EventKind), EdgeError> {
    let decode = |segment: &str| {
        percent_encoding::percent_decode_str(segment)
            .decode_utf8()
            .map(|decoded| decoded.into_owned())
            .map_err(|_| EdgeError::BadRequest("Invalid URL: the path is not valid UTF-8".into()))
    };
    let kind = EventKind::parse_from_app(&decode(kind)?).ok_or(EdgeError::NotFound("event kind"))?;
    let campaign = decode(id)?
        .parse()
        .map(CampaignId)
        .map_err(|_| EdgeError::bad_field("campaign_id", "must be a number"))?;
    Ok((campaign, kind))
}

/// Reads an event body the way the origin's JSON extractor does, with its messages: the content type must
/// be JSON, the body one JSON value of the right shape, nothing after it.
pub fn parse_event_body(content_type: Option<&str>, body: &[u8]) -> Result<EventRequest, EdgeError> {
    const SYNTAX: &str = "Failed to parse the request body as JSON";
    const DATA: &str = "Failed to deserialize the JSON body into the target type";
    if !content_type.is_some_and(is_json) {
        return Err(EdgeError::BadRequest("Expected request with `Content-Type: application/json`".into()));
    }
    if body.len() > MAX_BODY_BYTES {
        return Err(EdgeError::BadRequest("Failed to buffer the request body: length limit exceeded".into()));
    }
    let mut json = serde_json::Deserializer::from_slice(body);
    let request: EventRequest = serde_path_to_error::deserialize(&mut json).map_err(|error| {
        let kind = match error.inner().classify() {
            serde_json::error::Category::Data => DATA,
            _ => SYNTAX,
        };
        EdgeError::BadRequest(format!("{kind}: {error}"))
    })?;
    json.end().map_err(|error| EdgeError::BadRequest(format!("{SYNTAX}: {error}")))?;
    Ok(request)
}

/// `application/json`, or any `application/*+json`, with or without parameters.
fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    let subtype = subtype.to_ascii_lowercase();
    kind.eq_ignore_ascii_case("application") && (subtype == "json" || subtype.ends_with("+json"))
}

fn now() -> Timestamp {
    Timestamp(i64::try_from(Date::now().as_millis() / 1000).unwrap_or(i64::MAX))
}

/// The token nonce, from the platform's CSPRNG (`crypto.getRandomValues` in a worker).
fn random_nonce() -> Result<u64, EdgeError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(EdgeError::Randomness)?;
    Ok(u64::from_le_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use popup_core::context::{AppVersion, Platform};

    const BASE: &str = "https://edge.example/v1/campaigns/popup";

    fn fields(error: EdgeError) -> Vec<(String, String)> {
        match error {
            EdgeError::BadFields(fields) => fields.into_iter().map(|f| (f.field, f.message)).collect(),
            other => panic!("expected field errors, got {other:?}"),
        }
    }

    #[test]
    fn the_popup_query_reads_like_the_origins() {
        let url = format!(
            "{BASE}?user_id=demo-0042&placement=home&platform=android&app_version=5.2.0&locale=id-ID&x=1#frag"
        );
        let (user, context) = parse_popup_query(&url, Some("id".into())).unwrap();
        assert_eq!(user.unwrap().as_str(), "demo-0042");
        assert_eq!(context.placement.as_deref(), Some("home"));
        assert_eq!(context.platform, Some(Platform::Android));
        assert_eq!(context.app_version, Some(AppVersion::new(5, 2, 0)));
        assert_eq!(context.locale.as_deref(), Some("id-ID"));
        assert_eq!(context.country.as_deref(), Some("ID"));
    }

    #[test]
    fn query_values_are_percent_and_plus_decoded() {
        let url = format!("{BASE}?user_id=cust%2D1%40bank.id&placement=home+screen&country=SG");
        let (user, context) = parse_popup_query(&url, None).unwrap();
        assert_eq!(user.unwrap().as_str(), "cust-1@bank.id");
        assert_eq!(context.placement.as_deref(), Some("home screen"));
        assert_eq!(context.country, None, "the country never comes from the query");
    }

    #[test]
    fn bad_queries_name_the_field() {
        let error = |query: &str| fields(parse_popup_query(&format!("{BASE}{query}"), None).unwrap_err());
        // Whether a customer must be named is the identity mode's to say.
        assert_eq!(parse_popup_query(&format!("{BASE}?placement=home"), None).unwrap().0, None);
        assert_eq!(error("?user_id=u&platform=nokia")[0].0, "platform");
        assert_eq!(error("?user_id=u&app_version=x")[0].0, "app_version");
        assert_eq!(error("?user_id=a%20b")[0].0, "user_id");
        assert_eq!(error(&format!("?user_id=u&locale={}", "x".repeat(65)))[0].0, "locale");
    }

    #[test]
    fn only_real_country_codes_are_kept() {
        let country =
            |raw: &str| parse_popup_query(&format!("{BASE}?user_id=u"), Some(raw.into())).unwrap().1.country;
        assert_eq!(country("SG").as_deref(), Some("SG"));
        assert_eq!(country("sg").as_deref(), Some("SG"));
        for none in ["XX", "T1", "", "SGP", "é"] {
            assert_eq!(country(none), None, "{none:?}");
        }
    }

    #[test]
    fn event_paths_check_the_kind_first() {
        assert!(matches!(parse_event_path("12", "impression"), Ok((CampaignId(12), EventKind::Impression))));
        assert!(matches!(parse_event_path("12", "click"), Ok((CampaignId(12), EventKind::Click))));
        assert!(matches!(parse_event_path("%31%32", "dismiss"), Ok((CampaignId(12), EventKind::Dismiss))));
        assert!(matches!(parse_event_path("x", "share"), Err(EdgeError::NotFound("event kind"))));
        assert_eq!(
            fields(parse_event_path("x", "click").unwrap_err()),
            [("campaign_id".into(), "must be a number".into())]
        );
        assert!(matches!(parse_event_path("-1", "click"), Err(EdgeError::BadFields(_))));
        assert!(matches!(parse_event_path("%ff", "click"), Err(EdgeError::BadRequest(_))));
    }

    fn body_error(content_type: Option<&str>, body: &str) -> String {
        match parse_event_body(content_type, body.as_bytes()) {
            Err(EdgeError::BadRequest(message)) => message,
            other => panic!("expected a bad request, got {other:?}"),
        }
    }

    #[test]
    fn event_bodies_read_like_the_origins() {
        let json = Some("application/json");
        let request =
            parse_event_body(json, br#"{"user_id":"u","impression_token":"t","extra":[1]}"#).unwrap();
        assert_eq!(request.user_id.map(|u| u.as_str().to_string()).as_deref(), Some("u"));
        assert_eq!(request.impression_token, "t");
        for content_type in
            ["application/json; charset=utf-8", "Application/JSON", "application/cloudevents+json"]
        {
            assert!(
                parse_event_body(Some(content_type), br#"{"impression_token":"t"}"#).is_ok(),
                "{content_type}"
            );
        }
        let missing_type = "Expected request with `Content-Type: application/json`";
        assert_eq!(body_error(None, "{}"), missing_type);
        assert_eq!(body_error(Some("text/json"), "{}"), missing_type);
        assert_eq!(
            body_error(json, "{"),
            "Failed to parse the request body as JSON: EOF while parsing an object at line 1 column 1"
        );
        assert_eq!(
            body_error(json, r#"{"impression_token":"t"} x"#),
            "Failed to parse the request body as JSON: trailing characters at line 1 column 26"
        );
        assert_eq!(
            body_error(json, r#"{"user_id":"u"}"#),
            "Failed to deserialize the JSON body into the target type: missing field `impression_token` at line 1 column 15"
        );
        assert_eq!(
            body_error(json, r#"{"impression_token":7}"#),
            "Failed to deserialize the JSON body into the target type: impression_token: invalid type: integer `7`, expected a string at line 1 column 21"
        );
    }
}

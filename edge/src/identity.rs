//! Who is asking for a popup: in `jwt` mode the customer the bank's identity token names, checked here; in
//! `user_id` mode (development) whoever the request names.
//!
//! The core reads the token, picks its key and checks its claims (`popup_core::identity`), as the origin
//! does. HS256 is checked by the core (the HMAC is in the wasm already); RS256, ES256 and EdDSA by the
//! runtime's Web Crypto, which costs no wasm and runs natively. The provider's key set is fetched and
//! kept in isolate memory with the keys imported into Web Crypto, fetched again when it is an hour old or
//! when a token names a key it lacks (at most once a minute, `popup_core::identity::KeyRefresh`).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use popup_core::identity::{
    bearer, Algorithm, IdentityError, Jws, KeyRefresh, KeySet, PublicKey, MAX_KEY_SET_BYTES,
};
use popup_core::ids::{Timestamp, UserId};
use worker::js_sys::{Array, Object, Uint8Array, JSON};
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::web_sys::{self, CryptoKey, SubtleCrypto, WorkerGlobalScope};

use crate::config::{Identity, JwtSettings};
use crate::error::EdgeError;

/// How long a key set fetch may take before the request is answered without it, in ms.
const FETCH_TIMEOUT_MS: u32 = 3_000;

/// The request's customer: the one its identity token names (where a `user_id` of the request is
/// refused), or the `user_id` it names.
pub async fn customer(
    identity: &Identity,
    authorization: Option<String>,
    named: Option<UserId>,
    now: Timestamp,
) -> Result<UserId, EdgeError> {
    match (identity, named) {
        (Identity::Claimed, Some(user)) => Ok(user),
        (Identity::Claimed, None) => Err(EdgeError::bad_field("user_id", "is required")),
        (Identity::Jwt(_), Some(_)) => {
            Err(EdgeError::bad_field("user_id", "is not accepted: the bearer token names the customer"))
        }
        (Identity::Jwt(settings), None) => Ok(verify(settings, authorization.as_deref(), now).await?),
    }
}

async fn verify(
    settings: &JwtSettings,
    authorization: Option<&str>,
    now: Timestamp,
) -> Result<UserId, IdentityError> {
    let jws = Jws::parse(bearer(authorization)?)?;
    match (jws.algorithm, &settings.hs256_secret, &settings.jwks_url) {
        (Algorithm::Hs256, Some(secret), _) => jws.verify_hs256(secret)?,
        (Algorithm::Hs256, None, _) | (_, _, None) => return Err(IdentityError::AlgorithmMismatch),
        (_, _, Some(url)) => verify_with_key_set(url, &jws, now).await?,
    }
    settings.rules.check(&jws, now)
}

// An isolate runs one thread; no slot is borrowed across an `await`.
thread_local! {
    static KEYS: RefCell<Option<Rc<KeySet>>> = const { RefCell::new(None) };
    static REFRESH: Cell<KeyRefresh> = Cell::new(KeyRefresh::default());
    /// A fetch of the key set is under way, started by another request of this isolate.
    static FETCHING: Cell<bool> = const { Cell::new(false) };
}

/// How often a request waiting for another's fetch of the key set looks whether it is done, in ms.
const FETCH_POLL_MS: u64 = 5;

/// Waits while another request fetches the key set, so that requests arriving together at a new isolate
/// (or with a new `kid`) use the keys it brings rather than failing without them. Bounded: the fetch is
/// aborted after [`FETCH_TIMEOUT_MS`].
async fn fetched() {
    for _ in 0..=(u64::from(FETCH_TIMEOUT_MS) / FETCH_POLL_MS) {
        if !FETCHING.get() {
            return;
        }
        worker::Delay::from(std::time::Duration::from_millis(FETCH_POLL_MS)).await;
    }
}

fn current() -> Option<Rc<KeySet>> {
    KEYS.with(|slot| slot.borrow().clone())
}

async fn verify_with_key_set(url: &str, jws: &Jws<'_>, now: Timestamp) -> Result<(), IdentityError> {
    if REFRESH.get().stale(now) {
        fetch(url, now, false).await;
    }
    fetched().await;
    let mut keys = current().filter(|keys| !keys.keys.is_empty()).ok_or(IdentityError::KeysUnavailable)?;
    let index = match keys.select(jws) {
        Err(IdentityError::UnknownKey) if REFRESH.get().may_refetch_for_unknown_kid(now) => {
            fetch(url, now, true).await;
            keys = current().ok_or(IdentityError::KeysUnavailable)?;
            keys.select(jws)?
        }
        other => other?,
    };
    let key = import(&keys.keys[index].key).await.map_err(|_| IdentityError::Signature)?;
    match check(&key, jws).await {
        Ok(true) => Ok(()),
        _ => Err(IdentityError::Signature),
    }
}

/// Fetches the key set, keeping the one it had if the provider fails (logged).
async fn fetch(url: &str, now: Timestamp, for_unknown_kid: bool) {
    let mut refresh = REFRESH.get();
    refresh.fetched(now, for_unknown_kid);
    REFRESH.set(refresh);
    FETCHING.set(true);
    let downloaded = download(url).await;
    FETCHING.set(false);
    match downloaded {
        Ok(set) => {
            KEYS.with(|slot| *slot.borrow_mut() = Some(Rc::new(set)));
        }
        Err(error) => {
            let mut refresh = REFRESH.get();
            refresh.failed();
            REFRESH.set(refresh);
            worker::console_warn!("identity provider's keys not fetched from {url}: {error}");
        }
    }
}

/// GETs the key set with the runtime's `fetch` directly, aborted by the runtime after [`FETCH_TIMEOUT`]:
/// worker's `Fetch` and a timer race would add to the bundle what this request does not need.
async fn download(url: &str) -> Result<KeySet, String> {
    let failed = |error: JsValue| error.as_string().unwrap_or_else(|| "fetch failed".into());
    let init = web_sys::RequestInit::new();
    init.set_method("GET");
    init.set_signal(Some(&web_sys::AbortSignal::timeout_with_u32(FETCH_TIMEOUT_MS)));
    let global: WorkerGlobalScope = worker::js_sys::global().unchecked_into();
    let response: web_sys::Response =
        JsFuture::from(global.fetch_with_str_and_init(url, &init)).await.map_err(failed)?.unchecked_into();
    if response.status() != 200 {
        return Err(format!("status {}", response.status()));
    }
    let body = JsFuture::from(response.text().map_err(failed)?)
        .await
        .map_err(failed)?
        .as_string()
        .unwrap_or_default();
    if body.len() > MAX_KEY_SET_BYTES {
        return Err("the key set is too large".into());
    }
    KeySet::parse(body.as_bytes()).map_err(|e| e.to_string())
}

fn subtle() -> Result<SubtleCrypto, JsValue> {
    let global: WorkerGlobalScope = worker::js_sys::global().unchecked_into();
    Ok(global.crypto()?.subtle())
}

/// A JS object from JSON text (the key's parts are base64url, which needs no escaping).
fn object(json: &str) -> Result<Object, JsValue> {
    Ok(JSON::parse(json)?.unchecked_into())
}

/// The key as a Web Crypto key for `verify`, imported from its JWK form.
async fn import(key: &PublicKey) -> Result<CryptoKey, JsValue> {
    let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
    let (jwk, algorithm) = match key {
        PublicKey::Rsa { n, e } => (
            format!(r#"{{"kty":"RSA","n":"{}","e":"{}"}}"#, b64(n), b64(e)),
            r#"{"name":"RSASSA-PKCS1-v1_5","hash":"SHA-256"}"#,
        ),
        PublicKey::P256 { x, y } => (
            format!(r#"{{"kty":"EC","crv":"P-256","x":"{}","y":"{}"}}"#, b64(x), b64(y)),
            r#"{"name":"ECDSA","namedCurve":"P-256"}"#,
        ),
        PublicKey::Ed25519 { x } => {
            (format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{}"}}"#, b64(x)), r#"{"name":"Ed25519"}"#)
        }
    };
    let usages = Array::of1(&JsValue::from_str("verify"));
    let promise =
        subtle()?.import_key_with_object("jwk", &object(&jwk)?, &object(algorithm)?, false, &usages)?;
    Ok(JsFuture::from(promise).await?.unchecked_into())
}

async fn check(key: &CryptoKey, jws: &Jws<'_>) -> Result<bool, JsValue> {
    let algorithm = match jws.algorithm {
        Algorithm::Es256 => r#"{"name":"ECDSA","hash":"SHA-256"}"#,
        Algorithm::EdDsa => r#"{"name":"Ed25519"}"#,
        Algorithm::Rs256 | Algorithm::Hs256 => r#"{"name":"RSASSA-PKCS1-v1_5"}"#,
    };
    let signature = Uint8Array::from(jws.signature.as_slice());
    let promise = subtle()?.verify_with_object_and_u8_array_and_u8_slice(
        &object(algorithm)?,
        key,
        &signature,
        jws.signing_input,
    )?;
    Ok(JsFuture::from(promise).await?.as_bool() == Some(true))
}

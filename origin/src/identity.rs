//! Who is asking for a popup: in `jwt` mode the customer named by the bank's identity token, checked here;
//! in `user_id` mode (development) whoever the query names.
//!
//! The core reads the token, picks its key and checks its claims (`popup_core::identity`), as the edge
//! does; this module adds the I/O and the arithmetic: the identity provider's key set fetched over HTTPS
//! and cached, and RS256, ES256 and EdDSA signatures checked with `ring`.

use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use popup_core::identity::{
    bearer, Algorithm, IdentityError, Jws, KeyRefresh, KeySet, PublicKey, Rules, MAX_KEY_SET_BYTES,
};
use popup_core::ids::{Timestamp, UserId};
use ring::signature::{
    RsaPublicKeyComponents, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, ED25519, RSA_PKCS1_2048_8192_SHA256,
};
use secrecy::{ExposeSecret, SecretSlice};

use crate::config::{IdentityConfig, IdentityMode};

/// How long a key set fetch may take before the request is answered without it.
const FETCH_TIMEOUT: Duration = Duration::from_secs(3);

/// How a request's customer is known.
#[derive(Debug)]
pub enum Identity {
    /// The `user_id` the request names (development and tests only).
    Claimed,
    Jwt(Box<JwtVerifier>),
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityConfigError {
    #[error("POPUP_IDENTITY=jwt needs POPUP_JWT_JWKS_URL or POPUP_JWT_HS256_SECRET")]
    NoKeys,
    #[error("POPUP_IDENTITY=jwt needs {0}")]
    Missing(&'static str),
    #[error("POPUP_JWT_HS256_SECRET must be at least 32 bytes")]
    ShortSecret,
    #[error("POPUP_JWT_JWKS_URL must be an https:// URL (http:// only on loopback)")]
    InsecureUrl,
    #[error("the HTTP client for the key set: {0}")]
    Client(#[from] reqwest::Error),
}

impl Identity {
    pub fn new(config: &IdentityConfig) -> Result<Identity, IdentityConfigError> {
        if config.mode == IdentityMode::UserId {
            return Ok(Identity::Claimed);
        }
        let required = |value: &Option<String>, name| {
            value.clone().filter(|v| !v.trim().is_empty()).ok_or(IdentityConfigError::Missing(name))
        };
        let rules = Rules {
            issuer: required(&config.issuer, "POPUP_JWT_ISSUER")?,
            audience: required(&config.audience, "POPUP_JWT_AUDIENCE")?,
            user_claim: config.user_claim.clone(),
            leeway_seconds: config.leeway_seconds,
        };
        let secret = match &config.hs256_secret {
            Some(secret) if secret.expose_secret().len() < 32 => {
                return Err(IdentityConfigError::ShortSecret)
            }
            Some(secret) => Some(SecretSlice::from(secret.expose_secret().as_bytes().to_vec())),
            None => None,
        };
        let key_set = match &config.jwks_url {
            None => None,
            Some(url) => {
                let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"];
                if !(url.starts_with("https://") || loopback.iter().any(|prefix| url.starts_with(prefix))) {
                    return Err(IdentityConfigError::InsecureUrl);
                }
                let client = reqwest::Client::builder().timeout(FETCH_TIMEOUT).build()?;
                Some(RemoteKeySet { url: url.clone(), client, ..RemoteKeySet::default() })
            }
        };
        if secret.is_none() && key_set.is_none() {
            return Err(IdentityConfigError::NoKeys);
        }
        Ok(Identity::Jwt(Box::new(JwtVerifier { rules, secret, key_set })))
    }
}

/// Checks identity tokens: HS256 with the shared secret, the rest with the provider's key set.
#[derive(Debug)]
pub struct JwtVerifier {
    rules: Rules,
    secret: Option<SecretSlice<u8>>,
    key_set: Option<RemoteKeySet>,
}

impl JwtVerifier {
    /// The customer an `Authorization` header's token names, if it is valid at `now`.
    pub async fn customer(
        &self,
        authorization: Option<&str>,
        now: Timestamp,
    ) -> Result<UserId, IdentityError> {
        let jws = Jws::parse(bearer(authorization)?)?;
        match (jws.algorithm, &self.secret, &self.key_set) {
            (Algorithm::Hs256, Some(secret), _) => jws.verify_hs256(secret.expose_secret())?,
            (Algorithm::Hs256, None, _) | (_, _, None) => return Err(IdentityError::AlgorithmMismatch),
            (_, _, Some(key_set)) => key_set.verify(&jws, now).await?,
        }
        self.rules.check(&jws, now)
    }
}

/// The identity provider's key set, fetched when stale or when a token names a key it lacks.
#[derive(Debug, Default)]
struct RemoteKeySet {
    url: String,
    client: reqwest::Client,
    keys: RwLock<Arc<KeySet>>,
    refresh: Mutex<KeyRefresh>,
    /// One fetch at a time: requests arriving meanwhile wait for its keys.
    fetching: tokio::sync::Mutex<()>,
}

impl RemoteKeySet {
    async fn verify(&self, jws: &Jws<'_>, now: Timestamp) -> Result<(), IdentityError> {
        if self.refresh().stale(now) {
            self.fetch(now, false).await;
        }
        let keys = self.current();
        if keys.keys.is_empty() {
            // Never fetched: the customer cannot be known, which is not the token's fault.
            return Err(IdentityError::KeysUnavailable);
        }
        let key = match keys.select(jws) {
            Err(IdentityError::UnknownKey) if self.refresh().may_refetch_for_unknown_kid(now) => {
                self.fetch(now, true).await;
                let keys = self.current();
                return check_signature(&keys.keys[keys.select(jws)?].key, jws);
            }
            other => other?,
        };
        check_signature(&keys.keys[key].key, jws)
    }

    fn refresh(&self) -> KeyRefresh {
        *self.refresh.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn current(&self) -> Arc<KeySet> {
        self.keys.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Fetches the key set, keeping the one it had if the provider fails (logged): its keys are still the
    /// provider's, and a token they do not check is refused anyway.
    async fn fetch(&self, now: Timestamp, for_unknown_kid: bool) {
        let _one_at_a_time = self.fetching.lock().await;
        let refresh = self.refresh();
        // Another request fetched while this one waited.
        if !(refresh.stale(now) || for_unknown_kid && refresh.may_refetch_for_unknown_kid(now)) {
            return;
        }
        self.refresh.lock().unwrap_or_else(PoisonError::into_inner).fetched(now, for_unknown_kid);
        match self.download().await {
            Ok(keys) => {
                tracing::info!(keys = keys.keys.len(), for_unknown_kid, "identity provider's keys fetched");
                *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(keys);
            }
            Err(error) => {
                self.refresh.lock().unwrap_or_else(PoisonError::into_inner).failed();
                tracing::warn!(
                    %error,
                    url = %self.url,
                    retry_seconds = popup_core::identity::KEY_SET_RETRY_SECONDS,
                    "identity provider's keys not fetched"
                );
            }
        }
    }

    async fn download(&self) -> Result<KeySet, String> {
        let response = self.client.get(&self.url).send().await.map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("status {}", response.status()));
        }
        if response.content_length().is_some_and(|len| len > MAX_KEY_SET_BYTES as u64) {
            return Err("the key set is too large".into());
        }
        let body = response.bytes().await.map_err(|e| e.to_string())?;
        KeySet::parse(&body).map_err(|e| e.to_string())
    }
}

fn check_signature(key: &PublicKey, jws: &Jws<'_>) -> Result<(), IdentityError> {
    let (message, signature) = (jws.signing_input, jws.signature.as_slice());
    let checked = match key {
        PublicKey::Rsa { n, e } => {
            RsaPublicKeyComponents { n, e }.verify(&RSA_PKCS1_2048_8192_SHA256, message, signature)
        }
        PublicKey::P256 { x, y } => {
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, PublicKey::sec1_point(x, y))
                .verify(message, signature)
        }
        PublicKey::Ed25519 { x } => UnparsedPublicKey::new(&ED25519, x).verify(message, signature),
    };
    checked.map_err(|_| IdentityError::Signature)
}

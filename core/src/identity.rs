//! The customer's signed identity: a JWT from the bank's identity provider, sent by the app as
//! `Authorization: Bearer <jwt>`, instead of a plain `user_id` anybody could type.
//!
//! Everything but the public-key arithmetic is here, without I/O, so the edge and the origin refuse the same
//! tokens for the same reasons: the header ([`bearer`]), the compact serialization ([`Jws::parse`]), the
//! algorithm and the key it must be checked with ([`KeySet::select`]), HS256 ([`Jws::verify_hs256`]), the
//! claims ([`Rules::check`]), and when the key set is fetched again ([`KeyRefresh`]). RS256, ES256 and EdDSA
//! signatures are checked by the caller against the [`PublicKey`] chosen here: with Web Crypto at the edge,
//! with `ring` at the origin.
//!
//! # What is refused
//!
//! * `alg: none`, and every algorithm but HS256, RS256, ES256 and EdDSA: the header must name one of them.
//! * An algorithm that does not fit the key (algorithm confusion): HS256 is checked only with the configured
//!   shared secret, never with a key of the key set, so a token "signed" with an RSA public key as its HMAC
//!   secret fails; RS256 needs an RSA key of at least 2048 bits, ES256 a P-256 key, EdDSA an Ed25519 key.
//! * A header with `crit`: this verifier understands no extension.
//! * `exp` missing or past, `nbf` in the future, each with [`Rules::leeway_seconds`]; `iss` other than the
//!   configured issuer; `aud` (a string or a list) without the configured audience.
//! * A customer claim that is missing or not a customer id (`popup_core::ids::UserId`).
//!
//! Base64url is decoded strictly (no padding, no stray bits), and a token over [`MAX_TOKEN_LEN`] bytes is
//! refused before any decoding.

#[cfg(any(test, feature = "std"))]
use alloc::format;
use alloc::string::String;
#[cfg(any(test, feature = "std"))]
use alloc::string::ToString;
use alloc::vec::Vec;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use core::fmt;
use hmac::{Hmac, Mac};

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer};
#[cfg(any(test, feature = "std"))]
use serde_json::Value;
use sha2::Sha256;

use crate::ids::{Timestamp, UserId};

/// Longer tokens are refused unread. Identity providers' access tokens are 1 to 2 KB; 8 KB leaves room
/// for many claims without letting a caller make the verifier decode much.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// The largest key set read: a provider publishes a handful of keys, a few KB.
pub const MAX_KEY_SET_BYTES: usize = 64 * 1024;

/// Keys kept from one key set; the rest are ignored.
pub const MAX_KEYS: usize = 32;

/// Clock difference tolerated on `exp` and `nbf`, between the provider, the phone and us.
pub const DEFAULT_LEEWAY_SECONDS: i64 = 60;

/// The claim that names the customer unless configured otherwise.
pub const DEFAULT_USER_CLAIM: &str = "sub";

/// RSA moduli shorter than this are refused (NIST SP 800-131A; the origin's `ring` refuses them too).
const MIN_RSA_MODULUS_BYTES: usize = 256;

/// Why a request's identity was refused. Every one is answered 401 `unauthorized` with
/// `WWW-Authenticate: Bearer error="invalid_token"`; the message says which check failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("an Authorization: Bearer token is required")]
    Missing,
    #[error("the bearer token is malformed: {0}")]
    Malformed(&'static str),
    #[error("the token's algorithm is not accepted (HS256, RS256, ES256 or EdDSA)")]
    Algorithm,
    #[error("the token's algorithm does not fit its key")]
    AlgorithmMismatch,
    #[error("the token names a key the identity provider does not publish")]
    UnknownKey,
    #[error("the token's signature is not valid")]
    Signature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token's issuer is not the configured one")]
    Issuer,
    #[error("the token is not meant for this audience")]
    Audience,
    #[error("the token has no exp claim")]
    NoExpiry,
    #[error("the token has no customer claim")]
    NoCustomer,
    #[error("the token's customer claim is not a customer id")]
    BadCustomer,
    /// The key set could not be fetched or read: the customer cannot be known, so nothing is shown.
    #[error("the identity provider's keys are unavailable")]
    KeysUnavailable,
}

/// The signature algorithms accepted (RFC 7518 names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Hs256,
    Rs256,
    Es256,
    EdDsa,
}

impl Algorithm {
    pub fn parse(raw: &str) -> Option<Algorithm> {
        match raw {
            "HS256" => Some(Algorithm::Hs256),
            "RS256" => Some(Algorithm::Rs256),
            "ES256" => Some(Algorithm::Es256),
            "EdDSA" => Some(Algorithm::EdDsa),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Hs256 => "HS256",
            Algorithm::Rs256 => "RS256",
            Algorithm::Es256 => "ES256",
            Algorithm::EdDsa => "EdDSA",
        }
    }
}

/// The token from an `Authorization` header value: `Bearer <token>` (the scheme in any case).
pub fn bearer(header: Option<&str>) -> Result<&str, IdentityError> {
    let header = header.map(str::trim).filter(|h| !h.is_empty()).ok_or(IdentityError::Missing)?;
    let (scheme, token) = header.split_once(' ').ok_or(IdentityError::Missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(IdentityError::Missing);
    }
    let token = token.trim_start();
    if token.is_empty() {
        return Err(IdentityError::Missing);
    }
    Ok(token)
}

/// A compact JWS, decoded but not yet trusted.
#[derive(Clone, Debug)]
pub struct Jws<'a> {
    pub algorithm: Algorithm,
    pub kid: Option<String>,
    /// `header.payload` as sent: what the signature covers.
    pub signing_input: &'a [u8],
    pub signature: Vec<u8>,
    payload: Vec<u8>,
}

fn decode(part: &str) -> Result<Vec<u8>, IdentityError> {
    URL_SAFE_NO_PAD.decode(part).map_err(|_| IdentityError::Malformed("a part is not base64url"))
}

impl<'a> Jws<'a> {
    pub fn parse(token: &'a str) -> Result<Jws<'a>, IdentityError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(IdentityError::Malformed("longer than 8 KB"));
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(IdentityError::Malformed("not three dot-separated parts"));
        };
        let header_json: Object = serde_json::from_slice(&decode(header)?)
            .map_err(|_| IdentityError::Malformed("the header is not a JSON object with alg"))?;
        let name = text(&header_json, "alg")
            .ok_or(IdentityError::Malformed("the header is not a JSON object with alg"))?;
        let algorithm = Algorithm::parse(name).ok_or(IdentityError::Algorithm)?;
        if header_json.get("crit").is_some() {
            return Err(IdentityError::Malformed("the header names critical extensions"));
        }
        let kid = text(&header_json, "kid").map(String::from);
        let payload_bytes = decode(payload)?;
        let signature = decode(signature)?;
        let signing_input = &token.as_bytes()[..header.len() + 1 + payload.len()];
        Ok(Jws { algorithm, kid, signing_input, signature, payload: payload_bytes })
    }

    /// Checks an HS256 signature with the shared secret, in constant time.
    pub fn verify_hs256(&self, secret: &[u8]) -> Result<(), IdentityError> {
        if self.algorithm != Algorithm::Hs256 {
            return Err(IdentityError::AlgorithmMismatch);
        }
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| IdentityError::Signature)?;
        mac.update(self.signing_input);
        mac.verify_slice(&self.signature).map_err(|_| IdentityError::Signature)
    }

    /// The signature's length fits its algorithm and key: checked before any public-key work.
    pub fn signature_fits(&self, key: &PublicKey) -> Result<(), IdentityError> {
        let expected = match key {
            PublicKey::Rsa { n, .. } => n.len(),
            PublicKey::P256 { .. } | PublicKey::Ed25519 { .. } => 64,
        };
        if self.signature.len() == expected {
            Ok(())
        } else {
            Err(IdentityError::Signature)
        }
    }
}

/// A public key of the identity provider, as its key set publishes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicKey {
    /// Big-endian modulus (no leading zeros) and exponent.
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// The point's coordinates, 32 bytes each.
    P256 {
        x: Vec<u8>,
        y: Vec<u8>,
    },
    Ed25519 {
        x: Vec<u8>,
    },
}

impl PublicKey {
    /// The one algorithm this key checks.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            PublicKey::Rsa { .. } => Algorithm::Rs256,
            PublicKey::P256 { .. } => Algorithm::Es256,
            PublicKey::Ed25519 { .. } => Algorithm::EdDsa,
        }
    }

    /// The uncompressed SEC 1 point of a P-256 key (`04 || x || y`), as `ring` and Web Crypto's `raw`
    /// import take it.
    pub fn sec1_point(x: &[u8], y: &[u8]) -> Vec<u8> {
        let mut point = Vec::with_capacity(1 + x.len() + y.len());
        point.push(4);
        point.extend_from_slice(x);
        point.extend_from_slice(y);
        point
    }
}

/// A key of the set: its id, if it has one, and the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Jwk {
    pub kid: Option<String>,
    pub key: PublicKey,
}

fn field(jwk: &Object, name: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text(jwk, name)?).ok()
}

/// The key, or none for a key this verifier does not use (encryption keys, other curves, keys for other
/// algorithms) or cannot read.
fn read_jwk(jwk: &Object) -> Option<Jwk> {
    if text(jwk, "use").is_some_and(|usage| usage != "sig") {
        return None;
    }
    let key = match (text(jwk, "kty")?, text(jwk, "crv")) {
        ("RSA", _) => {
            let n = field(jwk, "n")?;
            let n = n[n.iter().position(|b| *b != 0)?..].to_vec();
            let e = field(jwk, "e")?;
            (n.len() >= MIN_RSA_MODULUS_BYTES && !e.is_empty()).then_some(PublicKey::Rsa { n, e })?
        }
        ("EC", Some("P-256")) => {
            let (x, y) = (field(jwk, "x")?, field(jwk, "y")?);
            (x.len() == 32 && y.len() == 32).then_some(PublicKey::P256 { x, y })?
        }
        ("OKP", Some("Ed25519")) => {
            let x = field(jwk, "x")?;
            (x.len() == 32).then_some(PublicKey::Ed25519 { x })?
        }
        _ => return None,
    };
    // A key that says its algorithm is used for that one only.
    if let Some(alg) = jwk.get("alg") {
        if !matches!(alg, Json::Text(alg) if Algorithm::parse(alg) == Some(key.algorithm())) {
            return None;
        }
    }
    Some(Jwk { kid: text(jwk, "kid").map(String::from), key })
}

/// The identity provider's published keys (a JWKS document).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeySet {
    pub keys: Vec<Jwk>,
}

impl KeySet {
    /// Reads a JWKS document. Keys this verifier cannot use are left out; a document that is not a key
    /// set at all is an error.
    pub fn parse(document: &[u8]) -> Result<KeySet, IdentityError> {
        if document.len() > MAX_KEY_SET_BYTES {
            return Err(IdentityError::KeysUnavailable);
        }
        let document: Object =
            serde_json::from_slice(document).map_err(|_| IdentityError::KeysUnavailable)?;
        let Some(Json::List(entries)) = document.get("keys") else {
            return Err(IdentityError::KeysUnavailable);
        };
        let keys = entries
            .iter()
            .filter_map(|entry| match entry {
                Json::Object(jwk) => read_jwk(jwk),
                _ => None,
            })
            .take(MAX_KEYS)
            .collect();
        Ok(KeySet { keys })
    }

    /// The position in [`KeySet::keys`] of the key a token must be checked with: the one its `kid` names,
    /// or without a `kid` the only key of the token's algorithm. HS256 never uses a key of the set.
    pub fn select(&self, jws: &Jws<'_>) -> Result<usize, IdentityError> {
        if jws.algorithm == Algorithm::Hs256 {
            return Err(IdentityError::AlgorithmMismatch);
        }
        let mut keys = self.keys.iter().enumerate();
        let found = match &jws.kid {
            Some(kid) => keys.find(|(_, key)| key.kid.as_deref() == Some(kid.as_str())),
            None => {
                let mut fitting = keys.filter(|(_, key)| key.key.algorithm() == jws.algorithm);
                match (fitting.next(), fitting.next()) {
                    (Some(only), None) => Some(only),
                    _ => None,
                }
            }
        };
        let (index, key) = found.ok_or(IdentityError::UnknownKey)?;
        if key.key.algorithm() != jws.algorithm {
            return Err(IdentityError::AlgorithmMismatch);
        }
        jws.signature_fits(&key.key)?;
        Ok(index)
    }
}

/// The claims every token must carry, from the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rules {
    pub issuer: String,
    pub audience: String,
    /// The claim holding the customer id (`sub` by default).
    pub user_claim: String,
    pub leeway_seconds: i64,
}

/// A JSON value as this module reads it: the strings, numbers, lists and objects of headers, claims and
/// key sets; booleans and nulls only as present. One type for all three keeps the edge's wasm small (a
/// derived reader per shape, or `serde_json::Value`, would cost it tens of KB).
#[derive(Debug)]
enum Json {
    Text(String),
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    List(Vec<Json>),
    Object(Object),
    Other,
}

/// A JSON object's members, in order; looked up by a linear search, since headers, claims and keys have
/// a handful each (and a map's code would cost the edge's wasm more).
#[derive(Debug, Default)]
struct Object(Vec<(String, Json)>);

impl Object {
    /// The member named `name`; the last one if a name repeats, as JSON parsers commonly read it.
    fn get(&self, name: &str) -> Option<&Json> {
        self.0.iter().rev().find(|(member, _)| member == name).map(|(_, value)| value)
    }
}

fn text<'a>(object: &'a Object, name: &str) -> Option<&'a str> {
    match object.get(name)? {
        Json::Text(text) => Some(text),
        _ => None,
    }
}

struct ObjectVisitor;

impl<'de> Visitor<'de> for ObjectVisitor {
    type Value = Object;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Object, A::Error> {
        let mut members = Vec::new();
        while let Some(member) = map.next_entry()? {
            members.push(member);
        }
        Ok(Object(members))
    }
}

impl<'de> Deserialize<'de> for Object {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Object, D::Error> {
        deserializer.deserialize_map(ObjectVisitor)
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Json, D::Error> {
        struct JsonVisitor;
        impl<'de> Visitor<'de> for JsonVisitor {
            type Value = Json;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_str<E>(self, v: &str) -> Result<Json, E> {
                Ok(Json::Text(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
                Ok(Json::Unsigned(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
                Ok(Json::Signed(v))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Json, E> {
                Ok(Json::Float(v))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Json, E> {
                Ok(Json::Other)
            }
            fn visit_unit<E>(self) -> Result<Json, E> {
                Ok(Json::Other)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Json::List(items))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Json, A::Error> {
                ObjectVisitor.visit_map(map).map(Json::Object)
            }
        }
        deserializer.deserialize_any(JsonVisitor)
    }
}

/// A NumericDate (RFC 7519): whole seconds; fractions are dropped, and a huge value saturates.
fn seconds(claims: &Object, name: &str) -> Result<Option<i64>, IdentityError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Json::Unsigned(v)) => Ok(Some(i64::try_from(*v).unwrap_or(i64::MAX))),
        Some(Json::Signed(v)) => Ok(Some(*v)),
        Some(Json::Float(v)) if v.is_finite() => Ok(Some(*v as i64)),
        Some(_) => Err(IdentityError::Malformed("the payload is not a JSON object of claims")),
    }
}

impl Rules {
    /// The customer a token whose signature was checked is about, if its claims hold at `now`.
    pub fn check(&self, jws: &Jws<'_>, now: Timestamp) -> Result<UserId, IdentityError> {
        let claims: Object = serde_json::from_slice(&jws.payload)
            .map_err(|_| IdentityError::Malformed("the payload is not a JSON object of claims"))?;
        let exp = seconds(&claims, "exp")?.ok_or(IdentityError::NoExpiry)?;
        if now.0 >= exp.saturating_add(self.leeway_seconds) {
            return Err(IdentityError::Expired);
        }
        if let Some(nbf) = seconds(&claims, "nbf")? {
            if now.0.saturating_add(self.leeway_seconds) < nbf {
                return Err(IdentityError::NotYetValid);
            }
        }
        if text(&claims, "iss") != Some(self.issuer.as_str()) {
            return Err(IdentityError::Issuer);
        }
        let audience_ok = match claims.get("aud") {
            Some(Json::Text(aud)) => *aud == self.audience,
            Some(Json::List(auds)) => {
                auds.iter().any(|aud| matches!(aud, Json::Text(aud) if *aud == self.audience))
            }
            _ => false,
        };
        if !audience_ok {
            return Err(IdentityError::Audience);
        }
        match claims.get(&self.user_claim) {
            None => Err(IdentityError::NoCustomer),
            // A string, as RFC 7519 has `sub`: a customer number sent as a JSON number is refused rather
            // than guessed at (`1e3`, `1000.0`).
            Some(Json::Text(id)) => UserId::parse(id).map_err(|_| IdentityError::BadCustomer),
            Some(_) => Err(IdentityError::BadCustomer),
        }
    }
}

/// Shortest time between two fetches of the key set caused by tokens naming an unknown `kid`: a new key
/// of the provider is picked up at once, and a flood of made-up `kid`s costs one fetch per interval.
pub const KID_REFETCH_INTERVAL_SECONDS: i64 = 60;

/// How long a fetched key set is used before it is fetched again anyway (providers rotate keys in days).
pub const KEY_SET_MAX_AGE_SECONDS: i64 = 3600;

/// How long after a failed fetch of the key set it is tried again: soon, since without keys no customer
/// can be known, but not on every request to a provider that is down.
pub const KEY_SET_RETRY_SECONDS: i64 = 10;

/// When the cached key set is fetched again, tracked beside the cache by the edge and the origin.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyRefresh {
    fetched_at: Option<Timestamp>,
    kid_refetch_at: Option<Timestamp>,
    /// The last fetch failed.
    failed: bool,
}

impl KeyRefresh {
    /// Whether the key set must be fetched before checking a token: none yet, too old, or the last fetch
    /// failed a while ago.
    pub fn stale(&self, now: Timestamp) -> bool {
        let max_age = if self.failed { KEY_SET_RETRY_SECONDS } else { KEY_SET_MAX_AGE_SECONDS };
        self.fetched_at.is_none_or(|at| now.0 - at.0 >= max_age)
    }

    /// Records that the fetch last recorded by [`KeyRefresh::fetched`] failed.
    pub fn failed(&mut self) {
        self.failed = true;
    }

    /// Whether a token naming a key the cached set lacks may cause a fetch now.
    pub fn may_refetch_for_unknown_kid(&self, now: Timestamp) -> bool {
        self.kid_refetch_at.is_none_or(|at| now.0 - at.0 >= KID_REFETCH_INTERVAL_SECONDS)
    }

    /// Records a fetch (successful or not, so a failing provider is not asked on every request).
    pub fn fetched(&mut self, now: Timestamp, for_unknown_kid: bool) {
        self.fetched_at = Some(now);
        self.failed = false;
        if for_unknown_kid {
            self.kid_refetch_at = Some(now);
        }
    }
}

/// A signed HS256 token with these claims: for the origin's `token` command (demo tokens) and tests.
#[cfg(any(test, feature = "std"))]
pub fn sign_hs256(secret: &[u8], claims: &Value) -> Result<String, IdentityError> {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing_input = format!("{header}.{payload}");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| IdentityError::Signature)?;
    mac.update(signing_input.as_bytes());
    Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: Timestamp = Timestamp(1_800_000_000);

    fn rules() -> Rules {
        Rules {
            issuer: "https://id.bank.example".into(),
            audience: "popup".into(),
            user_claim: "sub".into(),
            leeway_seconds: DEFAULT_LEEWAY_SECONDS,
        }
    }

    fn claims() -> Value {
        json!({"iss": "https://id.bank.example", "aud": "popup", "sub": "cust-42", "exp": NOW.0 + 300})
    }

    fn with(change: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
        let mut claims = claims();
        change(claims.as_object_mut().unwrap());
        claims
    }

    fn verify(token: &str) -> Result<UserId, IdentityError> {
        let jws = Jws::parse(token)?;
        jws.verify_hs256(SECRET)?;
        rules().check(&jws, NOW)
    }

    fn unsigned(header: &str, claims: &Value) -> String {
        format!("{}.{}.", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims.to_string()))
    }

    #[test]
    fn a_valid_token_names_its_customer() {
        let token = sign_hs256(SECRET, &claims()).unwrap();
        assert_eq!(verify(&token).unwrap().as_str(), "cust-42");
        let numeric = sign_hs256(SECRET, &with(|c| _ = c.insert("sub".into(), json!(1234)))).unwrap();
        assert_eq!(verify(&numeric), Err(IdentityError::BadCustomer), "a customer id is a string");
        let listed =
            sign_hs256(SECRET, &with(|c| _ = c.insert("aud".into(), json!(["web", "popup"])))).unwrap();
        assert!(verify(&listed).is_ok());
    }

    #[test]
    fn the_customer_claim_is_configurable() {
        let token = sign_hs256(SECRET, &with(|c| _ = c.insert("cif".into(), json!("CIF-9")))).unwrap();
        let jws = Jws::parse(&token).unwrap();
        let rules = Rules { user_claim: "cif".into(), ..rules() };
        assert_eq!(rules.check(&jws, NOW).unwrap().as_str(), "CIF-9");
        let rules = Rules { user_claim: "customer".into(), ..rules };
        assert_eq!(rules.check(&jws, NOW), Err(IdentityError::NoCustomer));
    }

    #[test]
    fn claims_are_checked_with_leeway() {
        let at = |exp: Option<i64>, nbf: Option<i64>| {
            let token = sign_hs256(
                SECRET,
                &with(|c| {
                    c.remove("exp");
                    if let Some(exp) = exp {
                        c.insert("exp".into(), json!(exp));
                    }
                    if let Some(nbf) = nbf {
                        c.insert("nbf".into(), json!(nbf));
                    }
                }),
            )
            .unwrap();
            verify(&token)
        };
        assert!(at(Some(NOW.0 - 30), None).is_ok(), "within the leeway");
        assert_eq!(at(Some(NOW.0 - 60), None), Err(IdentityError::Expired));
        assert_eq!(at(None, None), Err(IdentityError::NoExpiry));
        assert!(at(Some(NOW.0 + 60), Some(NOW.0 + 30)).is_ok(), "within the leeway");
        assert_eq!(at(Some(NOW.0 + 600), Some(NOW.0 + 120)), Err(IdentityError::NotYetValid));
        assert_eq!(at(Some(i64::MAX), None).map(|u| u.to_string()).as_deref(), Ok("cust-42"));
        let fractional = sign_hs256(SECRET, &with(|c| _ = c.insert("exp".into(), json!(1e300)))).unwrap();
        assert!(verify(&fractional).is_ok());
        let text = sign_hs256(SECRET, &with(|c| _ = c.insert("exp".into(), json!("tomorrow")))).unwrap();
        assert!(matches!(verify(&text), Err(IdentityError::Malformed(_))));
    }

    #[test]
    fn issuer_audience_and_customer_must_fit() {
        let refused = |change: fn(&mut serde_json::Map<String, Value>)| {
            verify(&sign_hs256(SECRET, &with(change)).unwrap()).unwrap_err()
        };
        assert_eq!(
            refused(|c| _ = c.insert("iss".into(), json!("https://evil.example"))),
            IdentityError::Issuer
        );
        assert_eq!(refused(|c| _ = c.remove("iss")), IdentityError::Issuer);
        assert_eq!(refused(|c| _ = c.insert("aud".into(), json!("other"))), IdentityError::Audience);
        assert_eq!(refused(|c| _ = c.insert("aud".into(), json!(["a", 7]))), IdentityError::Audience);
        assert_eq!(refused(|c| _ = c.remove("aud")), IdentityError::Audience);
        assert_eq!(refused(|c| _ = c.insert("sub".into(), json!("a b"))), IdentityError::BadCustomer);
        assert_eq!(refused(|c| _ = c.insert("sub".into(), json!(-1))), IdentityError::BadCustomer);
        assert_eq!(refused(|c| _ = c.remove("sub")), IdentityError::NoCustomer);
    }

    #[test]
    fn forged_unsigned_and_malformed_tokens_are_refused() {
        let token = sign_hs256(SECRET, &claims()).unwrap();
        let forged = sign_hs256(b"another secret of thirty-two bytes!", &claims()).unwrap();
        assert_eq!(verify(&forged), Err(IdentityError::Signature));
        let (signed, _) = token.rsplit_once('.').unwrap();
        let other_payload =
            sign_hs256(SECRET, &with(|c| _ = c.insert("sub".into(), json!("victim")))).unwrap();
        let spliced =
            format!("{}.{}", other_payload.rsplit_once('.').unwrap().0, token.rsplit_once('.').unwrap().1);
        assert_eq!(verify(&spliced), Err(IdentityError::Signature));
        assert_eq!(verify(&format!("{signed}.")), Err(IdentityError::Signature));
        assert_eq!(verify(&unsigned(r#"{"alg":"none"}"#, &claims())), Err(IdentityError::Algorithm));
        assert_eq!(verify(&unsigned(r#"{"alg":"HS512"}"#, &claims())), Err(IdentityError::Algorithm));
        assert!(matches!(verify(&unsigned(r#"{"typ":"JWT"}"#, &claims())), Err(IdentityError::Malformed(_))));
        assert!(matches!(
            verify(&unsigned(r#"{"alg":"HS256","crit":["exp"]}"#, &claims())),
            Err(IdentityError::Malformed(_))
        ));
        for bad in ["", "a.b", "a.b.c.d", "!!.e30.", &format!("{token}="), &"a".repeat(MAX_TOKEN_LEN + 1)] {
            assert!(matches!(verify(bad), Err(IdentityError::Malformed(_))), "{bad:.40}");
        }
    }

    #[test]
    fn bearer_headers_are_read_strictly() {
        assert_eq!(bearer(Some("Bearer abc")), Ok("abc"));
        assert_eq!(bearer(Some("bearer   abc ")), Ok("abc"));
        for missing in [None, Some(""), Some("Bearer"), Some("Bearer "), Some("Basic abc"), Some("abc")] {
            assert_eq!(bearer(missing), Err(IdentityError::Missing), "{missing:?}");
        }
    }

    fn rsa_jwk(kid: &str, modulus_bytes: usize) -> Value {
        let n = URL_SAFE_NO_PAD.encode(alloc::vec![0xC5u8; modulus_bytes]);
        json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": n, "e": "AQAB"})
    }

    fn ec_jwk(kid: &str) -> Value {
        let coordinate = URL_SAFE_NO_PAD.encode([7u8; 32]);
        json!({"kty": "EC", "kid": kid, "crv": "P-256", "x": coordinate, "y": coordinate})
    }

    fn token_with(header: Value, signature_len: usize) -> String {
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims().to_string()),
            URL_SAFE_NO_PAD.encode(alloc::vec![1u8; signature_len])
        )
    }

    #[test]
    fn key_sets_keep_only_keys_for_signatures() {
        let document = json!({"keys": [
            rsa_jwk("rsa-1", 256),
            rsa_jwk("short", 128),
            ec_jwk("ec-1"),
            {"kty": "EC", "kid": "p384", "crv": "P-384", "x": "AA", "y": "AA"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": URL_SAFE_NO_PAD.encode([1u8; 256]), "e": "AQAB"},
            {"kty": "oct", "kid": "secret", "k": "c2VjcmV0"},
            {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode([3u8; 32])},
            {"kty": "EC", "kid": "lying", "alg": "RS256", "crv": "P-256", "x": URL_SAFE_NO_PAD.encode([7u8; 32]), "y": URL_SAFE_NO_PAD.encode([7u8; 32])},
            "not a key",
        ]});
        let set = KeySet::parse(document.to_string().as_bytes()).unwrap();
        let kids: Vec<_> = set.keys.iter().map(|k| k.kid.as_deref().unwrap()).collect();
        assert_eq!(kids, ["rsa-1", "ec-1", "ed"]);
        assert_eq!(KeySet::parse(b"[]"), Err(IdentityError::KeysUnavailable));
        assert_eq!(KeySet::parse(b"{\"keys\":{}}"), Err(IdentityError::KeysUnavailable));
    }

    #[test]
    fn keys_are_chosen_by_kid_and_algorithm() {
        let set =
            KeySet::parse(json!({"keys": [rsa_jwk("rsa-1", 256), ec_jwk("ec-1")]}).to_string().as_bytes())
                .unwrap();
        let select = |header: Value, len: usize| {
            let token = token_with(header, len);
            let jws = Jws::parse(&token).unwrap();
            set.select(&jws).map(|index| set.keys[index].kid.clone().unwrap())
        };
        assert_eq!(select(json!({"alg": "RS256", "kid": "rsa-1"}), 256).as_deref(), Ok("rsa-1"));
        assert_eq!(select(json!({"alg": "ES256", "kid": "ec-1"}), 64).as_deref(), Ok("ec-1"));
        assert_eq!(select(json!({"alg": "ES256"}), 64).as_deref(), Ok("ec-1"), "the only ES256 key");
        assert_eq!(select(json!({"alg": "RS256", "kid": "rsa-9"}), 256), Err(IdentityError::UnknownKey));
        // Algorithm confusion: an RSA key's token relabelled, in either direction.
        assert_eq!(
            select(json!({"alg": "HS256", "kid": "rsa-1"}), 32),
            Err(IdentityError::AlgorithmMismatch)
        );
        assert_eq!(
            select(json!({"alg": "ES256", "kid": "rsa-1"}), 64),
            Err(IdentityError::AlgorithmMismatch)
        );
        assert_eq!(select(json!({"alg": "RS256", "kid": "rsa-1"}), 255), Err(IdentityError::Signature));
        let two = KeySet::parse(json!({"keys": [ec_jwk("a"), ec_jwk("b")]}).to_string().as_bytes()).unwrap();
        let token = token_with(json!({"alg": "ES256"}), 64);
        assert_eq!(two.select(&Jws::parse(&token).unwrap()), Err(IdentityError::UnknownKey), "ambiguous");
    }

    #[test]
    fn an_unknown_kid_refetches_at_most_once_per_interval() {
        let mut refresh = KeyRefresh::default();
        assert!(refresh.stale(NOW));
        refresh.fetched(NOW, false);
        assert!(!refresh.stale(Timestamp(NOW.0 + KEY_SET_MAX_AGE_SECONDS - 1)));
        assert!(refresh.stale(Timestamp(NOW.0 + KEY_SET_MAX_AGE_SECONDS)));
        assert!(refresh.may_refetch_for_unknown_kid(NOW), "a fresh set may still lack a new key");
        refresh.fetched(Timestamp(NOW.0 + 1), true);
        assert!(!refresh.may_refetch_for_unknown_kid(Timestamp(NOW.0 + KID_REFETCH_INTERVAL_SECONDS)));
        assert!(refresh.may_refetch_for_unknown_kid(Timestamp(NOW.0 + 1 + KID_REFETCH_INTERVAL_SECONDS)));
    }

    #[test]
    fn a_failed_fetch_is_retried_soon_but_not_at_once() {
        let mut refresh = KeyRefresh::default();
        refresh.fetched(NOW, false);
        refresh.failed();
        assert!(!refresh.stale(Timestamp(NOW.0 + KEY_SET_RETRY_SECONDS - 1)));
        assert!(refresh.stale(Timestamp(NOW.0 + KEY_SET_RETRY_SECONDS)));
        refresh.fetched(Timestamp(NOW.0 + KEY_SET_RETRY_SECONDS), false);
        assert!(!refresh.stale(Timestamp(NOW.0 + 2 * KEY_SET_RETRY_SECONDS)), "a success lasts the hour");
    }
}

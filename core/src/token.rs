//! Impression tokens: the proof that a popup event (impression, click, dismiss) is about a popup we served.
//!
//! When the resolver returns a popup it issues a token; the app posts the token back with every event about
//! that popup. The token is issued and verified without any storage: everything the verifier needs is in the
//! token itself, authenticated with HMAC-SHA256 under a server secret.
//!
//! # Format
//!
//! ```text
//! v1.<payload>.<mac>
//!
//! payload = base64url-nopad( user "|" campaign "|" variant "|" issued_at "|" nonce )
//! mac     = base64url-nopad( HMAC-SHA256(secret, "v1." + payload) )
//! ```
//!
//! The payload is plain text, not JSON: numbers are canonical decimal (no sign on unsigned fields, no `+`, no
//! leading zeros, no `-0`), `issued_at` is Unix seconds. None of the fields can contain `|` (user ids, variant
//! keys and decimals are all checked), so the split is unambiguous and each set of claims has exactly one
//! encoding. Base64 decoding is also canonical (no padding, no stray trailing bits), so a token string and its
//! claims are in one-to-one correspondence. A typical token is about 130 characters; the largest possible is
//! 261, well under [`MAX_TOKEN_LEN`].
//!
//! The MAC covers the version prefix as well as the payload, so a token can never be reinterpreted under a
//! future `v2` layout that reuses the secret.
//!
//! # Threat model
//!
//! * **Forged events for other users or campaigns.** The user, campaign and variant are inside the MAC. The
//!   events endpoint calls [`Verifier::verify_event`] with the user it authenticated from the session and the
//!   campaign named in the event, so a token served to one customer cannot be spent on another customer's
//!   record, nor moved to another campaign. The variant must be taken from the verified claims, never from the
//!   request body.
//! * **Tampering.** Any change to any byte of the token fails: the version and payload are covered by the
//!   MAC, and the MAC itself is compared in constant time ([`Mac::verify_slice`]) so its bytes cannot be
//!   guessed one at a time from response timing.
//! * **Replay.** A token cannot be made single-use without storage, and mobile clients retry on flaky
//!   networks, so replay is not prevented but made harmless: [`VerifiedToken::id`] plus the event kind is the
//!   idempotency key, and a replayed or retried event is the same event, counted once.
//! * **Expiry.** Tokens are accepted for `max_age_seconds` after issue. This bounds how long a leaked token is
//!   useful and, more importantly, how long the dedupe keys must be kept: a key that outlives the token
//!   ([`Verifier::dedupe_ttl_seconds`]) can never be evicted while a replay would still be accepted.
//! * **Secret rotation.** [`Verifier`] takes several secrets, current first. Deploy the new secret at the
//!   front of the list, keep the old one behind it for at least `max_age_seconds`, then drop it.
//!
//! Not covered, by design: the payload is readable by whoever holds the token (only the customer's own app,
//! which knows its own user id); a customer inflating their own impressions by asking for popups again, which
//! is a rate-limiting concern; and a leaked secret, which is what rotation is for.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::campaign::{is_variant_key, MAX_VARIANT_KEY_LEN};
use crate::ids::{CampaignId, Timestamp, UserId};

type HmacSha256 = Hmac<Sha256>;

/// Version prefix of the current format, including its separator. It is also the start of the MAC input.
const PREFIX: &str = "v1.";

/// Separator between payload fields. No field can contain it (see the module docs).
const FIELD_SEPARATOR: char = '|';

/// Length in bytes of an HMAC-SHA256 tag.
const MAC_LEN: usize = 32;

/// Tokens longer than this are refused before any decoding, so a hostile client cannot make the verifier
/// decode or allocate much. The largest token [`issue`] can produce is 261 bytes.
pub const MAX_TOKEN_LEN: usize = 512;

/// Longest accepted variant key: the campaign model's limit, which tokens share so that every variant a
/// valid campaign can serve can be put in a token.
pub const MAX_VARIANT_LEN: usize = MAX_VARIANT_KEY_LEN;

/// Shortest accepted secret: RFC 2104 discourages HMAC keys shorter than the hash output (32 bytes for
/// SHA-256). Refusing short secrets also catches a missing or empty secret in the deployment config, which
/// would otherwise make every token forgeable.
pub const MIN_SECRET_LEN: usize = 32;

/// Number of MAC bytes that make up [`VerifiedToken::id`]: 96 bits, 16 base64url characters.
const ID_MAC_BYTES: usize = 12;

/// Length of [`VerifiedToken::id`] in characters.
pub const TOKEN_ID_LEN: usize = 16;

/// What a token asserts: this popup (campaign and variant) was served to this user at this time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenClaims {
    pub user: UserId,
    pub campaign: CampaignId,
    /// The variant key: 1 to 32 ASCII letters, digits, `-` or `_`.
    pub variant: String,
    pub issued_at: Timestamp,
    /// Random per impression, supplied by the caller. It is what makes two impressions of the same popup to
    /// the same user in the same second two distinct tokens, with distinct ids; a reused nonce makes the
    /// same token and therefore the same event.
    pub nonce: u64,
}

/// A token that passed verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedToken {
    pub claims: TokenClaims,
    /// A short identifier of this token, stable across retries: the dedupe key of its events (together with
    /// the event kind, e.g. `click:<id>`).
    ///
    /// It is the base64url encoding of the first 12 bytes of the token's MAC, which makes it
    /// * unique per issued token: the MAC is a pseudo-random function of the claims, nonce included, and 96
    ///   bits make an accidental collision negligible even over billions of tokens;
    /// * unforgeable: nobody without the secret can produce a valid token with a chosen id, so a client cannot
    ///   pre-empt someone else's dedupe key to suppress their events;
    /// * short (16 characters), and fixed for a given token whichever of the rotated secrets verified it,
    ///   since it is read from the token rather than recomputed.
    pub id: String,
}

/// Why a token was not issued or not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("impression token is malformed")]
    Malformed,
    #[error("impression token signature does not match any known secret")]
    BadSignature,
    #[error("impression token has expired")]
    Expired,
    #[error("impression token is issued too far in the future")]
    IssuedInFuture,
    #[error("impression token belongs to another user")]
    WrongUser,
    #[error("impression token belongs to another campaign")]
    WrongCampaign,
    #[error("impression token claims are invalid: the variant key must be 1 to {MAX_VARIANT_LEN} ASCII letters, digits, '-' or '_'")]
    InvalidClaims,
    #[error("impression token configuration is invalid: {0}")]
    InvalidConfig(&'static str),
}

/// Issues the token for `claims`, signed with `secret` (the current secret, the first one given to
/// [`Verifier::new`]).
pub fn issue(secret: &[u8], claims: &TokenClaims) -> Result<String, TokenError> {
    check_secret(secret)?;
    issue_with(&signer(secret)?, claims)
}

/// The HMAC keyed with `secret`, before any input: cloned for each token, it saves hashing the key's two
/// padded blocks every time.
fn signer(secret: &[u8]) -> Result<HmacSha256, TokenError> {
    // HMAC takes keys of any length; the error branch exists only in the generic `KeyInit` signature.
    HmacSha256::new_from_slice(secret).map_err(|_| TokenError::InvalidConfig("secret rejected by HMAC"))
}

/// Issues the token for `claims` with a [`signer`]: the token is written into one string, whose first part
/// (`"v1." + payload`) is also the MAC's input.
fn issue_with(signer: &HmacSha256, claims: &TokenClaims) -> Result<String, TokenError> {
    if !is_variant_key(&claims.variant) {
        return Err(TokenError::InvalidClaims);
    }
    let payload = format!(
        "{}{sep}{}{sep}{}{sep}{}{sep}{}",
        claims.user.as_str(),
        claims.campaign.0,
        claims.variant,
        claims.issued_at.seconds(),
        claims.nonce,
        sep = FIELD_SEPARATOR,
    );
    let encoded = |bytes: usize| (bytes * 4).div_ceil(3);
    let mut token = String::with_capacity(PREFIX.len() + encoded(payload.len()) + 1 + encoded(MAC_LEN));
    token.push_str(PREFIX);
    URL_SAFE_NO_PAD.encode_string(payload.as_bytes(), &mut token);
    let mut mac = signer.clone();
    mac.update(token.as_bytes());
    let tag = mac.finalize().into_bytes();
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(tag, &mut token);
    Ok(token)
}

/// Checks tokens against the current and previous secrets and the validity window.
#[derive(Clone, Copy)]
pub struct Verifier<'a> {
    secrets: &'a [&'a [u8]],
    max_age_seconds: i64,
    max_clock_skew_seconds: i64,
}

// Written by hand so the secrets never reach a log line.
impl fmt::Debug for Verifier<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("secrets", &self.secrets.len())
            .field("max_age_seconds", &self.max_age_seconds)
            .field("max_clock_skew_seconds", &self.max_clock_skew_seconds)
            .finish()
    }
}

impl<'a> Verifier<'a> {
    /// `secrets` lists the current secret first, then previous ones still accepted during a rotation.
    ///
    /// A token is accepted while `now < issued_at + max_age_seconds` (see [`Verifier::expires_at`]) and
    /// refused if `issued_at > now + max_clock_skew_seconds`, the skew absorbing clock differences between
    /// the node that issued it and the node verifying it.
    ///
    /// Refuses an empty list, any secret shorter than [`MIN_SECRET_LEN`], a non-positive `max_age_seconds`
    /// and a negative skew: each is a deployment mistake better caught at start-up than as a flood of
    /// rejected events.
    pub fn new(
        secrets: &'a [&'a [u8]],
        max_age_seconds: i64,
        max_clock_skew_seconds: i64,
    ) -> Result<Self, TokenError> {
        if secrets.is_empty() {
            return Err(TokenError::InvalidConfig("no secret given"));
        }
        for secret in secrets {
            check_secret(secret)?;
        }
        if max_age_seconds <= 0 {
            return Err(TokenError::InvalidConfig("max age must be positive"));
        }
        if max_clock_skew_seconds < 0 {
            return Err(TokenError::InvalidConfig("clock skew must not be negative"));
        }
        Ok(Verifier { secrets, max_age_seconds, max_clock_skew_seconds })
    }

    /// Verifies `token` at time `now`: format, signature (against every secret in turn), then age.
    ///
    /// The whole token is parsed before the MAC is checked. Parsing is bounded and total, so nothing is lost
    /// by doing it on unauthenticated input, and it lets garbage (`Malformed`) be told apart from forgery
    /// attempts (`BadSignature`) in the metrics, without spending an HMAC per secret on garbage.
    pub fn verify(&self, token: &str, now: Timestamp) -> Result<VerifiedToken, TokenError> {
        let parsed = parse(token)?;

        let signed_by_us = self.secrets.iter().any(|secret| {
            keyed_mac(secret, parsed.payload_b64)
                .map(|mac| mac.verify_slice(&parsed.tag).is_ok())
                .unwrap_or(false)
        });
        if !signed_by_us {
            return Err(TokenError::BadSignature);
        }

        // Time checks come after the signature so that nothing about an unsigned token is reported.
        let issued_at = parsed.claims.issued_at.seconds();
        if issued_at.saturating_sub(now.seconds()) > self.max_clock_skew_seconds {
            return Err(TokenError::IssuedInFuture);
        }
        // age == max_age is expired: the token is valid for exactly max_age seconds, and `expires_at` is the
        // first second at which it is refused.
        if now.seconds().saturating_sub(issued_at) >= self.max_age_seconds {
            return Err(TokenError::Expired);
        }

        let id = URL_SAFE_NO_PAD.encode(parsed.tag.get(..ID_MAC_BYTES).unwrap_or_default());
        Ok(VerifiedToken { claims: parsed.claims, id })
    }

    /// [`Verifier::verify`], then checks the token was issued to `expected_user` (the user authenticated on
    /// the event request) for `expected_campaign` (the campaign the event is about).
    pub fn verify_event(
        &self,
        token: &str,
        expected_user: &UserId,
        expected_campaign: CampaignId,
        now: Timestamp,
    ) -> Result<VerifiedToken, TokenError> {
        let verified = self.verify(token, now)?;
        if verified.claims.user != *expected_user {
            return Err(TokenError::WrongUser);
        }
        if verified.claims.campaign != expected_campaign {
            return Err(TokenError::WrongCampaign);
        }
        Ok(verified)
    }

    /// The first second at which a token with these claims is refused as expired: `issued_at + max_age`
    /// (saturating, so a token stamped at the end of time simply never expires by this measure).
    pub fn expires_at(&self, claims: &TokenClaims) -> Timestamp {
        claims.issued_at.plus(self.max_age_seconds)
    }

    /// How long, from `now`, to keep the dedupe key of an event carrying a token with these claims, so the
    /// key outlives every node's acceptance of the token: the time left until [`Verifier::expires_at`] plus
    /// the clock skew (another node whose clock lags by up to the skew keeps accepting the token that much
    /// longer). At least 1, so it can be passed to a store where a TTL of 0 means "no expiry" or an error.
    pub fn dedupe_ttl_seconds(&self, claims: &TokenClaims, now: Timestamp) -> i64 {
        self.expires_at(claims)
            .seconds()
            .saturating_sub(now.seconds())
            .saturating_add(self.max_clock_skew_seconds)
            .max(1)
    }
}

/// A token split into its parts, every part syntactically valid, the MAC not yet checked.
struct ParsedToken<'t> {
    payload_b64: &'t str,
    tag: [u8; MAC_LEN],
    claims: TokenClaims,
}

fn parse(token: &str) -> Result<ParsedToken<'_>, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let rest = token.strip_prefix(PREFIX).ok_or(TokenError::Malformed)?;
    let (payload_b64, mac_b64) = rest.split_once('.').ok_or(TokenError::Malformed)?;
    // The base64url alphabet has no '.', so a third dot would fail decoding anyway; saying it here keeps the
    // segment count rule explicit.
    if mac_b64.contains('.') {
        return Err(TokenError::Malformed);
    }

    let tag: [u8; MAC_LEN] = URL_SAFE_NO_PAD
        .decode(mac_b64)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or(TokenError::Malformed)?;
    let payload = URL_SAFE_NO_PAD.decode(payload_b64).map_err(|_| TokenError::Malformed)?;
    let payload = core::str::from_utf8(&payload).map_err(|_| TokenError::Malformed)?;
    let claims = parse_claims(payload).ok_or(TokenError::Malformed)?;

    Ok(ParsedToken { payload_b64, tag, claims })
}

fn parse_claims(payload: &str) -> Option<TokenClaims> {
    let mut fields = payload.split(FIELD_SEPARATOR);
    let user = UserId::parse(fields.next()?).ok()?;
    let campaign = CampaignId(parse_canonical_u64(fields.next()?)?);
    let variant = fields.next()?;
    let issued_at = Timestamp(parse_canonical_i64(fields.next()?)?);
    let nonce = parse_canonical_u64(fields.next()?)?;
    if fields.next().is_some() || !is_variant_key(variant) {
        return None;
    }
    Some(TokenClaims { user, campaign, variant: String::from(variant), issued_at, nonce })
}

/// Decimal digits only, no sign, no leading zero. `str::parse` alone would also take `+7` and `007`, giving
/// one set of claims several encodings.
fn parse_canonical_u64(field: &str) -> Option<u64> {
    let bytes = field.as_bytes();
    let canonical = match bytes {
        [] => false,
        [b'0'] => true,
        [first, ..] => *first != b'0' && bytes.iter().all(u8::is_ascii_digit),
    };
    if canonical {
        field.parse().ok()
    } else {
        None
    }
}

/// Like [`parse_canonical_u64`] with an optional `-`, which must not be followed by `0`.
fn parse_canonical_i64(field: &str) -> Option<i64> {
    match field.strip_prefix('-') {
        Some(magnitude) => {
            let canonical = magnitude != "0" && parse_canonical_u64(magnitude).is_some();
            // Parse the whole field so that i64::MIN, whose magnitude does not fit in i64, is accepted.
            canonical.then(|| field.parse().ok()).flatten()
        }
        None => parse_canonical_u64(field).and_then(|value| i64::try_from(value).ok()),
    }
}

fn check_secret(secret: &[u8]) -> Result<(), TokenError> {
    if secret.len() < MIN_SECRET_LEN {
        return Err(TokenError::InvalidConfig("secret must be at least 32 bytes"));
    }
    Ok(())
}

/// HMAC-SHA256 keyed with `secret`, fed with the signed part of the token: `"v1." + payload_b64`.
fn keyed_mac(secret: &[u8], payload_b64: &str) -> Result<HmacSha256, TokenError> {
    let mut mac = signer(secret)?;
    mac.update(PREFIX.as_bytes());
    mac.update(payload_b64.as_bytes());
    Ok(mac)
}

/// How far ahead of a verifier's clock a token's issue time may be: resolvers' clocks differ a little.
pub const CLOCK_SKEW_SECONDS: i64 = 60;

/// A deployment's token secrets: the current one, which signs, then earlier ones still accepted while
/// tokens signed with them are in flight (a rotation).
pub struct Secrets {
    secrets: Vec<Vec<u8>>,
    /// The HMAC keyed with the current secret, which signs every token this process issues.
    signer: HmacSha256,
    /// How long a token is accepted.
    pub ttl_seconds: i64,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secrets")
            .field("count", &self.secrets.len())
            .field("ttl_seconds", &self.ttl_seconds)
            .finish()
    }
}

impl Secrets {
    /// `previous` is a comma-separated list, possibly empty. Every secret must be at least
    /// [`MIN_SECRET_LEN`] bytes.
    pub fn new(current: &str, previous: &str, ttl_seconds: i64) -> Result<Secrets, TokenError> {
        if ttl_seconds <= 0 {
            return Err(TokenError::InvalidConfig("the token lifetime must be positive"));
        }
        let mut secrets = alloc::vec![current.as_bytes().to_vec()];
        secrets.extend(
            previous.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| s.as_bytes().to_vec()),
        );
        match secrets.iter().position(|s| s.len() < MIN_SECRET_LEN) {
            Some(0) => Err(TokenError::InvalidConfig("the token secret is shorter than 32 bytes")),
            Some(_) => Err(TokenError::InvalidConfig("a previous token secret is shorter than 32 bytes")),
            None => Ok(Secrets { signer: signer(current.as_bytes())?, secrets, ttl_seconds }),
        }
    }

    /// The secret new tokens are signed with.
    pub fn current(&self) -> &[u8] {
        self.secrets.first().map_or(&[], Vec::as_slice)
    }

    /// Every secret a token may be signed with, the current one first.
    pub fn all(&self) -> Vec<&[u8]> {
        self.secrets.iter().map(Vec::as_slice).collect()
    }

    /// Signs a new token with the current secret.
    pub fn issue(&self, claims: &TokenClaims) -> Result<String, TokenError> {
        issue_with(&self.signer, claims)
    }

    /// Checks the token an event carries for `user` and `campaign`, with every accepted secret; returns it
    /// with how long the event must be remembered so a retry is a no-op (as long as the token is accepted).
    pub fn verify_event(
        &self,
        token: &str,
        user: &UserId,
        campaign: CampaignId,
        now: Timestamp,
    ) -> Result<(VerifiedToken, i64), TokenError> {
        self.verify_for(token, now, |verifier, token| verifier.verify_event(token, user, campaign, now))
    }

    /// Checks the token a conversion carries for `user`: like [`Secrets::verify_event`], with the campaign
    /// the token names, since the bank's backend knows the token and not which popup it came from. A
    /// conversion is attributed while its token is accepted: the token lifetime is the attribution window.
    pub fn verify_conversion(
        &self,
        token: &str,
        user: &UserId,
        now: Timestamp,
    ) -> Result<(VerifiedToken, i64), TokenError> {
        self.verify_for(token, now, |verifier, token| {
            let verified = verifier.verify(token, now)?;
            if verified.claims.user != *user {
                return Err(TokenError::WrongUser);
            }
            Ok(verified)
        })
    }

    fn verify_for(
        &self,
        token: &str,
        now: Timestamp,
        check: impl FnOnce(&Verifier<'_>, &str) -> Result<VerifiedToken, TokenError>,
    ) -> Result<(VerifiedToken, i64), TokenError> {
        let secrets = self.all();
        let verifier = Verifier::new(&secrets, self.ttl_seconds, CLOCK_SKEW_SECONDS)?;
        let verified = check(&verifier, token)?;
        let remember_seconds = verifier.dedupe_ttl_seconds(&verified.claims, now);
        Ok((verified, remember_seconds))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use alloc::string::ToString;
    use alloc::vec;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    const SECRET: &[u8] = b"current-secret-0123456789abcdefghij";
    const OLD_SECRET: &[u8] = b"previous-secret-0123456789abcdefghi";
    const OTHER_SECRET: &[u8] = b"attacker-secret-0123456789abcdefghi";
    const MAX_AGE: i64 = 3600;
    const SKEW: i64 = 60;
    const T0: Timestamp = Timestamp(1_750_000_000);

    fn user(raw: &str) -> UserId {
        UserId::parse(raw).unwrap()
    }

    fn claims() -> TokenClaims {
        TokenClaims {
            user: user("cust-0001@bank.id"),
            campaign: CampaignId(4217),
            variant: "spring-b".to_string(),
            issued_at: T0,
            nonce: 0x9e37_79b9_7f4a_7c15,
        }
    }

    fn verifier<'a>(secrets: &'a [&'a [u8]]) -> Verifier<'a> {
        Verifier::new(secrets, MAX_AGE, SKEW).unwrap()
    }

    /// Builds a token around an arbitrary payload, signed with `secret`: how an attacker holding a secret (or
    /// a bug in `issue`) would make one.
    fn sign_raw(secret: &[u8], payload: &str) -> String {
        let payload_b64 = URL_SAFE_NO_PAD.encode(payload.as_bytes());
        let tag = keyed_mac(secret, &payload_b64).unwrap().finalize().into_bytes();
        format!("{PREFIX}{payload_b64}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    fn segments(token: &str) -> (String, String) {
        let (payload, mac) = token.strip_prefix(PREFIX).unwrap().split_once('.').unwrap();
        (payload.to_string(), mac.to_string())
    }

    #[test]
    fn round_trip() {
        let token = issue(SECRET, &claims()).unwrap();
        assert!(token.starts_with("v1."));
        assert!(token.len() < 140, "token is {} bytes", token.len());
        let verified = verifier(&[SECRET]).verify(&token, T0).unwrap();
        assert_eq!(verified.claims, claims());
        assert_eq!(verified.id.len(), TOKEN_ID_LEN);
        let (_, mac) = segments(&token);
        // 12 bytes are exactly 16 base64 characters, so the id is a prefix of the MAC segment.
        assert!(mac.starts_with(&verified.id));
    }

    #[test]
    fn payload_is_the_documented_text() {
        let token = issue(SECRET, &claims()).unwrap();
        let (payload, _) = segments(&token);
        let decoded = URL_SAFE_NO_PAD.decode(payload).unwrap();
        assert_eq!(
            core::str::from_utf8(&decoded).unwrap(),
            "cust-0001@bank.id|4217|spring-b|1750000000|11400714819323198485"
        );
    }

    #[test]
    fn issue_is_deterministic() {
        assert_eq!(issue(SECRET, &claims()).unwrap(), issue(SECRET, &claims()).unwrap());
    }

    #[test]
    fn largest_token_fits_under_the_cap() {
        let claims = TokenClaims {
            user: user(&"u".repeat(crate::ids::MAX_USER_ID_LEN)),
            campaign: CampaignId(u64::MAX),
            variant: "v".repeat(MAX_VARIANT_LEN),
            issued_at: Timestamp(i64::MIN),
            nonce: u64::MAX,
        };
        let token = issue(SECRET, &claims).unwrap();
        assert_eq!(token.len(), 261);
        assert!(token.len() <= MAX_TOKEN_LEN);
        let verified = verifier(&[SECRET]).verify(&token, claims.issued_at).unwrap();
        assert_eq!(verified.claims, claims);
    }

    #[test]
    fn every_single_character_change_is_rejected() {
        let token = issue(SECRET, &claims()).unwrap();
        let v = verifier(&[SECRET]);
        let bytes = token.as_bytes();
        let replacements: Vec<u8> = (0x20u8..0x7f).collect();
        for position in 0..bytes.len() {
            for &replacement in &replacements {
                if replacement == bytes[position] {
                    continue;
                }
                let mut tampered = bytes.to_vec();
                tampered[position] = replacement;
                let tampered = String::from_utf8(tampered).unwrap();
                assert!(v.verify(&tampered, T0).is_err(), "accepted {tampered:?} (position {position})");
            }
            let mut deleted = bytes.to_vec();
            deleted.remove(position);
            let deleted = String::from_utf8(deleted).unwrap();
            assert!(v.verify(&deleted, T0).is_err(), "accepted deletion at {position}");
        }
        for position in 0..=bytes.len() {
            let mut inserted = bytes.to_vec();
            inserted.insert(position, b'A');
            let inserted = String::from_utf8(inserted).unwrap();
            assert!(v.verify(&inserted, T0).is_err(), "accepted insertion at {position}");
        }
    }

    #[test]
    fn payload_resigned_with_another_secret_is_rejected() {
        let v = verifier(&[SECRET, OLD_SECRET]);
        // The same claims signed by someone else.
        let forged = issue(OTHER_SECRET, &claims()).unwrap();
        assert_eq!(v.verify(&forged, T0), Err(TokenError::BadSignature));
        // A genuine payload edited to another user and re-signed.
        let forged = sign_raw(OTHER_SECRET, "victim-42|4217|spring-b|1750000000|11400714819323198485");
        assert_eq!(v.verify(&forged, T0), Err(TokenError::BadSignature));
        // A genuine MAC moved onto another genuine-looking payload.
        let (_, genuine_mac) = segments(&issue(SECRET, &claims()).unwrap());
        let (other_payload, _) =
            segments(&sign_raw(SECRET, "victim-42|4217|spring-b|1750000000|11400714819323198485"));
        let spliced = format!("{PREFIX}{other_payload}.{genuine_mac}");
        assert_eq!(v.verify(&spliced, T0), Err(TokenError::BadSignature));
    }

    #[test]
    fn event_binding_is_checked() {
        let token = issue(SECRET, &claims()).unwrap();
        let v = verifier(&[SECRET]);
        let owner = claims().user;
        let ok = v.verify_event(&token, &owner, CampaignId(4217), T0).unwrap();
        assert_eq!(ok.claims, claims());
        assert_eq!(
            v.verify_event(&token, &user("cust-0002@bank.id"), CampaignId(4217), T0),
            Err(TokenError::WrongUser)
        );
        assert_eq!(v.verify_event(&token, &owner, CampaignId(4218), T0), Err(TokenError::WrongCampaign));
        // Authenticity is checked before binding: a forged token is a bad signature whatever it claims.
        let forged = issue(OTHER_SECRET, &claims()).unwrap();
        assert_eq!(v.verify_event(&forged, &owner, CampaignId(4217), T0), Err(TokenError::BadSignature));
    }

    #[test]
    fn expiry_boundary_is_exclusive() {
        let token = issue(SECRET, &claims()).unwrap();
        let v = verifier(&[SECRET]);
        assert_eq!(v.expires_at(&claims()), T0.plus(MAX_AGE));
        assert!(v.verify(&token, T0.plus(MAX_AGE - 1)).is_ok());
        // age == max_age: the token lived exactly max_age seconds and `expires_at` is the first refusal.
        assert_eq!(v.verify(&token, v.expires_at(&claims())), Err(TokenError::Expired));
        assert_eq!(v.verify(&token, Timestamp(i64::MAX)), Err(TokenError::Expired));
    }

    #[test]
    fn issued_in_the_future_beyond_skew_is_rejected() {
        let token = issue(SECRET, &claims()).unwrap();
        let v = verifier(&[SECRET]);
        // issued_at == now + skew is still inside the tolerance.
        assert!(v.verify(&token, T0.plus(-SKEW)).is_ok());
        assert_eq!(v.verify(&token, T0.plus(-SKEW - 1)), Err(TokenError::IssuedInFuture));
        assert_eq!(v.verify(&token, Timestamp(i64::MIN)), Err(TokenError::IssuedInFuture));
    }

    #[test]
    fn dedupe_ttl_outlives_the_token() {
        let v = verifier(&[SECRET]);
        let c = claims();
        assert_eq!(v.dedupe_ttl_seconds(&c, T0), MAX_AGE + SKEW);
        assert_eq!(v.dedupe_ttl_seconds(&c, T0.plus(MAX_AGE - 1)), 1 + SKEW);
        assert_eq!(v.dedupe_ttl_seconds(&c, Timestamp(i64::MAX)), 1);
        assert_eq!(v.dedupe_ttl_seconds(&c, Timestamp(i64::MIN)), i64::MAX);
    }

    #[test]
    fn rotation_keeps_tokens_in_flight() {
        let old_token = issue(OLD_SECRET, &claims()).unwrap();
        let new_token = issue(SECRET, &claims()).unwrap();

        let rotating = verifier(&[SECRET, OLD_SECRET]);
        let from_old = rotating.verify(&old_token, T0).unwrap();
        let from_new = rotating.verify(&new_token, T0).unwrap();
        assert_eq!(from_old.claims, claims());
        assert_eq!(from_new.claims, claims());

        // The id is read from the token, so it does not depend on which secret matched.
        let old_only = verifier(&[OLD_SECRET]).verify(&old_token, T0).unwrap();
        assert_eq!(old_only.id, from_old.id);

        let rotated = verifier(&[SECRET]);
        assert_eq!(rotated.verify(&old_token, T0), Err(TokenError::BadSignature));
        assert!(rotated.verify(&new_token, T0).is_ok());
    }

    #[test]
    fn malformed_inputs() {
        let good = issue(SECRET, &claims()).unwrap();
        let (payload, mac) = segments(&good);
        let mac31 = URL_SAFE_NO_PAD.encode([7u8; 31]);
        let mac33 = URL_SAFE_NO_PAD.encode([7u8; 33]);
        let fake_mac = URL_SAFE_NO_PAD.encode([7u8; 32]);
        let with_payload = |p: &str| format!("{PREFIX}{}.{fake_mac}", URL_SAFE_NO_PAD.encode(p));

        let cases: Vec<String> = vec![
            String::new(),
            "v1".to_string(),
            "v1.".to_string(),
            "v1..".to_string(),
            "v2.x.y".to_string(),
            format!("v2.{payload}.{mac}"),
            format!("V1.{payload}.{mac}"),
            format!(".{payload}.{mac}"),
            format!("v1.{payload}"),
            format!("v1.{payload}."),
            format!("v1..{mac}"),
            format!("v1.{payload}.{mac}."),
            format!("v1.{payload}.{mac}.x"),
            format!("v1.{payload}..{mac}"),
            format!("v1.v1.{payload}.{mac}"),
            format!(" {good}"),
            format!("{good} "),
            format!("{good}\n"),
            format!("{good}="),
            format!("v1.{payload}=.{mac}"),
            "v1.@@@@.####".to_string(),
            "v1.aGVsbG8.!!!!".to_string(),
            format!("v1.{payload}.{mac31}"),
            format!("v1.{payload}.{mac33}"),
            format!("v1.{}.{mac}", "A".repeat(10_000)),
            "v".repeat(MAX_TOKEN_LEN + 1),
            format!("{good}{}", "A".repeat(MAX_TOKEN_LEN)),
            format!("v1.{}.{fake_mac}", URL_SAFE_NO_PAD.encode([0xff, 0xfe, 0x7c])),
            with_payload(""),
            with_payload("cust|4217|spring-b|1750000000"),
            with_payload("cust|4217|spring-b|1750000000|1|extra"),
            with_payload("cust|abc|spring-b|1750000000|1"),
            with_payload("cust|4217|spring-b|17500x0000|1"),
            with_payload("cust|4217|spring-b|1750000000|"),
            with_payload("cust|4217|spring-b|1750000000|1.5"),
            with_payload("cust|+4217|spring-b|1750000000|1"),
            with_payload("cust|04217|spring-b|1750000000|1"),
            with_payload("cust|4217|spring-b|-0|1"),
            with_payload("cust|4217|spring-b|--1|1"),
            with_payload("cust|4217|spring-b|- 1|1"),
            with_payload("cust|-4217|spring-b|1750000000|1"),
            with_payload("cust|18446744073709551616|spring-b|1750000000|1"),
            with_payload("cust|4217|spring-b|9223372036854775808|1"),
            with_payload("cust|4217|spring-b|1750000000|18446744073709551616"),
            with_payload("cust|4217|spring-b| 1750000000|1"),
            with_payload("|4217|spring-b|1750000000|1"),
            with_payload("cu st|4217|spring-b|1750000000|1"),
            with_payload("cust|4217||1750000000|1"),
            with_payload("cust|4217|spring.b|1750000000|1"),
            with_payload(&format!("cust|4217|{}|1750000000|1", "v".repeat(33))),
            with_payload(&format!("{}|4217|v|1750000000|1", "u".repeat(65))),
        ];
        let v = verifier(&[SECRET]);
        for case in &cases {
            assert_eq!(v.verify(case, T0), Err(TokenError::Malformed), "input {case:?}");
        }
    }

    #[test]
    fn malformed_payload_is_malformed_even_when_signed() {
        let v = verifier(&[SECRET]);
        for payload in [
            "cust|4217|spring-b|1750000000",
            "cust|007|spring-b|1750000000|1",
            "cust|4217|spring b|1750000000|1",
        ] {
            assert_eq!(v.verify(&sign_raw(SECRET, payload), T0), Err(TokenError::Malformed));
        }
        // And the extremes of the numeric fields are accepted when well formed.
        let edge = sign_raw(SECRET, "cust|0|v|-9223372036854775808|0");
        let verified = v.verify(&edge, Timestamp(i64::MIN)).unwrap();
        assert_eq!(verified.claims.issued_at, Timestamp(i64::MIN));
        assert_eq!(verified.claims.campaign, CampaignId(0));
        assert_eq!(verified.claims.nonce, 0);
    }

    #[test]
    fn invalid_variant_keys_are_refused_on_issue() {
        let long = "v".repeat(MAX_VARIANT_LEN + 1);
        for variant in ["", "a|b", "a.b", "a b", "é", "a/b", "a\n", long.as_str()] {
            let mut c = claims();
            c.variant = variant.to_string();
            assert_eq!(issue(SECRET, &c), Err(TokenError::InvalidClaims), "{variant:?}");
        }
        for variant in ["A", "control", "B_2-x", &"v".repeat(MAX_VARIANT_LEN)] {
            let mut c = claims();
            c.variant = variant.to_string();
            assert!(issue(SECRET, &c).is_ok(), "{variant:?}");
        }
    }

    #[test]
    fn tokens_carry_exactly_the_variant_keys_campaigns_accept() {
        // The separator must never be a valid key character, or the payload split would be ambiguous.
        assert!(!is_variant_key("a|b"));
        for variant in ["A", "b-2", "", "a|b", "a.b", &"v".repeat(MAX_VARIANT_KEY_LEN + 1)] {
            let mut c = claims();
            c.variant = variant.to_string();
            assert_eq!(issue(SECRET, &c).is_ok(), is_variant_key(variant), "{variant:?}");
        }
    }

    #[test]
    fn weak_configuration_is_refused() {
        let short: &[u8] = b"too-short";
        let mut c = claims();
        assert!(matches!(issue(b"", &c), Err(TokenError::InvalidConfig(_))));
        assert!(matches!(issue(short, &c), Err(TokenError::InvalidConfig(_))));
        c.variant = String::new();
        // The secret is checked first: a configuration error is not blamed on the claims.
        assert!(matches!(issue(short, &c), Err(TokenError::InvalidConfig(_))));

        assert!(matches!(Verifier::new(&[], MAX_AGE, SKEW), Err(TokenError::InvalidConfig(_))));
        assert!(matches!(Verifier::new(&[SECRET, short], MAX_AGE, SKEW), Err(TokenError::InvalidConfig(_))));
        assert!(matches!(Verifier::new(&[SECRET], 0, SKEW), Err(TokenError::InvalidConfig(_))));
        assert!(matches!(Verifier::new(&[SECRET], MAX_AGE, -1), Err(TokenError::InvalidConfig(_))));
        assert!(Verifier::new(&[SECRET], MAX_AGE, 0).is_ok());
    }

    #[test]
    fn debug_does_not_print_secrets() {
        let shown = format!("{:?}", verifier(&[SECRET, OLD_SECRET]));
        assert!(!shown.contains("secret-0123"));
        assert!(shown.contains("secrets: 2"));
    }

    #[test]
    fn errors_have_messages() {
        assert_eq!(TokenError::Expired.to_string(), "impression token has expired");
        assert!(TokenError::InvalidClaims.to_string().contains("1 to 32"));
        assert_eq!(
            TokenError::InvalidConfig("no secret given").to_string(),
            "impression token configuration is invalid: no secret given"
        );
    }

    #[test]
    fn nonce_distinguishes_ids() {
        let v = verifier(&[SECRET]);
        let a = issue(SECRET, &claims()).unwrap();
        let mut other = claims();
        other.nonce += 1;
        let b = issue(SECRET, &other).unwrap();
        assert_ne!(a, b);
        let id_a = v.verify(&a, T0).unwrap().id;
        let id_b = v.verify(&b, T0).unwrap().id;
        assert_ne!(id_a, id_b);
        // A retry of the same token is the same event.
        assert_eq!(v.verify(&a, T0.plus(5)).unwrap().id, id_a);
    }

    fn arb_claims() -> impl Strategy<Value = TokenClaims> {
        ("[A-Za-z0-9._:@-]{1,64}", any::<u64>(), "[A-Za-z0-9_-]{1,32}", any::<i64>(), any::<u64>()).prop_map(
            |(user, campaign, variant, issued_at, nonce)| TokenClaims {
                user: UserId::parse(&user).unwrap(),
                campaign: CampaignId(campaign),
                variant,
                issued_at: Timestamp(issued_at),
                nonce,
            },
        )
    }

    proptest! {
        #[test]
        fn arbitrary_strings_are_never_accepted(input in any::<String>(), now in any::<i64>()) {
            let v = verifier(&[SECRET, OLD_SECRET]);
            prop_assert!(v.verify(&input, Timestamp(now)).is_err());
        }

        #[test]
        fn token_shaped_strings_are_never_accepted(
            payload in "[A-Za-z0-9_-]{0,120}",
            mac in "[A-Za-z0-9_-]{0,60}",
            dots in "[.]{0,2}",
        ) {
            let v = verifier(&[SECRET]);
            let input = format!("v1.{payload}.{dots}{mac}");
            prop_assert!(v.verify(&input, T0).is_err());
        }

        #[test]
        fn forged_payloads_are_never_accepted(claims in arb_claims()) {
            let forged = issue(OTHER_SECRET, &claims).unwrap();
            let v = verifier(&[SECRET, OLD_SECRET]);
            prop_assert_eq!(v.verify(&forged, claims.issued_at), Err(TokenError::BadSignature));
        }

        #[test]
        fn valid_claims_round_trip(claims in arb_claims()) {
            let token = issue(SECRET, &claims).unwrap();
            prop_assert!(token.len() <= MAX_TOKEN_LEN);
            let verified = verifier(&[SECRET])
                .verify_event(&token, &claims.user, claims.campaign, claims.issued_at)
                .unwrap();
            prop_assert_eq!(verified.id.len(), TOKEN_ID_LEN);
            prop_assert_eq!(verified.claims, claims);
        }
    }

    #[test]
    fn secrets_sign_with_the_current_one_and_accept_previous_ones() {
        let current = "c".repeat(MIN_SECRET_LEN);
        let previous = "p".repeat(MIN_SECRET_LEN);
        let secrets = Secrets::new(&current, &format!(" {previous} ,"), 60).unwrap();
        assert_eq!(secrets.current(), current.as_bytes());
        assert_eq!(secrets.all(), [current.as_bytes(), previous.as_bytes()]);
        assert!(!format!("{secrets:?}").contains(&current));
        assert!(Secrets::new("short", "", 60).is_err());
        assert!(Secrets::new(&current, "short", 60).is_err());
    }

    #[test]
    fn secrets_sign_what_the_current_secret_alone_signs() {
        let secrets = Secrets::new(core::str::from_utf8(SECRET).unwrap(), "", 60).unwrap();
        let token = secrets.issue(&claims()).unwrap();
        assert_eq!(token, issue(SECRET, &claims()).unwrap());
        let (payload, _) = segments(&token);
        let expected =
            sign_raw(SECRET, core::str::from_utf8(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap());
        assert_eq!(token, expected);
        let rotated = Secrets::new(
            core::str::from_utf8(OLD_SECRET).unwrap(),
            core::str::from_utf8(SECRET).unwrap(),
            60,
        )
        .unwrap();
        assert_ne!(
            rotated.issue(&claims()).unwrap(),
            token,
            "signed with the current secret, not a previous one"
        );
    }

    #[test]
    fn secrets_issue_and_verify_events_with_a_dedupe_lifetime() {
        let secrets = Secrets::new(&"s".repeat(MIN_SECRET_LEN), "", 3600).unwrap();
        let user = UserId::parse("u-1").unwrap();
        let claims = TokenClaims {
            user: user.clone(),
            campaign: CampaignId(4),
            variant: "a".into(),
            issued_at: Timestamp(1000),
            nonce: 9,
        };
        let token = secrets.issue(&claims).unwrap();
        let (verified, remember) =
            secrets.verify_event(&token, &user, CampaignId(4), Timestamp(1100)).unwrap();
        assert_eq!(verified.claims, claims);
        assert!(remember >= 3600 - 100, "remembered while the token is accepted: {remember}");
        let other = UserId::parse("u-2").unwrap();
        assert_eq!(
            secrets.verify_event(&token, &other, CampaignId(4), Timestamp(1100)).unwrap_err(),
            TokenError::WrongUser
        );
        assert!(Secrets::new(&"s".repeat(MIN_SECRET_LEN), "", 0).is_err());
    }
}

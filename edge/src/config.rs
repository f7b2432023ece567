//! The worker's configuration, from wrangler `[vars]` and secrets:
//!
//! | name | kind | default | meaning |
//! |---|---|---|---|
//! | `REDIS_REST_URL` | var | (required) | the Upstash REST endpoint, or the origin's gateway |
//! | `REDIS_REST_TOKEN` | secret | (required) | its bearer token |
//! | `REDIS_TIMEOUT_MS` | var | `300` | how long a request waits for Redis before answering 503 |
//! | `TOKEN_SECRET` | secret | (required) | signs impression tokens, at least 32 bytes; the origin's `POPUP_TOKEN_SECRET` |
//! | `TOKEN_PREVIOUS_SECRETS` | secret | empty | earlier secrets, comma-separated, still accepted during a rotation |
//! | `TOKEN_TTL_SECONDS` | var | `86400` | how long an impression token is accepted |
//! | `KEY_PREFIX` | var | `popup` | prefix of every Redis key; the origin's `POPUP_KEY_PREFIX` |
//! | `DAY_OFFSET` | var | `+00:00` | UTC offset at which days start for daily caps; the origin's `POPUP_DAY_OFFSET` |
//! | `IDENTITY` | var | `user_id` | `jwt` in production: the customer is the one the `Authorization: Bearer` token names; `user_id` trusts the query |
//! | `JWT_JWKS_URL` | var | empty | the identity provider's key set (RS256, ES256, EdDSA keys) |
//! | `JWT_HS256_SECRET` | secret | empty | a shared secret for HS256 tokens, at least 32 bytes |
//! | `JWT_ISSUER`, `JWT_AUDIENCE` | var | (required in `jwt` mode) | the `iss` and `aud` every token must carry |
//! | `JWT_USER_CLAIM` | var | `sub` | the claim that holds the customer id |
//! | `JWT_LEEWAY_SECONDS` | var | `60` | clock difference tolerated on `exp` and `nbf` |
//!
//! Everything that must agree with the origin has the origin's default: both take it from
//! `popup_core::defaults`. The parsing is plain Rust over a lookup function, so it is tested natively;
//! [`Config::from_env`] reads the worker's bindings, and [`Config::of_isolate`] keeps what it read.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use popup_core::defaults;
use popup_core::identity::{Rules, DEFAULT_LEEWAY_SECONDS, DEFAULT_USER_CLAIM};
use popup_core::store::KeySpace;
use popup_core::token::Secrets;

const MAX_TIMEOUT_MS: u64 = 30_000;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("{name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

fn invalid(name: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { name, reason: reason.into() }
}

#[derive(Debug)]
pub struct Config {
    pub redis: RedisConfig,
    pub keys: KeySpace,
    pub tokens: Secrets,
    pub identity: Identity,
}

/// How the popup API knows its customer (`IDENTITY`).
#[derive(Debug)]
pub enum Identity {
    /// The `user_id` the request names: development only.
    Claimed,
    Jwt(JwtSettings),
}

/// What identity tokens are checked with and against.
pub struct JwtSettings {
    pub rules: Rules,
    pub hs256_secret: Option<Vec<u8>>,
    pub jwks_url: Option<String>,
}

// Written by hand so the secret never reaches a log line.
impl fmt::Debug for JwtSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtSettings")
            .field("rules", &self.rules)
            .field("hs256", &self.hs256_secret.is_some())
            .field("jwks_url", &self.jwks_url)
            .finish()
    }
}

/// Where the REST API is and how long to wait for it.
pub struct RedisConfig {
    /// Without a trailing slash.
    pub url: String,
    pub token: String,
    pub timeout: Duration,
}

// Written by hand so the token never reaches a log line.
impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig").field("url", &self.url).field("timeout", &self.timeout).finish()
    }
}

thread_local! {
    /// The isolate's configuration, read on its first request. An isolate's bindings never change while it
    /// lives (a new deployment or secret starts new isolates), and reading a dozen of them through JavaScript
    /// on every request was a measurable share of its CPU. A configuration that fails is not kept (see
    /// `cache::kept`): each request reads it again and answers with the error.
    static ISOLATE_CONFIG: RefCell<Option<Rc<Config>>> = const { RefCell::new(None) };
}

impl Config {
    /// The isolate's configuration: read from `env` once, then kept.
    pub fn of_isolate(env: &worker::Env) -> Result<Rc<Config>, ConfigError> {
        crate::cache::kept(&ISOLATE_CONFIG, || Config::from_env(env).map(Rc::new))
    }

    /// Reads the worker's vars and secrets.
    pub fn from_env(env: &worker::Env) -> Result<Config, ConfigError> {
        // Secrets are string bindings like vars; `var` reads both.
        Config::from_lookup(|name| env.var(name).ok().map(|value| value.to_string()))
    }

    /// Reads the configuration through `lookup`, which answers a name with its value if it is set.
    /// An empty value counts as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &'static str| lookup(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let required = |name: &'static str| get(name).ok_or(ConfigError::Missing(name));

        let url = required("REDIS_REST_URL")?.trim_end_matches('/').to_string();
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(invalid("REDIS_REST_URL", "must be an http:// or https:// URL"));
        }
        let timeout_ms = match get("REDIS_TIMEOUT_MS") {
            None => defaults::REDIS_TIMEOUT_MS,
            Some(raw) => raw
                .parse::<u64>()
                .ok()
                .filter(|ms| (1..=MAX_TIMEOUT_MS).contains(ms))
                .ok_or_else(|| invalid("REDIS_TIMEOUT_MS", format!("must be 1 to {MAX_TIMEOUT_MS}")))?,
        };
        let redis = RedisConfig {
            url,
            token: required("REDIS_REST_TOKEN")?,
            timeout: Duration::from_millis(timeout_ms),
        };

        let prefix = get("KEY_PREFIX").unwrap_or_else(|| defaults::KEY_PREFIX.into());
        let offset = get("DAY_OFFSET").unwrap_or_else(|| defaults::DAY_OFFSET.into());
        let offset = popup_core::store::parse_day_offset(&offset)
            .ok_or_else(|| invalid("DAY_OFFSET", format!("\"{offset}\" is not an offset like +07:00")))?;
        let keys = KeySpace::new(&prefix, offset).map_err(|error| {
            let name = match error {
                popup_core::store::KeySpaceError::InvalidPrefix => "KEY_PREFIX",
                popup_core::store::KeySpaceError::InvalidDayOffset => "DAY_OFFSET",
            };
            invalid(name, error.to_string())
        })?;

        let ttl_seconds = match get("TOKEN_TTL_SECONDS") {
            None => defaults::TOKEN_TTL_SECONDS,
            Some(raw) => raw
                .parse::<i64>()
                .ok()
                .filter(|ttl| *ttl > 0)
                .ok_or_else(|| invalid("TOKEN_TTL_SECONDS", "must be a positive number of seconds"))?,
        };
        // Secrets are not trimmed: whatever bytes the origin signs with, the edge must use too.
        let secret =
            lookup("TOKEN_SECRET").filter(|s| !s.is_empty()).ok_or(ConfigError::Missing("TOKEN_SECRET"))?;
        let previous = lookup("TOKEN_PREVIOUS_SECRETS").unwrap_or_default();
        let tokens = Secrets::new(&secret, &previous, ttl_seconds).map_err(|error| {
            // Name the setting at fault: the current secret, or one of the previous ones.
            let name = if Secrets::new(&secret, "", ttl_seconds).is_err() {
                "TOKEN_SECRET"
            } else {
                "TOKEN_PREVIOUS_SECRETS"
            };
            invalid(name, error.to_string())
        })?;

        let identity = match get("IDENTITY").as_deref() {
            None | Some("user_id") => Identity::Claimed,
            Some("jwt") => Identity::Jwt(jwt_settings(&lookup, &get)?),
            Some(_) => return Err(invalid("IDENTITY", "must be jwt or user_id")),
        };

        Ok(Config { redis, keys, tokens, identity })
    }
}

fn jwt_settings(
    lookup: &impl Fn(&str) -> Option<String>,
    get: &impl Fn(&'static str) -> Option<String>,
) -> Result<JwtSettings, ConfigError> {
    let required = |name: &'static str| get(name).ok_or(ConfigError::Missing(name));
    let leeway_seconds = match get("JWT_LEEWAY_SECONDS") {
        None => DEFAULT_LEEWAY_SECONDS,
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|s| (0..=3600).contains(s))
            .ok_or_else(|| invalid("JWT_LEEWAY_SECONDS", "must be 0 to 3600"))?,
    };
    let rules = Rules {
        issuer: required("JWT_ISSUER")?,
        audience: required("JWT_AUDIENCE")?,
        user_claim: get("JWT_USER_CLAIM").unwrap_or_else(|| DEFAULT_USER_CLAIM.into()),
        leeway_seconds,
    };
    let hs256_secret = lookup("JWT_HS256_SECRET").filter(|s| !s.is_empty()).map(String::into_bytes);
    if hs256_secret.as_ref().is_some_and(|s| s.len() < 32) {
        return Err(invalid("JWT_HS256_SECRET", "must be at least 32 bytes"));
    }
    let jwks_url = get("JWT_JWKS_URL");
    if let Some(url) = &jwks_url {
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(invalid("JWT_JWKS_URL", "must be an http:// or https:// URL"));
        }
    }
    if hs256_secret.is_none() && jwks_url.is_none() {
        return Err(ConfigError::Missing("JWT_JWKS_URL"));
    }
    Ok(JwtSettings { rules, hs256_secret, jwks_url })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut vars: HashMap<String, String> = [
            ("REDIS_REST_URL", "http://127.0.0.1:8079/"),
            ("REDIS_REST_TOKEN", "edge-token"),
            ("TOKEN_SECRET", SECRET),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (name, value) in pairs {
            vars.insert(name.to_string(), value.to_string());
        }
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_match_the_origin() {
        let config = config(&[]).unwrap();
        assert_eq!(config.redis.url, "http://127.0.0.1:8079");
        assert_eq!(config.redis.timeout, Duration::from_millis(300));
        assert_eq!(config.keys, KeySpace::new("popup", 0).unwrap());
        assert_eq!(config.tokens.ttl_seconds, 86_400);
        assert_eq!(config.tokens.current(), SECRET.as_bytes());
        assert_eq!(config.tokens.all().len(), 1);
    }

    #[test]
    fn every_setting_is_read() {
        let previous = format!(" {}, ,{} ", "p".repeat(32), "q".repeat(40));
        let config = config(&[
            ("REDIS_TIMEOUT_MS", "150"),
            ("KEY_PREFIX", "tenant-a"),
            ("DAY_OFFSET", "+07:00"),
            ("TOKEN_TTL_SECONDS", "3600"),
            ("TOKEN_PREVIOUS_SECRETS", &previous),
        ])
        .unwrap();
        assert_eq!(config.redis.timeout, Duration::from_millis(150));
        assert_eq!(config.keys, KeySpace::new("tenant-a", 7 * 3600).unwrap());
        assert_eq!(config.tokens.ttl_seconds, 3600);
        let all = config.tokens.all();
        assert_eq!(all, [SECRET.as_bytes(), "p".repeat(32).as_bytes(), "q".repeat(40).as_bytes()]);
    }

    #[test]
    fn bad_settings_name_themselves() {
        let name_of = |error: ConfigError| match error {
            ConfigError::Missing(name) | ConfigError::Invalid { name, .. } => name,
        };
        let cases: [(&str, &str); 12] = [
            ("REDIS_REST_URL", ""),
            ("REDIS_REST_URL", "redis://127.0.0.1:6379"),
            ("REDIS_REST_TOKEN", " "),
            ("REDIS_TIMEOUT_MS", "0"),
            ("REDIS_TIMEOUT_MS", "soon"),
            ("KEY_PREFIX", "Popup!"),
            ("DAY_OFFSET", "07:00"),
            ("DAY_OFFSET", "+15:00"),
            ("TOKEN_TTL_SECONDS", "-1"),
            ("TOKEN_SECRET", "short"),
            ("TOKEN_SECRET", ""),
            ("TOKEN_PREVIOUS_SECRETS", "too-short"),
        ];
        for (name, value) in cases {
            let error = config(&[(name, value)]).unwrap_err();
            assert_eq!(name_of(error), name, "{name}={value:?}");
        }
    }

    #[test]
    fn identity_is_read_and_checked() {
        assert!(matches!(config(&[]).unwrap().identity, Identity::Claimed));
        let jwt = [("IDENTITY", "jwt"), ("JWT_ISSUER", "https://id.bank"), ("JWT_AUDIENCE", "popup")];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut pairs = jwt.to_vec();
            pairs.extend_from_slice(extra);
            config(&pairs)
        };
        let Identity::Jwt(settings) = with(&[("JWT_JWKS_URL", "https://id.bank/jwks")]).unwrap().identity
        else {
            panic!("jwt mode")
        };
        assert_eq!(settings.rules.user_claim, "sub");
        assert_eq!(settings.rules.leeway_seconds, 60);
        assert_eq!(settings.jwks_url.as_deref(), Some("https://id.bank/jwks"));
        let name_of = |error: ConfigError| match error {
            ConfigError::Missing(name) | ConfigError::Invalid { name, .. } => name,
        };
        assert_eq!(name_of(with(&[]).unwrap_err()), "JWT_JWKS_URL", "no key at all");
        assert_eq!(name_of(with(&[("JWT_HS256_SECRET", "short")]).unwrap_err()), "JWT_HS256_SECRET");
        assert_eq!(name_of(with(&[("JWT_JWKS_URL", "ftp://x")]).unwrap_err()), "JWT_JWKS_URL");
        assert_eq!(name_of(config(&[("IDENTITY", "jwt")]).unwrap_err()), "JWT_ISSUER");
        assert_eq!(name_of(config(&[("IDENTITY", "oauth")]).unwrap_err()), "IDENTITY");
        let secret = "s".repeat(32);
        let mut pairs = jwt.to_vec();
        pairs.push(("JWT_HS256_SECRET", &secret));
        let config = config(&pairs).unwrap();
        assert!(!format!("{config:?}").contains(&secret), "the secret is not shown");
    }

    #[test]
    fn secrets_never_reach_debug_output() {
        let config = config(&[]).unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains(SECRET) && !shown.contains("edge-token"), "{shown}");
    }
}

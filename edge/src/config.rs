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
//!
//! Everything that must agree with the origin has the origin's default. The parsing is plain Rust over a
//! lookup function, so it is tested natively; [`Config::from_env`] reads the worker's bindings.

use std::fmt;
use std::time::Duration;

use popup_core::store::KeySpace;
use popup_core::token::MIN_SECRET_LEN;

/// Tokens issued by a resolver whose clock runs a little ahead are still accepted: the origin's value.
pub const TOKEN_CLOCK_SKEW_SECONDS: i64 = 60;

const DEFAULT_TIMEOUT_MS: u64 = 300;
const MAX_TIMEOUT_MS: u64 = 30_000;
const DEFAULT_TOKEN_TTL_SECONDS: i64 = 86_400;

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
    pub tokens: TokenSecrets,
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

/// The token secret, the earlier ones still accepted, and how long a token lives.
pub struct TokenSecrets {
    /// The current secret first; never empty.
    secrets: Vec<Vec<u8>>,
    pub ttl_seconds: i64,
}

impl fmt::Debug for TokenSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSecrets")
            .field("count", &self.secrets.len())
            .field("ttl_seconds", &self.ttl_seconds)
            .finish()
    }
}

impl TokenSecrets {
    fn new(current: &str, previous: &str, ttl_seconds: i64) -> Result<TokenSecrets, ConfigError> {
        let mut secrets = vec![current.as_bytes().to_vec()];
        secrets.extend(
            previous.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| s.as_bytes().to_vec()),
        );
        if let Some(short) = secrets.iter().position(|s| s.len() < MIN_SECRET_LEN) {
            let name = if short == 0 { "TOKEN_SECRET" } else { "TOKEN_PREVIOUS_SECRETS" };
            return Err(invalid(name, format!("secrets must be at least {MIN_SECRET_LEN} bytes")));
        }
        Ok(TokenSecrets { secrets, ttl_seconds })
    }

    /// The secret new tokens are signed with.
    pub fn current(&self) -> &[u8] {
        self.secrets.first().map_or(&[], Vec::as_slice)
    }

    /// Every secret a token may be signed with, the current one first.
    pub fn all(&self) -> Vec<&[u8]> {
        self.secrets.iter().map(Vec::as_slice).collect()
    }
}

impl Config {
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
            None => DEFAULT_TIMEOUT_MS,
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

        let prefix = get("KEY_PREFIX").unwrap_or_else(|| "popup".into());
        let offset = match get("DAY_OFFSET") {
            None => 0,
            Some(raw) => parse_offset(&raw)
                .ok_or_else(|| invalid("DAY_OFFSET", format!("{raw:?} is not an offset like +07:00")))?,
        };
        let keys = KeySpace::new(&prefix, offset).map_err(|error| {
            let name = match error {
                popup_core::store::KeySpaceError::InvalidPrefix => "KEY_PREFIX",
                popup_core::store::KeySpaceError::InvalidDayOffset => "DAY_OFFSET",
            };
            invalid(name, error.to_string())
        })?;

        let ttl_seconds = match get("TOKEN_TTL_SECONDS") {
            None => DEFAULT_TOKEN_TTL_SECONDS,
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
        let tokens = TokenSecrets::new(&secret, &previous, ttl_seconds)?;

        Ok(Config { redis, keys, tokens })
    }
}

/// Parses `+07:00`, `-03:30` or `Z`: hours of one or two digits, minutes of two, at most 14 hours (the
/// origin's `POPUP_DAY_OFFSET` accepts the same spellings).
pub fn parse_offset(raw: &str) -> Option<i32> {
    if raw == "Z" {
        return Some(0);
    }
    let (sign, rest) = match raw.as_bytes().first()? {
        b'+' => (1, raw.get(1..)?),
        b'-' => (-1, raw.get(1..)?),
        _ => return None,
    };
    let (hours, minutes) = rest.split_once(':')?;
    let digits =
        |s: &str, lengths: &[usize]| lengths.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(hours, &[1, 2]) || !digits(minutes, &[2]) {
        return None;
    }
    let hours: i32 = hours.parse().ok()?;
    let minutes: i32 = minutes.parse().ok()?;
    if hours > 14 || minutes > 59 || (hours == 14 && minutes > 0) {
        return None;
    }
    Some(sign * (hours * 3600 + minutes * 60))
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
    fn secrets_never_reach_debug_output() {
        let config = config(&[]).unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains(SECRET) && !shown.contains("edge-token"), "{shown}");
    }

    #[test]
    fn offsets_parse() {
        assert_eq!(parse_offset("+07:00"), Some(7 * 3600));
        assert_eq!(parse_offset("+7:00"), Some(7 * 3600));
        assert_eq!(parse_offset("-03:30"), Some(-(3 * 3600 + 1800)));
        assert_eq!(parse_offset("+14:00"), Some(14 * 3600));
        assert_eq!(parse_offset("Z"), Some(0));
        for bad in
            ["07:00", "+15:00", "+14:30", "+07:60", "+07", "+-1:00", "++7:00", "+07:0", "", "+", "+é:00"]
        {
            assert_eq!(parse_offset(bad), None, "{bad:?}");
        }
    }
}

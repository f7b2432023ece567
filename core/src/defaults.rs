//! The defaults of the settings the edge and the origin must agree on, defined once so that a deployment
//! that sets none of them gets the same behaviour from both. Each adapter reads the setting under its own
//! name (the origin's `POPUP_KEY_PREFIX` is the edge's `KEY_PREFIX`) and falls back to the value here.

/// Prefix of every Redis key ([`crate::store::KeySpace`]): a resolver with another prefix reads another
/// deployment's keys, or none.
pub const KEY_PREFIX: &str = "popup";

/// UTC offset at which days start for daily caps ([`crate::store::parse_day_offset`]): it names today's
/// counters, so two resolvers on different offsets would count two different days.
pub const DAY_OFFSET: &str = "+00:00";

/// How long an impression token is accepted, in seconds ([`crate::token::Secrets`]); also how long a
/// conversion can be attributed to it.
pub const TOKEN_TTL_SECONDS: i64 = 86_400;

/// How long a popup or event request waits for Redis before answering 503, in milliseconds: the app never
/// waits on a popup, so a resolver fails fast rather than late.
pub const REDIS_TIMEOUT_MS: u64 = 300;

/// Consecutive Redis failures (timeouts, lost connections) after which resolvers answer 503 at once.
pub const BREAKER_FAILURES: u32 = 5;

/// How long the breaker refuses before it lets one request probe Redis again, in milliseconds.
pub const BREAKER_COOL_DOWN_MS: u64 = 3_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_settings() {
        let offset = crate::store::parse_day_offset(DAY_OFFSET);
        assert_eq!(offset, Some(0));
        assert!(crate::store::KeySpace::new(KEY_PREFIX, 0).is_ok());
        let secret = "0123456789abcdef0123456789abcdef";
        assert!(crate::token::Secrets::new(secret, "", TOKEN_TTL_SECONDS).is_ok());
    }
}

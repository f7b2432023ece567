//! Identifiers and time: the small value types every other module speaks in.

use alloc::string::String;
#[cfg(feature = "openapi")]
use alloc::vec::Vec;
use core::fmt;
use serde::{Deserialize, Serialize};

/// A campaign's id, as Postgres assigns it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CampaignId(pub u64);

impl fmt::Display for CampaignId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A segment's id. Segments have human names in the admin API; Redis and the catalog use this number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SegmentId(pub u32);

impl fmt::Display for SegmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Days are 86 400 seconds: Unix time has no leap seconds.
pub(crate) const SECONDS_PER_DAY: i64 = 86_400;

/// Seconds since the Unix epoch, UTC. The core never reads a clock: callers pass `now` in.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const fn seconds(self) -> i64 {
        self.0
    }

    pub const fn plus(self, seconds: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(seconds))
    }
}

/// The longest customer id accepted. Bank customer ids are short; the bound keeps keys and tokens small.
pub const MAX_USER_ID_LEN: usize = 64;

/// A customer id, checked once at the boundary so it is safe inside a Redis key and a token.
///
/// Allowed: 1 to 64 bytes of ASCII letters, digits and `-_.:@`. Braces are refused in particular because
/// the id sits inside a Redis Cluster hash tag (`{id}`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String, pattern = r"^[A-Za-z0-9_.:@-]{1,64}$", example = "cust-1"))]
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct UserId(String);

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UserIdError {
    #[error("user_id is empty")]
    Empty,
    #[error("user_id is longer than {MAX_USER_ID_LEN} bytes")]
    TooLong,
    #[error("user_id may only contain ASCII letters, digits and -_.:@")]
    InvalidCharacter,
}

impl UserId {
    pub fn parse(raw: &str) -> Result<UserId, UserIdError> {
        if raw.is_empty() {
            return Err(UserIdError::Empty);
        }
        if raw.len() > MAX_USER_ID_LEN {
            return Err(UserIdError::TooLong);
        }
        let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'@');
        if !raw.bytes().all(allowed) {
            return Err(UserIdError::InvalidCharacter);
        }
        Ok(UserId(String::from(raw)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for UserId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        UserId::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_are_checked_for_key_safety() {
        assert!(UserId::parse("cust-0001@bank.id").is_ok());
        assert_eq!(UserId::parse(""), Err(UserIdError::Empty));
        assert_eq!(UserId::parse("a{b}"), Err(UserIdError::InvalidCharacter));
        assert_eq!(UserId::parse("a b"), Err(UserIdError::InvalidCharacter));
        assert_eq!(UserId::parse("é"), Err(UserIdError::InvalidCharacter));
        let long = "x".repeat(MAX_USER_ID_LEN + 1);
        assert_eq!(UserId::parse(&long), Err(UserIdError::TooLong));
        assert!(UserId::parse(&long[1..]).is_ok());
    }

    #[test]
    fn user_id_deserialization_validates() {
        assert!(serde_json::from_str::<UserId>("\"ok-1\"").is_ok());
        assert!(serde_json::from_str::<UserId>("\"{bad}\"").is_err());
    }
}

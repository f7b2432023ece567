//! What a popup request says about where and on what it is asked: placement, platform, app version,
//! country and locale. Adapters build it from the query string and the platform's request metadata.

use alloc::string::String;
#[cfg(feature = "openapi")]
use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestContext {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_version: Option<AppVersion>,
    /// ISO 3166-1 alpha-2, upper case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Ios,
    Android,
    Web,
}

impl FromStr for Platform {
    type Err = &'static str;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw.to_ascii_lowercase().as_str() {
            "ios" => Ok(Platform::Ios),
            "android" => Ok(Platform::Android),
            "web" => Ok(Platform::Web),
            _ => Err("expected ios, android or web"),
        }
    }
}

/// A `major[.minor[.patch]]` app version; missing parts are zero, so `5.2` equals `5.2.0`.
/// Pre-release and build suffixes (`-beta`, `+45`) are ignored: app stores ship numbered releases.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AppVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl AppVersion {
    pub const fn new(major: u32, minor: u32, patch: u32) -> AppVersion {
        AppVersion { major, minor, patch }
    }
}

impl FromStr for AppVersion {
    type Err = &'static str;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        const EXPECTED: &str = "expected a version such as 5.2.0";
        let numbered = raw.split(['-', '+']).next().unwrap_or_default();
        let mut parts = [0u32; 3];
        for (index, part) in numbered.split('.').enumerate() {
            let slot = parts.get_mut(index).ok_or(EXPECTED)?;
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(EXPECTED);
            }
            *slot = part.parse().map_err(|_| EXPECTED)?;
        }
        Ok(AppVersion::new(parts[0], parts[1], parts[2]))
    }
}

impl fmt::Display for AppVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl Serialize for AppVersion {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for AppVersion {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        crate::campaign::deserialize_parsed(deserializer, "an app version such as \"5.2.0\"")
    }
}

/// Whether a request locale satisfies a rule locale: a bare language (`id`) matches any region of it
/// (`id-ID`); a full tag must match exactly. Case-insensitive, `_` treated as `-` (Android sends `in_ID`
/// style tags).
pub fn locale_matches(rule: &str, requested: &str) -> bool {
    let same = |a: &str, b: &str| {
        a.len() == b.len()
            && a.bytes().zip(b.bytes()).all(|(x, y)| {
                let norm = |c: u8| {
                    if c == b'_' {
                        b'-'
                    } else {
                        c.to_ascii_lowercase()
                    }
                };
                norm(x) == norm(y)
            })
    };
    if same(rule, requested) {
        return true;
    }
    !rule.contains('-')
        && requested.len() > rule.len()
        && matches!(requested.as_bytes().get(rule.len()), Some(b'-' | b'_'))
        && same(rule, requested.get(..rule.len()).unwrap_or_default())
}

/// The country of a request as rules compare it: ISO 3166-1 alpha-2, upper case, from what the platform
/// reports (Cloudflare's `request.cf.country` at the edge, a trusted proxy's header such as `CF-IPCountry`
/// at the origin), so that both read it alike. Cloudflare's `XX` (unknown) and `T1` (Tor), and anything that
/// is not two letters, are no country.
pub fn country_code(raw: &str) -> Option<String> {
    let code = raw.trim().to_ascii_uppercase();
    (code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase()) && code != "XX").then_some(code)
}

#[cfg(test)]
mod tests {

    #[test]
    fn only_two_letter_countries_are_kept_in_upper_case() {
        assert_eq!(country_code("SG").as_deref(), Some("SG"));
        assert_eq!(country_code(" id ").as_deref(), Some("ID"));
        for none in ["XX", "xx", "T1", "", "SGP", "S", "é", "1D", "S G"] {
            assert_eq!(country_code(none), None, "{none:?}");
        }
    }
    use super::*;

    #[test]
    fn versions_parse_and_order_numerically() {
        let v = |s: &str| s.parse::<AppVersion>();
        assert_eq!(v("5.2.0"), Ok(AppVersion::new(5, 2, 0)));
        assert_eq!(v("5.2"), Ok(AppVersion::new(5, 2, 0)));
        assert_eq!(v("5"), Ok(AppVersion::new(5, 0, 0)));
        assert_eq!(v("5.10.1-beta+7"), Ok(AppVersion::new(5, 10, 1)));
        assert!(v("5.10.0").unwrap() > v("5.9.9").unwrap());
        for bad in ["", ".", "5.", "a.b", "1.2.3.4", "-1", "99999999999"] {
            assert!(v(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn locales_match_by_language_or_exact_tag() {
        assert!(locale_matches("id", "id-ID"));
        assert!(!locale_matches("id", "in_ID"), "in is the old code for Indonesian, not an alias");
        assert!(locale_matches("id-ID", "id_id"));
        assert!(locale_matches("ID", "id"));
        assert!(!locale_matches("id-ID", "id"));
        assert!(!locale_matches("en", "id-ID"));
        assert!(!locale_matches("e", "en-US"));
    }

    #[test]
    fn platforms_parse_case_insensitively() {
        assert_eq!("iOS".parse::<Platform>(), Ok(Platform::Ios));
        assert!("symbian".parse::<Platform>().is_err());
    }
}

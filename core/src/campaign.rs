//! The campaign model and its validation.
//!
//! A [`Campaign`] is what the marketing team configures: when it runs, who sees it, on which placement and
//! device, what it shows, how often, and how the audience is split into variants. [`Campaign::validate`]
//! reports every problem at once, each with the JSON path of the field, so the backoffice can highlight them.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;
use serde::{Deserialize, Serialize};

use crate::context::{AppVersion, Platform};
use crate::ids::{CampaignId, SegmentId, Timestamp};
use crate::problem::Code;

pub const MAX_NAME_LEN: usize = 200;
pub const MAX_TITLE_LEN: usize = 200;
pub const MAX_BODY_LEN: usize = 2000;
pub const MAX_URL_LEN: usize = 2048;
pub const MAX_VARIANT_KEY_LEN: usize = 32;
/// The variant a campaign without explicit variants serves.
pub const DEFAULT_VARIANT: &str = "default";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Campaign {
    pub id: CampaignId,
    pub name: String,
    /// Higher wins. Ties go to the lower campaign id (the older campaign), see [`crate::catalog`].
    #[serde(default)]
    pub priority: i32,
    /// Where in the app the popup may appear (`login`, `home`, ...). Empty means any placement.
    #[serde(default)]
    pub placements: Vec<String>,
    pub schedule: Schedule,
    pub creative: Creative,
    /// A/B variants. Empty means one variant, [`DEFAULT_VARIANT`], showing `creative`.
    #[serde(default)]
    pub variants: Vec<Variant>,
    #[serde(default)]
    pub caps: Caps,
    #[serde(default)]
    pub audience: Audience,
    #[serde(default)]
    pub rules: Rules,
    /// The most impressions the campaign may serve across all customers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<u64>,
}

/// When a campaign may show: between `start` and `end`, and, if `windows` is not empty, only inside one of
/// the recurring local-time windows of `time_zone`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    pub start: Timestamp,
    /// Exclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<Timestamp>,
    /// IANA name, e.g. `Asia/Jakarta`. Required when there are windows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<Window>,
}

/// A recurring local-time window, e.g. weekdays 09:00 to 17:00. A window whose end is not after its start
/// runs overnight: `fri 22:00-02:00` covers Friday 22:00 to Saturday 02:00.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub days: Vec<Weekday>,
    pub start: TimeOfDay,
    pub end: TimeOfDay,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Weekday {
    const ALL: [Weekday; 7] =
        [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri, Weekday::Sat, Weekday::Sun];

    /// Monday is 0.
    pub fn from_index(index: u32) -> Weekday {
        Weekday::ALL[(index % 7) as usize]
    }

    pub fn previous(self) -> Weekday {
        Weekday::from_index(self as u32 + 6)
    }
}

/// Minutes after local midnight, written `HH:MM`. `24:00` is allowed as a window's end.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String, example = "09:00"))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeOfDay(u16);

impl TimeOfDay {
    pub const MIDNIGHT: TimeOfDay = TimeOfDay(0);
    pub const END_OF_DAY: TimeOfDay = TimeOfDay(24 * 60);

    pub fn from_minutes(minutes: u16) -> Option<TimeOfDay> {
        (minutes <= 24 * 60).then_some(TimeOfDay(minutes))
    }

    pub fn minutes(self) -> u16 {
        self.0
    }
}

impl FromStr for TimeOfDay {
    type Err = &'static str;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        const EXPECTED: &str = "expected HH:MM between 00:00 and 24:00";
        let (hours, minutes) = raw.split_once(':').ok_or(EXPECTED)?;
        // Digits only: u16::from_str alone would also take a sign (`+9`).
        let two_digits = |part: &str| part.len() == 2 && part.bytes().all(|b| b.is_ascii_digit());
        if !two_digits(hours) || !two_digits(minutes) {
            return Err(EXPECTED);
        }
        let hours: u16 = hours.parse().map_err(|_| EXPECTED)?;
        let minutes: u16 = minutes.parse().map_err(|_| EXPECTED)?;
        if hours > 24 || minutes > 59 || (hours == 24 && minutes != 0) {
            return Err(EXPECTED);
        }
        Ok(TimeOfDay(hours * 60 + minutes))
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

impl Serialize for TimeOfDay {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TimeOfDay {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_parsed(deserializer, "a time of day such as \"09:00\"")
    }
}

/// Deserializes a string through `T`'s [`FromStr`]. The string may be borrowed from the input, transient
/// (an escaped JSON string) or owned (a `serde_json::Value`); asking for `&str` would refuse the last two.
pub(crate) fn deserialize_parsed<'de, D, T>(deserializer: D, expecting: &'static str) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: FromStr,
    T::Err: fmt::Display,
{
    struct Parsed<T> {
        expecting: &'static str,
        target: core::marker::PhantomData<T>,
    }

    impl<T: FromStr> serde::de::Visitor<'_> for Parsed<T>
    where
        T::Err: fmt::Display,
    {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.expecting)
        }

        // Borrowed and owned strings both arrive here: the default visit_borrowed_str and visit_string
        // forward to visit_str.
        fn visit_str<E: serde::de::Error>(self, raw: &str) -> Result<T, E> {
            raw.parse().map_err(E::custom)
        }
    }

    deserializer.deserialize_str(Parsed { expecting, target: core::marker::PhantomData })
}

/// What the popup shows.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Creative {
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_url: Option<String>,
    /// Free-form fields passed through to the app (button label, colours, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, String>,
}

/// One arm of an A/B test. A `control` variant is a holdout: its users see nothing from this campaign, so
/// the lift of the other variants can be measured against them.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variant {
    pub key: String,
    pub weight: u32,
    #[serde(default)]
    pub control: bool,
    /// Replaces the campaign's creative for this variant. None shows the campaign's creative.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creative: Option<Creative>,
}

/// Per-customer frequency caps. Absent means unlimited.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caps {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifetime: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_day: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_interval_seconds: Option<u32>,
}

impl Caps {
    /// Whether any cap applies, so that the customer's counters matter.
    pub fn any(&self) -> bool {
        self.lifetime.is_some() || self.per_day.is_some() || self.min_interval_seconds.is_some()
    }
}

/// Who may see the campaign: everyone or members of any of the `include` segments, minus members of any
/// `exclude` segment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Audience {
    #[serde(default)]
    pub include: Include,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<SegmentId>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Include {
    #[default]
    Everyone,
    AnyOf(Vec<SegmentId>),
}

/// Conditions on the request context. Each empty list or absent range accepts any value; a rule that is set
/// rejects a request that does not say the value.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rules {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_version: Option<VersionRange>,
    /// ISO 3166-1 alpha-2 codes, upper case.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub countries: Vec<String>,
    /// BCP 47 tags. `id` matches `id-ID`; `id-ID` matches only `id-ID` (case-insensitive).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub locales: Vec<String>,
}

/// `min` inclusive, `max` exclusive.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, example = "5.2.0"))]
    pub min: Option<AppVersion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, example = "6.0.0"))]
    pub max: Option<AppVersion>,
}

impl VersionRange {
    pub fn contains(&self, version: AppVersion) -> bool {
        self.min.is_none_or(|min| version >= min) && self.max.is_none_or(|max| version < max)
    }
}

/// One validation problem: the JSON path of the field and what is wrong with it, in English (the admin
/// API's words), and, for the problems the core reports, its [`Code`] and parameters, so a reader of
/// another language can be told the same in theirs. The API's JSON is `field` and `message` only.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
    #[serde(skip)]
    pub code: Option<Code>,
    /// The value of each of [`Code::params`], by name.
    #[serde(skip)]
    pub params: Vec<(&'static str, String)>,
}

impl FieldError {
    /// A problem with no code: the adapters' own (a NUL in a query, a line of a CSV upload).
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError { field: field.into(), message: message.into(), code: None, params: Vec::new() }
    }

    /// A problem of `code` with no parameters.
    pub fn coded(field: impl Into<String>, code: Code, message: impl Into<String>) -> FieldError {
        FieldError { field: field.into(), message: message.into(), code: Some(code), params: Vec::new() }
    }

    /// Adds the value of parameter `name`.
    pub fn with(mut self, name: &'static str, value: impl fmt::Display) -> FieldError {
        self.params.push((name, alloc::string::ToString::to_string(&value)));
        self
    }
}

/// Every problem found in a campaign, in field order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(transparent)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", error.field, error.message)?;
        }
        Ok(())
    }
}

impl ValidationErrors {
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|e| e.field.as_str())
    }
}

struct Problems(Vec<FieldError>);

impl Problems {
    fn add(&mut self, field: impl Into<String>, code: Code, message: &str) {
        self.0.push(FieldError::coded(field, code, message));
    }

    fn check(&mut self, ok: bool, field: impl Into<String>, code: Code, message: &str) {
        if !ok {
            self.add(field, code, message);
        }
    }

    /// A text of at most `max` characters.
    fn check_length(&mut self, text: &str, max: usize, field: impl Into<String>) {
        if text.chars().count() > max {
            self.0.push(FieldError::coded(field, Code::TooLong, "is too long").with("max", max));
        }
    }
}

impl Campaign {
    /// The variants a customer is bucketed into: the declared ones, or the implicit default.
    pub fn variant_count(&self) -> usize {
        self.variants.len().max(1)
    }

    /// Checks every rule a campaign must satisfy to be served, and returns all violations.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut problems = Problems(Vec::new());
        let p = &mut problems;
        p.check(!self.name.trim().is_empty(), "name", Code::Empty, "must not be empty");
        p.check_length(&self.name, MAX_NAME_LEN, "name");
        for (i, placement) in self.placements.iter().enumerate() {
            p.check(
                is_slug(placement),
                format!("placements[{i}]"),
                Code::PlacementFormat,
                "must be 1-32 of a-z, 0-9, - and _",
            );
        }
        validate_schedule(&self.schedule, p);
        validate_creative(&self.creative, "creative", p);
        validate_variants(&self.variants, p);
        validate_caps(&self.caps, p);
        validate_audience(&self.audience, p);
        validate_rules(&self.rules, p);
        p.check(self.budget != Some(0), "budget", Code::AtLeastOne, "must be at least 1 when set");
        // Budgets are compared with counts stored as signed 64-bit integers.
        if self.budget.is_some_and(|b| b > i64::MAX as u64) {
            p.0.push(
                FieldError::coded("budget", Code::TooLarge, "must be at most 9223372036854775807")
                    .with("max", i64::MAX),
            );
        }
        if problems.0.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors(problems.0))
        }
    }
}

fn is_slug(text: &str) -> bool {
    (1..=32).contains(&text.len())
        && text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn validate_schedule(schedule: &Schedule, p: &mut Problems) {
    if let Some(end) = schedule.end {
        p.check(end > schedule.start, "schedule.end", Code::EndNotAfterStart, "must be after schedule.start");
    }
    match &schedule.time_zone {
        Some(zone) => p.check(
            crate::zone::is_plausible_name(zone),
            "schedule.time_zone",
            Code::ZoneFormat,
            "is not an IANA zone name",
        ),
        None => p.check(
            schedule.windows.is_empty(),
            "schedule.time_zone",
            Code::ZoneRequired,
            "is required when there are windows",
        ),
    }
    for (i, window) in schedule.windows.iter().enumerate() {
        p.check(
            !window.days.is_empty(),
            format!("schedule.windows[{i}].days"),
            Code::WindowNoDays,
            "must name at least one day",
        );
        p.check(
            window.start != TimeOfDay::END_OF_DAY,
            format!("schedule.windows[{i}].start"),
            Code::WindowStartsAtMidnight,
            "must be before 24:00",
        );
        p.check(
            window.start != window.end,
            format!("schedule.windows[{i}].end"),
            Code::WindowEmpty,
            "must differ from start (use 00:00-24:00 for a whole day)",
        );
    }
}

fn validate_creative(creative: &Creative, path: &str, p: &mut Problems) {
    p.check(
        !creative.title.trim().is_empty() || !creative.body.trim().is_empty(),
        format!("{path}.title"),
        Code::CreativeEmpty,
        "a popup needs a title or a body",
    );
    p.check_length(&creative.title, MAX_TITLE_LEN, format!("{path}.title"));
    p.check_length(&creative.body, MAX_BODY_LEN, format!("{path}.body"));
    if let Some(url) = &creative.image_url {
        p.check(
            url.len() <= MAX_URL_LEN && url.starts_with("https://") && url.len() > "https://".len(),
            format!("{path}.image_url"),
            Code::ImageUrl,
            "must be an https:// URL",
        );
    }
    if let Some(url) = &creative.action_url {
        p.check(
            url.len() <= MAX_URL_LEN && is_absolute_url(url),
            format!("{path}.action_url"),
            Code::ActionUrl,
            "must be an absolute URL or app link (scheme://...)",
        );
    }
}

/// `scheme://rest`, with an RFC 3986 scheme: deep links such as `bankapp://promo` are common here.
fn is_absolute_url(url: &str) -> bool {
    let Some((scheme, rest)) = url.split_once("://") else {
        return false;
    };
    let mut bytes = scheme.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        && !rest.is_empty()
        && !url.chars().any(char::is_whitespace)
}

pub(crate) fn is_variant_key(key: &str) -> bool {
    (1..=MAX_VARIANT_KEY_LEN).contains(&key.len())
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn validate_variants(variants: &[Variant], p: &mut Problems) {
    if variants.is_empty() {
        return;
    }
    let mut total: u64 = 0;
    for (i, variant) in variants.iter().enumerate() {
        p.check(
            is_variant_key(&variant.key),
            format!("variants[{i}].key"),
            Code::VariantKeyFormat,
            "must be 1-32 of A-Z, a-z, 0-9, - and _",
        );
        p.check(
            !variants[..i].iter().any(|earlier| earlier.key == variant.key),
            format!("variants[{i}].key"),
            Code::VariantKeyTaken,
            "is used by another variant",
        );
        if variant.control {
            p.check(
                variant.creative.is_none(),
                format!("variants[{i}].creative"),
                Code::ControlWithCreative,
                "a control variant shows nothing",
            );
        }
        if let Some(creative) = &variant.creative {
            validate_creative(creative, &format!("variants[{i}].creative"), p);
        }
        total += u64::from(variant.weight);
    }
    if total == 0 {
        p.add("variants", Code::WeightsAllZero, "weights must not all be zero");
    } else {
        p.check(
            variants.iter().any(|v| !v.control && v.weight > 0),
            "variants",
            Code::WeightsOnlyControl,
            "at least one variant that is not a control must have weight",
        );
    }
}

fn validate_caps(caps: &Caps, p: &mut Problems) {
    // Zero would mean "never show": pausing the campaign says that honestly.
    const AT_LEAST_ONE: &str = "must be at least 1 when set";
    p.check(caps.lifetime != Some(0), "caps.lifetime", Code::AtLeastOne, AT_LEAST_ONE);
    p.check(caps.per_day != Some(0), "caps.per_day", Code::AtLeastOne, AT_LEAST_ONE);
    p.check(
        caps.min_interval_seconds != Some(0),
        "caps.min_interval_seconds",
        Code::AtLeastOne,
        AT_LEAST_ONE,
    );
    if let (Some(lifetime), Some(per_day)) = (caps.lifetime, caps.per_day) {
        p.check(
            per_day <= lifetime,
            "caps.per_day",
            Code::PerDayOverLifetime,
            "must not exceed caps.lifetime",
        );
    }
}

fn validate_audience(audience: &Audience, p: &mut Problems) {
    if let Include::AnyOf(segments) = &audience.include {
        p.check(
            !segments.is_empty(),
            "audience.include.any_of",
            Code::NoSegment,
            "must name at least one segment",
        );
        for (i, segment) in segments.iter().enumerate() {
            p.check(
                !audience.exclude.contains(segment),
                format!("audience.include.any_of[{i}]"),
                Code::SegmentAlsoExcluded,
                "is also excluded",
            );
        }
    }
}

fn validate_rules(rules: &Rules, p: &mut Problems) {
    if let Some(VersionRange { min: Some(min), max: Some(max) }) = &rules.app_version {
        p.check(min < max, "rules.app_version.max", Code::VersionRangeEmpty, "must be greater than min");
    }
    for (i, country) in rules.countries.iter().enumerate() {
        p.check(
            country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase()),
            format!("rules.countries[{i}]"),
            Code::CountryFormat,
            "must be an upper-case ISO 3166-1 alpha-2 code",
        );
    }
    for (i, locale) in rules.locales.iter().enumerate() {
        p.check(
            (2..=35).contains(&locale.len())
                && locale.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
            format!("rules.locales[{i}]"),
            Code::LocaleFormat,
            "must be a BCP 47 tag such as id or id-ID",
        );
    }
}

//! Stable codes of the validation problems the core reports, so that a reader of another language can be
//! told each in their own words.
//!
//! Every [`crate::campaign::FieldError`] the campaign's validation, the spec's and the editor's form
//! decoding report carries a [`Code`] and the values of its named parameters (`max`, `segment`, ...)
//! beside the English `message` the admin API returns. The backoffice keeps the words, one catalog per
//! language (`validation.<code>`, with `{param}` placeholders); the core keeps only this table, small
//! enough for any bundle, and no text in any language but the API's English.

/// Declares [`Code`] with its string form and the names of its parameters, in one table, so that
/// [`Code::ALL`] cannot miss a code.
macro_rules! codes {
    ($($(#[doc = $doc:literal])* $variant:ident = $code:literal [$($param:literal),*],)*) => {
        /// A kind of validation problem. Its string form ([`Code::as_str`]) never changes once released.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code {
            $($(#[doc = $doc])* $variant,)*
        }

        impl Code {
            /// Every code, in declaration order.
            pub const ALL: &[Code] = &[$(Code::$variant,)*];

            /// The stable name, `snake_case`: the catalog key is `validation.` followed by it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $code,)*
                }
            }

            /// The names of the parameters an error of this code carries, always all of them.
            pub fn params(self) -> &'static [&'static str] {
                match self {
                    $(Code::$variant => &[$($param),*],)*
                }
            }
        }
    };
}

codes! {
    // The campaign's rules (core/src/campaign.rs).
    /// A text that must say something is blank.
    Empty = "empty" [],
    /// A text is longer than `max` characters.
    TooLong = "too_long" ["max"],
    /// A placement is not a slug.
    PlacementFormat = "placement_format" [],
    /// The schedule ends at or before its start.
    EndNotAfterStart = "end_not_after_start" [],
    /// A time zone name is not shaped like an IANA name.
    ZoneFormat = "zone_format" [],
    /// Windows are given without a time zone.
    ZoneRequired = "zone_required" [],
    /// A window names no day.
    WindowNoDays = "window_no_days" [],
    /// A window starts at 24:00.
    WindowStartsAtMidnight = "window_starts_at_midnight" [],
    /// A window ends when it starts.
    WindowEmpty = "window_empty" [],
    /// A creative has neither a title nor a body.
    CreativeEmpty = "creative_empty" [],
    /// An image URL is not https.
    ImageUrl = "image_url" [],
    /// An action URL is not absolute.
    ActionUrl = "action_url" [],
    /// A variant key is not 1-32 letters, digits, `-` or `_`.
    VariantKeyFormat = "variant_key_format" [],
    /// Two variants have the same key.
    VariantKeyTaken = "variant_key_taken" [],
    /// A control variant has a creative of its own.
    ControlWithCreative = "control_with_creative" [],
    /// Every variant weighs zero.
    WeightsAllZero = "weights_all_zero" [],
    /// Only control variants have weight.
    WeightsOnlyControl = "weights_only_control" [],
    /// A cap or budget, when set, is zero.
    AtLeastOne = "at_least_one" [],
    /// The daily cap is above the lifetime cap.
    PerDayOverLifetime = "per_day_over_lifetime" [],
    /// A budget is above `max`.
    TooLarge = "too_large" ["max"],
    /// An include list names no segment.
    NoSegment = "no_segment" [],
    /// A segment is both included and excluded.
    SegmentAlsoExcluded = "segment_also_excluded" [],
    /// The app version range is empty.
    VersionRangeEmpty = "version_range_empty" [],
    /// A country is not an upper-case ISO 3166-1 alpha-2 code.
    CountryFormat = "country_format" [],
    /// A locale is not a BCP 47 tag.
    LocaleFormat = "locale_format" [],
    // What only the server's data says (core/src/spec.rs).
    /// No live segment has this name.
    UnknownSegment = "unknown_segment" ["segment"],
    /// The tz database has no such zone.
    UnknownZone = "unknown_zone" ["zone"],
    // Reading the editor's form (core/src/form.rs).
    /// A field holds the NUL character.
    Nul = "nul" [],
    /// A required field is blank.
    Required = "required" [],
    /// Not a whole number.
    WholeNumber = "whole_number" [],
    /// Not a whole number of at least 1.
    PositiveNumber = "positive_number" [],
    /// Not a whole number of at least 0.
    NonNegativeNumber = "non_negative_number" [],
    /// Not a date and time.
    DateTime = "date_time" [],
    /// A local time the clocks of `zone` skip (a daylight saving gap).
    SkippedTime = "skipped_time" ["zone"],
    /// Not a time of day `HH:MM`.
    TimeOfDay = "time_of_day" [],
    /// Not a day of the week.
    Weekday = "weekday" [],
    /// Not a platform.
    Platform = "platform" [],
    /// Not an app version.
    AppVersion = "app_version" [],
    /// The audience choice is neither everyone nor a segment list.
    IncludeChoice = "include_choice" [],
    /// A line of extra fields is not `key=value`.
    ExtraLine = "extra_line" [],
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeSet;

    #[test]
    fn codes_are_unique_snake_case_and_their_parameters_too() {
        let names: BTreeSet<&str> = Code::ALL.iter().map(|code| code.as_str()).collect();
        assert_eq!(names.len(), Code::ALL.len(), "two codes share a name");
        let snake = |text: &str| {
            !text.is_empty()
                && text.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                && !text.starts_with('_')
                && !text.ends_with('_')
        };
        for code in Code::ALL {
            assert!(snake(code.as_str()), "{code:?}");
            for param in code.params() {
                assert!(snake(param), "{code:?}: {param}");
            }
        }
    }
}

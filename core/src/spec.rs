//! The campaign as the admin API and the backoffice speak it: times in RFC 3339 and segments by name.
//! [`CampaignSpec::to_campaign`] turns it into the core's [`Campaign`], reporting unknown segments and time
//! zones with the core's field errors. The origin validates every create and update with it, and the
//! backoffice's editor runs the same function compiled to WebAssembly, so both refuse the same specs with
//! the same field paths.
//!
//! Which segments exist and which time zones are known are the caller's to say: the origin asks Postgres
//! and its tz database, the editor is given the same two lists by the page the origin rendered.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::campaign::{
    Audience, Campaign, Caps, Creative, FieldError, Include, Rules, Schedule, ValidationErrors, Variant,
    Window, DEFAULT_VARIANT,
};
use crate::ids::{CampaignId, SegmentId, Timestamp};
use crate::problem::Code;
use crate::wire::PopupResponse;

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignSpec {
    pub name: String,
    #[serde(default)]
    pub priority: i32,
    #[serde(default)]
    pub placements: Vec<String>,
    pub schedule: ScheduleSpec,
    pub creative: Creative,
    #[serde(default)]
    pub variants: Vec<Variant>,
    #[serde(default)]
    pub caps: Caps,
    #[serde(default)]
    pub audience: AudienceSpec,
    #[serde(default)]
    pub rules: Rules,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<u64>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    pub start: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<Window>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudienceSpec {
    #[serde(default)]
    pub include: IncludeSpec,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncludeSpec {
    #[default]
    Everyone,
    AnyOf(Vec<String>),
}

/// One variant as the app would receive it: its popup, or none for a control (a holdout sees nothing).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VariantPreview {
    pub key: String,
    pub weight: u32,
    pub control: bool,
    pub popup: Option<PopupResponse>,
}

impl CampaignSpec {
    /// Segment names this campaign refers to.
    pub fn segment_names(&self) -> impl Iterator<Item = &str> {
        let included = match &self.audience.include {
            IncludeSpec::Everyone => &[][..],
            IncludeSpec::AnyOf(names) => names.as_slice(),
        };
        included.iter().chain(&self.audience.exclude).map(String::as_str)
    }

    /// The core campaign, validated. `segment_id` gives the id of a live segment by name, `known_zone`
    /// says whether a time zone name is in the tz database.
    pub fn to_campaign(
        &self,
        id: i64,
        segment_id: impl Fn(&str) -> Option<SegmentId>,
        known_zone: impl Fn(&str) -> bool,
    ) -> Result<Campaign, ValidationErrors> {
        let mut errors = Vec::new();
        let mut resolve = |names: &[String], path: &str| -> Vec<SegmentId> {
            names
                .iter()
                .enumerate()
                .filter_map(|(i, name)| match segment_id(name) {
                    Some(id) => Some(id),
                    None => {
                        errors.push(
                            FieldError::coded(
                                format!("{path}[{i}]"),
                                Code::UnknownSegment,
                                format!("no segment named {name:?}"),
                            )
                            .with("segment", name),
                        );
                        None
                    }
                })
                .collect()
        };
        let include = match &self.audience.include {
            IncludeSpec::Everyone => Include::Everyone,
            IncludeSpec::AnyOf(names) => Include::AnyOf(resolve(names, "audience.include.any_of")),
        };
        let exclude = resolve(&self.audience.exclude, "audience.exclude");
        let campaign = Campaign {
            id: CampaignId(id as u64),
            name: self.name.clone(),
            priority: self.priority,
            placements: self.placements.clone(),
            schedule: Schedule {
                start: Timestamp(self.schedule.start.timestamp()),
                end: self.schedule.end.map(|end| Timestamp(end.timestamp())),
                time_zone: self.schedule.time_zone.clone(),
                windows: self.schedule.windows.clone(),
            },
            creative: self.creative.clone(),
            variants: self.variants.clone(),
            caps: self.caps.clone(),
            audience: Audience { include, exclude },
            rules: self.rules.clone(),
            budget: self.budget,
        };
        let unresolved = !errors.is_empty();
        if let Err(found) = campaign.validate() {
            // An include list emptied by unknown names is already reported name by name.
            errors.extend(
                found.0.into_iter().filter(|e| !(unresolved && e.field == "audience.include.any_of")),
            );
        }
        if let Some(zone) = &self.schedule.time_zone {
            if !known_zone(zone) && !errors.iter().any(|e| e.field == "schedule.time_zone") {
                errors.push(
                    FieldError::coded(
                        "schedule.time_zone",
                        Code::UnknownZone,
                        format!("unknown time zone {zone:?}"),
                    )
                    .with("zone", zone),
                );
            }
        }
        if errors.is_empty() {
            Ok(campaign)
        } else {
            Err(ValidationErrors(errors))
        }
    }

    /// What the app would receive for each variant, as `GET /v1/campaigns/popup` answers it (with no
    /// impression token: a preview is not an impression).
    pub fn preview(&self, id: i64) -> Vec<VariantPreview> {
        let campaign_id = CampaignId(id as u64);
        if self.variants.is_empty() {
            let popup =
                PopupResponse::from_creative(campaign_id, DEFAULT_VARIANT, &self.creative, String::new());
            return alloc::vec![VariantPreview {
                key: DEFAULT_VARIANT.into(),
                weight: 1,
                control: false,
                popup: Some(popup),
            }];
        }
        self.variants
            .iter()
            .map(|variant| VariantPreview {
                key: variant.key.clone(),
                weight: variant.weight,
                control: variant.control,
                popup: (!variant.control).then(|| {
                    let creative = variant.creative.as_ref().unwrap_or(&self.creative);
                    PopupResponse::from_creative(campaign_id, &variant.key, creative, String::new())
                }),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn spec(json: &str) -> CampaignSpec {
        serde_json::from_str(json).unwrap()
    }

    const BASE: &str = r#"{"name":"n","schedule":{"start":"2026-01-01T00:00:00Z"},"creative":{"title":"t"}}"#;

    fn no_segments(_: &str) -> Option<SegmentId> {
        None
    }

    #[test]
    fn unknown_segments_are_reported_by_index_and_not_again_as_empty() {
        let mut s = spec(BASE);
        s.audience.include = IncludeSpec::AnyOf(vec!["vip".into(), "gone".into()]);
        s.audience.exclude = vec!["gone".into()];
        let known = |name: &str| (name == "vip").then_some(SegmentId(7));
        let errors = s.to_campaign(1, known, |_| true).unwrap_err();
        let fields: Vec<_> = errors.fields().collect();
        assert_eq!(fields, ["audience.include.any_of[1]", "audience.exclude[0]"]);

        s.audience.include = IncludeSpec::AnyOf(vec!["gone".into()]);
        s.audience.exclude = vec![];
        let errors = s.to_campaign(1, no_segments, |_| true).unwrap_err();
        assert_eq!(errors.fields().collect::<Vec<_>>(), ["audience.include.any_of[0]"]);
    }

    #[test]
    fn a_zone_the_tz_database_lacks_is_refused_once() {
        let mut s = spec(BASE);
        s.schedule.time_zone = Some("Mars/Olympus".into());
        let errors = s.to_campaign(1, no_segments, |_| false).unwrap_err();
        assert_eq!(errors.0.len(), 1);
        assert_eq!(errors.0[0].message, "unknown time zone \"Mars/Olympus\"");
        // A name the core already finds implausible is reported by the core alone.
        s.schedule.time_zone = Some("not a zone".into());
        let errors = s.to_campaign(1, no_segments, |_| false).unwrap_err();
        assert_eq!(errors.0.len(), 1);
        assert_eq!(errors.0[0].message, "is not an IANA zone name");
        s.schedule.time_zone = Some("Asia/Jakarta".into());
        assert!(s.to_campaign(1, no_segments, |zone| zone == "Asia/Jakarta").is_ok());
    }

    #[test]
    fn the_preview_has_one_popup_per_variant_and_none_for_a_control() {
        let s = spec(
            r#"{"name":"n","schedule":{"start":"2026-01-01T00:00:00Z"},"creative":{"title":"base"},
            "variants":[{"key":"a","weight":1},{"key":"b","weight":1,"creative":{"title":"own","extra":{"button":"Go"}}},
            {"key":"holdout","weight":1,"control":true}]}"#,
        );
        let preview = s.preview(5);
        assert_eq!(preview.len(), 3);
        assert_eq!(preview[0].popup.as_ref().unwrap().title, "base");
        let b = preview[1].popup.as_ref().unwrap();
        assert_eq!((b.title.as_str(), b.variant.as_str(), b.campaign_id), ("own", "b", CampaignId(5)));
        assert_eq!(b.extra.get("button").map(String::as_str), Some("Go"));
        assert!(preview[2].control && preview[2].popup.is_none());

        let single = spec(BASE).preview(5);
        assert_eq!(single.len(), 1);
        assert_eq!(single[0].key, DEFAULT_VARIANT);
    }
}

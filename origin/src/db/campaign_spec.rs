//! The campaign as the admin API speaks it: times in RFC 3339 and segments by name. [`CampaignSpec::to_core`]
//! turns it into the core's model, reporting unknown segments and zones with the core's field errors.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use popup_core::campaign::{
    Audience, Campaign, Caps, Creative, FieldError, Include, Rules, Schedule, ValidationErrors, Variant,
    Window,
};
use popup_core::ids::{CampaignId, SegmentId, Timestamp};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
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

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
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

#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AudienceSpec {
    #[serde(default)]
    pub include: IncludeSpec,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IncludeSpec {
    #[default]
    Everyone,
    AnyOf(Vec<String>),
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

    /// The core campaign, validated. `segments` maps the names of live segments to their ids.
    pub fn to_core(&self, id: i64, segments: &HashMap<String, i32>) -> Result<Campaign, ValidationErrors> {
        let mut errors = Vec::new();
        let mut resolve = |names: &[String], path: &str| -> Vec<SegmentId> {
            names
                .iter()
                .enumerate()
                .filter_map(|(i, name)| match segments.get(name) {
                    Some(id) => Some(SegmentId(*id as u32)),
                    None => {
                        errors.push(FieldError {
                            field: format!("{path}[{i}]"),
                            message: format!("no segment named {name:?}"),
                        });
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
            if zone.parse::<chrono_tz::Tz>().is_err()
                && !errors.iter().any(|e| e.field == "schedule.time_zone")
            {
                errors.push(FieldError {
                    field: "schedule.time_zone".into(),
                    message: format!("unknown time zone {zone:?}"),
                });
            }
        }
        if errors.is_empty() {
            Ok(campaign)
        } else {
            Err(ValidationErrors(errors))
        }
    }
}

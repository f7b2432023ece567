//! The campaign as the admin API speaks it, which is the core's [`popup_core::spec`]: the origin only says
//! which segments are live (Postgres) and which time zones exist (its tz database).

use std::collections::HashMap;

use popup_core::campaign::{Campaign, ValidationErrors};
use popup_core::ids::{SegmentId, Timestamp};
pub use popup_core::spec::{AudienceSpec, CampaignSpec, IncludeSpec, ScheduleSpec};
use popup_core::zone::ZoneOffsets;

/// The origin's side of [`CampaignSpec::to_campaign`].
pub trait ToCore {
    /// The core campaign, validated. `segments` maps the names of live segments to their ids.
    fn to_core(&self, id: i64, segments: &HashMap<String, i32>) -> Result<Campaign, ValidationErrors>;
}

impl ToCore for CampaignSpec {
    fn to_core(&self, id: i64, segments: &HashMap<String, i32>) -> Result<Campaign, ValidationErrors> {
        self.to_campaign(id, |name| segment_id(segments, name), is_known_zone)
    }
}

/// The id of a live segment, by name.
pub fn segment_id(segments: &HashMap<String, i32>, name: &str) -> Option<SegmentId> {
    segments.get(name).map(|id| SegmentId(*id as u32))
}

/// Whether the origin's tz database knows `name`.
pub fn is_known_zone(name: &str) -> bool {
    name.parse::<chrono_tz::Tz>().is_ok()
}

/// The offsets of zone `name` around `instant`, from the tz database, for reading and writing local times
/// (the editor's start and end); None for a zone it does not know.
pub fn zone_offsets(name: &str, instant: Timestamp) -> Option<ZoneOffsets> {
    popup_core::zone::around(name, instant).ok()
}

/// Every zone name the tz database knows, for the editor's picker (and its validation in the browser).
pub fn zone_names() -> impl Iterator<Item = &'static str> {
    chrono_tz::TZ_VARIANTS.iter().map(|zone| zone.name())
}

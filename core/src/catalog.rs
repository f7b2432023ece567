//! The catalog: every live campaign in resolution order, with what resolving needs beside them.
//!
//! The origin builds it from Postgres with [`Catalog::build`], which validates every campaign and sorts them,
//! and stores it in Redis as one JSON value next to its version. Resolvers decode it with
//! [`Catalog::decode`] once per version and keep it in memory.
//!
//! Resolution order: priority descending, then campaign id ascending, so that of two campaigns with the same
//! priority the older one wins, and the order never depends on how the catalog was assembled.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;
use core::cmp::Reverse;
use serde::{Deserialize, Serialize};

use crate::campaign::{Campaign, ValidationErrors};
use crate::ids::{CampaignId, SegmentId};
use crate::zone::ZoneOffsets;

/// The largest catalog version: 2^53. The publish script ([`crate::projection::PUBLISH_SCRIPT`]) compares
/// versions as Lua numbers, which are doubles; up to 2^53 every integer is exact, above it neighbours
/// round together and an older catalog could replace a newer one.
pub const MAX_VERSION: u64 = 1 << 53;

/// Rules that span campaigns.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// The most popups one customer sees per day, all campaigns together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_popups_per_day: Option<u32>,
}

/// The parts a catalog is built from. Also its JSON shape.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogParts {
    pub version: u64,
    #[serde(default)]
    pub settings: Settings,
    pub campaigns: Vec<Campaign>,
    /// The current version of every segment; a membership with another version does not count. A campaign
    /// excluding a segment missing here is shown to nobody (see [`crate::resolve`]).
    #[serde(default)]
    pub segments: BTreeMap<SegmentId, u64>,
    /// Offsets of every zone a campaign's windows use.
    #[serde(default)]
    pub zones: BTreeMap<String, ZoneOffsets>,
    /// Impressions served so far, for campaigns with a budget. The origin lists only those that reached it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub served: BTreeMap<CampaignId, u64>,
    /// What Redis does not hold yet and is being restored (after Redis lost its data): resolution stops,
    /// with no popup, at a campaign that depends on it (see [`crate::resolve`]).
    #[serde(default, skip_serializing_if = "Restoring::is_empty")]
    pub restoring: Restoring,
}

/// The parts of the projection a catalog cannot rely on yet, because Redis lost them and they are being
/// written back (see [`crate::projection`]). A customer's memberships or counters read from Redis for these
/// are incomplete, so nothing that depends on them can be decided.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restoring {
    /// Segments with members whose current version is not all in Redis yet. They are absent from
    /// [`CatalogParts::segments`].
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub segments: BTreeSet<SegmentId>,
    /// Campaigns whose impression counters are not yet rebuilt from the recorded events.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub counters: BTreeSet<CampaignId>,
    /// Today's impressions across all campaigns (the global daily cap) are not yet rebuilt.
    #[serde(default, skip_serializing_if = "core::ops::Not::not")]
    pub daily_totals: bool,
}

impl Restoring {
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty() && self.counters.is_empty() && !self.daily_totals
    }
}

/// A valid catalog: campaigns validated, unique and sorted, every zone present.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Catalog(CatalogParts);

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error("campaign {id} is invalid: {errors}")]
    InvalidCampaign { id: CampaignId, errors: ValidationErrors },
    #[error("campaign {0} appears twice")]
    DuplicateCampaign(CampaignId),
    #[error("campaign {campaign} uses time zone \"{zone}\", which the catalog has no offsets for")]
    MissingZone { campaign: CampaignId, zone: String },
    #[error("the offsets of time zone \"{0}\" are not sorted")]
    UnsortedZone(String),
    #[error("catalog version {0} is above 2^53, which the publish script cannot compare exactly")]
    VersionTooLarge(u64),
    #[error("the catalog is not valid JSON: {0}")]
    Malformed(String),
}

impl Catalog {
    /// Validates every campaign and puts them in resolution order.
    pub fn build(mut parts: CatalogParts) -> Result<Catalog, CatalogError> {
        for campaign in &parts.campaigns {
            campaign
                .validate()
                .map_err(|errors| CatalogError::InvalidCampaign { id: campaign.id, errors })?;
        }
        sort(&mut parts.campaigns);
        check_structure(&parts)?;
        Ok(Catalog(parts))
    }

    /// Decodes a catalog written by [`Catalog::encode`]. Campaigns were validated when it was built; this
    /// re-checks only the structure resolution relies on, so decoding stays cheap.
    pub fn decode(json: &[u8]) -> Result<Catalog, CatalogError> {
        let mut parts: CatalogParts =
            serde_json::from_slice(json).map_err(|e| CatalogError::Malformed(alloc::format!("{e}")))?;
        if !parts.campaigns.is_sorted_by_key(resolution_key) {
            sort(&mut parts.campaigns);
        }
        check_structure(&parts)?;
        Ok(Catalog(parts))
    }

    pub fn encode(&self) -> String {
        // Serializing plain data structures to a string cannot fail.
        serde_json::to_string(&self.0).unwrap_or_default()
    }

    /// An empty catalog, for when Redis holds none yet.
    pub fn empty() -> Catalog {
        Catalog(CatalogParts::default())
    }

    pub fn version(&self) -> u64 {
        self.0.version
    }

    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }

    /// Live campaigns in resolution order.
    pub fn campaigns(&self) -> &[Campaign] {
        &self.0.campaigns
    }

    pub fn campaign(&self, id: CampaignId) -> Option<&Campaign> {
        self.0.campaigns.iter().find(|c| c.id == id)
    }

    pub fn segment_version(&self, segment: SegmentId) -> Option<u64> {
        self.0.segments.get(&segment).copied()
    }

    pub fn zone(&self, name: &str) -> Option<&ZoneOffsets> {
        self.0.zones.get(name)
    }

    pub fn served(&self, campaign: CampaignId) -> u64 {
        self.0.served.get(&campaign).copied().unwrap_or(0)
    }

    /// What Redis does not hold yet; empty once every part is restored.
    pub fn restoring(&self) -> &Restoring {
        &self.0.restoring
    }

    pub fn into_parts(self) -> CatalogParts {
        self.0
    }
}

fn resolution_key(campaign: &Campaign) -> (Reverse<i32>, CampaignId) {
    (Reverse(campaign.priority), campaign.id)
}

fn sort(campaigns: &mut [Campaign]) {
    campaigns.sort_by_key(resolution_key);
}

fn check_structure(parts: &CatalogParts) -> Result<(), CatalogError> {
    if parts.version > MAX_VERSION {
        return Err(CatalogError::VersionTooLarge(parts.version));
    }
    // Events, counters and tokens name campaigns by id, so an id must mean one campaign.
    // A set rather than a sort: the edge's bundle then carries one sort algorithm, not two.
    let mut ids = BTreeSet::new();
    if let Some(campaign) = parts.campaigns.iter().find(|campaign| !ids.insert(campaign.id)) {
        return Err(CatalogError::DuplicateCampaign(campaign.id));
    }
    for (name, zone) in &parts.zones {
        if !zone.is_sorted() {
            return Err(CatalogError::UnsortedZone(name.clone()));
        }
    }
    for campaign in &parts.campaigns {
        if let Some(zone) = &campaign.schedule.time_zone {
            if !campaign.schedule.windows.is_empty() && !parts.zones.contains_key(zone) {
                return Err(CatalogError::MissingZone { campaign: campaign.id, zone: zone.clone() });
            }
        }
    }
    Ok(())
}

//! What Redis knows about one customer, decoded from their hashes by [`crate::store`].

use alloc::collections::BTreeMap;

use crate::ids::{CampaignId, SegmentId, Timestamp};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserState {
    /// (segment, version parity) -> the version of the segment upload that listed this customer. Two slots
    /// per segment, see [`crate::store`]: an upload in progress never overwrites the one being read.
    pub segments: BTreeMap<(SegmentId, u8), u64>,
    pub campaigns: BTreeMap<CampaignId, Counters>,
    /// Popups shown today across all campaigns, for the global daily cap.
    pub shown_today: u32,
}

/// One customer's impressions of one campaign.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub lifetime: u32,
    pub today: u32,
    pub last_shown: Option<Timestamp>,
}

fn parity(version: u64) -> u8 {
    (version % 2) as u8
}

impl UserState {
    /// Membership counts only for the segment's current version: members of an older upload that the new
    /// one dropped still carry the old version and fall out the moment the catalog switches.
    pub fn is_member(&self, segment: SegmentId, current_version: Option<u64>) -> bool {
        current_version
            .is_some_and(|current| self.segments.get(&(segment, parity(current))) == Some(&current))
    }

    /// Records that `version` of `segment` lists this customer, as the origin's upload does in Redis.
    pub fn add_membership(&mut self, segment: SegmentId, version: u64) {
        self.segments.insert((segment, parity(version)), version);
    }

    pub fn counters(&self, campaign: CampaignId) -> Counters {
        self.campaigns.get(&campaign).copied().unwrap_or_default()
    }

    /// The state after one more impression of `campaign` at `now`: what the event script does in Redis.
    pub fn record_impression(&mut self, campaign: CampaignId, now: Timestamp) {
        let counters = self.campaigns.entry(campaign).or_default();
        counters.lifetime = counters.lifetime.saturating_add(1);
        counters.today = counters.today.saturating_add(1);
        counters.last_shown = Some(now);
        self.shown_today = self.shown_today.saturating_add(1);
    }

    /// The state at the start of a new day: daily counters are gone, lifetime ones stay.
    pub fn start_new_day(&mut self) {
        for counters in self.campaigns.values_mut() {
            counters.today = 0;
        }
        self.shown_today = 0;
    }
}

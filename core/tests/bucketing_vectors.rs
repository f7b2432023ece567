//! The checked-in bucketing vectors: any change here reshuffles running experiments.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use popup_core::bucket;
use popup_core::ids::{CampaignId, UserId};
use serde::Deserialize;

#[derive(Deserialize)]
struct Vector {
    campaign: u64,
    user: String,
    hash: String,
    weights: Vec<u32>,
    variant: usize,
}

#[test]
fn bucketing_matches_the_published_vectors() {
    let vectors: Vec<Vector> = serde_json::from_str(include_str!("vectors/bucketing.json")).unwrap();
    assert!(vectors.len() >= 10);
    for v in vectors {
        let user = UserId::parse(&v.user).unwrap();
        let campaign = CampaignId(v.campaign);
        let hash = bucket::hash(campaign, &user);
        assert_eq!(format!("{hash:016x}"), v.hash, "hash of {} in {}", v.user, v.campaign);
        // Step 3 and 4 of the documented algorithm, written out independently of `bucket::choose`.
        let total: u64 = v.weights.iter().map(|w| u64::from(*w)).sum();
        let point = ((u128::from(hash) * u128::from(total)) >> 64) as u64;
        let mut running = 0;
        let by_spec = v.weights.iter().position(|w| {
            running += u64::from(*w);
            point < running
        });
        assert_eq!(by_spec, Some(v.variant), "spec variant of {} in {}", v.user, v.campaign);
        assert_eq!(bucket::choose(campaign, &user, v.weights.iter().copied()), Some(v.variant));
    }
}

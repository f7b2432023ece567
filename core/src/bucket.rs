//! Deterministic A/B variant assignment.
//!
//! A customer's variant depends only on the campaign id, the customer id and the weights, so the edge, the
//! origin, any release and any platform agree, and a customer keeps their variant for the life of the
//! campaign (as long as its weights are unchanged). The algorithm, version 1:
//!
//! 1. `digest = SHA-256("popup-bucket/v1" ‖ 0x00 ‖ campaign_id as decimal ASCII ‖ 0x00 ‖ user_id)`
//! 2. `x = the first 8 bytes of digest as a big-endian u64` (uniform over `0..2^64`)
//! 3. `point = (x × total_weight) >> 64` (uniform over `0..total_weight`, no modulo bias)
//! 4. the variant is the first whose running sum of weights exceeds `point`.
//!
//! Test vectors live in `core/tests/vectors/bucketing.json`; any change to them is a breaking change that
//! reshuffles running experiments.

use sha2::{Digest, Sha256};

use crate::ids::{CampaignId, UserId};

const DOMAIN: &[u8] = b"popup-bucket/v1";

/// The uniform 64-bit hash of (campaign, user) that bucketing starts from.
pub fn hash(campaign: CampaignId, user: &UserId) -> u64 {
    let digits = itoa_u64(campaign.0);
    let mut hasher = Sha256::new();
    hasher.update(DOMAIN);
    hasher.update([0]);
    hasher.update(digits.as_bytes());
    hasher.update([0]);
    hasher.update(user.as_str().as_bytes());
    let digest = hasher.finalize();
    let mut prefix = [0u8; 8];
    prefix.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(prefix)
}

/// The index of the variant `user` falls into, given the variants' weights in order. None when every weight
/// is zero.
pub fn choose(
    campaign: CampaignId,
    user: &UserId,
    weights: impl Iterator<Item = u32> + Clone,
) -> Option<usize> {
    let total: u64 = weights.clone().map(u64::from).sum();
    if total == 0 {
        return None;
    }
    let point = ((u128::from(hash(campaign, user)) * u128::from(total)) >> 64) as u64;
    let mut running = 0u64;
    for (index, weight) in weights.enumerate() {
        running += u64::from(weight);
        if point < running {
            return Some(index);
        }
    }
    None
}

/// Decimal digits of `n` without allocating.
struct Digits {
    buf: [u8; 20],
    start: usize,
}

impl Digits {
    fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

fn itoa_u64(mut n: u64) -> Digits {
    let mut buf = [0u8; 20];
    let mut start = buf.len();
    loop {
        start -= 1;
        buf[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    Digits { buf, start }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::vec;
    use alloc::vec::Vec;

    #[test]
    fn digits_match_formatting() {
        for n in [0, 7, 10, 12345, u64::MAX] {
            assert_eq!(itoa_u64(n).as_bytes(), format!("{n}").as_bytes());
        }
    }

    #[test]
    fn assignment_follows_weights_within_one_percent_over_100k_users() {
        let weights = [50u32, 30, 15, 5];
        let mut counts = [0u32; 4];
        let users = 100_000;
        for i in 0..users {
            let user = UserId::parse(&format!("cust-{i}")).unwrap();
            let index = choose(CampaignId(42), &user, weights.iter().copied()).unwrap();
            counts[index] += 1;
        }
        let total: u32 = weights.iter().sum();
        for (weight, count) in weights.iter().zip(counts) {
            let expected = f64::from(*weight) / f64::from(total);
            let observed = f64::from(count) / f64::from(users);
            assert!(
                (observed - expected).abs() < 0.01,
                "weight {weight}: expected {expected}, observed {observed}"
            );
        }
    }

    #[test]
    fn campaigns_bucket_independently() {
        // The same users split 50/50 in two campaigns should not land on the same side every time.
        let users: Vec<UserId> = (0..2000).map(|i| UserId::parse(&format!("u{i}")).unwrap()).collect();
        let side =
            |campaign| users.iter().map(move |u| choose(CampaignId(campaign), u, [1u32, 1].into_iter()));
        let agree = side(1).zip(side(2)).filter(|(a, b)| a == b).count();
        assert!((800..1200).contains(&agree), "{agree} of 2000 agree");
    }

    #[test]
    fn zero_weights_choose_nothing_and_zero_weight_variants_are_never_chosen() {
        let user = UserId::parse("u").unwrap();
        assert_eq!(choose(CampaignId(1), &user, [0u32, 0].into_iter()), None);
        for i in 0..500 {
            let user = UserId::parse(&format!("u{i}")).unwrap();
            assert_eq!(choose(CampaignId(1), &user, vec![0u32, 3, 0].into_iter()), Some(1));
        }
    }
}

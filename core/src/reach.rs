//! Distinct customers counted so that days add up: the reach of one campaign's variant on one day, kept by
//! ingest as events arrive, merged over any range of days when stats are read. A year of a busy campaign
//! is then a few hundred small rows instead of millions of events to deduplicate.
//!
//! Each (campaign, day, variant, kind of exposure) keeps:
//! - the exact set of its customers' 64-bit hashes while it holds at most [`EXACT_LIMIT`] of them, so
//!   pilots, small campaigns and tests count exactly;
//! - always, a HyperLogLog sketch of [`REGISTERS`] registers, whose standard error is about 1.6 %
//!   (1.04 / √4096), for when the set would be larger.
//!
//! A register is stored as the mask of the ranks seen (16 bits) rather than their maximum, so two sketches
//! merge by bitwise OR: Postgres merges them in ingest's upsert (`varbit | varbit`) without reading them back
//! under a lock, and merging is idempotent, so an event stored twice changes nothing.
//!
//! The layout, version 1 (migration 0005's SQL functions `reach_hash` and `reach_bit` compute the same, for
//! rebuilding from the stored events):
//! 1. `hash` = the first 8 bytes of SHA-256(`"popup-reach/v1:"` ‖ customer id), big-endian;
//! 2. `register` = the top 12 bits of `hash`; `rank` = the number of leading zeros of the other 52 bits
//!    plus one, at most 16 (a register saturates only past 4096 × 2^16 ≈ 268 million customers);
//! 3. bit `register × 16 + rank − 1` of a 65,536-bit string is set, bit 0 being the most significant bit
//!    of byte 0 (Postgres's order of a bit string).

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec;
use alloc::vec::Vec;

use sha2::{Digest, Sha256};

use crate::ids::{CampaignId, UserId};
use crate::store::event::EventKind;
use crate::store::KeySpace;
use crate::stream::Record;

const DOMAIN: &[u8] = b"popup-reach/v1:";
const PRECISION: u32 = 12;
/// The sketch's registers.
pub const REGISTERS: usize = 1 << PRECISION;
const RANKS: u32 = 16;
/// The sketch's length in bits, as Postgres stores it (`bit varying`).
pub const SKETCH_BITS: usize = REGISTERS * RANKS as usize;
const SKETCH_BYTES: usize = SKETCH_BITS / 8;
/// The most customers a day's exact set keeps; beyond it only the sketch is kept.
pub const EXACT_LIMIT: usize = 512;

/// The customer's hash that both the exact set and the sketch are made of.
pub fn hash(user: &UserId) -> u64 {
    let digest = Sha256::new().chain_update(DOMAIN).chain_update(user.as_str().as_bytes()).finalize();
    let mut prefix = [0u8; 8];
    prefix.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(prefix)
}

/// The bit a hash sets in a sketch.
pub fn sketch_bit(hash: u64) -> usize {
    let register = (hash >> (64 - PRECISION)) as usize;
    let rank = ((hash << PRECISION).leading_zeros() + 1).min(RANKS);
    register * RANKS as usize + rank as usize - 1
}

/// A HyperLogLog sketch with OR-mergeable registers (see the module docs).
#[derive(Clone, PartialEq, Eq)]
pub struct Sketch(Vec<u8>);

impl core::fmt::Debug for Sketch {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let set: u32 = self.0.iter().map(|byte| byte.count_ones()).sum();
        write!(f, "Sketch({set} bits set)")
    }
}

impl Default for Sketch {
    fn default() -> Self {
        Sketch(vec![0; SKETCH_BYTES])
    }
}

impl Sketch {
    /// A stored sketch, or None if `bytes` is not one.
    pub fn from_bytes(bytes: Vec<u8>) -> Option<Sketch> {
        (bytes.len() == SKETCH_BYTES).then_some(Sketch(bytes))
    }

    pub fn of_hashes<'a>(hashes: impl IntoIterator<Item = &'a u64>) -> Sketch {
        let mut sketch = Sketch::default();
        for &hash in hashes {
            sketch.add(hash);
        }
        sketch
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn add(&mut self, hash: u64) {
        let bit = sketch_bit(hash);
        self.0[bit / 8] |= 0x80 >> (bit % 8);
    }

    pub fn merge(&mut self, other: &Sketch) {
        for (mine, theirs) in self.0.iter_mut().zip(&other.0) {
            *mine |= *theirs;
        }
    }

    /// Each register's value: the highest rank seen, 0 for none.
    #[cfg(feature = "std")]
    fn registers(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.chunks_exact(2).map(|pair| {
            let mask = u16::from_be_bytes([pair[0], pair[1]]);
            // Rank r is bit r − 1 from the most significant end: the highest rank is the lowest set bit.
            if mask == 0 {
                0
            } else {
                RANKS - mask.trailing_zeros()
            }
        })
    }

    /// The estimated number of distinct customers added: HyperLogLog's estimate, with linear counting
    /// while registers are still empty (where it is the more accurate of the two).
    #[cfg(feature = "std")]
    pub fn estimate(&self) -> u64 {
        let m = REGISTERS as f64;
        let (mut sum, mut empty) = (0.0f64, 0u32);
        for value in self.registers() {
            sum += 1.0 / f64::from(1u32 << value);
            empty += u32::from(value == 0);
        }
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let raw = alpha * m * m / sum;
        let estimate = if raw <= 2.5 * m && empty > 0 { m * (m / f64::from(empty)).ln() } else { raw };
        estimate.round() as u64
    }
}

/// The distinct customers of one or more days: their hashes while few, else a sketch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reach {
    Exact(BTreeSet<u64>),
    Estimated(Sketch),
}

impl Default for Reach {
    fn default() -> Self {
        Reach::Exact(BTreeSet::new())
    }
}

impl Reach {
    /// What a stored row holds: its exact set when it has one, else its sketch.
    pub fn stored(exact: Option<impl IntoIterator<Item = u64>>, sketch: Option<Sketch>) -> Reach {
        match (exact, sketch) {
            (Some(hashes), _) => Reach::Exact(hashes.into_iter().collect()),
            (None, Some(sketch)) => Reach::Estimated(sketch),
            (None, None) => Reach::Estimated(Sketch::default()),
        }
    }

    /// Adds the customers of `other`. Exact sets stay exact however large their union, since every member
    /// is known; a sketch on either side makes the result a sketch.
    pub fn merge(&mut self, other: &Reach) {
        match (&mut *self, other) {
            (Reach::Exact(mine), Reach::Exact(theirs)) => mine.extend(theirs),
            (Reach::Estimated(mine), Reach::Estimated(theirs)) => mine.merge(theirs),
            (Reach::Estimated(mine), Reach::Exact(theirs)) => theirs.iter().for_each(|&hash| mine.add(hash)),
            (Reach::Exact(mine), Reach::Estimated(theirs)) => {
                let mut sketch = theirs.clone();
                mine.iter().for_each(|&hash| sketch.add(hash));
                *self = Reach::Estimated(sketch);
            }
        }
    }

    /// How many distinct customers, at most `ceiling` (the events counted, which an estimate must not
    /// exceed: a day with 3 impressions has at most 3 customers).
    #[cfg(feature = "std")]
    pub fn count(&self, ceiling: u64) -> u64 {
        match self {
            Reach::Exact(hashes) => hashes.len() as u64,
            Reach::Estimated(sketch) => sketch.estimate().min(ceiling),
        }
    }
}

/// The kinds of event whose customers are counted: who saw the popup, who converted, who was held out.
pub const COUNTED_KINDS: [EventKind; 3] = [EventKind::Impression, EventKind::Conversion, EventKind::Holdout];

/// The customers counted together: one campaign's variant, one day, one kind of event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DayKey<'a> {
    pub campaign: CampaignId,
    /// The deployment's day ([`KeySpace::day`]) of when the event happened.
    pub day: i64,
    pub variant: &'a str,
    /// [`EventKind::as_str`] of one of [`COUNTED_KINDS`].
    pub kind: &'static str,
}

/// The customers' hashes of a batch of events, per day key, in key order (the order ingest's upsert locks
/// rows in).
pub fn of_records<'a>(
    records: impl IntoIterator<Item = &'a Record>,
    keys: &KeySpace,
) -> BTreeMap<DayKey<'a>, BTreeSet<u64>> {
    let mut days: BTreeMap<DayKey<'a>, BTreeSet<u64>> = BTreeMap::new();
    for record in records.into_iter().filter(|record| COUNTED_KINDS.contains(&record.kind)) {
        let key = DayKey {
            campaign: record.campaign,
            day: keys.day(record.at),
            variant: &record.variant,
            kind: record.kind.as_str(),
        };
        days.entry(key).or_default().insert(hash(&record.user));
    }
    days
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    fn user(n: u64) -> UserId {
        UserId::parse(&format!("cust-{n:08}")).unwrap()
    }

    #[test]
    fn hashes_and_bits_follow_the_documented_layout() {
        // SHA-256("popup-reach/v1:cust-00000001"), first 8 bytes; the SQL functions are checked against
        // the same figures by the origin's tests.
        let digest = Sha256::digest(b"popup-reach/v1:cust-00000001");
        let expected = u64::from_be_bytes(digest[..8].try_into().unwrap());
        assert_eq!(hash(&user(1)), expected);
        assert_eq!(sketch_bit(0), 15, "no set bit below the register: the top rank");
        assert_eq!(sketch_bit(u64::MAX), 4095 * 16, "the last register, rank 1");
        assert_eq!(sketch_bit(1 << 51), 0, "register 0, rank 1");
        assert_eq!(sketch_bit(1 << 50), 1, "register 0, rank 2");
        assert_eq!(sketch_bit((7 << 52) | (1 << 45)), 7 * 16 + 6);
    }

    #[test]
    fn small_sketches_count_almost_exactly_and_large_ones_within_their_error() {
        for (n, tolerance) in [(1u64, 0.0), (100, 0.02), (1_000, 0.03), (10_000, 0.05), (200_000, 0.05)] {
            let hashes: Vec<u64> = (0..n).map(|i| hash(&user(i))).collect();
            let estimate = Sketch::of_hashes(&hashes).estimate() as f64;
            let error = (estimate - n as f64).abs() / n as f64;
            assert!(error <= tolerance, "{n} customers estimated as {estimate}");
        }
        assert_eq!(Sketch::default().estimate(), 0);
    }

    #[test]
    fn merging_sketches_is_the_union_and_is_idempotent() {
        let first: Vec<u64> = (0..3_000).map(|i| hash(&user(i))).collect();
        let second: Vec<u64> = (2_000..5_000).map(|i| hash(&user(i))).collect();
        let mut merged = Sketch::of_hashes(&first);
        merged.merge(&Sketch::of_hashes(&second));
        let whole = Sketch::of_hashes(first.iter().chain(&second));
        assert_eq!(merged, whole);
        let again = merged.clone();
        merged.merge(&again);
        assert_eq!(merged, whole);
    }

    #[test]
    fn exact_sets_stay_exact_until_a_sketch_joins_them() {
        let day = |range: core::ops::Range<u64>| Reach::Exact(range.map(|i| hash(&user(i))).collect());
        let mut reach = day(0..400);
        reach.merge(&day(300..900));
        assert_eq!(reach.count(u64::MAX), 900, "a union of exact days is exact, past the limit too");
        let sketched =
            Reach::Estimated(Sketch::of_hashes(&(900..5_000).map(|i| hash(&user(i))).collect::<Vec<_>>()));
        reach.merge(&sketched);
        let count = reach.count(u64::MAX) as f64;
        assert!((count - 5_000.0).abs() / 5_000.0 < 0.05, "{count}");
        assert_eq!(reach.count(4_000), 4_000, "never more customers than events");
    }

    #[test]
    fn a_stored_sketch_must_have_the_layout_length() {
        assert!(Sketch::from_bytes(vec![0; 8192]).is_some());
        assert!(Sketch::from_bytes(vec![0; 8191]).is_none());
    }
}

//! The popup API's request limits, per customer and per client address, kept in this process's memory
//! (`popup_core::limit` decides). Each origin process limits on its own, so behind N processes a client gets
//! up to N times the limit: the limits stop abuse (a script walking customer ids, a loop in an app), they
//! are not a quota.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use popup_core::limit::{Admission, Rate};

/// Locks are per shard, so concurrent requests for different keys seldom wait for each other.
const SHARDS: usize = 32;

/// A shard drops its idle keys (whose state no longer matters) when it grows past this many keys.
const PRUNE_AT: usize = 10_000;

/// A limit and the state of every key it has seen recently.
#[derive(Debug)]
pub struct Limiter {
    rate: Rate,
    shards: Vec<Mutex<Shard>>,
    /// The limiter's clock: monotonic, so a wall clock set back cannot refuse or admit a burst.
    started: Instant,
}

#[derive(Debug)]
struct Shard {
    states: HashMap<String, i64>,
    /// The size at which the shard next prunes: twice what a prune kept, so that a shard full of busy keys
    /// is not scanned on every request (pruning stays amortised O(1) per request).
    prune_at: usize,
}

impl Limiter {
    pub fn new(rate: Rate) -> Limiter {
        let shard = || Mutex::new(Shard { states: HashMap::new(), prune_at: PRUNE_AT });
        Limiter { rate, shards: (0..SHARDS).map(|_| shard()).collect(), started: Instant::now() }
    }

    /// Admits a request for `key` now, or says in how many ms one would be.
    pub fn admit(&self, key: &str) -> Result<(), i64> {
        let now_ms = i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX);
        self.admit_at(key, now_ms)
    }

    /// Admits a request for `key` at `now_ms` of the limiter's clock.
    fn admit_at(&self, key: &str, now_ms: i64) -> Result<(), i64> {
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        let shard = &self.shards[(hasher.finish() % SHARDS as u64) as usize];
        let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
        if shard.states.len() >= shard.prune_at {
            shard.states.retain(|_, tat| !self.rate.is_idle(*tat, now_ms));
            shard.prune_at = (shard.states.len() * 2).max(PRUNE_AT);
        }
        match self.rate.admit(shard.states.get(key).copied(), now_ms) {
            Admission::Allowed { tat } => {
                shard.states.insert(key.to_string(), tat);
                Ok(())
            }
            Admission::Limited { retry_after_ms } => Err(retry_after_ms),
        }
    }

    #[cfg(test)]
    fn keys(&self) -> usize {
        self.shards.iter().map(|shard| shard.lock().map_or(0, |shard| shard.states.len())).sum()
    }
}

/// The public API's limits: none, either or both.
#[derive(Debug)]
pub struct RequestLimits {
    pub per_customer: Option<Limiter>,
    pub per_address: Option<Limiter>,
}

impl RequestLimits {
    pub fn new(per_customer: u32, per_address: u32) -> RequestLimits {
        RequestLimits {
            per_customer: Rate::per_minute(per_customer).map(Limiter::new),
            per_address: Rate::per_minute(per_address).map(Limiter::new),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_limited_apart_and_idle_ones_are_dropped() {
        let limiter = Limiter::new(Rate { requests: 2, period_ms: 1_000 });
        assert_eq!(limiter.admit_at("a", 0), Ok(()));
        assert_eq!(limiter.admit_at("a", 0), Ok(()));
        assert_eq!(limiter.admit_at("a", 0), Err(500));
        assert_eq!(limiter.admit_at("b", 0), Ok(()), "another key has its own limit");
        assert_eq!(limiter.admit_at("a", 500), Ok(()));

        // Busy keys are all kept (forgetting one would let it burst again)...
        let busy = PRUNE_AT * SHARDS;
        for n in 0..busy {
            assert_eq!(limiter.admit_at(&format!("k{n}"), 10_000), Ok(()));
        }
        assert!(limiter.keys() > busy, "{} keys kept", limiter.keys());
        // ...and once idle, a shard's next prune drops them.
        for n in 0..busy {
            assert_eq!(limiter.admit_at(&format!("later{n}"), 20_000), Ok(()));
        }
        assert!(limiter.keys() < 2 * busy, "{} keys kept", limiter.keys());
    }
}

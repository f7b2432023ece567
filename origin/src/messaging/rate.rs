//! A token bucket per channel: `rate` tokens a second, at most `burst` saved up. The worker takes one token
//! per message before it claims the message, so a message never waits for a token while its lease runs.
//!
//! Time is a parameter (sans-IO): the bucket never reads the clock, and the tests drive it with made-up
//! instants.

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Tokens per second; `None` means unlimited.
    rate: Option<f64>,
    burst: f64,
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    /// A full bucket. A rate of 0 means "no limit"; the burst is at least one token.
    pub fn new(rate_per_second: f64, burst: u32, now: Instant) -> TokenBucket {
        let rate = (rate_per_second > 0.0).then_some(rate_per_second);
        let burst = f64::from(burst.max(1));
        TokenBucket { rate, burst, tokens: burst, updated: now }
    }

    fn refill(&mut self, now: Instant) {
        if let Some(rate) = self.rate {
            let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
            self.tokens = (self.tokens + elapsed * rate).min(self.burst);
        }
        self.updated = self.updated.max(now);
    }

    /// Whole tokens available now, capped at `want`.
    pub fn available(&mut self, now: Instant, want: usize) -> usize {
        if self.rate.is_none() {
            return want;
        }
        self.refill(now);
        // Whole tokens only; the float is at most `burst`, a u32.
        let whole = self.tokens.floor().max(0.0) as usize;
        whole.min(want)
    }

    /// Spends `n` tokens; callers take at most what [`TokenBucket::available`] gave them.
    pub fn take(&mut self, now: Instant, n: usize) {
        if self.rate.is_some() {
            self.refill(now);
            self.tokens -= n as f64;
        }
    }

    /// How long until one whole token is available; zero if one is.
    pub fn wait(&mut self, now: Instant) -> Duration {
        let Some(rate) = self.rate else { return Duration::ZERO };
        self.refill(now);
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_full_bucket_gives_its_burst_then_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10.0, 5, start);
        assert_eq!(bucket.available(start, 100), 5);
        bucket.take(start, 5);
        assert_eq!(bucket.available(start, 100), 0);
        assert_eq!(bucket.wait(start), Duration::from_millis(100));
        let later = start + Duration::from_millis(350);
        assert_eq!(bucket.available(later, 100), 3);
        // Never more than the burst, however long it rested.
        assert_eq!(bucket.available(start + Duration::from_secs(60), 100), 5);
    }

    #[test]
    fn rate_zero_is_unlimited() {
        let now = Instant::now();
        let mut bucket = TokenBucket::new(0.0, 1, now);
        assert_eq!(bucket.available(now, 1000), 1000);
        bucket.take(now, 1000);
        assert_eq!(bucket.wait(now), Duration::ZERO);
    }

    proptest! {
        /// Whatever the pattern of requests, tokens spent in any run of time T never exceed
        /// burst + rate * T.
        #[test]
        fn spending_never_exceeds_burst_plus_rate(
            rate in 1u32..500,
            burst in 1u32..50,
            steps in proptest::collection::vec((0u64..200, 0usize..100), 1..200),
        ) {
            let start = Instant::now();
            let mut bucket = TokenBucket::new(f64::from(rate), burst, start);
            let mut now = start;
            let mut spent = 0usize;
            for (advance_ms, want) in steps {
                now += Duration::from_millis(advance_ms);
                let n = bucket.available(now, want);
                bucket.take(now, n);
                spent += n;
            }
            let elapsed = now.duration_since(start).as_secs_f64();
            prop_assert!(spent as f64 <= f64::from(burst) + f64::from(rate) * elapsed + 1e-6);
        }
    }
}

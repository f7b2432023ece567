//! Waiting between attempts: exponential backoff with equal jitter, for every retry loop of the platform
//! (message sends, Redis reconnects).

use core::time::Duration;

/// The delay before attempt `attempt + 1`, after attempt `attempt` (from 1) failed: "equal jitter", half of
/// `base * 2^(attempt - 1)` (capped at `max`) fixed and half random, so retries of many clients that failed
/// together spread out but none comes back sooner than half its step. `unit` is a random number in [0, 1)
/// (the core draws none).
pub fn equal_jitter(attempt: i32, base: Duration, max: Duration, unit: f64) -> Duration {
    let exponent = attempt.saturating_sub(1).clamp(0, 30) as u32;
    let step = base.saturating_mul(1u32 << exponent).min(max);
    let half = step / 2;
    half + half.mul_f64(unit.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_equal_jitter_up_to_the_cap() {
        let base = Duration::from_secs(1);
        let max = Duration::from_secs(10);
        assert_eq!(equal_jitter(1, base, max, 0.0), Duration::from_millis(500));
        assert_eq!(equal_jitter(1, base, max, 0.999_999), Duration::from_nanos(999_999_500));
        assert_eq!(equal_jitter(2, base, max, 0.0), Duration::from_secs(1));
        assert_eq!(equal_jitter(3, base, max, 0.5), Duration::from_secs(3));
        assert_eq!(equal_jitter(4, base, max, 0.0), Duration::from_secs(4));
        assert_eq!(equal_jitter(5, base, max, 1.0), max, "capped");
        assert_eq!(equal_jitter(60, base, max, 0.0), Duration::from_secs(5), "no overflow");
        assert_eq!(equal_jitter(0, base, max, 0.0), Duration::from_millis(500));
    }
}

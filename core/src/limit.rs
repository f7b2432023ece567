//! Request limits of the public API, per customer and per client address: the generic cell rate algorithm
//! (GCRA), sans-IO. A limit of `requests` per `period` lets a client send that many at once and then one
//! every `period / requests`; a refused request is told when the next one would be admitted
//! (`Retry-After`). The state of a key is one number, its theoretical arrival time, kept by the caller.

/// `requests` per `period_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub requests: u32,
    pub period_ms: i64,
}

/// What a request gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Admitted; the key's state becomes `tat`.
    Allowed { tat: i64 },
    /// Refused; the key's state is unchanged, and a request is admitted again in `retry_after_ms`.
    Limited { retry_after_ms: i64 },
}

impl Rate {
    /// `requests` a minute, or none (no limit) for 0.
    pub fn per_minute(requests: u32) -> Option<Rate> {
        (requests > 0).then_some(Rate { requests, period_ms: 60_000 })
    }

    /// The time between two requests at the steady rate, at least 1 ms.
    fn interval_ms(&self) -> i64 {
        (self.period_ms / i64::from(self.requests.max(1))).max(1)
    }

    /// Admits a request at `now_ms` for a key whose state is `tat` (none for a key not seen, or forgotten).
    pub fn admit(&self, tat: Option<i64>, now_ms: i64) -> Admission {
        let start = tat.map_or(now_ms, |tat| tat.max(now_ms));
        let next = start.saturating_add(self.interval_ms());
        let ahead = next - now_ms;
        if ahead <= self.period_ms {
            Admission::Allowed { tat: next }
        } else {
            Admission::Limited { retry_after_ms: ahead - self.period_ms }
        }
    }

    /// Whether a key's state no longer matters at `now_ms`: forgetting it admits exactly what keeping it
    /// would, so a caller may drop it.
    pub fn is_idle(&self, tat: i64, now_ms: i64) -> bool {
        tat <= now_ms
    }
}

/// Seconds to put in `Retry-After`: rounded up, at least 1.
pub fn retry_after_seconds(retry_after_ms: i64) -> u64 {
    u64::try_from(retry_after_ms.max(1)).unwrap_or(u64::MAX).div_ceil(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_the_limit_then_one_per_interval() {
        let rate = Rate { requests: 3, period_ms: 60_000 };
        let mut tat = None;
        for _ in 0..3 {
            match rate.admit(tat, 0) {
                Admission::Allowed { tat: next } => tat = Some(next),
                limited => panic!("within the burst: {limited:?}"),
            }
        }
        assert_eq!(rate.admit(tat, 0), Admission::Limited { retry_after_ms: 20_000 });
        assert_eq!(rate.admit(tat, 19_999), Admission::Limited { retry_after_ms: 1 });
        assert_eq!(rate.admit(tat, 20_000), Admission::Allowed { tat: 80_000 });
        // A refused request does not push the next admission back.
        assert_eq!(rate.admit(Some(80_000), 20_001), Admission::Limited { retry_after_ms: 19_999 });
    }

    #[test]
    fn an_idle_key_starts_afresh() {
        let rate = Rate::per_minute(2).unwrap();
        assert_eq!(rate.admit(Some(10), 1_000_000), Admission::Allowed { tat: 1_030_000 });
        assert!(rate.is_idle(1_030_000, 1_030_000));
        assert!(!rate.is_idle(1_030_000, 1_029_999));
        assert_eq!(Rate::per_minute(0), None);
        assert_eq!(retry_after_seconds(1), 1);
        assert_eq!(retry_after_seconds(20_000), 20);
        assert_eq!(retry_after_seconds(20_001), 21);
        assert_eq!(retry_after_seconds(-5), 1);
    }

    #[test]
    fn huge_times_do_not_overflow() {
        let rate = Rate { requests: 1, period_ms: 1 };
        assert!(matches!(rate.admit(Some(i64::MAX), 0), Admission::Limited { .. }));
        assert_eq!(rate.admit(None, i64::MAX), Admission::Allowed { tat: i64::MAX });
    }
}

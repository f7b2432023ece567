//! A circuit breaker for the store the resolvers depend on. When Redis hangs, every request would otherwise
//! wait out its whole timeout before answering 503, tying up connections and workers; after
//! `failures_to_open` consecutive failures the breaker opens and requests are refused at once for
//! `cool_down_ms`. Then one request is let through as a probe: its success closes the breaker, its failure
//! opens it for another cool-down. A probe that never reports back (its request was dropped) is given up
//! after a cool-down, and another is let through.
//!
//! Sans-IO: the caller passes the time in milliseconds and reports each outcome.

/// When the breaker opens and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Consecutive failures that open it; 0 turns the breaker off.
    pub failures_to_open: u32,
    pub cool_down_ms: i64,
}

/// What the breaker lets a request do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Closed: go ahead.
    Allowed,
    /// Open and cooled down: this request is the probe; report its outcome.
    Probe,
    /// Open: answer at once that the store is unavailable, and say when to try again.
    Refused { retry_after_ms: i64 },
}

/// The breaker's state, for metrics and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
}

#[derive(Clone, Debug)]
pub struct Breaker {
    settings: BreakerSettings,
    consecutive_failures: u32,
    /// Set while open: until when requests are refused outright.
    open_until_ms: Option<i64>,
    /// When the probe in flight was let through, if one is.
    probe_since_ms: Option<i64>,
}

impl Breaker {
    pub fn new(settings: BreakerSettings) -> Breaker {
        Breaker { settings, consecutive_failures: 0, open_until_ms: None, probe_since_ms: None }
    }

    pub fn state(&self) -> BreakerState {
        if self.open_until_ms.is_some() {
            BreakerState::Open
        } else {
            BreakerState::Closed
        }
    }

    pub fn admit(&mut self, now_ms: i64) -> Admission {
        let Some(until) = self.open_until_ms else {
            return Admission::Allowed;
        };
        if now_ms < until {
            return Admission::Refused { retry_after_ms: until - now_ms };
        }
        match self.probe_since_ms {
            Some(since) if now_ms < since.saturating_add(self.settings.cool_down_ms) => Admission::Refused {
                retry_after_ms: since.saturating_add(self.settings.cool_down_ms) - now_ms,
            },
            _ => {
                self.probe_since_ms = Some(now_ms);
                Admission::Probe
            }
        }
    }

    /// Reports a request's outcome (`ok`: the store answered). Returns the new state when it changed.
    pub fn record(&mut self, now_ms: i64, ok: bool) -> Option<BreakerState> {
        if ok {
            self.consecutive_failures = 0;
            self.probe_since_ms = None;
            return self.open_until_ms.take().map(|_| BreakerState::Closed);
        }
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        let was_open = self.open_until_ms.is_some();
        let trips =
            self.settings.failures_to_open > 0 && self.consecutive_failures >= self.settings.failures_to_open;
        if trips || self.probe_since_ms.is_some() {
            // A failed probe, or the failure that reaches the threshold: refuse for a whole cool-down.
            self.open_until_ms = Some(now_ms.saturating_add(self.settings.cool_down_ms));
            self.probe_since_ms = None;
        }
        (!was_open && self.open_until_ms.is_some()).then_some(BreakerState::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTINGS: BreakerSettings = BreakerSettings { failures_to_open: 3, cool_down_ms: 1_000 };

    /// Failed at 0, 1 and 2 ms: open until 1,002.
    fn opened_at_2() -> Breaker {
        let mut breaker = Breaker::new(SETTINGS);
        for t in 0..3 {
            breaker.record(t, false);
        }
        breaker
    }

    #[test]
    fn it_opens_after_consecutive_failures_only() {
        let mut breaker = Breaker::new(SETTINGS);
        assert_eq!(breaker.record(0, false), None);
        assert_eq!(breaker.record(1, false), None);
        assert_eq!(breaker.record(2, true), None, "a success in between starts the count again");
        assert_eq!(breaker.record(3, false), None);
        assert_eq!(breaker.record(4, false), None);
        assert_eq!(breaker.admit(5), Admission::Allowed);
        assert_eq!(breaker.record(5, false), Some(BreakerState::Open));
        assert_eq!(breaker.state(), BreakerState::Open);
        assert_eq!(breaker.admit(6), Admission::Refused { retry_after_ms: 999 });
    }

    #[test]
    fn after_the_cool_down_one_probe_goes_through_and_its_success_closes_it() {
        let mut breaker = opened_at_2();
        assert_eq!(breaker.admit(1_001), Admission::Refused { retry_after_ms: 1 });
        assert_eq!(breaker.admit(1_002), Admission::Probe);
        assert_eq!(breaker.admit(1_003), Admission::Refused { retry_after_ms: 999 }, "one probe at a time");
        assert_eq!(breaker.record(1_010, true), Some(BreakerState::Closed));
        assert_eq!(breaker.admit(1_011), Admission::Allowed);
    }

    #[test]
    fn a_failed_probe_opens_it_for_another_cool_down() {
        let mut breaker = opened_at_2();
        assert_eq!(breaker.admit(1_500), Admission::Probe);
        assert_eq!(breaker.record(1_800, false), None, "still open");
        assert_eq!(breaker.admit(2_700), Admission::Refused { retry_after_ms: 100 });
        assert_eq!(breaker.admit(2_800), Admission::Probe);
    }

    #[test]
    fn a_probe_that_never_reports_is_given_up_after_a_cool_down() {
        let mut breaker = opened_at_2();
        assert_eq!(breaker.admit(1_002), Admission::Probe);
        assert!(matches!(breaker.admit(1_500), Admission::Refused { .. }));
        assert_eq!(breaker.admit(2_002), Admission::Probe);
    }

    #[test]
    fn zero_failures_to_open_turns_it_off() {
        let mut breaker = Breaker::new(BreakerSettings { failures_to_open: 0, cool_down_ms: 1_000 });
        for t in 0..100 {
            assert_eq!(breaker.record(t, false), None);
            assert_eq!(breaker.admit(t), Admission::Allowed);
        }
    }
}

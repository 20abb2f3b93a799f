//! Token bucket that keeps one runaway script from flooding the log store.

use std::time::Instant;

#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// `rate` tokens per second up to `burst`; a rate of 0 never limits.
    pub fn new(rate: u32, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            rate: f64::from(rate),
            burst,
            tokens: burst,
            last: now,
        }
    }

    pub fn unlimited(&self) -> bool {
        self.rate == 0.0
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
    }

    pub fn take(&mut self, now: Instant) -> bool {
        self.take_n(1, now)
    }

    /// Spends `n` tokens if there are that many; a cost above the burst counts
    /// as the burst, so that one large item can still pass a full bucket.
    pub fn take_n(&mut self, n: u32, now: Instant) -> bool {
        if !self.would_pass_n(n, now) {
            return false;
        }
        if !self.unlimited() {
            self.tokens -= self.cost(n);
        }
        true
    }

    /// Whether a line would be let through now, without spending a token.
    pub fn would_pass(&mut self, now: Instant) -> bool {
        self.would_pass_n(1, now)
    }

    pub fn would_pass_n(&mut self, n: u32, now: Instant) -> bool {
        if self.unlimited() {
            return true;
        }
        self.refill(now);
        self.tokens >= self.cost(n)
    }

    fn cost(&self, n: u32) -> f64 {
        f64::from(n.max(1)).min(self.burst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(100, 10, t0);
        let passed = (0..50).filter(|_| b.take(t0)).count();
        assert_eq!(passed, 10);
        assert!(!b.would_pass(t0));
        let t1 = t0 + Duration::from_millis(100);
        let passed = (0..50).filter(|_| b.take(t1)).count();
        assert_eq!(passed, 10, "100/s for 0.1 s refills 10");
        let t2 = t1 + Duration::from_secs(60);
        assert_eq!(
            (0..50).filter(|_| b.take(t2)).count(),
            10,
            "capped at burst"
        );
    }

    #[test]
    fn a_cost_spends_that_many_tokens_and_never_more_than_the_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000, 4000, t0);
        assert!(b.take_n(3000, t0));
        assert!(!b.take_n(1001, t0), "1,000 left");
        assert!(b.take_n(1000, t0));
        assert!(!b.would_pass(t0));
        let t1 = t0 + Duration::from_secs(10);
        assert!(
            b.take_n(1_000_000, t1),
            "a full bucket lets one big item through"
        );
        assert!(!b.take_n(1, t1));
    }

    #[test]
    fn zero_rate_is_unlimited() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(0, 1, t0);
        assert!((0..10_000).all(|_| b.take(t0)));
    }
}

//! Exponential backoff with full jitter, shared by every retry loop.

use std::time::Duration;

use rand::Rng;

#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    base_seconds: f64,
    max_seconds: f64,
}

impl Backoff {
    pub fn new(base_seconds: f64, max_seconds: f64) -> Backoff {
        Backoff {
            base_seconds: base_seconds.max(0.0),
            max_seconds: max_seconds.max(0.0),
        }
    }

    /// Delay before retry number `attempt` (1-based): uniform in [cap/2, cap],
    /// cap = min(max, base · 2^(attempt-1)). Half is kept so retries never bunch at 0
    /// when many nodes of an autoscaling group fail together.
    pub fn delay(&self, attempt: u32) -> Duration {
        let cap = (self.base_seconds * 2f64.powi(attempt.saturating_sub(1).min(30) as i32))
            .min(self.max_seconds);
        if cap <= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(rand::rng().random_range(cap / 2.0..=cap))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_are_capped() {
        let b = Backoff::new(1.0, 8.0);
        for _ in 0..100 {
            let d1 = b.delay(1).as_secs_f64();
            assert!((0.5..=1.0).contains(&d1), "{d1}");
            let d10 = b.delay(10).as_secs_f64();
            assert!((4.0..=8.0).contains(&d10), "{d10}");
        }
        assert_eq!(Backoff::new(0.0, 5.0).delay(3), Duration::ZERO);
    }
}

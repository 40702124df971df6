//! backoff: the delay before an automatic restart. Pure arithmetic, no clock.
//!
//! The k-th restart in a row (k = 0 for the first) waits `backoff × 2^k`, capped at
//! `max-backoff` and never below `MIN_BACKOFF` (100 ms), so a service that crashes at once cannot
//! spin however it is configured (Horust's default `backoff = "0s"` included). Saturating math:
//! no input can overflow or panic.

use std::time::Duration;

use crate::spec::{MIN_BACKOFF, Restart};

/// Delay before restart number `streak` (0-based) of a run of consecutive restarts.
pub fn delay(restart: &Restart, streak: u32) -> Duration {
    let base = restart.backoff.max(MIN_BACKOFF);
    let cap = restart.max_backoff.max(base);
    // 2^streak, saturating: past 2^31 the cap has long been reached anyway.
    let factor = 1u32.checked_shl(streak.min(31)).unwrap_or(u32::MAX);
    base.checked_mul(factor).unwrap_or(cap).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{RestartStrategy, ServiceSpec};

    fn restart(backoff_ms: u64, max_ms: u64) -> Restart {
        let mut r = ServiceSpec::new("x", vec![]).restart;
        r.strategy = RestartStrategy::Always;
        r.backoff = Duration::from_millis(backoff_ms);
        r.max_backoff = Duration::from_millis(max_ms);
        r
    }

    fn gaps(r: &Restart, n: u32) -> Vec<u128> {
        (0..n).map(|k| delay(r, k).as_millis()).collect()
    }

    #[test]
    fn doubles_up_to_the_cap() {
        // zinit's measured sequence with delay 200 ms, max 1600 ms.
        assert_eq!(gaps(&restart(200, 1600), 6), [200, 400, 800, 1600, 1600, 1600]);
    }

    #[test]
    fn zero_backoff_is_floored_at_100ms() {
        assert_eq!(gaps(&restart(0, 60_000), 4), [100, 200, 400, 800]);
    }

    #[test]
    fn cap_below_base_uses_base() {
        assert_eq!(gaps(&restart(500, 100), 3), [500, 500, 500]);
    }

    #[test]
    fn huge_streaks_saturate_at_the_cap() {
        let r = restart(100, 3_600_000);
        assert_eq!(delay(&r, 31).as_millis(), 3_600_000);
        assert_eq!(delay(&r, u32::MAX).as_millis(), 3_600_000);
        let big = Restart { backoff: crate::spec::MAX_DURATION, max_backoff: crate::spec::MAX_DURATION, ..r };
        assert_eq!(delay(&big, 40), crate::spec::MAX_DURATION);
    }
}

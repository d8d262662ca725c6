//! Exponential backoff with a guaranteed floor, honouring `Retry-After`.
//!
//! Retry `n` (0 = the first retry) waits a random time in `[d/2, d]` with `d = min(cap, base·2^n)`. The jitter
//! spreads failing senders out; the floor guarantees how long an outage a batch survives: the time from its
//! first failed attempt to its drop is at least [`RetryPolicy::shortest_time_to_drop`] — with the defaults
//! (5 attempts, base 30 s, cap 240 s) `(30 + 60 + 120 + 240) / 2` = 225 s, and with base 400 ms and cap
//! 1.6 s, 2.2 s. A destination's `Retry-After` can make a wait longer (up to ten minutes), never shorter: a
//! destination answering `Retry-After: 0` must not turn retries into a busy loop or shorten the floor.

use std::time::Duration;

use rand::Rng;

/// How a batch is retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// Upper bound of the first retry's delay (its lower bound is half of it).
    pub base: Duration,
    /// Upper bound of any backoff delay, and the interval of a paused stream's retries.
    pub cap: Duration,
}

/// Longest `Retry-After` honoured; a destination asking for more gets retried after this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// `delay`, or what the destination asked for if that is longer (up to [`MAX_RETRY_AFTER`]).
fn at_least_asked(delay: Duration, retry_after: Option<Duration>) -> Duration {
    retry_after.map_or(delay, |asked| delay.max(asked.min(MAX_RETRY_AFTER)))
}

impl RetryPolicy {
    /// `d` of retry number `retry`: `min(cap, base·2^retry)`.
    fn ceiling(&self, retry: u32) -> Duration {
        self.base.saturating_mul(2u32.saturating_pow(retry)).min(self.cap)
    }

    /// The delay before retry number `retry` (0 = the first retry): uniformly random in `[d/2, d]`, or what
    /// the destination asked for with `Retry-After` when that is longer (up to ten minutes).
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let ceiling = self.ceiling(retry);
        let floor = ceiling / 2;
        let spread = (ceiling - floor).as_micros() as u64;
        let backoff = floor + Duration::from_micros(rand::thread_rng().gen_range(0..=spread));
        at_least_asked(backoff, retry_after)
    }

    /// The delay between a paused stream's retries: the cap, or what the destination asked for when longer.
    pub fn paused_delay(&self, retry_after: Option<Duration>) -> Duration {
        at_least_asked(self.cap, retry_after)
    }

    /// The shortest time from a batch's first failed attempt to its drop (its last attempt): the sum of the
    /// retries' floors, whatever the jitter draws.
    pub fn shortest_time_to_drop(&self) -> Duration {
        (0..self.attempts.saturating_sub(1)).map(|retry| self.ceiling(retry) / 2).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_between_half_the_ceiling_and_the_ceiling() {
        let policy = RetryPolicy { attempts: 5, base: Duration::from_secs(30), cap: Duration::from_secs(240) };
        for retry in 0..6 {
            let ceiling = (Duration::from_secs(30) * 2u32.pow(retry)).min(Duration::from_secs(240));
            for _ in 0..100 {
                let delay = policy.delay(retry, None);
                assert!(delay >= ceiling / 2 && delay <= ceiling, "retry {retry}: {delay:?}");
            }
        }
        // Retry-After lengthens a wait, never shortens it (a `Retry-After: 0` is no busy loop).
        assert_eq!(policy.delay(0, Some(Duration::from_secs(70))), Duration::from_secs(70));
        assert_eq!(policy.delay(0, Some(Duration::from_secs(900))), Duration::from_secs(600));
        assert!(policy.delay(0, Some(Duration::ZERO)) >= Duration::from_secs(15));
        assert!(policy.delay(2, Some(Duration::from_secs(3))) >= Duration::from_secs(60));
        assert_eq!(policy.paused_delay(None), Duration::from_secs(240));
        assert_eq!(policy.paused_delay(Some(Duration::ZERO)), Duration::from_secs(240));
        assert_eq!(policy.paused_delay(Some(Duration::from_secs(500))), Duration::from_secs(500));
    }

    #[test]
    fn the_documented_outage_windows_hold() {
        let defaults = RetryPolicy { attempts: 5, base: Duration::from_secs(30), cap: Duration::from_secs(240) };
        assert_eq!(defaults.shortest_time_to_drop(), Duration::from_secs(225));
        assert!(defaults.shortest_time_to_drop() >= Duration::from_secs(210), "at least 3.5 minutes");
        let fast = RetryPolicy { attempts: 5, base: Duration::from_millis(400), cap: Duration::from_millis(1600) };
        assert_eq!(fast.shortest_time_to_drop(), Duration::from_millis(2200));
        let once = RetryPolicy { attempts: 1, ..fast };
        assert_eq!(once.shortest_time_to_drop(), Duration::ZERO);
    }
}

//! Exponential backoff with full jitter, honouring `Retry-After`.

use std::time::Duration;

use rand::Rng;

/// How a batch is retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// Upper bound of the first retry's delay.
    pub base: Duration,
    /// Upper bound of any backoff delay.
    pub cap: Duration,
}

/// Longest `Retry-After` honoured; a destination asking for more gets retried after this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

impl RetryPolicy {
    /// The delay before retry number `retry` (0 = the first retry): uniformly random in
    /// `[0, min(cap, base * 2^retry)]` ("full jitter", so failing senders spread out), or what the
    /// destination asked for with `Retry-After` (up to ten minutes).
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(asked) = retry_after {
            return asked.min(MAX_RETRY_AFTER);
        }
        let ceiling = self.base.saturating_mul(2u32.saturating_pow(retry)).min(self.cap);
        let millis = ceiling.as_millis() as u64;
        Duration::from_millis(if millis == 0 { 0 } else { rand::thread_rng().gen_range(0..=millis) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_within_the_exponential_ceiling_and_the_cap() {
        let policy = RetryPolicy { attempts: 5, base: Duration::from_secs(30), cap: Duration::from_secs(240) };
        for retry in 0..6 {
            let ceiling = (Duration::from_secs(30) * 2u32.pow(retry)).min(Duration::from_secs(240));
            for _ in 0..100 {
                assert!(policy.delay(retry, None) <= ceiling);
            }
        }
        assert_eq!(policy.delay(0, Some(Duration::from_secs(7))), Duration::from_secs(7));
        assert_eq!(policy.delay(0, Some(Duration::from_secs(900))), Duration::from_secs(600));
    }
}

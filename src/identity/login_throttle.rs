//! Slows down password guessing: failed logins are counted per (client id, source address) pair and per source
//! address; past a few free failures every further attempt from that key is refused until a delay that doubles
//! with each failure has passed.
//!
//! Why per pair and per address, not per client id alone: a per-client-id lock would let anyone lock a real
//! workload out by guessing against its client id. Keyed this way the right secret from another address still
//! logs in while one address floods.
//!
//! The state lives in memory and is per instance: behind a load balancer with N instances an attacker gets up
//! to N times the free failures. It is bounded ([`MAX_KEYS`], least recently failed evicted first) so a caller
//! rotating addresses cannot grow memory, only make the throttle forget older keys.

use std::{
    num::NonZeroUsize,
    sync::Mutex,
    time::{Duration, Instant},
};

use lru::LruCache;

/// Failures of one client id from one address that are answered normally; the last of them starts the delays.
pub const FREE_FAILURES_PER_PAIR: u32 = 5;
/// Failures from one address (any client ids) that are answered normally; the last of them starts the delays.
pub const FREE_FAILURES_PER_ADDRESS: u32 = 20;
/// The first delay; each further failure doubles it.
pub const FIRST_DELAY: Duration = Duration::from_secs(1);
/// The longest delay.
pub const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
/// A key with no failure for this long starts again from zero.
pub const FORGET_AFTER: Duration = Duration::from_secs(60 * 60);
/// At most this many keys are remembered (about 10 MiB at most).
pub const MAX_KEYS: usize = 65_536;
/// Failed logins naming a client id that does not exist are audited as one summary entry at most this often.
pub const UNKNOWN_CLIENT_SUMMARY_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Pair { client_id: String, address: String },
    Address(String),
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    blocked_until: Instant,
}

/// Failed logins for unknown client ids not yet audited, and when the last summary was written.
#[derive(Debug, Default)]
struct UnknownClients {
    pending: u64,
    last_summary: Option<Instant>,
}

/// The failed-login counters of one instance.
pub struct LoginThrottle {
    keys: Mutex<LruCache<Key, Failures>>,
    unknown_clients: Mutex<UnknownClients>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self::with_capacity(MAX_KEYS)
    }
}

impl LoginThrottle {
    fn with_capacity(capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity).expect("capacity is positive");
        Self { keys: Mutex::new(LruCache::new(capacity)), unknown_clients: Mutex::default() }
    }

    fn keys(client_id: &str, address: &str) -> [(Key, u32); 2] {
        [
            (Key::Pair { client_id: client_id.to_owned(), address: address.to_owned() }, FREE_FAILURES_PER_PAIR),
            (Key::Address(address.to_owned()), FREE_FAILURES_PER_ADDRESS),
        ]
    }

    /// How long the caller must wait before trying `client_id` from `address` again; `None` when it may try now.
    pub fn wait(&self, client_id: &str, address: &str) -> Option<Duration> {
        let now = Instant::now();
        let keys = self.keys.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        Self::keys(client_id, address)
            .iter()
            // `peek`: a refused attempt does not make a key "recent", so floods do not protect it from eviction.
            .filter_map(|(key, _)| keys.peek(key).map(|f| f.blocked_until.saturating_duration_since(now)))
            .filter(|wait| !wait.is_zero())
            .max()
    }

    /// Counts a failed login of `client_id` from `address`.
    pub fn failed(&self, client_id: &str, address: &str) {
        let now = Instant::now();
        let mut keys = self.keys.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for (key, free) in Self::keys(client_id, address) {
            let previous = keys.pop(&key).filter(|f| now.duration_since(f.last) < FORGET_AFTER);
            let count = previous.map_or(0, |f| f.count).saturating_add(1);
            let blocked_until = now + delay(count, free);
            keys.push(key, Failures { count, last: now, blocked_until });
        }
    }

    /// Counts a failed login naming a client id that does not exist. Returns how many such failures to audit
    /// now (this one included) when a summary entry is due, `None` while they are only counted: an
    /// unauthenticated caller must not be able to write an audit row per request.
    pub fn unknown_client_failed(&self) -> Option<u64> {
        let now = Instant::now();
        let mut unknown = self.unknown_clients.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        unknown.pending += 1;
        let due = unknown.last_summary.is_none_or(|last| now.duration_since(last) >= UNKNOWN_CLIENT_SUMMARY_INTERVAL);
        due.then(|| {
            unknown.last_summary = Some(now);
            std::mem::take(&mut unknown.pending)
        })
    }

    /// Forgets the failures of `client_id` from `address` after a successful login. The address's own count
    /// stays: one right secret must not clear the record of guesses at other client ids.
    pub fn succeeded(&self, client_id: &str, address: &str) {
        let mut keys = self.keys.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        keys.pop(&Key::Pair { client_id: client_id.to_owned(), address: address.to_owned() });
    }
}

/// The delay after the `count`-th failure of a key allowed `free` failures: none before the last free one,
/// [`FIRST_DELAY`] after it, doubling with each further failure.
fn delay(count: u32, free: u32) -> Duration {
    match count.checked_sub(free) {
        None => Duration::ZERO,
        // 2^10 s already exceeds 15 min, so larger exponents need not be computed.
        Some(doublings) => FIRST_DELAY.saturating_mul(1 << doublings.min(10)).min(MAX_DELAY),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_start_after_the_free_failures_and_double_up_to_the_cap() {
        assert_eq!(delay(4, 5), Duration::ZERO);
        assert_eq!(delay(5, 5), Duration::from_secs(1));
        assert_eq!(delay(6, 5), Duration::from_secs(2));
        assert_eq!(delay(14, 5), Duration::from_secs(512));
        assert_eq!(delay(15, 5), MAX_DELAY);
        assert_eq!(delay(u32::MAX, 5), MAX_DELAY);
    }

    #[test]
    fn a_flooded_pair_waits_while_another_address_does_not() {
        let throttle = LoginThrottle::default();
        for _ in 0..FREE_FAILURES_PER_PAIR {
            assert_eq!(throttle.wait("c", "198.51.100.1"), None);
            throttle.failed("c", "198.51.100.1");
        }
        let wait = throttle.wait("c", "198.51.100.1").expect("throttled after the free failures");
        assert!(wait > Duration::from_millis(900) && wait <= FIRST_DELAY, "{wait:?}");
        assert_eq!(throttle.wait("c", "198.51.100.2"), None);
        throttle.succeeded("c", "198.51.100.1");
        assert_eq!(throttle.wait("c", "198.51.100.1"), None);
    }

    #[test]
    fn an_address_guessing_many_client_ids_waits() {
        let throttle = LoginThrottle::default();
        for i in 0..FREE_FAILURES_PER_ADDRESS {
            throttle.failed(&format!("client-{i}"), "198.51.100.1");
        }
        assert!(throttle.wait("fresh-client", "198.51.100.1").is_some());
    }

    #[test]
    fn unknown_client_failures_are_summarised_at_most_once_per_interval() {
        let throttle = LoginThrottle::default();
        assert_eq!(throttle.unknown_client_failed(), Some(1));
        assert_eq!(throttle.unknown_client_failed(), None);
        assert_eq!(throttle.unknown_client_failed(), None);
        throttle.unknown_clients.lock().unwrap().last_summary = Some(Instant::now() - UNKNOWN_CLIENT_SUMMARY_INTERVAL);
        assert_eq!(throttle.unknown_client_failed(), Some(3));
    }

    #[test]
    fn memory_is_bounded_by_evicting_the_oldest_keys() {
        let throttle = LoginThrottle::with_capacity(4);
        for i in 0..100 {
            throttle.failed("c", &format!("198.51.100.{i}"));
        }
        assert_eq!(throttle.keys.lock().unwrap().len(), 4);
    }
}

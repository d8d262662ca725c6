//! Audit entries for refused requests of known identities:
//! - `permission-denied`: the caller's policies do not allow the call (`method`, missing `permission`, `target`);
//! - `token-rejected`: a revoked or expired token of an existing identity.
//!
//! A denied caller must not be able to flood the audit log, so at most [`DENIALS_PER_MINUTE`] entries are kept
//! per identity and minute; the next kept entry says how many were left out (`suppressedBefore`). The counters
//! are per instance, in memory, bounded to [`MAX_IDENTITIES`] (least recently denied forgotten first).
//!
//! The permission check runs deep inside a handler, the request's identity and method are known only to the
//! auth layer: the layer runs each call inside [`collect`] and the error mapping reports a denial with [`note`].

use std::{
    future::Future,
    num::NonZeroUsize,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use lru::LruCache;
use serde_json::{Value, json};

use super::{AuditActor, Entry, RequestMeta};
use crate::store::Store;

/// Denial entries kept per identity per [`WINDOW`].
pub const DENIALS_PER_MINUTE: u32 = 10;
/// The rate window.
const WINDOW: Duration = Duration::from_secs(60);
/// Identities whose denial counts are remembered.
pub const MAX_IDENTITIES: usize = 65_536;

/// What a denied call lacked, reported from the error mapping.
#[derive(Debug, Clone)]
struct Denial {
    permission: String,
    target: String,
}

tokio::task_local! {
    static DENIAL: Arc<Mutex<Option<Denial>>>;
}

/// Records that the current call was refused for lacking `permission` (`subject:action`) on `target`. Does
/// nothing outside [`collect`] (background work, unauthenticated paths).
pub fn note(permission: String, target: &str) {
    let denial = Denial { permission, target: target.trim().to_owned() };
    let _ = DENIAL.try_with(|slot| *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(denial));
}

/// Runs `call`, returning its output and the metadata of a `permission-denied` entry when the call reported a
/// denial with [`note`].
pub async fn collect<T>(method: &str, call: impl Future<Output = T>) -> (T, Option<Value>) {
    let slot = Arc::new(Mutex::new(None));
    let output = DENIAL.scope(slot.clone(), call).await;
    let denial = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
    let metadata = denial.map(|d| json!({ "method": method, "permission": d.permission, "target": d.target }));
    (output, metadata)
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    kept: u32,
    suppressed: u64,
}

/// Per-identity rate windows, bounded to `capacity` identities.
struct Rates(Mutex<LruCache<String, Window>>);

impl Rates {
    fn new(capacity: usize) -> Self {
        Self(Mutex::new(LruCache::new(NonZeroUsize::new(capacity).expect("positive capacity"))))
    }

    /// `Some(n)` when an entry may be kept at `now`, `n` being how many were suppressed before it.
    fn admit(&self, identity_id: &str, now: Instant) -> Option<u64> {
        let mut windows = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let window =
            windows.get_or_insert_mut(identity_id.to_owned(), || Window { started: now, kept: 0, suppressed: 0 });
        if now.duration_since(window.started) >= WINDOW {
            window.started = now;
            window.kept = 0;
        }
        if window.kept < DENIALS_PER_MINUTE {
            window.kept += 1;
            Some(std::mem::take(&mut window.suppressed))
        } else {
            window.suppressed += 1;
            None
        }
    }
}

/// Writes denial entries, rate-capped per identity.
pub struct DenialAudit {
    store: Store,
    rates: Rates,
}

impl DenialAudit {
    /// Denial entries written to `store`.
    pub fn new(store: Store) -> Self {
        Self { store, rates: Rates::new(MAX_IDENTITIES) }
    }

    /// Records a denial entry of `event_type` for `actor`, unless its rate is exceeded. A failure to write is
    /// logged, not returned: the caller is answered its denial either way.
    pub async fn record(&self, actor: &AuditActor, meta: &RequestMeta, event_type: &'static str, mut metadata: Value) {
        let Some(suppressed) = self.rates.admit(&actor.id, Instant::now()) else { return };
        if suppressed > 0 {
            metadata["suppressedBefore"] = json!(suppressed);
        }
        if let Err(error) = super::record_alone(&self.store, actor, meta, Entry::org(event_type, metadata)).await {
            tracing::warn!(%error, event_type, "could not audit a denied request");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_note_reaches_the_collecting_call_only() {
        note("secrets:read".into(), "outside");
        let ((), denial) = collect("/m", async { note("secrets:read".into(), " on prod:/api") }).await;
        assert_eq!(denial, Some(json!({ "method": "/m", "permission": "secrets:read", "target": "on prod:/api" })));
        let ((), none) = collect("/m", async {}).await;
        assert_eq!(none, None);
    }

    #[test]
    fn ten_per_minute_then_the_next_kept_entry_counts_the_suppressed() {
        let rates = Rates::new(2);
        let start = Instant::now();
        for _ in 0..DENIALS_PER_MINUTE {
            assert_eq!(rates.admit("a", start), Some(0));
        }
        for _ in 0..5 {
            assert_eq!(rates.admit("a", start + Duration::from_secs(30)), None);
        }
        assert_eq!(rates.admit("b", start), Some(0), "identities are capped separately");
        assert_eq!(rates.admit("a", start + WINDOW), Some(5));
        assert_eq!(rates.admit("a", start + WINDOW), Some(0));
    }
}

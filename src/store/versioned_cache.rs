//! A bounded cache whose entries are valid at one version only (by default the permission version, see
//! `Store::permission_version`): an entry read at another version is a miss, so a change that moves the
//! version makes every older entry stale at once.

use std::{hash::Hash, num::NonZeroUsize, sync::Mutex};

use lru::LruCache;

/// At most `capacity` entries, least recently used dropped first, each stamped with the version it was read at.
pub struct VersionedCache<K: Hash + Eq, V: Clone, S: Copy + Eq = i64> {
    entries: Mutex<LruCache<K, (S, V)>>,
}

impl<K: Hash + Eq, V: Clone, S: Copy + Eq> VersionedCache<K, V, S> {
    /// An empty cache of `capacity` entries.
    pub fn new(capacity: NonZeroUsize) -> Self {
        Self { entries: Mutex::new(LruCache::new(capacity)) }
    }

    /// The value stored under `key` at `version`, if any.
    pub fn get(&self, key: &K, version: S) -> Option<V> {
        match self.entries.lock().expect("no panic holds it").get(key) {
            Some((at, value)) if *at == version => Some(value.clone()),
            _ => None,
        }
    }

    /// The value stored under `key` and the version it was read at, if any.
    pub fn get_stamped(&self, key: &K) -> Option<(S, V)> {
        self.entries.lock().expect("no panic holds it").get(key).cloned()
    }

    /// Stores `value`, read at `version`, under `key`.
    pub fn put(&self, key: K, version: S, value: V) {
        self.entries.lock().expect("no panic holds it").put(key, (version, value));
    }
}

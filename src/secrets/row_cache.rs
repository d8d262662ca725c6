//! Current secret rows of recent reads, from memory (SQLite only).
//!
//! A read of a hot secret then costs no database statement before its audit entry. Each row is remembered
//! with the store's secret-rows generation read *before* the row was fetched (`Store::secret_rows_generation`),
//! and served only while the generation is unchanged; every write that may change a secret row bumps it after
//! its commit and before it is acknowledged, so a reader never gets a row older than the last acknowledged
//! write. On PostgreSQL other instances write too, so nothing is remembered there.
//!
//! Rows hold only sealed values (decrypted per read). Bounded: at most [`MAX_ROWS`] rows of at most
//! [`MAX_SEALED_BYTES`] sealed bytes each (≈ 33 MiB at worst), least recently used dropped first.

use std::num::NonZeroUsize;

use crate::store::{VersionedCache, entities::secret};

/// Rows remembered at once.
const MAX_ROWS: usize = 8_192;
/// Larger sealed values are read from the database every time.
const MAX_SEALED_BYTES: usize = 4_096;

/// (environment id, folder path, key).
type Key = (String, String, String);

pub(super) struct RowCache {
    rows: VersionedCache<Key, secret::Model, u64>,
}

impl Default for RowCache {
    fn default() -> Self {
        Self { rows: VersionedCache::new(NonZeroUsize::new(MAX_ROWS).expect("non-zero")) }
    }
}

impl RowCache {
    /// The row of (`env_id`, `path`, `key`) if it was read at `generation`.
    pub(super) fn get(&self, generation: u64, env_id: &str, path: &str, key: &str) -> Option<secret::Model> {
        self.rows.get(&(env_id.to_owned(), path.to_owned(), key.to_owned()), generation)
    }

    /// Remembers `row`, fetched after the generation was read as `generation`.
    pub(super) fn put(&self, generation: u64, row: &secret::Model) {
        if row.sealed_value.len() <= MAX_SEALED_BYTES {
            let key = (row.environment_id.clone(), row.path.clone(), row.key.clone());
            self.rows.put(key, generation, row.clone());
        }
    }
}

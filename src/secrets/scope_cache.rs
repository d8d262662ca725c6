//! The project and environment rows of recent reads, from memory.
//!
//! Deleting a project or an environment bumps the permission version (`access::bump_version`), and an entry is
//! used only at the version it was read at (the version the caller's request started at, see
//! `identity::AccessMemo`), so a deleted one is never served. Rows that never existed are not remembered.
//! Bounded to [`MAX_SCOPES`] environments, least recently used dropped first.

use std::{num::NonZeroUsize, sync::Arc};

use crate::store::{
    VersionedCache,
    entities::{environment, project},
};

/// Environments remembered at once.
const MAX_SCOPES: usize = 4_096;

/// (org id, project id, environment slug).
type Key = (String, String, String);

/// Project and environment rows by (org, project id, slug), each with the version it was read at.
pub(super) struct ScopeCache {
    entries: VersionedCache<Key, Arc<(project::Model, environment::Model)>>,
}

impl Default for ScopeCache {
    fn default() -> Self {
        Self { entries: VersionedCache::new(NonZeroUsize::new(MAX_SCOPES).expect("non-zero")) }
    }
}

impl ScopeCache {
    /// The rows read at `version`, if any.
    pub(super) fn get(
        &self,
        org_id: &str,
        project_id: &str,
        slug: &str,
        version: i64,
    ) -> Option<Arc<(project::Model, environment::Model)>> {
        self.entries.get(&(org_id.to_owned(), project_id.to_owned(), slug.to_owned()), version)
    }

    /// Remembers rows read at `version`.
    pub(super) fn put(&self, version: i64, project: &project::Model, env: &environment::Model) {
        let key = (project.org_id.clone(), project.id.clone(), env.slug.clone());
        self.entries.put(key, version, Arc::new((project.clone(), env.clone())));
    }
}

//! Resolving bearer tokens, and the grants behind them, from memory.
//!
//! Every permission-relevant change (revoking a token or client secret, deleting an identity, editing or
//! deleting a role, changing a membership) bumps the permission version in its own transaction and records
//! whose permissions it changed (`access::bump_version`). Each request reads that version
//! (`Store::permission_version`: on PostgreSQL one primary-key lookup of a one-row table, where every
//! instance's changes meet; on SQLite, whose one server is its only writer, from memory). A token cached at an
//! older version is trusted only if no change since touched its identity (`Store::permissions_changed_between`,
//! one read of the change log per instance and version); otherwise it is loaded again. So a change applies to
//! the very next call on every instance, while an unchanged token costs no lookup of token, identity,
//! membership or role, whatever happens to other identities.
//!
//! On PostgreSQL that version read is a statement of its own. A request whose handler reads the version
//! together with a statement it makes anyway (`GetSecret` with the secret's row; `CreateSecret`,
//! `UpdateSecret`, `DeleteSecret` with their environment's lock, see `Vault::begin_secret_write`) may skip it:
//! `deferred` authentication trusts a token
//! cached at the newest version this instance has seen, and marks the principal unconfirmed; the handler
//! compares the version its statement read and has the request redone strictly when it moved, before it
//! answers anything.
//!
//! Bounded: [`MAX_TOKENS`] tokens (least recently used dropped first) and [`MAX_PROJECTS_PER_TOKEN`] projects'
//! grants per token. Unknown tokens are never cached (nothing a caller invents takes memory).

use std::{
    collections::HashMap,
    num::NonZeroUsize,
    sync::{Arc, Mutex},
};

use chrono::Utc;

use super::{Grants, IdentityError, Principal, RejectedToken, credentials, login};
use crate::store::{Store, VersionedCache};

/// Tokens remembered at once.
const MAX_TOKENS: usize = 10_000;
/// Projects whose grants one token remembers.
const MAX_PROJECTS_PER_TOKEN: usize = 256;

/// What one token's requests learned about its permissions, valid at one permission version only.
pub struct AccessMemo {
    version: i64,
    projects: Mutex<HashMap<String, Grants>>,
}

impl std::fmt::Debug for AccessMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessMemo").field("version", &self.version).finish_non_exhaustive()
    }
}

impl AccessMemo {
    fn new(version: i64) -> Self {
        Self { version, projects: Mutex::default() }
    }

    /// The same grants, valid at `version` too: no change since the memo's own version touched its identity.
    fn at(&self, version: i64) -> Self {
        let projects = self.projects.lock().expect("no panic holds it").clone();
        Self { version, projects: Mutex::new(projects) }
    }

    /// The permission version the memo is valid at: the version at the start of the request carrying it.
    pub fn version(&self) -> i64 {
        self.version
    }

    /// The grants remembered for `project_id`.
    pub(super) fn project(&self, project_id: &str) -> Option<Grants> {
        self.projects.lock().expect("no panic holds it").get(project_id).cloned()
    }

    /// Remembers the grants of `project_id` (unless the memo is full).
    pub(super) fn remember(&self, project_id: &str, grants: &Grants) {
        let mut projects = self.projects.lock().expect("no panic holds it");
        if projects.len() < MAX_PROJECTS_PER_TOKEN {
            projects.insert(project_id.to_owned(), grants.clone());
        }
    }
}

/// Tokens resolved earlier, by the hash they are stored under.
pub struct TokenCache {
    tokens: VersionedCache<String, Principal>,
}

impl Default for TokenCache {
    fn default() -> Self {
        Self { tokens: VersionedCache::new(NonZeroUsize::new(MAX_TOKENS).expect("non-zero")) }
    }
}

impl TokenCache {
    /// Like [`login::authenticate_hash`], from memory when the token was resolved before at the current
    /// permission version and has not expired. The principal carries the token's [`AccessMemo`]. `deferred`: a
    /// token cached at the newest version this instance has seen is trusted without reading the version, and
    /// its principal is [`unconfirmed`](Principal::unconfirmed); only for handlers that confirm it.
    pub async fn authenticate(
        &self,
        store: &Store,
        token: &str,
        deferred: bool,
    ) -> Result<Result<Principal, RejectedToken>, IdentityError> {
        let hash = credentials::hash(token);
        // An expired token takes the long way, which audits its rejection.
        let cached = self.tokens.get_stamped(&hash).filter(|(_, p)| p.token_expires_at > Utc::now());
        if let (true, Some(assumed), Some((stamp, principal))) = (deferred, store.assumed_permission_version(), &cached)
            && *stamp == assumed
        {
            return Ok(Ok(Principal { unconfirmed: true, ..principal.clone() }));
        }
        let version = store.permission_version().await?;
        if let Some((stamp, principal)) = cached {
            if stamp == version {
                return Ok(Ok(principal));
            }
            // Changes since that did not touch this identity leave its token and grants as they were.
            if !store.permissions_changed_between(&principal.identity_id, stamp, version).await? {
                // Its memo moves to `version` with it: a deferred request assumes the memo's version, and one
                // left behind would make each of them confirm, fail and run again.
                let memo = principal.memo.as_ref().map(|memo| Arc::new(memo.at(version)));
                let principal = Principal { memo, ..principal };
                self.tokens.put(hash, version, principal.clone());
                return Ok(Ok(principal));
            }
        }
        let mut resolved = login::authenticate_hash(store, &hash).await?;
        if let Ok(principal) = &mut resolved {
            principal.memo = Some(Arc::new(AccessMemo::new(version)));
            self.tokens.put(hash, version, principal.clone());
        }
        Ok(resolved)
    }
}

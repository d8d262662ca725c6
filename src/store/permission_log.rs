//! Whose permissions changed since a version: the `permission_changes` rows of each version, read once per
//! instance when the version moves, and kept in memory (bounded). Cached tokens and live streams stamped with
//! an older version stay valid when the changes since did not touch their identity.

use std::{collections::HashMap, sync::Mutex};

use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};

use super::entities::permission_change;

/// Identities remembered; past this everything older counts as changed for everyone (always safe).
const MAX_IDENTITIES: usize = 50_000;
/// Versions of changes kept in the database; an instance further behind treats the gap as a change for
/// everyone.
pub(super) const KEPT_VERSIONS: i64 = 10_000;

/// Whose permissions changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changed {
    /// Nobody's.
    Nobody,
    /// Possibly anyone's.
    Everyone,
    /// These identities' only, each with the version of its latest change.
    Identities(HashMap<String, i64>),
}

/// What this instance knows of the changes.
#[derive(Debug)]
pub(super) struct PermissionLog {
    state: Mutex<State>,
    /// One reader of the database at a time.
    refreshing: tokio::sync::Mutex<()>,
}

#[derive(Debug)]
struct State {
    /// Every change up to this version is known.
    known: i64,
    /// Changes at or before this version are not known (before start, or forgotten): they count as everyone's.
    floor: i64,
    /// The latest change that affected everyone.
    everyone: i64,
    /// The latest change of each identity.
    identities: HashMap<String, i64>,
}

impl State {
    fn changed_since(&self, identity_id: &str, since: i64) -> bool {
        since < self.floor
            || self.everyone > since
            || self.identities.get(identity_id).is_some_and(|&version| version > since)
    }
}

impl PermissionLog {
    /// A log that knows nothing before `version` (the version at start).
    pub fn starting_at(version: i64) -> Self {
        let state = State { known: version, floor: version, everyone: version, identities: HashMap::new() };
        Self { state: Mutex::new(state), refreshing: tokio::sync::Mutex::new(()) }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reads the changes after what is known, up to at least `current`.
    pub async fn catch_up(&self, db: &impl ConnectionTrait, current: i64) -> Result<(), DbErr> {
        if self.state().known >= current {
            return Ok(());
        }
        let _one_reader = self.refreshing.lock().await;
        let known = self.state().known;
        if known >= current {
            return Ok(());
        }
        let rows = permission_change::Entity::find()
            .filter(permission_change::Column::Version.gt(known))
            .order_by_asc(permission_change::Column::Version)
            .all(db)
            .await?;
        let mut state = self.state();
        // Every version has rows: a missing one was pruned (or written by an older build) and may be anyone's.
        if rows.first().is_none_or(|row| row.version != known + 1) {
            state.everyone = current;
        }
        let mut newest = current;
        for row in rows {
            newest = newest.max(row.version);
            if row.identity_id == permission_change::EVERYONE {
                state.everyone = state.everyone.max(row.version);
            } else {
                let version = state.identities.entry(row.identity_id).or_default();
                *version = (*version).max(row.version);
            }
        }
        state.known = newest;
        if state.identities.len() > MAX_IDENTITIES {
            state.identities.clear();
            state.floor = newest;
        }
        Ok(())
    }

    /// Whether anything changed `identity_id`'s permissions after version `since` (as far as caught up).
    pub fn changed_since(&self, identity_id: &str, since: i64) -> bool {
        self.state().changed_since(identity_id, since)
    }

    /// Whose permissions changed after version `since` (as far as caught up).
    pub fn changes_since(&self, since: i64) -> Changed {
        let state = self.state();
        if since < state.floor || state.everyone > since {
            return Changed::Everyone;
        }
        let identities: HashMap<String, i64> = state
            .identities
            .iter()
            .filter(|(_, version)| **version > since)
            .map(|(id, version)| (id.clone(), *version))
            .collect();
        if identities.is_empty() { Changed::Nobody } else { Changed::Identities(identities) }
    }
}

/// Deletes change rows more than [`KEPT_VERSIONS`] behind the current version. Looks first, so that a server
/// with nothing to prune writes nothing.
pub(super) async fn prune(db: &impl ConnectionTrait) -> Result<u64, DbErr> {
    let current = super::stored_permission_version(db).await?;
    let old = permission_change::Column::Version.lt(current - KEPT_VERSIONS);
    if permission_change::Entity::find().filter(old.clone()).one(db).await?.is_none() {
        return Ok(0);
    }
    let deleted = permission_change::Entity::delete_many().filter(old).exec(db).await?;
    Ok(deleted.rows_affected)
}

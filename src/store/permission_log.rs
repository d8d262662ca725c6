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

    /// Reads the changes after what is known, up to `current` and no further: a change committed past the
    /// version its caller read would be known under a version older than its own, and whatever that caller
    /// stamps with `current` (a stream's grants) would be re-checked again for it at the next version.
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
            .filter(permission_change::Column::Version.lte(current))
            .order_by_asc(permission_change::Column::Version)
            .all(db)
            .await?;
        let mut state = self.state();
        // Every version has rows: a missing one was pruned (or written by an older build) and may be anyone's.
        if rows.first().is_none_or(|row| row.version != known + 1) {
            state.everyone = current;
        }
        for row in rows {
            if row.identity_id == permission_change::EVERYONE {
                state.everyone = state.everyone.max(row.version);
            } else {
                let version = state.identities.entry(row.identity_id).or_default();
                *version = (*version).max(row.version);
            }
        }
        state.known = current;
        if state.identities.len() > MAX_IDENTITIES {
            state.identities.clear();
            state.floor = current;
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

#[cfg(test)]
mod tests {
    use sea_orm::{Database, EntityTrait, Set};

    use super::{Changed, PermissionLog, permission_change};

    fn change(version: i64, identity_id: &str) -> permission_change::ActiveModel {
        permission_change::ActiveModel { version: Set(version), identity_id: Set(identity_id.to_owned()) }
    }

    #[tokio::test]
    async fn a_change_committed_past_the_version_read_is_left_for_the_next_version() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("log.db").display());
        let db = Database::connect(url).await.unwrap();
        crate::store::migrations::migrate(&db).await.unwrap();
        // Version 2 is committed, but the caller read version 1 (an SQLite writer acknowledges its bump
        // after its group commits; a PostgreSQL reader may have read just before it).
        permission_change::Entity::insert_many([change(1, "alice"), change(2, "bob")]).exec(&db).await.unwrap();
        let log = PermissionLog::starting_at(0);

        log.catch_up(&db, 1).await.unwrap();
        let alice = Changed::Identities([("alice".to_owned(), 1)].into());
        assert_eq!(log.changes_since(0), alice, "bob's change belongs to version 2");
        assert!(!log.changed_since("bob", 1));

        log.catch_up(&db, 2).await.unwrap();
        assert_eq!(log.changes_since(1), Changed::Identities([("bob".to_owned(), 2)].into()));
        assert_eq!(log.changes_since(2), Changed::Nobody);
    }
}

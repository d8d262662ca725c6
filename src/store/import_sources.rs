//! The environments that folders import from, as far as the database's only writer knows (SQLite).
//!
//! Every secret write looks up the folders importing the folder it changed, to tell them with a
//! `secret:import-mutation` event; that lookup is one of the five round trips of a write to SQLite's
//! connection thread. A write in an environment that no folder imports from skips it. The set is read at start
//! and grows when an import is created, before that import's write commits, so a later write in the source
//! environment (in the same write group or after) looks its importers up. It never shrinks while the process
//! runs: it may name an environment nothing imports from any more (costing the lookup), never miss one.
//! Bounded: one id per environment imported from at start or since.

use std::{collections::HashSet, sync::Mutex};

use sea_orm::{ConnectionTrait, DbErr, EntityTrait, QuerySelect};

use super::entities::secret_import;

#[derive(Debug)]
pub(super) struct ImportSources(Mutex<HashSet<String>>);

impl ImportSources {
    /// The environments imported from now.
    pub(super) async fn load(db: &impl ConnectionTrait) -> Result<Self, DbErr> {
        let ids: Vec<String> = secret_import::Entity::find()
            .select_only()
            .column(secret_import::Column::ImportEnvironmentId)
            .distinct()
            .into_tuple()
            .all(db)
            .await?;
        Ok(Self(Mutex::new(ids.into_iter().collect())))
    }

    /// Whether some folder may import from environment `env_id`.
    pub(super) fn contains(&self, env_id: &str) -> bool {
        self.0.lock().expect("no panic holds it").contains(env_id)
    }

    /// Records that a folder imports from environment `env_id`.
    pub(super) fn add(&self, env_id: &str) {
        self.0.lock().expect("no panic holds it").insert(env_id.to_owned());
    }
}

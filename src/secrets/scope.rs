//! Resolving `(caller, project id, environment slug)` to stored rows and the caller's grants there. Anything
//! outside the caller's org, and anything the caller may not see (see [`super::visibility`]), is NOT_FOUND, so
//! ids and slugs it has no business with are indistinguishable from unknown ones.
//!
//! Writes lock what orders them before anything else (see [`env_scope_for_write`]); the lock order is
//! project, then environments by id, so two writers never wait for each other in a cycle.

use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, IdenStatic, QueryFilter, QueryOrder, QuerySelect,
    QueryTrait, SelectA, SelectB, sea_query::LockType,
};

use super::{SecretsError, Vault, validate, values::unmoved, visibility};
use crate::{
    crypto::DataKey,
    identity::{
        Grants, Principal, access,
        policy::{Action, Resource, Subject},
    },
    store::{
        self, WriteTxn,
        entities::{environment, project},
    },
};

/// A project of the caller's org with the caller's grants in it.
pub struct ProjectScope {
    pub project: project::Model,
    pub grants: Grants,
}

/// A project, one of its environments, and the caller's grants in the project.
pub struct EnvScope {
    pub project: project::Model,
    pub env: environment::Model,
    pub grants: Grants,
}

pub async fn project(
    db: &impl ConnectionTrait,
    caller: &Principal,
    project_id: &str,
) -> Result<ProjectScope, SecretsError> {
    validate::id("project_id", project_id)?;
    let not_found = || project_not_found(project_id);
    let project = project::Entity::find_by_id(project_id)
        .filter(project::Column::OrgId.eq(&caller.org_id))
        .one(db)
        .await?
        .ok_or_else(not_found)?;
    let grants = access::cached_project_grants(db, caller, &project.id).await?;
    if !visibility::sees_project(&grants) {
        return Err(not_found());
    }
    Ok(ProjectScope { project, grants })
}

/// Environment `slug` of the scope's project; one the caller may not see is missing to it.
pub async fn environment_of(
    db: &impl ConnectionTrait,
    scope: &ProjectScope,
    field: &str,
    slug: &str,
) -> Result<environment::Model, SecretsError> {
    validate::environment_slug(field, slug)?;
    let not_found = || environment_not_found(slug, &scope.project.id);
    if !visibility::sees_environment(&scope.grants, slug) {
        return Err(not_found());
    }
    environment::Entity::find()
        .filter(environment::Column::ProjectId.eq(&scope.project.id))
        .filter(environment::Column::Slug.eq(slug))
        .one(db)
        .await?
        .ok_or_else(not_found)
}

fn project_not_found(project_id: &str) -> SecretsError {
    SecretsError::NotFound(format!("project '{project_id}'"))
}

fn environment_not_found(slug: &str, project_id: &str) -> SecretsError {
    SecretsError::NotFound(format!("environment '{slug}' in project '{project_id}'"))
}

/// Project `project_id` and its environment `env_slug` in one query (the path every secret read takes); when
/// either is missing or not the caller's, the long way names which.
pub async fn env_scope(
    db: &impl ConnectionTrait,
    caller: &Principal,
    project_id: &str,
    env_slug: &str,
) -> Result<EnvScope, SecretsError> {
    Ok(env_scope_locking(db, caller, project_id, env_slug, None, false).await?.0)
}

/// [`env_scope`], with the environment's row locked by the same statement when `lock` is set (see
/// [`env_scope_for_write`]), and with `read_version` the permission version read by that statement too: `None`
/// when the scope was found the long way (a missing or foreign project or environment, or one created since).
async fn env_scope_locking(
    db: &impl ConnectionTrait,
    caller: &Principal,
    project_id: &str,
    env_slug: &str,
    lock: Option<LockType>,
    read_version: bool,
) -> Result<(EnvScope, Option<i64>), SecretsError> {
    validate::id("project_id", project_id)?;
    validate::environment_slug("environment", env_slug)?;
    let mut query = environment::Entity::find()
        .filter(environment::Column::ProjectId.eq(project_id))
        .filter(environment::Column::Slug.eq(env_slug))
        .find_also_related(project::Entity)
        .filter(project::Column::OrgId.eq(&caller.org_id));
    if let Some(mode) = lock {
        // Only the environment's row: the project's is the nullable side of the join, and writes of secrets
        // leave it alone.
        QueryTrait::query(&mut query).lock_with_tables(mode, [environment::Entity]);
    }
    if read_version {
        query = store::with_permission_version(query);
    }
    let found = match db.query_one_raw(query.build(db.get_database_backend())).await? {
        Some(row) => Some((
            environment::Model::from_query_result(&row, SelectA.as_str())?,
            project::Model::from_query_result_optional(&row, SelectB.as_str())?,
            read_version.then(|| store::permission_version_in(&row)).transpose()?,
        )),
        None => None,
    };
    let Some((env, Some(project), version)) = found else {
        let scope = project(db, caller, project_id).await?;
        let env = environment_of(db, &scope, "environment", env_slug).await?;
        // Created since the first statement: locked now, like any other, and used as locked.
        let env = match lock {
            Some(mode) => lock_rows(db, &[&env], mode).await?.pop().unwrap_or(env),
            None => env,
        };
        return Ok((scope.with_env(env), None));
    };
    Ok((visible(db, caller, project, env).await?, version))
}

/// The scope of stored rows, with the caller's grants; NOT_FOUND unless the caller may see both.
async fn visible(
    db: &impl ConnectionTrait,
    caller: &Principal,
    project: project::Model,
    env: environment::Model,
) -> Result<EnvScope, SecretsError> {
    let grants = access::cached_project_grants(db, caller, &project.id).await?;
    if !visibility::sees_project(&grants) {
        return Err(project_not_found(&project.id));
    }
    if !visibility::sees_environment(&grants, &env.slug) {
        return Err(environment_not_found(&env.slug, &project.id));
    }
    Ok(EnvScope { project, env, grants })
}

/// Like [`env_scope`], for a write of the environment's structure: its row stays locked (`SELECT … FOR UPDATE`
/// on PostgreSQL; SQLite has one writer at a time anyway) until the transaction ends.
///
/// Why the environment: it orders every read-modify-write of its structure with one rule (the position of a
/// new import, a folder or subtree delete racing a create below it), so no unique index is ever hit by two
/// writers that both checked first, and no lock can be taken in two orders. Such writes are rare next to
/// writes of secrets (see [`env_scope_for_secret_write`]), and reads take no lock.
pub async fn env_scope_for_write(
    txn: &WriteTxn,
    caller: &Principal,
    project_id: &str,
    env_slug: &str,
) -> Result<EnvScope, SecretsError> {
    Ok(locked_env_scope(txn, caller, project_id, env_slug, LockType::Update, false).await?.0)
}

/// Like [`env_scope_for_write`], for a write of secrets (create, update, delete, roll back; one or a batch)
/// rather than of the folders, imports or environment around them. The environment is locked *shared*: writes
/// of different secrets in one environment run side by side (on PostgreSQL; SQLite has one writer at a time),
/// and each locks the secret rows it changes (`rows::find_for_write`), so writes of one secret still wait for
/// each other, while a write of the environment's structure (which locks it exclusively) waits for them all.
/// Two creates of one key both pass and one is refused by the unique index: ALREADY_EXISTS.
///
/// With `read_version`, the statement that locks the environment reads the permission version too (see
/// [`env_scope_locking`]).
pub async fn env_scope_for_secret_write(
    txn: &WriteTxn,
    caller: &Principal,
    project_id: &str,
    env_slug: &str,
    read_version: bool,
) -> Result<(EnvScope, Option<i64>), SecretsError> {
    locked_env_scope(txn, caller, project_id, env_slug, LockType::Share, read_version).await
}

async fn locked_env_scope(
    txn: &WriteTxn,
    caller: &Principal,
    project_id: &str,
    env_slug: &str,
    mode: LockType,
    read_version: bool,
) -> Result<(EnvScope, Option<i64>), SecretsError> {
    // Read inside the transaction: with no other writer, nothing can change it before the commit.
    let lock = (!txn.is_only_writer()).then_some(mode);
    env_scope_locking(&**txn, caller, project_id, env_slug, lock, read_version).await
}

/// Locks the rows of `envs` until the transaction ends, in id order (the one order every writer uses).
/// An environment deleted meanwhile is NOT_FOUND.
pub async fn lock_environments(txn: &WriteTxn, envs: &[&environment::Model]) -> Result<(), SecretsError> {
    lock_rows(&**txn, envs, LockType::Update).await.map(drop)
}

/// Locks the rows of `envs` (see [`lock_environments`]) and returns them as locked: a row changed while this
/// waited for it is returned as changed.
async fn lock_rows(
    db: &impl ConnectionTrait,
    envs: &[&environment::Model],
    mode: LockType,
) -> Result<Vec<environment::Model>, SecretsError> {
    let ids: Vec<&str> = envs.iter().map(|e| e.id.as_str()).collect();
    let locked = environment::Entity::find()
        .filter(environment::Column::Id.is_in(ids.iter().copied()))
        .order_by_asc(environment::Column::Id)
        .lock(mode)
        .all(db)
        .await?;
    match envs.iter().find(|e| !locked.iter().any(|l| l.id == e.id)) {
        Some(gone) => Err(SecretsError::NotFound(format!("environment '{}'", gone.slug))),
        None => Ok(locked),
    }
}

/// Locks the project's row until the transaction ends: what orders changes to its list of environments
/// and its deletion. A project deleted meanwhile is NOT_FOUND.
pub async fn lock_project(txn: &WriteTxn, project: &project::Model) -> Result<(), SecretsError> {
    match project::Entity::find_by_id(&project.id).lock_exclusive().one(&**txn).await? {
        Some(_) => Ok(()),
        None => Err(project_not_found(&project.id)),
    }
}

impl ProjectScope {
    /// The same project and grants, in environment `env`.
    pub fn with_env(&self, env: environment::Model) -> EnvScope {
        EnvScope { project: self.project.clone(), env, grants: self.grants.clone() }
    }
}

impl EnvScope {
    /// Fails with PERMISSION_DENIED unless the caller may do `action` on `subject` at `path` of this environment.
    pub fn require(&self, subject: Subject, action: Action, path: &str) -> Result<(), SecretsError> {
        Ok(self.grants.require(subject, action, Resource::at(&self.env.slug, path))?)
    }

    /// Whether the caller may do `action` on `subject` at `path` of this environment.
    pub fn can(&self, subject: Subject, action: Action, path: &str) -> bool {
        self.grants.can(subject, action, Resource::at(&self.env.slug, path))
    }

    /// The same project and grants, another environment of it.
    pub fn with_env(&self, env: environment::Model) -> EnvScope {
        self.project_scope().with_env(env)
    }

    /// The same project and grants, without the environment.
    pub fn project_scope(&self) -> ProjectScope {
        ProjectScope { project: self.project.clone(), grants: self.grants.clone() }
    }
}

impl Vault {
    /// Like [`env_scope`], for reads: the rows come from memory when they were read before at the permission
    /// version the caller's request started at (see `scope_cache`).
    pub(super) async fn read_scope(
        &self,
        caller: &Principal,
        project_id: &str,
        env_slug: &str,
    ) -> Result<EnvScope, SecretsError> {
        let db = self.store.conn();
        let Some(version) = caller.memo.as_ref().map(|memo| memo.version()) else {
            return env_scope(db, caller, project_id, env_slug).await;
        };
        if let Some(rows) = self.scopes.get(&caller.org_id, project_id, env_slug, version) {
            let (project, env) = (*rows).clone();
            return visible(db, caller, project, env).await;
        }
        let scope = env_scope(db, caller, project_id, env_slug).await?;
        self.scopes.put(version, &scope.project, &scope.env);
        Ok(scope)
    }

    /// Begins a write of secrets (see [`env_scope_for_secret_write`]) in environment `env_slug` of `project_id`,
    /// with its scope.
    ///
    /// Where this process is the database's only writer (SQLite), the scope is resolved *before* the writer
    /// lock is taken, like a read's (from memory when it can be, see [`Vault::read_scope`]): writes hold the lock
    /// one after another, and reading the scope inside it cost every write one more hand-off to SQLite's thread
    /// there. The scope is read at the permission version the request started at, as its grants already are;
    /// it still holds if that version has not moved by the time the lock is held (deleting a project or an
    /// environment moves it), else it is read again inside the lock. A deletion by an earlier write of the same
    /// write group, not committed yet (the version moves at commit), makes the write's first insert fail its
    /// foreign key: NOT_FOUND, nothing written.
    ///
    /// The write is [deferred](crate::store::Store::begin_deferred_write): it reads the secret rows it changes
    /// with `rows::find_for_write` (or `find_keys_for_write`) before anything else of them, and writes at commit.
    pub(super) async fn begin_secret_write(
        &self,
        caller: &Principal,
        project_id: &str,
        env_slug: &str,
    ) -> Result<(WriteTxn, EnvScope), SecretsError> {
        let early = match (self.store.only_writer_permission_version(), &caller.memo) {
            (Some(_), Some(memo)) => Some((memo.version(), self.read_scope(caller, project_id, env_slug).await?)),
            _ => None,
        };
        let txn = self.store.begin_deferred_write().await?;
        let scope = match early {
            Some((version, scope)) if self.store.only_writer_permission_version() == Some(version) => scope,
            _ => match env_scope_for_secret_write(&txn, caller, project_id, env_slug, caller.unconfirmed).await {
                Ok((scope, read)) => {
                    self.confirm_in(&txn, caller, read).await?;
                    scope
                }
                Err(error) => {
                    // Answered on confirmed permissions only, with the transaction's connection let go of first.
                    drop(txn);
                    return self.confirmed_input(caller, Err(error)).await;
                }
            },
        };
        Ok((txn, scope))
    }

    /// Confirms the permission version assumed for an [`unconfirmed`](Principal::unconfirmed) caller: `read` by
    /// the statement that found the scope, else (found the long way) read inside `txn`, whose connection is held
    /// anyway. When it moved, nothing is answered but [`SecretsError::PermissionsChanged`]: the write is redone
    /// as if it came now.
    async fn confirm_in(&self, txn: &WriteTxn, caller: &Principal, read: Option<i64>) -> Result<(), SecretsError> {
        let Some(assumed) = caller.assumed_version() else { return Ok(()) };
        unmoved(self.store.permission_version_read_or_on(read, &**txn).await?, assumed)
    }

    /// Whether the root key opens the stored key check, i.e. still matches the data (readiness).
    pub async fn root_key_matches_data(&self) -> Result<bool, sea_orm::DbErr> {
        crate::keys::check::matches(self.store.conn(), &self.root_key).await
    }

    /// Opens the project's data key with the root key.
    pub(super) fn data_key(&self, project: &project::Model) -> Result<DataKey, SecretsError> {
        self.root_key
            .open_data_key(&project.id, &project.sealed_data_key)
            .map_err(|source| SecretsError::Integrity { what: format!("project '{}' data key", project.id), source })
    }
}

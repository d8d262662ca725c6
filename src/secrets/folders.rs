//! Folders: explicit rows for every path below the root, so empty folders exist and can be listed.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait, Set,
    sea_query::{InsertStatement, OnConflict},
};

use super::{SecretsError, Vault, audit_entries::folder_entry, changes, scope, scope::EnvScope, subtree, validate};
use serde_json::json;

use crate::{
    audit,
    events::EventType,
    identity::{
        Principal,
        policy::{Action, Subject},
    },
    store::entities::{folder, secret, secret_import},
};

/// A folder as callers see it.
#[derive(Debug, Clone)]
pub struct FolderRecord {
    pub id: String,
    pub environment: String,
    pub path: String,
    pub created_at: DateTime<Utc>,
}

impl FolderRecord {
    /// Last segment of the path.
    pub fn name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or_default()
    }
}

fn folder_record(scope: &EnvScope, row: folder::Model) -> FolderRecord {
    FolderRecord { id: row.id, environment: scope.env.slug.clone(), path: row.path, created_at: row.created_at }
}

async fn find(db: &impl ConnectionTrait, env_id: &str, path: &str) -> Result<Option<folder::Model>, SecretsError> {
    Ok(folder::Entity::find()
        .filter(folder::Column::EnvironmentId.eq(env_id))
        .filter(folder::Column::Path.eq(path))
        .one(db)
        .await?)
}

/// Creates every missing folder on a normalised path (like `mkdir -p`). Returns the deepest folder's row,
/// or None for the root. The whole chain is read in one query, whatever its depth; only the missing folders
/// are inserted, outermost first.
pub(super) async fn ensure(
    db: &impl ConnectionTrait,
    env_id: &str,
    path: &str,
) -> Result<Option<folder::Model>, SecretsError> {
    let chain = validate::ancestors(path);
    if chain.is_empty() {
        return Ok(None);
    }
    let mut existing: HashMap<String, folder::Model> = folder::Entity::find()
        .filter(folder::Column::EnvironmentId.eq(env_id))
        .filter(folder::Column::Path.is_in(chain.iter().map(String::as_str)))
        .all(db)
        .await?
        .into_iter()
        .map(|row| (row.path.clone(), row))
        .collect();
    let mut last = None;
    for ancestor in chain {
        last = Some(match existing.remove(&ancestor) {
            Some(found) => found,
            None => {
                folder::ActiveModel {
                    id: Set(uuid::Uuid::now_v7().to_string()),
                    environment_id: Set(env_id.to_owned()),
                    path: Set(ancestor),
                    created_at: Set(Utc::now()),
                }
                .insert(db)
                .await?
            }
        });
    }
    Ok(last)
}

/// One statement creating every missing folder on a normalised path, outermost first, and leaving the existing
/// ones alone (`INSERT … ON CONFLICT DO NOTHING`), to run with the write that needs them; `None` for the root.
pub(super) fn ensure_statement(env_id: &str, path: &str) -> Option<InsertStatement> {
    let chain = validate::ancestors(path);
    if chain.is_empty() {
        return None;
    }
    let now = Utc::now();
    let rows = chain.into_iter().map(|ancestor| folder::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        environment_id: Set(env_id.to_owned()),
        path: Set(ancestor),
        created_at: Set(now),
    });
    let existing = OnConflict::columns([folder::Column::EnvironmentId, folder::Column::Path]).do_nothing().to_owned();
    Some(folder::Entity::insert_many(rows).on_conflict(existing).into_query())
}

fn not_found(scope: &EnvScope, path: &str) -> SecretsError {
    SecretsError::NotFound(format!("folder {}:{path}", scope.env.slug))
}

/// Fails with NOT_FOUND unless the folder exists (the root always does).
pub(super) async fn require(db: &impl ConnectionTrait, scope: &EnvScope, path: &str) -> Result<(), SecretsError> {
    if path == "/" || find(db, &scope.env.id, path).await?.is_some() { Ok(()) } else { Err(not_found(scope, path)) }
}

/// Fails with NOT_FOUND unless the folder exists and the caller may read `subject` there (the root always
/// exists): a folder the caller may not read answers exactly like a missing one.
pub(super) async fn require_readable(
    db: &impl ConnectionTrait,
    scope: &EnvScope,
    subject: Subject,
    path: &str,
) -> Result<(), SecretsError> {
    if path != "/" && !scope.can(subject, Action::Read, path) {
        return Err(not_found(scope, path));
    }
    require(db, scope, path).await
}

impl Vault {
    /// Creates a folder and its missing parents.
    pub async fn create_folder(
        &self,
        caller: &Principal,
        project_id: &str,
        environment: &str,
        raw_path: &str,
    ) -> Result<FolderRecord, SecretsError> {
        let path = validate::folder_path("path", raw_path)?;
        let txn = self.store.begin_write().await?;
        let scope = scope::env_scope_for_write(&txn, caller, project_id, environment).await?;
        scope.require(Subject::SecretFolders, Action::Create, &path)?;
        if path == "/" || find(&*txn, &scope.env.id, &path).await?.is_some() {
            return Err(SecretsError::AlreadyExists(format!("folder {}:{path}", scope.env.slug)));
        }
        let row = ensure(&*txn, &scope.env.id, &path).await?.expect("a non-root path has a deepest folder");
        audit::record(&txn, caller, folder_entry("create-folder", &scope, &path, json!({ "folderId": row.id })));
        txn.commit().await?;
        Ok(folder_record(&scope, row))
    }

    /// Lists the folders below `parent`: direct children, or every descendant with `recursive`.
    pub async fn list_folders(
        &self,
        caller: &Principal,
        project_id: &str,
        environment: &str,
        raw_parent: &str,
        recursive: bool,
    ) -> Result<Vec<FolderRecord>, SecretsError> {
        let parent = validate::folder_path("secret_path", raw_parent)?;
        let db = self.store.conn();
        let scope = scope::env_scope(db, caller, project_id, environment).await?;
        scope.grants.require_somewhere_in(Subject::SecretFolders, Action::Read, &scope.env.slug)?;
        require_readable(db, &scope, Subject::SecretFolders, &parent).await?;
        let depth = validate::ancestors(&parent).len() + 1;
        let rows = folder::Entity::find()
            .filter(folder::Column::EnvironmentId.eq(&scope.env.id))
            .filter(subtree::within(folder::Column::Path, &parent))
            .order_by_asc(folder::Column::Path)
            .all(db)
            .await?;
        let folders: Vec<FolderRecord> = rows
            .into_iter()
            .filter(|f| f.path != parent && validate::is_within(&f.path, &parent))
            .filter(|f| recursive || validate::ancestors(&f.path).len() == depth)
            .filter(|f| scope.can(Subject::SecretFolders, Action::Read, &f.path))
            .map(|f| folder_record(&scope, f))
            .collect();
        let entry =
            folder_entry("get-folders", &scope, &parent, json!({ "recursive": recursive, "count": folders.len() }));
        audit::record_read(&self.store, caller, entry).await?;
        Ok(folders)
    }

    /// Deletes a folder, its subfolders, their secrets and the imports into or out of them.
    /// Returns how many secrets were deleted.
    pub async fn delete_folder(
        &self,
        caller: &Principal,
        project_id: &str,
        environment: &str,
        raw_path: &str,
    ) -> Result<u64, SecretsError> {
        let path = validate::folder_path("path", raw_path)?;
        if path == "/" {
            return Err(SecretsError::InvalidArgument {
                field: "path".into(),
                reason: "the root folder cannot be deleted".into(),
            });
        }
        let txn = self.store.begin_write().await?;
        let scope = scope::env_scope_for_write(&txn, caller, project_id, environment).await?;
        scope.require(Subject::SecretFolders, Action::Delete, &path)?;
        require(&*txn, &scope, &path).await?;
        // Every member, not only the named folder: deny rules and path conditions below it hold too.
        subtree::require_delete(&*txn, &scope, &path).await?;
        let env_id = scope.env.id.as_str();
        let secrets: Vec<(String, String, i32)> = secret::Entity::find()
            .select_only()
            .columns([secret::Column::Path, secret::Column::Key, secret::Column::Version])
            .filter(secret::Column::EnvironmentId.eq(env_id))
            .filter(subtree::within(secret::Column::Path, &path))
            .into_tuple()
            .all(&*txn)
            .await?;
        let import_ids: Vec<String> =
            subtree::imports_touching(&*txn, &scope, &path).await?.into_iter().map(|i| i.id).collect();

        // Before the imports go: the events name the folders that imported the deleted secrets.
        let gone: Vec<_> =
            secrets.iter().map(|(path, key, version)| changes::Changed::deleted(path, key, *version)).collect();
        changes::secrets_changed(&txn, &scope, caller, EventType::Delete, "delete-folder", &gone).await?;
        let deleted = secrets.len() as u64;
        secret::Entity::delete_many()
            .filter(secret::Column::EnvironmentId.eq(env_id))
            .filter(subtree::within(secret::Column::Path, &path))
            .exec(&*txn)
            .await?;
        folder::Entity::delete_many()
            .filter(folder::Column::EnvironmentId.eq(env_id))
            .filter(subtree::within(folder::Column::Path, &path))
            .exec(&*txn)
            .await?;
        secret_import::Entity::delete_many().filter(secret_import::Column::Id.is_in(import_ids)).exec(&*txn).await?;
        audit::record(&txn, caller, folder_entry("delete-folder", &scope, &path, json!({ "deletedSecrets": deleted })));
        txn.commit().await?;
        Ok(deleted)
    }
}

//! Secret imports: a folder sees the secrets of another environment and path of the same project.
//! Precedence: local secrets win; among imports, the one with the higher position (created later) wins.
//! Imports are resolved one level deep: an imported folder's own imports are not followed, so cycles
//! cannot form.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, ModelTrait, QueryFilter, QueryOrder, Set};

use super::{
    SecretRecord, SecretsError, Vault, audit_entries::folder_entry, changes, folders, scope, scope::EnvScope, validate,
    values, visibility,
};
use serde_json::json;

use crate::{
    audit,
    identity::{
        Principal,
        policy::{Action, Resource, Subject},
    },
    store::entities::{environment, secret_import},
};

/// An import as callers see it.
#[derive(Debug, Clone)]
pub struct ImportRecord {
    pub id: String,
    pub environment: String,
    pub path: String,
    pub import_environment: String,
    pub import_path: String,
    pub position: i32,
    pub created_at: DateTime<Utc>,
}

impl Vault {
    /// Makes `(environment, path)` import `(import_environment, import_path)`. Both folders must exist.
    pub async fn create_secret_import(
        &self,
        caller: &Principal,
        project_id: &str,
        environment: &str,
        raw_path: &str,
        import_environment: &str,
        raw_import_path: &str,
    ) -> Result<ImportRecord, SecretsError> {
        let path = validate::folder_path("secret_path", raw_path)?;
        let import_path = validate::folder_path("import_path", raw_import_path)?;
        let txn = self.store.begin_write().await?;
        let scope = scope::env_scope(&*txn, caller, project_id, environment).await?;
        let source_env =
            scope::environment_of(&*txn, &scope.project_scope(), "import_environment", import_environment).await?;
        // Both folders must still exist when the import commits (a delete of either removes its imports).
        scope::lock_environments(&txn, &[&scope.env, &source_env]).await?;
        let source = scope.with_env(source_env);
        scope.require(Subject::SecretImports, Action::Create, &path)?;
        // An import exposes the source's secrets to readers of this folder: only what the caller can read.
        source.require(Subject::Secrets, Action::Read, &import_path)?;
        folders::require(&*txn, &scope, &path).await?;
        folders::require(&*txn, &source, &import_path).await?;
        if source.env.id == scope.env.id && import_path == path {
            return Err(SecretsError::InvalidArgument {
                field: "import_path".into(),
                reason: "a folder cannot import itself".into(),
            });
        }
        let existing = self.imports_of(&*txn, &scope, &path).await?;
        if existing.iter().any(|i| i.import_environment_id == source.env.id && i.import_path == import_path) {
            return Err(SecretsError::AlreadyExists(format!(
                "import of {}:{import_path} into {}:{path}",
                source.env.slug, scope.env.slug
            )));
        }
        txn.imports_from(&source.env.id);
        let row = secret_import::ActiveModel {
            id: Set(uuid::Uuid::now_v7().to_string()),
            environment_id: Set(scope.env.id.clone()),
            path: Set(path),
            import_environment_id: Set(source.env.id.clone()),
            import_path: Set(import_path),
            position: Set(existing.iter().map(|i| i.position + 1).max().unwrap_or(0)),
            created_at: Set(Utc::now()),
        }
        .insert(&*txn)
        .await?;
        changes::imports_changed(&txn, &scope, caller, "create-secret-import", &row.path);
        let imported =
            json!({ "secretImportId": row.id, "importEnvironment": source.env.slug, "importPath": row.import_path });
        audit::record(&txn, caller, folder_entry("create-secret-import", &scope, &row.path, imported));
        txn.commit().await?;
        Ok(import_record(&scope, &source.env.slug, row))
    }

    /// Lists a folder's imports, lowest position (lowest precedence) first.
    pub async fn list_secret_imports(
        &self,
        caller: &Principal,
        project_id: &str,
        environment: &str,
        raw_path: &str,
    ) -> Result<Vec<ImportRecord>, SecretsError> {
        let path = validate::folder_path("secret_path", raw_path)?;
        let db = self.store.conn();
        let scope = scope::env_scope(db, caller, project_id, environment).await?;
        scope.require(Subject::SecretImports, Action::Read, &path)?;
        let slugs = self.environment_slugs(&scope).await?;
        let rows = self.imports_of(db, &scope, &path).await?;
        // An import from an environment the caller may not know of is left out, as that environment is
        // everywhere else (hidden is missing).
        let imports: Vec<ImportRecord> = rows
            .into_iter()
            .filter_map(|row| {
                let slug = slugs.get(&row.import_environment_id)?;
                visibility::sees_environment(&scope.grants, slug).then(|| import_record(&scope, slug, row))
            })
            .collect();
        let entry = folder_entry("get-secret-imports", &scope, &path, json!({ "count": imports.len() }));
        audit::record_read(&self.store, caller, entry).await?;
        Ok(imports)
    }

    /// Removes an import of the project.
    pub async fn delete_secret_import(
        &self,
        caller: &Principal,
        project_id: &str,
        import_id: &str,
    ) -> Result<(), SecretsError> {
        validate::id("secret_import_id", import_id)?;
        let txn = self.store.begin_write().await?;
        let project = scope::project(&*txn, caller, project_id).await?;
        let not_found = || SecretsError::NotFound(format!("secret import '{import_id}'"));
        let (row, env) = secret_import::Entity::find_by_id(import_id)
            .find_also_related(environment::Entity)
            .one(&*txn)
            .await?
            .ok_or_else(not_found)?;
        let env = env.filter(|e| e.project_id == project.project.id).ok_or_else(not_found)?;
        // An import of a folder where the caller may neither read nor delete imports answers like a missing
        // one: a refusal would confirm that the id exists and name its environment and folder.
        let grants = &project.grants;
        let may = |action| grants.can(Subject::SecretImports, action, Resource::at(&env.slug, &row.path));
        if !may(Action::Read) && !may(Action::Delete) {
            return Err(not_found());
        }
        grants.require(Subject::SecretImports, Action::Delete, Resource::at(&env.slug, &row.path))?;
        scope::lock_environments(&txn, &[&env]).await?;
        let importer = EnvScope { project: project.project, env, grants: project.grants };
        changes::imports_changed(&txn, &importer, caller, "delete-secret-import", &row.path);
        let entry = folder_entry("delete-secret-import", &importer, &row.path, json!({ "secretImportId": import_id }));
        audit::record(&txn, caller, entry);
        row.delete(&*txn).await?;
        txn.commit().await?;
        Ok(())
    }

    async fn imports_of(
        &self,
        db: &impl sea_orm::ConnectionTrait,
        scope: &EnvScope,
        path: &str,
    ) -> Result<Vec<secret_import::Model>, SecretsError> {
        Ok(secret_import::Entity::find()
            .filter(secret_import::Column::EnvironmentId.eq(&scope.env.id))
            .filter(secret_import::Column::Path.eq(path))
            .order_by_asc(secret_import::Column::Position)
            .all(db)
            .await?)
    }

    async fn environment_slugs(&self, scope: &EnvScope) -> Result<BTreeMap<String, String>, SecretsError> {
        let envs = environment::Entity::find()
            .filter(environment::Column::ProjectId.eq(&scope.project.id))
            .all(self.store.conn())
            .await?;
        Ok(envs.into_iter().map(|e| (e.id, e.slug)).collect())
    }

    /// Every secret a folder imports, one per key, the highest-precedence import winning; ordered by key.
    pub(super) async fn imported_secrets(
        &self,
        scope: &EnvScope,
        path: &str,
    ) -> Result<Vec<SecretRecord>, SecretsError> {
        let db = self.store.conn();
        let dk = self.data_key(&scope.project)?;
        let mut by_key = BTreeMap::new();
        for import in self.imports_of(db, scope, path).await? {
            let Some(env) = environment::Entity::find_by_id(&import.import_environment_id).one(db).await? else {
                continue;
            };
            let source = scope.with_env(env);
            // Imported values reach only callers who may read them where they live.
            if !source.can(Subject::Secrets, Action::Read, &import.import_path) {
                continue;
            }
            // Ascending position: a later import overwrites an earlier one's key.
            for secret in values::folder_values(db, &dk, &source, &import.import_path).await? {
                by_key.insert(secret.key.clone(), secret);
            }
        }
        Ok(by_key.into_values().collect())
    }

    /// The imported secret named `key`, if any import of the folder has it.
    pub(super) async fn find_imported(
        &self,
        scope: &EnvScope,
        path: &str,
        key: &str,
    ) -> Result<Option<SecretRecord>, SecretsError> {
        Ok(self.imported_secrets(scope, path).await?.into_iter().find(|s| s.key == key))
    }
}

fn import_record(scope: &EnvScope, import_slug: &str, row: secret_import::Model) -> ImportRecord {
    ImportRecord {
        id: row.id,
        environment: scope.env.slug.clone(),
        path: row.path,
        import_environment: import_slug.to_owned(),
        import_path: row.import_path,
        position: row.position,
        created_at: row.created_at,
    }
}

//! Secrets and their versions: create, read, update, delete, batches, history and rollback.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, ModelTrait, QueryFilter, QueryOrder,
    Set,
};
use zeroize::Zeroizing;

use super::{
    SecretsError, Vault,
    audit_entries::{batch_entry, read_entry, secret_entry},
    changes::{self, Changed},
    expected, folders, scope,
    scope::EnvScope,
    validate,
};
use crate::{
    audit,
    crypto::{DataKey, ValueBinding},
    events::EventType,
    identity::{
        Principal,
        policy::{Action, Subject},
    },
    store::entities::{secret, secret_version},
};

/// A plaintext secret value. Its `Debug` never shows the value, so it cannot leak through logs.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(Zeroizing<String>);

impl SecretValue {
    /// The plaintext.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretValue([REDACTED])")
    }
}

/// Where a secret lives. `path` is as the caller wrote it; operations normalise it.
#[derive(Debug, Clone)]
pub struct SecretAddress {
    pub project_id: String,
    pub environment: String,
    pub path: String,
    pub key: String,
}

/// One secret of a batch write.
#[derive(Clone)]
pub struct SecretInput {
    pub key: String,
    pub value: Zeroizing<String>,
    pub comment: String,
}

/// A secret as callers see it; `value` is set only by explicit reads.
#[derive(Debug, Clone)]
pub struct SecretRecord {
    pub id: String,
    pub project_id: String,
    pub environment: String,
    pub path: String,
    pub key: String,
    pub value: Option<SecretValue>,
    pub version: i32,
    pub comment: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// `(environment slug, path)` when the secret was resolved through an import.
    pub imported_from: Option<(String, String)>,
}

/// One version of a secret, with its value.
#[derive(Debug, Clone)]
pub struct VersionRecord {
    pub version: i32,
    pub value: SecretValue,
    pub comment: String,
    pub created_at: DateTime<Utc>,
}

/// What a sealed value belongs to: its seal is bound to exactly this.
fn binding<'a>(scope: &'a EnvScope, row: &'a secret::Model, version: i32) -> ValueBinding<'a> {
    binding_at(scope, &row.path, &row.key, version)
}

fn binding_at<'a>(scope: &'a EnvScope, path: &'a str, key: &'a str, version: i32) -> ValueBinding<'a> {
    ValueBinding { project_id: &scope.project.id, environment_id: &scope.env.id, path, key, version }
}

fn integrity(scope: &EnvScope, path: &str, key: &str, source: crate::crypto::CryptoError) -> SecretsError {
    SecretsError::Integrity { what: format!("secret '{key}' at {}:{path}", scope.env.slug), source }
}

/// Opens a sealed value of `row` stored under `version`.
pub(super) fn open(
    dk: &DataKey,
    scope: &EnvScope,
    row: &secret::Model,
    version: i32,
    sealed: &[u8],
) -> Result<SecretValue, SecretsError> {
    let plain =
        dk.open_value(binding(scope, row, version), sealed).map_err(|e| integrity(scope, &row.path, &row.key, e))?;
    let text = String::from_utf8(plain.to_vec()).map_err(|_| SecretsError::Integrity {
        what: format!("secret '{}' at {}:{}", row.key, scope.env.slug, row.path),
        source: crate::crypto::CryptoError::Authentication,
    })?;
    Ok(SecretValue(Zeroizing::new(text)))
}

pub(super) fn record(scope: &EnvScope, row: secret::Model, value: Option<SecretValue>) -> SecretRecord {
    SecretRecord {
        id: row.id,
        project_id: scope.project.id.clone(),
        environment: scope.env.slug.clone(),
        path: row.path,
        key: row.key,
        value,
        version: row.version,
        comment: row.comment,
        created_at: row.created_at,
        updated_at: row.updated_at,
        imported_from: None,
    }
}

pub(super) async fn find(
    db: &impl ConnectionTrait,
    env_id: &str,
    path: &str,
    key: &str,
) -> Result<Option<secret::Model>, SecretsError> {
    Ok(secret::Entity::find()
        .filter(secret::Column::EnvironmentId.eq(env_id))
        .filter(secret::Column::Path.eq(path))
        .filter(secret::Column::Key.eq(key))
        .one(db)
        .await?)
}

impl Vault {
    /// The current row of a secret for a read: from memory while no write may have changed it since it was
    /// fetched (see `row_cache`), else from the database.
    async fn current_row(&self, env_id: &str, path: &str, key: &str) -> Result<Option<secret::Model>, SecretsError> {
        let generation = self.store.secret_rows_generation();
        if let Some(row) = generation.and_then(|at| self.rows.get(at, env_id, path, key)) {
            return Ok(Some(row));
        }
        let row = find(self.store.conn(), env_id, path, key).await?;
        if let (Some(at), Some(row)) = (generation, &row) {
            self.rows.put(at, row);
        }
        Ok(row)
    }
}

fn not_found(scope: &EnvScope, path: &str, key: &str) -> SecretsError {
    SecretsError::NotFound(format!("secret '{key}' at {}:{path}", scope.env.slug))
}

/// Writes `row` at `version` with `value`: updates the current row and appends the version.
async fn store_version(
    db: &impl ConnectionTrait,
    dk: &DataKey,
    scope: &EnvScope,
    row: secret::Model,
    version: i32,
    value: &str,
    comment: String,
) -> Result<secret::Model, SecretsError> {
    let sealed = dk.seal_value(binding(scope, &row, version), value.as_bytes());
    let mut active = row.into_active_model();
    active.version = Set(version);
    active.sealed_value = Set(sealed);
    active.comment = Set(comment);
    active.updated_at = Set(Utc::now());
    let row = active.update(db).await?;
    append_version(db, &row).await?;
    Ok(row)
}

/// Appends the current version of `row` (its value, comment and time) to its history.
async fn append_version(db: &impl ConnectionTrait, row: &secret::Model) -> Result<(), SecretsError> {
    secret_version::Entity::insert(version_of(row)).exec_without_returning(db).await?;
    Ok(())
}

/// The history row of `row`'s current version.
fn version_of(row: &secret::Model) -> secret_version::ActiveModel {
    secret_version::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        secret_id: Set(row.id.clone()),
        version: Set(row.version),
        sealed_value: Set(row.sealed_value.clone()),
        comment: Set(row.comment.clone()),
        created_at: Set(row.updated_at),
    }
}

/// The rows of `keys` in one folder, by key, in one query.
async fn find_keys<'a>(
    db: &impl ConnectionTrait,
    env_id: &str,
    path: &str,
    keys: impl IntoIterator<Item = &'a str>,
) -> Result<HashMap<String, secret::Model>, SecretsError> {
    let rows = secret::Entity::find()
        .filter(secret::Column::EnvironmentId.eq(env_id))
        .filter(secret::Column::Path.eq(path))
        .filter(secret::Column::Key.is_in(keys))
        .all(db)
        .await?;
    Ok(rows.into_iter().map(|row| (row.key.clone(), row)).collect())
}

/// Inserts new secrets of one folder at version 1, in `inputs` order, with three statements however many
/// there are: one read of the keys already taken (ALREADY_EXISTS names the first), one insert of the rows and
/// one of their first versions. Values are sealed before the insert: the seal binds a value to where its
/// secret lives (project, environment, path, key) and to its version, all known before the row exists.
async fn insert_new(
    db: &impl ConnectionTrait,
    dk: &DataKey,
    scope: &EnvScope,
    path: &str,
    inputs: &[SecretInput],
) -> Result<Vec<secret::Model>, SecretsError> {
    if inputs.is_empty() {
        return Ok(Vec::new());
    }
    let taken = find_keys(db, &scope.env.id, path, inputs.iter().map(|i| i.key.as_str())).await?;
    if let Some(input) = inputs.iter().find(|i| taken.contains_key(&i.key)) {
        return Err(SecretsError::AlreadyExists(format!("secret '{}' at {}:{path}", input.key, scope.env.slug)));
    }
    const FIRST: i32 = 1;
    let now = Utc::now();
    let new = inputs.iter().map(|input| secret::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        environment_id: Set(scope.env.id.clone()),
        path: Set(path.to_owned()),
        key: Set(input.key.clone()),
        version: Set(FIRST),
        sealed_value: Set(dk.seal_value(binding_at(scope, path, &input.key, FIRST), input.value.as_bytes())),
        comment: Set(input.comment.clone()),
        created_at: Set(now),
        updated_at: Set(now),
    });
    let mut inserted: HashMap<String, secret::Model> = secret::Entity::insert_many(new)
        .exec_with_returning(db)
        .await?
        .into_iter()
        .map(|r| (r.key.clone(), r))
        .collect();
    // The keys are distinct (validated), so every input has its row.
    let rows: Vec<secret::Model> = inputs.iter().filter_map(|input| inserted.remove(&input.key)).collect();
    secret_version::Entity::insert_many(rows.iter().map(version_of)).exec_without_returning(db).await?;
    Ok(rows)
}

/// Writes `value` as the next version of `row`; `comment: None` keeps the current one.
async fn next_version(
    db: &impl ConnectionTrait,
    dk: &DataKey,
    scope: &EnvScope,
    row: secret::Model,
    value: &str,
    comment: Option<&str>,
) -> Result<secret::Model, SecretsError> {
    let comment = comment.map_or_else(|| row.comment.clone(), str::to_owned);
    let version = row.version + 1;
    store_version(db, dk, scope, row, version, value, comment).await
}

/// Checks a batch: size, unique keys, and every item, naming the item (`secrets[3].value`).
fn validate_batch(inputs: &[SecretInput]) -> Result<(), SecretsError> {
    validate::batch_keys("secrets", inputs.iter().map(|i| i.key.as_str()))?;
    for (i, input) in inputs.iter().enumerate() {
        let field = format!("secrets[{i}]");
        validate::secret_value(&format!("{field}.value"), &input.value)?;
        validate::comment(&format!("{field}.comment"), &input.comment)?;
    }
    Ok(())
}

impl Vault {
    /// Creates a secret at version 1; missing folders on its path are created.
    pub async fn create_secret(
        &self,
        caller: &Principal,
        addr: &SecretAddress,
        value: &str,
        comment: &str,
    ) -> Result<SecretRecord, SecretsError> {
        let path = validate::folder_path("secret_path", &addr.path)?;
        validate::secret_key("key", &addr.key)?;
        validate::secret_value("value", value)?;
        validate::comment("comment", comment)?;
        let input =
            SecretInput { key: addr.key.clone(), value: Zeroizing::new(value.to_owned()), comment: comment.to_owned() };
        let txn = self.store.begin_write().await?;
        let scope = scope::env_scope_for_write(&txn, caller, &addr.project_id, &addr.environment).await?;
        scope.require(Subject::Secrets, Action::Create, &path)?;
        let dk = self.data_key(&scope.project)?;
        folders::ensure(&*txn, &scope.env.id, &path).await?;
        let row = insert_new(&*txn, &dk, &scope, &path, std::slice::from_ref(&input))
            .await?
            .pop()
            .ok_or_else(|| not_found(&scope, &path, &input.key))?;
        changes::secrets_changed(
            &txn,
            &scope,
            caller,
            EventType::Create,
            "create-secret",
            &[Changed::written(&path, &row)],
        )
        .await?;
        audit::record(&txn, caller, secret_entry("create-secret", &scope, &row));
        txn.commit().await?;
        Ok(record(&scope, row, None))
    }

    /// Reads a secret with its value: the current version, or `version` when non-zero. With `include_imports`,
    /// a key missing from the folder is looked up in its imports (later imports first).
    pub async fn get_secret(
        &self,
        caller: &Principal,
        addr: &SecretAddress,
        include_imports: bool,
        version: u32,
    ) -> Result<SecretRecord, SecretsError> {
        let path = validate::folder_path("secret_path", &addr.path)?;
        validate::secret_key("key", &addr.key)?;
        let db = self.store.conn();
        let scope = self.read_scope(caller, &addr.project_id, &addr.environment).await?;
        scope.require(Subject::Secrets, Action::Read, &path)?;
        let Some(row) = self.current_row(&scope.env.id, &path, &addr.key).await? else {
            if include_imports && version == 0 {
                if let Some(found) = self.find_imported(&scope, &path, &addr.key).await? {
                    audit::record_read(&self.store, caller, read_entry("get-secret", &scope, &path, Some(&found)))
                        .await?;
                    return Ok(found);
                }
            }
            return Err(not_found(&scope, &path, &addr.key));
        };
        let dk = self.data_key(&scope.project)?;
        let (number, sealed) = if version == 0 {
            (row.version, row.sealed_value.clone())
        } else {
            let stored = secret_version::Entity::find()
                .filter(secret_version::Column::SecretId.eq(&row.id))
                .filter(secret_version::Column::Version.eq(version as i32))
                .one(db)
                .await?
                .ok_or_else(|| SecretsError::NotFound(format!("version {version} of secret '{}'", addr.key)))?;
            (stored.version, stored.sealed_value)
        };
        let value = open(&dk, &scope, &row, number, &sealed)?;
        let mut out = record(&scope, row, Some(value));
        out.version = number;
        audit::record_read(&self.store, caller, read_entry("get-secret", &scope, &path, Some(&out))).await?;
        Ok(out)
    }

    /// Replaces a secret's value with a new version; `comment: None` keeps the current comment. With
    /// `expected_version`, only if the secret is at that version now (else ABORTED).
    pub async fn update_secret(
        &self,
        caller: &Principal,
        addr: &SecretAddress,
        value: &str,
        comment: Option<&str>,
        expected_version: Option<u32>,
    ) -> Result<SecretRecord, SecretsError> {
        let path = validate::folder_path("secret_path", &addr.path)?;
        validate::secret_key("key", &addr.key)?;
        validate::secret_value("value", value)?;
        if let Some(comment) = comment {
            validate::comment("comment", comment)?;
        }
        expected::validate_one(expected_version)?;
        let txn = self.store.begin_write().await?;
        let scope = scope::env_scope_for_write(&txn, caller, &addr.project_id, &addr.environment).await?;
        scope.require(Subject::Secrets, Action::Edit, &path)?;
        let dk = self.data_key(&scope.project)?;
        let row =
            find(&*txn, &scope.env.id, &path, &addr.key).await?.ok_or_else(|| not_found(&scope, &path, &addr.key))?;
        expected::require(&scope, &row, expected_version, "")?;
        let row = next_version(&*txn, &dk, &scope, row, value, comment).await?;
        changes::secrets_changed(
            &txn,
            &scope,
            caller,
            EventType::Update,
            "update-secret",
            &[Changed::written(&path, &row)],
        )
        .await?;
        audit::record(&txn, caller, secret_entry("update-secret", &scope, &row));
        txn.commit().await?;
        Ok(record(&scope, row, None))
    }

    /// Deletes a secret and its history. With `expected_version`, only if the secret is at that version now
    /// (else ABORTED).
    pub async fn delete_secret(
        &self,
        caller: &Principal,
        addr: &SecretAddress,
        expected_version: Option<u32>,
    ) -> Result<(), SecretsError> {
        let path = validate::folder_path("secret_path", &addr.path)?;
        validate::secret_key("key", &addr.key)?;
        expected::validate_one(expected_version)?;
        let txn = self.store.begin_write().await?;
        let scope = scope::env_scope_for_write(&txn, caller, &addr.project_id, &addr.environment).await?;
        scope.require(Subject::Secrets, Action::Delete, &path)?;
        let row =
            find(&*txn, &scope.env.id, &path, &addr.key).await?.ok_or_else(|| not_found(&scope, &path, &addr.key))?;
        expected::require(&scope, &row, expected_version, "")?;
        audit::record(&txn, caller, secret_entry("delete-secret", &scope, &row));
        let gone = [Changed::deleted(&path, &addr.key, row.version)];
        row.delete(&*txn).await?;
        changes::secrets_changed(&txn, &scope, caller, EventType::Delete, "delete-secret", &gone).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Creates several secrets in one folder in one transaction: any failure writes nothing.
    pub async fn batch_create_secrets(
        &self,
        caller: &Principal,
        project_id: &str,
        environment: &str,
        raw_path: &str,
        inputs: &[SecretInput],
    ) -> Result<Vec<SecretRecord>, SecretsError> {
        let path = validate::folder_path("secret_path", raw_path)?;
        validate_batch(inputs)?;
        let txn = self.store.begin_write().await?;
        let scope = scope::env_scope_for_write(&txn, caller, project_id, environment).await?;
        scope.require(Subject::Secrets, Action::Create, &path)?;
        let dk = self.data_key(&scope.project)?;
        folders::ensure(&*txn, &scope.env.id, &path).await?;
        let rows = insert_new(&*txn, &dk, &scope, &path, inputs).await?;
        let changed: Vec<_> = rows.iter().map(|r| Changed::written(&path, r)).collect();
        changes::secrets_changed(&txn, &scope, caller, EventType::Create, "create-secrets-batch", &changed).await?;
        audit::record(
            &txn,
            caller,
            batch_entry("create-secrets-batch", &scope, &path, rows.iter().map(|r| r.key.as_str())),
        );
        txn.commit().await?;
        Ok(rows.into_iter().map(|row| record(&scope, row, None)).collect())
    }

    /// Updates several secrets of one folder in one transaction: any failure (a version other than the one in
    /// `expected_versions` included) writes nothing. An empty comment keeps the secret's current comment. With
    /// `allow_missing`, keys that do not exist are created in the same transaction (an upsert of the batch).
    #[allow(clippy::too_many_arguments)]
    pub async fn batch_update_secrets(
        &self,
        caller: &Principal,
        project_id: &str,
        environment: &str,
        raw_path: &str,
        inputs: &[SecretInput],
        expected_versions: &HashMap<String, u32>,
        allow_missing: bool,
    ) -> Result<Vec<SecretRecord>, SecretsError> {
        let path = validate::folder_path("secret_path", raw_path)?;
        validate_batch(inputs)?;
        expected::validate_batch(expected_versions, inputs.iter().map(|i| i.key.as_str()))?;
        let txn = self.store.begin_write().await?;
        let scope = scope::env_scope_for_write(&txn, caller, project_id, environment).await?;
        scope.require(Subject::Secrets, Action::Edit, &path)?;
        if allow_missing {
            scope.require(Subject::Secrets, Action::Create, &path)?;
            folders::ensure(&*txn, &scope.env.id, &path).await?;
        }
        let dk = self.data_key(&scope.project)?;
        let mut existing = find_keys(&*txn, &scope.env.id, &path, inputs.iter().map(|i| i.key.as_str())).await?;
        // Every key is checked, in order, before anything is written.
        let mut missing = Vec::new();
        for (i, input) in inputs.iter().enumerate() {
            let expected = expected_versions.get(&input.key).copied();
            match existing.get(&input.key) {
                Some(row) => expected::require(&scope, row, expected, &format!("secrets[{i}]: "))?,
                None if allow_missing && expected.is_none() => missing.push(input.clone()),
                None => return Err(not_found(&scope, &path, &input.key)),
            }
        }
        let mut created: HashMap<String, secret::Model> = insert_new(&*txn, &dk, &scope, &path, &missing)
            .await?
            .into_iter()
            .map(|row| (row.key.clone(), row))
            .collect();
        let mut rows = Vec::with_capacity(inputs.len());
        for input in inputs {
            let row = match existing.remove(&input.key) {
                Some(row) => {
                    let comment = (!input.comment.is_empty()).then_some(input.comment.as_str());
                    next_version(&*txn, &dk, &scope, row, &input.value, comment).await?
                }
                // Checked above: a key that did not exist was created.
                None => created.remove(&input.key).ok_or_else(|| not_found(&scope, &path, &input.key))?,
            };
            rows.push(row);
        }
        let created: std::collections::HashSet<&str> = missing.iter().map(|i| i.key.as_str()).collect();
        let (new, updated): (Vec<_>, Vec<_>) = rows.iter().partition(|r| created.contains(r.key.as_str()));
        for (event, audited, rows) in
            [(EventType::Create, "create-secrets-batch", new), (EventType::Update, "update-secrets-batch", updated)]
        {
            if rows.is_empty() {
                continue;
            }
            let changed: Vec<_> = rows.iter().map(|r| Changed::written(&path, r)).collect();
            changes::secrets_changed(&txn, &scope, caller, event, audited, &changed).await?;
            audit::record(&txn, caller, batch_entry(audited, &scope, &path, rows.iter().map(|r| r.key.as_str())));
        }
        txn.commit().await?;
        Ok(rows.into_iter().map(|row| record(&scope, row, None)).collect())
    }

    /// Deletes several secrets of one folder in one transaction: a missing key, or one at another version than
    /// `expected_versions` names, deletes nothing.
    pub async fn batch_delete_secrets(
        &self,
        caller: &Principal,
        project_id: &str,
        environment: &str,
        raw_path: &str,
        keys: &[String],
        expected_versions: &HashMap<String, u32>,
    ) -> Result<(), SecretsError> {
        let path = validate::folder_path("secret_path", raw_path)?;
        validate::batch_keys("keys", keys.iter().map(String::as_str))?;
        expected::validate_batch(expected_versions, keys.iter().map(String::as_str))?;
        let txn = self.store.begin_write().await?;
        let scope = scope::env_scope_for_write(&txn, caller, project_id, environment).await?;
        scope.require(Subject::Secrets, Action::Delete, &path)?;
        // One read of every key and one delete, however many there are; every key is checked first, in order.
        let found = find_keys(&*txn, &scope.env.id, &path, keys.iter().map(String::as_str)).await?;
        let mut changed = Vec::with_capacity(keys.len());
        for (i, key) in keys.iter().enumerate() {
            let row = found.get(key).ok_or_else(|| not_found(&scope, &path, key))?;
            expected::require(&scope, row, expected_versions.get(key).copied(), &format!("keys[{i}]: "))?;
            changed.push(Changed::deleted(&path, key, row.version));
        }
        secret::Entity::delete_many()
            .filter(secret::Column::Id.is_in(found.values().map(|row| row.id.as_str())))
            .exec(&*txn)
            .await?;
        changes::secrets_changed(&txn, &scope, caller, EventType::Delete, "delete-secrets-batch", &changed).await?;
        audit::record(
            &txn,
            caller,
            batch_entry("delete-secrets-batch", &scope, &path, keys.iter().map(String::as_str)),
        );
        txn.commit().await?;
        Ok(())
    }

    /// Lists a secret's versions, newest first, with their values.
    pub async fn list_secret_versions(
        &self,
        caller: &Principal,
        addr: &SecretAddress,
    ) -> Result<Vec<VersionRecord>, SecretsError> {
        let path = validate::folder_path("secret_path", &addr.path)?;
        validate::secret_key("key", &addr.key)?;
        let db = self.store.conn();
        let scope = scope::env_scope(db, caller, &addr.project_id, &addr.environment).await?;
        scope.require(Subject::Secrets, Action::Read, &path)?;
        let row =
            find(db, &scope.env.id, &path, &addr.key).await?.ok_or_else(|| not_found(&scope, &path, &addr.key))?;
        let dk = self.data_key(&scope.project)?;
        let versions = secret_version::Entity::find()
            .filter(secret_version::Column::SecretId.eq(&row.id))
            .order_by_desc(secret_version::Column::Version)
            .all(db)
            .await?;
        let versions: Vec<VersionRecord> = versions
            .into_iter()
            .map(|v| {
                Ok(VersionRecord {
                    value: open(&dk, &scope, &row, v.version, &v.sealed_value)?,
                    version: v.version,
                    comment: v.comment,
                    created_at: v.created_at,
                })
            })
            .collect::<Result<_, SecretsError>>()?;
        let entry = read_entry("get-secret-versions", &scope, &path, Some(&record(&scope, row, None)));
        audit::record_read(&self.store, caller, entry).await?;
        Ok(versions)
    }

    /// Makes the value of `version` current again, as a new version. With `expected_version`, only if the
    /// secret is at that version now (else ABORTED).
    pub async fn rollback_secret(
        &self,
        caller: &Principal,
        addr: &SecretAddress,
        version: u32,
        expected_version: Option<u32>,
    ) -> Result<SecretRecord, SecretsError> {
        let path = validate::folder_path("secret_path", &addr.path)?;
        validate::secret_key("key", &addr.key)?;
        if version == 0 {
            return Err(SecretsError::InvalidArgument { field: "version".into(), reason: "must be 1 or more".into() });
        }
        expected::validate_one(expected_version)?;
        let txn = self.store.begin_write().await?;
        let scope = scope::env_scope_for_write(&txn, caller, &addr.project_id, &addr.environment).await?;
        scope.require(Subject::Secrets, Action::Edit, &path)?;
        let dk = self.data_key(&scope.project)?;
        let row =
            find(&*txn, &scope.env.id, &path, &addr.key).await?.ok_or_else(|| not_found(&scope, &path, &addr.key))?;
        expected::require(&scope, &row, expected_version, "")?;
        let old = secret_version::Entity::find()
            .filter(secret_version::Column::SecretId.eq(&row.id))
            .filter(secret_version::Column::Version.eq(version as i32))
            .one(&*txn)
            .await?
            .ok_or_else(|| SecretsError::NotFound(format!("version {version} of secret '{}'", addr.key)))?;
        let value = open(&dk, &scope, &row, old.version, &old.sealed_value)?;
        let row = next_version(&*txn, &dk, &scope, row, value.expose(), Some(&old.comment)).await?;
        let rolled = [Changed::written(&path, &row)];
        changes::secrets_changed(&txn, &scope, caller, EventType::Update, "rollback-secret", &rolled).await?;
        audit::record(&txn, caller, secret_entry("rollback-secret", &scope, &row));
        txn.commit().await?;
        Ok(record(&scope, row, None))
    }
}

/// Opens the current value of every secret in `(scope, path)`, for import resolution.
pub(super) async fn folder_values(
    db: &impl ConnectionTrait,
    dk: &DataKey,
    scope: &EnvScope,
    path: &str,
) -> Result<Vec<SecretRecord>, SecretsError> {
    let rows = secret::Entity::find()
        .filter(secret::Column::EnvironmentId.eq(&scope.env.id))
        .filter(secret::Column::Path.eq(path))
        .order_by_asc(secret::Column::Key)
        .all(db)
        .await?;
    rows.into_iter()
        .map(|row| {
            let value = open(dk, scope, &row, row.version, &row.sealed_value)?;
            let mut rec = record(scope, row, Some(value));
            rec.imported_from = Some((scope.env.slug.clone(), path.to_owned()));
            Ok(rec)
        })
        .collect()
}

//! Secrets and their versions: create, read, update, delete, history and rollback (batches: `batches`).

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use zeroize::Zeroizing;

use super::{
    SecretsError, Vault,
    audit_entries::{read_entry, secret_entry},
    changes::{self, Changed},
    expected,
    rows::{
        commit_inserts, delete_at_commit, find, find_for_write, find_with_permission_version, insert_new, next_version,
        not_found,
    },
    scope,
    scope::EnvScope,
    sealing::open,
    validate,
};
use crate::{
    audit,
    crypto::DataKey,
    events::EventType,
    identity::{
        Principal,
        policy::{Action, Subject},
    },
    store::entities::{secret, secret_version},
};

/// A plaintext secret value. Its `Debug` never shows the value, so it cannot leak through logs.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(pub(super) Zeroizing<String>);

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

/// [`SecretsError::PermissionsChanged`] unless the permission version `current` is the one `assumed`.
pub(super) fn unmoved(current: i64, assumed: i64) -> Result<(), SecretsError> {
    match current == assumed {
        true => Ok(()),
        false => Err(SecretsError::PermissionsChanged),
    }
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

impl Vault {
    /// Creates a secret at version 1; missing folders on its path are created.
    pub async fn create_secret(
        &self,
        caller: &Principal,
        addr: &SecretAddress,
        value: &str,
        comment: &str,
    ) -> Result<SecretRecord, SecretsError> {
        let checked = (|| {
            let path = validate::folder_path("secret_path", &addr.path)?;
            validate::secret_key("key", &addr.key)?;
            validate::secret_value("value", value)?;
            validate::comment("comment", comment)?;
            Ok(path)
        })();
        let path = self.confirmed_input(caller, checked).await?;
        let input =
            SecretInput { key: addr.key.clone(), value: Zeroizing::new(value.to_owned()), comment: comment.to_owned() };
        let (txn, scope) = self.begin_secret_write(caller, &addr.project_id, &addr.environment).await?;
        scope.require(Subject::Secrets, Action::Create, &path)?;
        let dk = self.data_key(&scope.project)?;
        let inputs = std::slice::from_ref(&input);
        let row =
            insert_new(&txn, &dk, &scope, &path, inputs).pop().ok_or_else(|| not_found(&scope, &path, &input.key))?;
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
        commit_inserts(txn, self.store.conn(), &scope, &path, inputs).await?;
        Ok(record(&scope, row, None))
    }

    /// Reads a secret with its value: the current version, or `version` when non-zero. With `include_imports`,
    /// a key missing from the folder is looked up in its imports (later imports first).
    ///
    /// For an [`unconfirmed`](Principal::unconfirmed) caller the permission version is read by the statement
    /// that reads the row, or, when the answer comes before or without it, before the answer is given; if it
    /// moved, nothing is answered, audited or returned but [`SecretsError::PermissionsChanged`].
    pub async fn get_secret(
        &self,
        caller: &Principal,
        addr: &SecretAddress,
        include_imports: bool,
        version: u32,
    ) -> Result<SecretRecord, SecretsError> {
        let Some(assumed) = caller.assumed_version() else {
            return self.read_secret(caller, addr, include_imports, version, None).await;
        };
        let mut confirmed = false;
        let answer = self.read_secret(caller, addr, include_imports, version, Some((assumed, &mut confirmed))).await;
        if !confirmed {
            self.confirm(assumed).await?;
        }
        answer
    }

    /// Fails with [`SecretsError::PermissionsChanged`] unless the permission version is `assumed`.
    async fn confirm(&self, assumed: i64) -> Result<(), SecretsError> {
        unmoved(self.store.permission_version().await?, assumed)
    }

    /// `checked`, a request's input checked before anything is read: an error in it is answered to an
    /// [`unconfirmed`](Principal::unconfirmed) caller only once its permission version is confirmed, like any
    /// other answer (a revoked token is told so, not what was wrong with its request).
    pub(super) async fn confirmed_input<T>(
        &self,
        caller: &Principal,
        checked: Result<T, SecretsError>,
    ) -> Result<T, SecretsError> {
        if let (Err(_), Some(assumed)) = (&checked, caller.assumed_version()) {
            self.confirm(assumed).await?;
        }
        checked
    }

    /// [`Vault::get_secret`]; `confirm`: the version an unconfirmed caller assumed, and where to note that the
    /// row's statement confirmed it.
    async fn read_secret(
        &self,
        caller: &Principal,
        addr: &SecretAddress,
        include_imports: bool,
        version: u32,
        confirm: Option<(i64, &mut bool)>,
    ) -> Result<SecretRecord, SecretsError> {
        let path = validate::folder_path("secret_path", &addr.path)?;
        validate::secret_key("key", &addr.key)?;
        let db = self.store.conn();
        let scope = self.read_scope(caller, &addr.project_id, &addr.environment).await?;
        scope.require(Subject::Secrets, Action::Read, &path)?;
        let row = match confirm {
            None => self.current_row(&scope.env.id, &path, &addr.key).await?,
            Some((assumed, confirmed)) => {
                let found = find_with_permission_version(db, &scope.env.id, &path, &addr.key).await?;
                // Imports are read, and a read audited, only on confirmed permissions: without a row, read apart.
                let read = found.as_ref().map(|(_, version)| *version);
                let current = self.store.permission_version_read_or_on(read, db).await?;
                *confirmed = true;
                unmoved(current, assumed)?;
                found.map(|(row, _)| row)
            }
        };
        let Some(row) = row else {
            if include_imports
                && version == 0
                && let Some(found) = self.find_imported(&scope, &path, &addr.key).await?
            {
                audit::record_read(&self.store, caller, read_entry("get-secret", &scope, &path, Some(&found))).await?;
                return Ok(found);
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
        let checked = (|| {
            let path = validate::folder_path("secret_path", &addr.path)?;
            validate::secret_key("key", &addr.key)?;
            validate::secret_value("value", value)?;
            if let Some(comment) = comment {
                validate::comment("comment", comment)?;
            }
            expected::validate_one(expected_version)?;
            Ok(path)
        })();
        let path = self.confirmed_input(caller, checked).await?;
        let (txn, scope) = self.begin_secret_write(caller, &addr.project_id, &addr.environment).await?;
        scope.require(Subject::Secrets, Action::Edit, &path)?;
        let dk = self.data_key(&scope.project)?;
        let row = find_for_write(&txn, &scope.env.id, &path, &addr.key)
            .await?
            .ok_or_else(|| not_found(&scope, &path, &addr.key))?;
        expected::require(&scope, &row, expected_version, "")?;
        let row = next_version(&txn, &dk, &scope, row, value, comment);
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
        let checked = (|| {
            let path = validate::folder_path("secret_path", &addr.path)?;
            validate::secret_key("key", &addr.key)?;
            expected::validate_one(expected_version)?;
            Ok(path)
        })();
        let path = self.confirmed_input(caller, checked).await?;
        let (txn, scope) = self.begin_secret_write(caller, &addr.project_id, &addr.environment).await?;
        scope.require(Subject::Secrets, Action::Delete, &path)?;
        let row = find_for_write(&txn, &scope.env.id, &path, &addr.key)
            .await?
            .ok_or_else(|| not_found(&scope, &path, &addr.key))?;
        expected::require(&scope, &row, expected_version, "")?;
        audit::record(&txn, caller, secret_entry("delete-secret", &scope, &row));
        let gone = [Changed::deleted(&path, &addr.key, row.version)];
        delete_at_commit(&txn, [row.id.as_str()]);
        changes::secrets_changed(&txn, &scope, caller, EventType::Delete, "delete-secret", &gone).await?;
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
        let (txn, scope) = self.begin_secret_write(caller, &addr.project_id, &addr.environment).await?;
        scope.require(Subject::Secrets, Action::Edit, &path)?;
        let dk = self.data_key(&scope.project)?;
        let row = find_for_write(&txn, &scope.env.id, &path, &addr.key)
            .await?
            .ok_or_else(|| not_found(&scope, &path, &addr.key))?;
        expected::require(&scope, &row, expected_version, "")?;
        let old = secret_version::Entity::find()
            .filter(secret_version::Column::SecretId.eq(&row.id))
            .filter(secret_version::Column::Version.eq(version as i32))
            .one(&*txn)
            .await?
            .ok_or_else(|| SecretsError::NotFound(format!("version {version} of secret '{}'", addr.key)))?;
        let value = open(&dk, &scope, &row, old.version, &old.sealed_value)?;
        let row = next_version(&txn, &dk, &scope, row, value.expose(), Some(&old.comment));
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

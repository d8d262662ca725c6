//! Batch writes of secrets in one folder: all or nothing, each in one transaction, with the statements of a
//! batch of one where the database allows (one read of the keys, bulk inserts and deletes).

use std::collections::{HashMap, HashSet};

use super::{
    SecretsError, Vault,
    audit_entries::batch_entry,
    changes::{self, Changed},
    expected,
    rows::{commit_inserts, delete_at_commit, find_keys_for_write, insert_new, next_version, not_found},
    validate,
    values::{SecretInput, SecretRecord, record},
};
use crate::{
    audit,
    events::EventType,
    identity::{
        Principal,
        policy::{Action, Subject},
    },
    store::{DbError, entities::secret},
};

/// Attempts of an upsert batch that loses races to concurrent creates of its keys before it answers ABORTED.
const UPSERT_ATTEMPTS: u32 = 3;

/// The folder a batch writes in, as the caller named it.
#[derive(Debug, Clone, Copy)]
pub struct FolderAddress<'a> {
    pub project_id: &'a str,
    pub environment: &'a str,
    /// Not yet normalised.
    pub path: &'a str,
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
    /// Creates several secrets in one folder in one transaction: any failure writes nothing.
    pub async fn batch_create_secrets(
        &self,
        caller: &Principal,
        folder: FolderAddress<'_>,
        inputs: &[SecretInput],
    ) -> Result<Vec<SecretRecord>, SecretsError> {
        let path = validate::folder_path("secret_path", folder.path)?;
        validate_batch(inputs)?;
        let (txn, scope) = self.begin_secret_write(caller, folder.project_id, folder.environment).await?;
        scope.require(Subject::Secrets, Action::Create, &path)?;
        let dk = self.data_key(&scope.project)?;
        let rows = insert_new(&txn, &dk, &scope, &path, inputs);
        let changed: Vec<_> = rows.iter().map(|r| Changed::written(&path, r)).collect();
        changes::secrets_changed(&txn, &scope, caller, EventType::Create, "create-secrets-batch", &changed).await?;
        audit::record(
            &txn,
            caller,
            batch_entry("create-secrets-batch", &scope, &path, rows.iter().map(|r| r.key.as_str())),
        );
        commit_inserts(txn, self.store.conn(), &scope, &path, inputs).await?;
        Ok(rows.into_iter().map(|row| record(&scope, row, None)).collect())
    }

    /// Updates several secrets of one folder in one transaction: any failure (a version other than the one in
    /// `expected_versions` included) writes nothing. An empty comment keeps the secret's current comment. With
    /// `allow_missing`, keys that do not exist are created in the same transaction (an upsert of the batch).
    pub async fn batch_update_secrets(
        &self,
        caller: &Principal,
        folder: FolderAddress<'_>,
        inputs: &[SecretInput],
        expected_versions: &HashMap<String, u32>,
        allow_missing: bool,
    ) -> Result<Vec<SecretRecord>, SecretsError> {
        let path = validate::folder_path("secret_path", folder.path)?;
        validate_batch(inputs)?;
        expected::validate_batch(expected_versions, inputs.iter().map(|i| i.key.as_str()))?;
        // An upsert that creates a key which a concurrent request (another transaction on PostgreSQL, maybe on
        // another instance) creates too loses once that request commits: the unique index refuses the row. Run
        // again, it finds the key and updates it, as an upsert should. (Only keys this attempt found missing are
        // inserted, so in an upsert a taken key means exactly that race.)
        let lost_race = |error: &SecretsError| {
            allow_missing && matches!(error, SecretsError::Db(DbError::Duplicate) | SecretsError::AlreadyExists(_))
        };
        let mut attempt = 1;
        loop {
            let once = self.update_batch_once(caller, folder, &path, inputs, expected_versions, allow_missing).await;
            match once {
                Err(error) if lost_race(&error) && attempt < UPSERT_ATTEMPTS => attempt += 1,
                Err(error) if lost_race(&error) => {
                    return Err(SecretsError::Aborted(format!(
                        "concurrent requests kept creating keys of this batch ({UPSERT_ATTEMPTS} attempts); retry"
                    )));
                }
                other => return other,
            }
        }
    }

    /// One attempt of [`Vault::batch_update_secrets`], in one transaction.
    async fn update_batch_once(
        &self,
        caller: &Principal,
        folder: FolderAddress<'_>,
        path: &str,
        inputs: &[SecretInput],
        expected_versions: &HashMap<String, u32>,
        allow_missing: bool,
    ) -> Result<Vec<SecretRecord>, SecretsError> {
        let (txn, scope) = self.begin_secret_write(caller, folder.project_id, folder.environment).await?;
        scope.require(Subject::Secrets, Action::Edit, path)?;
        if allow_missing {
            scope.require(Subject::Secrets, Action::Create, path)?;
        }
        let dk = self.data_key(&scope.project)?;
        let mut existing =
            find_keys_for_write(&txn, &scope.env.id, path, inputs.iter().map(|i| i.key.as_str())).await?;
        // Every key is checked, in order, before anything is written.
        let mut missing = Vec::new();
        for (i, input) in inputs.iter().enumerate() {
            let expected = expected_versions.get(&input.key).copied();
            match existing.get(&input.key) {
                Some(row) => expected::require(&scope, row, expected, &format!("secrets[{i}]: "))?,
                None if allow_missing && expected.is_none() => missing.push(input.clone()),
                None => return Err(not_found(&scope, path, &input.key)),
            }
        }
        // Racing creates of these keys: the unique index refuses the loser, which runs again (`update_batch`).
        let mut created: HashMap<String, secret::Model> =
            insert_new(&txn, &dk, &scope, path, &missing).into_iter().map(|row| (row.key.clone(), row)).collect();
        let mut rows = Vec::with_capacity(inputs.len());
        for input in inputs {
            let row = match existing.remove(&input.key) {
                Some(row) => {
                    let comment = (!input.comment.is_empty()).then_some(input.comment.as_str());
                    next_version(&txn, &dk, &scope, row, &input.value, comment)
                }
                // Checked above: a key that did not exist was created.
                None => created.remove(&input.key).ok_or_else(|| not_found(&scope, path, &input.key))?,
            };
            rows.push(row);
        }
        let new_keys: HashSet<&str> = missing.iter().map(|i| i.key.as_str()).collect();
        let (new, updated): (Vec<_>, Vec<_>) = rows.iter().partition(|r| new_keys.contains(r.key.as_str()));
        for (event, audited, rows) in
            [(EventType::Create, "create-secrets-batch", new), (EventType::Update, "update-secrets-batch", updated)]
        {
            if rows.is_empty() {
                continue;
            }
            let changed: Vec<_> = rows.iter().map(|r| Changed::written(path, r)).collect();
            changes::secrets_changed(&txn, &scope, caller, event, audited, &changed).await?;
            audit::record(&txn, caller, batch_entry(audited, &scope, path, rows.iter().map(|r| r.key.as_str())));
        }
        txn.commit().await?;
        Ok(rows.into_iter().map(|row| record(&scope, row, None)).collect())
    }

    /// Deletes several secrets of one folder in one transaction: a missing key, or one at another version than
    /// `expected_versions` names, deletes nothing.
    pub async fn batch_delete_secrets(
        &self,
        caller: &Principal,
        folder: FolderAddress<'_>,
        keys: &[String],
        expected_versions: &HashMap<String, u32>,
    ) -> Result<(), SecretsError> {
        let path = validate::folder_path("secret_path", folder.path)?;
        validate::batch_keys("keys", keys.iter().map(String::as_str))?;
        expected::validate_batch(expected_versions, keys.iter().map(String::as_str))?;
        let (txn, scope) = self.begin_secret_write(caller, folder.project_id, folder.environment).await?;
        scope.require(Subject::Secrets, Action::Delete, &path)?;
        // One read of every key and one delete, however many there are; every key is checked first, in order.
        let found = find_keys_for_write(&txn, &scope.env.id, &path, keys.iter().map(String::as_str)).await?;
        let mut changed = Vec::with_capacity(keys.len());
        for (i, key) in keys.iter().enumerate() {
            let row = found.get(key).ok_or_else(|| not_found(&scope, &path, key))?;
            expected::require(&scope, row, expected_versions.get(key).copied(), &format!("keys[{i}]: "))?;
            changed.push(Changed::deleted(&path, key, row.version));
        }
        delete_at_commit(&txn, found.values().map(|row| row.id.as_str()));
        changes::secrets_changed(&txn, &scope, caller, EventType::Delete, "delete-secrets-batch", &changed).await?;
        audit::record(
            &txn,
            caller,
            batch_entry("delete-secrets-batch", &scope, &path, keys.iter().map(String::as_str)),
        );
        txn.commit().await?;
        Ok(())
    }
}

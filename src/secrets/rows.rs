//! Secret rows and their version history as stored: finding them, inserting new ones (sealed, in bulk) and
//! writing next versions. Each function runs on the connection or transaction it is given and checks no
//! permission.

use std::collections::HashMap;

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, Select, Set};

use super::{
    SecretsError,
    scope::EnvScope,
    sealing::{binding, binding_at},
    values::SecretInput,
};
use crate::{
    crypto::DataKey,
    store::entities::{secret, secret_version},
};

/// NOT_FOUND for a secret, naming it.
pub(super) fn not_found(scope: &EnvScope, path: &str, key: &str) -> SecretsError {
    SecretsError::NotFound(format!("secret '{key}' at {}:{path}", scope.env.slug))
}

/// The row of one secret.
pub(super) async fn find(
    db: &impl ConnectionTrait,
    env_id: &str,
    path: &str,
    key: &str,
) -> Result<Option<secret::Model>, SecretsError> {
    Ok(in_folder(env_id, path).filter(secret::Column::Key.eq(key)).one(db).await?)
}

/// The secrets of one folder.
fn in_folder(env_id: &str, path: &str) -> Select<secret::Entity> {
    secret::Entity::find().filter(secret::Column::EnvironmentId.eq(env_id)).filter(secret::Column::Path.eq(path))
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
pub(super) async fn find_keys<'a>(
    db: &impl ConnectionTrait,
    env_id: &str,
    path: &str,
    keys: impl IntoIterator<Item = &'a str>,
) -> Result<HashMap<String, secret::Model>, SecretsError> {
    let rows = in_folder(env_id, path).filter(secret::Column::Key.is_in(keys)).all(db).await?;
    Ok(rows.into_iter().map(|row| (row.key.clone(), row)).collect())
}

/// Inserts new secrets of one folder at version 1, in `inputs` order, with three statements however many
/// there are: one read of the keys already taken (ALREADY_EXISTS names the first), one insert of the rows and
/// one of their first versions. Values are sealed before the insert: the seal binds a value to where its
/// secret lives (project, environment, path, key) and to its version, all known before the row exists.
pub(super) async fn insert_new(
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
pub(super) async fn next_version(
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

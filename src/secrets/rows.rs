//! Secret rows and their version history as stored: finding them, inserting new ones (sealed, in bulk) and
//! writing next versions. Each function runs on the connection or transaction it is given and checks no
//! permission.

use std::collections::HashMap;

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, FromQueryResult, IntoActiveModel, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait, Select, Set,
};

use super::{
    SecretsError, folders,
    scope::EnvScope,
    sealing::{binding, binding_at},
    values::SecretInput,
};
use crate::{
    crypto::DataKey,
    store::{
        self, DbError, WriteTxn,
        entities::{secret, secret_version},
    },
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

/// Like [`find`], with the permission version read by the same statement (on PostgreSQL, where reading it is
/// a statement of its own: see `Vault::get_secret`). `None` when there is no such secret.
pub(super) async fn find_with_permission_version(
    db: &impl ConnectionTrait,
    env_id: &str,
    path: &str,
    key: &str,
) -> Result<Option<(secret::Model, i64)>, SecretsError> {
    let query = store::with_permission_version(in_folder(env_id, path).filter(secret::Column::Key.eq(key)));
    let Some(found) = db.query_one_raw(query.build(db.get_database_backend())).await? else { return Ok(None) };
    Ok(Some((secret::Model::from_query_result(&found, "")?, store::permission_version_in(&found)?)))
}

/// The row of one secret, for a write that changes it: on PostgreSQL locked until the transaction ends, so
/// writes of one secret wait for each other (see `scope::env_scope_for_secret_write`).
pub(super) async fn find_for_write(
    txn: &WriteTxn,
    env_id: &str,
    path: &str,
    key: &str,
) -> Result<Option<secret::Model>, SecretsError> {
    Ok(read_for_write(txn, in_folder(env_id, path).filter(secret::Column::Key.eq(key))).await?.pop())
}

/// The rows of `keys` in one folder, by key, for a write that changes them: locked like [`find_for_write`], in
/// key order (the one order every writer uses).
pub(super) async fn find_keys_for_write<'a>(
    txn: &WriteTxn,
    env_id: &str,
    path: &str,
    keys: impl IntoIterator<Item = &'a str>,
) -> Result<HashMap<String, secret::Model>, SecretsError> {
    let query = in_folder(env_id, path).filter(secret::Column::Key.is_in(keys));
    Ok(by_key(read_for_write(txn, query).await?))
}

/// The rows `query` reads, after every write before this one ([`WriteTxn::read_fresh`]), locked until the
/// transaction ends, in key order; as they are where the transaction is the database's only writer (nothing can
/// change them before it commits).
async fn read_for_write(txn: &WriteTxn, query: Select<secret::Entity>) -> Result<Vec<secret::Model>, DbErr> {
    let query = match txn.is_only_writer() {
        true => query,
        false => query.order_by_asc(secret::Column::Key).lock_exclusive(),
    };
    let rows = txn.read_fresh(query.build(txn.get_database_backend())).await?;
    rows.iter().map(|row| secret::Model::from_query_result(row, "")).collect()
}

fn by_key(rows: Vec<secret::Model>) -> HashMap<String, secret::Model> {
    rows.into_iter().map(|row| (row.key.clone(), row)).collect()
}

/// The secrets of one folder.
fn in_folder(env_id: &str, path: &str) -> Select<secret::Entity> {
    secret::Entity::find().filter(secret::Column::EnvironmentId.eq(env_id)).filter(secret::Column::Path.eq(path))
}

/// Writes `row` at `version` with `value` at the transaction's commit ([`WriteTxn::at_commit`]): updates the
/// current row and appends the version.
fn store_version(
    txn: &WriteTxn,
    dk: &DataKey,
    scope: &EnvScope,
    row: secret::Model,
    version: i32,
    value: &str,
    comment: String,
) -> secret::Model {
    let sealed_value = dk.seal_value(binding(scope, &row, version), value.as_bytes());
    let row = secret::Model { version, sealed_value, comment, updated_at: Utc::now(), ..row };
    let update = secret::Entity::update_many()
        .set(row.clone().into_active_model().reset_all())
        .filter(secret::Column::Id.eq(&row.id))
        .into_query();
    let append = secret_version::Entity::insert(version_of(&row)).into_query();
    txn.at_commit([update.into(), append.into()]);
    row
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
    Ok(by_key(in_folder(env_id, path).filter(secret::Column::Key.is_in(keys)).all(db).await?))
}

/// Inserts new secrets of one folder at version 1, in `inputs` order, with the folders of their path that are
/// missing, at the transaction's commit ([`WriteTxn::at_commit`]: on SQLite in the one hand-off that also
/// appends the write's event and audit entry, however many secrets there are; on PostgreSQL in the statement
/// of its changes). Commit with [`commit_inserts`], which names a key already taken. Values are sealed before
/// the insert: the seal binds a value to where its secret lives (project, environment, path, key) and to its
/// version, all known before the row exists.
///
/// The keys are not read first: the unique index refuses a taken key at the commit (`DbError::Duplicate`), which
/// writes nothing of this write (on SQLite the refused insert undoes this write alone, on PostgreSQL it aborts
/// the transaction), and the key is named once its row can be read. A create of a new key costs no statement
/// for the keys it does not find.
pub(super) fn insert_new(
    txn: &WriteTxn,
    dk: &DataKey,
    scope: &EnvScope,
    path: &str,
    inputs: &[SecretInput],
) -> Vec<secret::Model> {
    if inputs.is_empty() {
        return Vec::new();
    }
    const FIRST: i32 = 1;
    let now = Utc::now();
    let rows: Vec<secret::Model> = inputs
        .iter()
        .map(|input| secret::Model {
            id: uuid::Uuid::now_v7().to_string(),
            environment_id: scope.env.id.clone(),
            path: path.to_owned(),
            key: input.key.clone(),
            version: FIRST,
            sealed_value: dk.seal_value(binding_at(scope, path, &input.key, FIRST), input.value.as_bytes()),
            comment: input.comment.clone(),
            created_at: now,
            updated_at: now,
        })
        .collect();
    let insert = secret::Entity::insert_many(rows.iter().map(|row| row.clone().into_active_model().reset_all()));
    let versions = secret_version::Entity::insert_many(rows.iter().map(version_of));
    let folders = folders::ensure_statement(&scope.env.id, path);
    txn.at_commit(folders.into_iter().chain([insert.into_query(), versions.into_query()]).map(Into::into));
    rows
}

/// Commits a transaction that inserted `inputs` ([`insert_new`]). When the unique index refused one of them
/// (its key was taken, before or by a concurrent create), ALREADY_EXISTS names the first taken key that `db` can
/// see, or the one key of a single create (the winner may not be committed yet: an earlier write of the same
/// SQLite write group); a batch whose taken key cannot be seen yet says a concurrent request created it.
pub(super) async fn commit_inserts(
    txn: WriteTxn,
    db: &impl ConnectionTrait,
    scope: &EnvScope,
    path: &str,
    inputs: &[SecretInput],
) -> Result<(), SecretsError> {
    match txn.commit().await.map_err(DbError::from) {
        Err(DbError::Duplicate) => {
            refuse_taken(db, scope, path, inputs).await?;
            match inputs {
                [input] => Err(taken(scope, path, &input.key)),
                _ => Err(DbError::Duplicate.into()),
            }
        }
        other => Ok(other?),
    }
}

/// ALREADY_EXISTS for a secret, naming it.
fn taken(scope: &EnvScope, path: &str, key: &str) -> SecretsError {
    SecretsError::AlreadyExists(format!("secret '{key}' at {}:{path}", scope.env.slug))
}

/// ALREADY_EXISTS naming the first of `inputs` whose key is taken in the folder, if one is.
async fn refuse_taken(
    db: &impl ConnectionTrait,
    scope: &EnvScope,
    path: &str,
    inputs: &[SecretInput],
) -> Result<(), SecretsError> {
    let found = find_keys(db, &scope.env.id, path, inputs.iter().map(|i| i.key.as_str())).await?;
    match inputs.iter().find(|i| found.contains_key(&i.key)) {
        Some(input) => Err(taken(scope, path, &input.key)),
        None => Ok(()),
    }
}

/// Deletes the secrets `ids` (their versions go with them: the foreign key cascades) at the transaction's
/// commit ([`WriteTxn::at_commit`]).
pub(super) fn delete_at_commit<'a>(txn: &WriteTxn, ids: impl IntoIterator<Item = &'a str>) {
    let delete = secret::Entity::delete_many().filter(secret::Column::Id.is_in(ids)).into_query();
    txn.at_commit([delete.into()]);
}

/// Writes `value` as the next version of `row` at the transaction's commit; `comment: None` keeps the current
/// one.
pub(super) fn next_version(
    txn: &WriteTxn,
    dk: &DataKey,
    scope: &EnvScope,
    row: secret::Model,
    value: &str,
    comment: Option<&str>,
) -> secret::Model {
    let comment = comment.map_or_else(|| row.comment.clone(), str::to_owned);
    let version = row.version + 1;
    store_version(txn, dk, scope, row, version, value, comment)
}

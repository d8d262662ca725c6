//! The root key check: a value sealed with the root key and stored with the data (`root_key_check`, one row).
//! A start whose key does not open it is refused before anything listens, instead of every read failing
//! later with `DATA_LOSS`.
//!
//! A database from before the check (0.1.0) has none: its first start with this version checks the key
//! against every sealed value instead (`sealed::verify_all`), and only when they all open seals the check.

use chrono::Utc;
use sea_orm::{ConnectionTrait, DbErr, EntityTrait, Set, sea_query::OnConflict};

use super::{KeyError, KeySource, sealed};
use crate::{
    crypto::RootKey,
    store::{Store, entities::root_key_check},
};

/// The check's row id (the table holds this one row).
const CHECK_ID: i32 = 1;

/// What to do about a key that does not match, by where it came from.
const FILE_HINT: &str = "start hush with the key this data was sealed with. If the data came from another data \
     dir or a backup, copy that dir's root.key here or give its key with --root-key or --root-key-command; if \
     `hush keys rotate` ran, the new key is in the file it was given as --new-root-key-file";
const GIVEN_HINT: &str = "start hush with the key this data was sealed with. If `hush keys rotate` ran, the new \
     key is in the file it was given as --new-root-key-file: store it where this key comes from";

/// The stored check, if there is one.
pub async fn stored(conn: &impl ConnectionTrait) -> Result<Option<Vec<u8>>, DbErr> {
    Ok(root_key_check::Entity::find_by_id(CHECK_ID).one(conn).await?.map(|row| row.sealed_check))
}

/// Whether `key` opens the stored check (readiness: a rotation by another process shows up here).
pub async fn matches(conn: &impl ConnectionTrait, key: &RootKey) -> Result<bool, DbErr> {
    Ok(stored(conn).await?.is_some_and(|sealed| key.opens_check(&sealed)))
}

/// Refuses `key` unless it opens the stored check; seals the check when there is none yet (first start, or
/// the first start after an upgrade from 0.1.0, once every sealed value opens with `key`).
pub async fn verify_or_seal(store: &Store, key: &RootKey, source: &KeySource) -> Result<(), KeyError> {
    if stored(store.conn()).await?.is_none() {
        let verified = sealed::verify_all(store.conn(), key, source).await?;
        let txn = store.begin_write().await?;
        // Instances starting together may race to seal: the first wins, the others check against it below.
        root_key_check::Entity::insert(root_key_check::ActiveModel {
            id: Set(CHECK_ID),
            sealed_check: Set(key.seal_check()),
            sealed_at: Set(Utc::now()),
        })
        .on_conflict(OnConflict::column(root_key_check::Column::Id).do_nothing().to_owned())
        .exec_without_returning(&*txn)
        .await?;
        txn.commit().await?;
        tracing::info!(verified, "sealed the root key check: a start with another root key is refused from now on");
    }
    if matches(store.conn(), key).await? { Ok(()) } else { Err(mismatch(source)) }
}

/// The refusal of a key that does not match this data.
pub(super) fn mismatch(source: &KeySource) -> KeyError {
    let hint = if source.key_file().is_some() { FILE_HINT } else { GIVEN_HINT };
    KeyError::Mismatch { origin: source.origin(), hint }
}

/// Seals the check with `new` in `txn` (rotation; the caller has verified the current key under the exclusive
/// database lock). It is the transaction's first statement, and a write: on SQLite a transaction that writes
/// first waits for the writer lock, while one that reads first fails at once if another connection writes.
pub(super) async fn reseal(txn: &impl ConnectionTrait, new: &RootKey) -> Result<(), DbErr> {
    let row = root_key_check::ActiveModel {
        id: Set(CHECK_ID),
        sealed_check: Set(new.seal_check()),
        sealed_at: Set(Utc::now()),
    };
    root_key_check::Entity::update(row).exec(txn).await?;
    Ok(())
}

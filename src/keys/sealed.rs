//! Every value in the database sealed with the root key. A new sealed column must be listed in [`KINDS`], or a
//! rotation would leave it under the old key and an upgrade's first start would not check it.
//!
//! Values are read a page at a time in id order, so a database with very many projects is checked and
//! re-sealed in constant memory.

use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, sea_query::Expr,
};

use super::{KeyError, KeySource};
use crate::{
    crypto::{CryptoError, RootKey},
    store::entities::{audit_stream, project},
};

/// Values read per query.
const PAGE: u64 = 500;

/// A kind of sealed value.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// `projects.sealed_data_key`: a project's data key, bound to the project id.
    ProjectDataKey,
    /// `audit_streams.sealed_config`: an audit stream's configuration, a record bound to the stream id.
    StreamConfig,
}

const KINDS: [Kind; 2] = [Kind::ProjectDataKey, Kind::StreamConfig];

impl Kind {
    /// Names one value, for messages.
    fn describe(self, id: &str) -> String {
        match self {
            Self::ProjectDataKey => format!("project '{id}' data key"),
            Self::StreamConfig => format!("audit stream '{id}' configuration"),
        }
    }

    /// `(id, sealed)` of the values after `after` in id order.
    async fn page(self, conn: &impl ConnectionTrait, after: &str) -> Result<Vec<(String, Vec<u8>)>, DbErr> {
        match self {
            Self::ProjectDataKey => {
                page_of::<project::Entity>(conn, project::Column::Id, project::Column::SealedDataKey, after).await
            }
            Self::StreamConfig => {
                page_of::<audit_stream::Entity>(
                    conn,
                    audit_stream::Column::Id,
                    audit_stream::Column::SealedConfig,
                    after,
                )
                .await
            }
        }
    }

    /// Whether `sealed` opens with `key`.
    fn opens(self, key: &RootKey, id: &str, sealed: &[u8]) -> bool {
        match self {
            Self::ProjectDataKey => key.open_data_key(id, sealed).is_ok(),
            Self::StreamConfig => key.open_record(crate::streams::SEAL_KIND, id, sealed).is_ok(),
        }
    }

    /// `sealed` re-sealed from `old` to `new`.
    fn reseal(self, old: &RootKey, new: &RootKey, id: &str, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        match self {
            Self::ProjectDataKey => old.reseal_data_key(new, id, sealed),
            Self::StreamConfig => old.reseal_record(new, crate::streams::SEAL_KIND, id, sealed),
        }
    }

    /// Stores the re-sealed value of `id`.
    async fn store(self, conn: &impl ConnectionTrait, id: &str, sealed: Vec<u8>) -> Result<(), DbErr> {
        match self {
            Self::ProjectDataKey => {
                store_one::<project::Entity>(conn, project::Column::Id, project::Column::SealedDataKey, id, sealed)
                    .await
            }
            Self::StreamConfig => {
                let columns = (audit_stream::Column::Id, audit_stream::Column::SealedConfig);
                store_one::<audit_stream::Entity>(conn, columns.0, columns.1, id, sealed).await
            }
        }
    }
}

async fn page_of<E: EntityTrait>(
    conn: &impl ConnectionTrait,
    id: E::Column,
    sealed: E::Column,
    after: &str,
) -> Result<Vec<(String, Vec<u8>)>, DbErr> {
    E::find()
        .select_only()
        .column(id)
        .column(sealed)
        .filter(id.gt(after))
        .order_by_asc(id)
        .limit(PAGE)
        .into_tuple()
        .all(conn)
        .await
}

async fn store_one<E: EntityTrait>(
    conn: &impl ConnectionTrait,
    id: E::Column,
    sealed: E::Column,
    value_id: &str,
    value: Vec<u8>,
) -> Result<(), DbErr> {
    E::update_many().col_expr(sealed, Expr::value(value)).filter(id.eq(value_id)).exec(conn).await?;
    Ok(())
}

/// Calls `each` with every sealed value, in kind and id order; stops at its first error.
async fn for_each<C: ConnectionTrait>(
    conn: &C,
    mut each: impl AsyncFnMut(Kind, String, Vec<u8>) -> Result<(), KeyError>,
) -> Result<(), KeyError> {
    for kind in KINDS {
        let mut after = String::new();
        loop {
            let page = kind.page(conn, &after).await?;
            let Some((last, _)) = page.last() else { break };
            after = last.clone();
            for (id, sealed) in page {
                each(kind, id, sealed).await?;
            }
        }
    }
    Ok(())
}

/// Whether anything is sealed with the root key.
pub async fn any(conn: &impl ConnectionTrait) -> Result<bool, DbErr> {
    for kind in KINDS {
        if !kind.page(conn, "").await?.is_empty() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Checks that every sealed value opens with `key`; returns how many there are. When none opens the key is
/// another one ([`KeyError::Mismatch`]); when some do, the others are damaged ([`KeyError::Damaged`]).
pub async fn verify_all(conn: &impl ConnectionTrait, key: &RootKey, source: &KeySource) -> Result<usize, KeyError> {
    let (mut opened, mut total, mut first_failure) = (0, 0, None);
    for_each(conn, async |kind, id, sealed| {
        total += 1;
        if kind.opens(key, &id, &sealed) {
            opened += 1;
        } else {
            first_failure.get_or_insert_with(|| kind.describe(&id));
        }
        Ok(())
    })
    .await?;
    match first_failure {
        None => Ok(total),
        Some(_) if opened == 0 => Err(super::check::mismatch(source)),
        Some(first) => Err(KeyError::Damaged { origin: source.origin(), opened, total, first }),
    }
}

/// What a rotation re-sealed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Resealed {
    /// Project data keys.
    pub project_keys: usize,
    /// Audit stream configurations.
    pub stream_configs: usize,
}

/// Re-seals every sealed value from `old` to `new` within `txn`. The first value `old` does not open fails
/// the whole rotation (naming it), so nothing is ever left that neither key opens.
pub async fn reseal_all(txn: &impl ConnectionTrait, old: &RootKey, new: &RootKey) -> Result<Resealed, KeyError> {
    let mut done = Resealed::default();
    for_each(txn, async |kind, id, sealed| {
        let resealed = kind.reseal(old, new, &id, &sealed).map_err(|_| KeyError::Unreadable(kind.describe(&id)))?;
        kind.store(txn, &id, resealed).await?;
        match kind {
            Kind::ProjectDataKey => done.project_keys += 1,
            Kind::StreamConfig => done.stream_configs += 1,
        }
        Ok(())
    })
    .await?;
    Ok(done)
}

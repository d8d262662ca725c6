//! Every value in the database sealed with the root key. A new sealed column must be listed in [`KINDS`], or a
//! rotation would leave it under the old key and an upgrade's first start would not check it.
//!
//! Values are read a page at a time in id order, so a database with very many projects is checked and
//! re-sealed in constant memory.

use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::{KeyError, KeySource};
use crate::{
    crypto::RootKey,
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

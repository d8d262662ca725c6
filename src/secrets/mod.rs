//! Projects, environments, folders, secrets, versions and imports: the secrets domain, free of transport types.

mod audit_entries;
mod batches;
mod changes;
mod expected;
mod folders;
mod imports;
mod listing;
mod projects;
mod row_cache;
mod rows;
mod scope;
mod scope_cache;
mod sealing;
mod subtree;
pub mod validate;
mod values;
mod visibility;

use std::sync::Arc;

use sea_orm::DbErr;

use crate::{
    crypto::{CryptoError, RootKey},
    store::{DbError, Store},
};

pub use batches::FolderAddress;
pub use folders::FolderRecord;
pub use imports::ImportRecord;
pub use listing::{MAX_PAGE_BYTES, MAX_PAGE_TOKEN_LEN, MAX_SCANNED_PER_PAGE, SecretListing, SecretPage};
pub use projects::{EnvironmentRecord, ProjectPage, ProjectRecord};
pub use values::{SecretAddress, SecretInput, SecretRecord, SecretValue, VersionRecord};
pub use visibility::sees_project;

/// Errors of the secrets domain.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// A request field is malformed or out of bounds.
    #[error("{field}: {reason}")]
    InvalidArgument {
        /// The request field, e.g. `secret_path` or `secrets[3].key`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The caller's policies do not allow the request.
    #[error(transparent)]
    PermissionDenied(#[from] crate::identity::Denied),
    /// The addressed thing does not exist (or belongs to another org).
    #[error("{0} not found")]
    NotFound(String),
    /// The thing to create exists already.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The request is valid but the current state forbids it.
    #[error("{0}")]
    FailedPrecondition(String),
    /// A stored value failed to decrypt: it was tampered with or moved to another record.
    #[error("stored value of {what} failed to decrypt: {source}")]
    Integrity {
        /// The record whose value failed.
        what: String,
        /// The cryptographic failure.
        source: CryptoError,
    },
    /// The secret is not at the version the caller expected (optimistic concurrency).
    #[error("{0}")]
    Aborted(String),
    /// The permission version moved since the caller's principal was resolved without reading it
    /// ([`Principal::unconfirmed`](crate::identity::Principal::unconfirmed)): the request must be authenticated
    /// strictly and redone. The API layer does so; a caller sees it only if that is not wired.
    #[error("permissions changed while the request ran; send it again")]
    PermissionsChanged,
    /// The database failed, or refused the change (see [`DbError`]).
    #[error("database: {0}")]
    Db(#[from] DbError),
}

impl From<DbErr> for SecretsError {
    fn from(error: DbErr) -> Self {
        Self::Db(error.into())
    }
}

/// The secrets domain's entry point: every operation is scoped to the caller's org.
#[derive(Clone)]
pub struct Vault {
    store: Store,
    root_key: Arc<RootKey>,
    scopes: Arc<scope_cache::ScopeCache>,
    rows: Arc<row_cache::RowCache>,
}

impl Vault {
    /// A vault over `store`, sealing project keys with `root_key`.
    pub fn new(store: Store, root_key: Arc<RootKey>) -> Self {
        Self { store, root_key, scopes: Arc::default(), rows: Arc::default() }
    }
}

//! Machine identities, authentication and authorization: bootstrap of the first org admin, Login with client
//! id + secret, bearer tokens, identities and client secrets, roles and the policy engine.

pub mod access;
mod bootstrap;
mod cache;
mod credentials;
mod escalation;
pub mod glob;
mod glob_relations;
mod login;
pub mod login_throttle;
mod manage;
mod members;
mod no_escalation;
pub mod policy;
mod roles;

use sea_orm::DbErr;

use crate::store::DbError;

pub use access::{Denied, Grants};
pub use bootstrap::{BootstrapCredentials, bootstrap};
pub use cache::{AccessMemo, TokenCache};
pub use login::{LoginOutcome, RejectedToken, login, revalidate};
pub use login_throttle::LoginThrottle;
pub use manage::{ClientSecretRecord, IdentityPage, IdentityRecord, NewClientSecret};
pub use members::{MemberPage, MemberRecord};
pub use roles::{RoleRecord, add_membership};

/// Who is calling: resolved once per request from the bearer token.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The identity's id.
    pub identity_id: String,
    /// The identity's org.
    pub org_id: String,
    /// The identity's name.
    pub name: String,
    /// The id of the access token used, so the token can revoke itself.
    pub token_id: String,
    /// When that token expires; long-lived streams end then.
    pub token_expires_at: chrono::DateTime<chrono::Utc>,
    /// Where the request came from, for audit entries.
    pub meta: crate::audit::RequestMeta,
    /// The grants this token's requests learned at the permission version its request started at; `None`
    /// outside the request path (long-lived streams re-check from the database).
    pub memo: Option<std::sync::Arc<AccessMemo>>,
    /// The memo's version was assumed, not read by this request (see `TokenCache::authenticate`): whatever
    /// serves the request reads the version before it answers and asks for the request to be redone
    /// (`SecretsError::PermissionsChanged`) when it moved.
    pub unconfirmed: bool,
}

impl Principal {
    /// The permission version assumed for an [`unconfirmed`](Self::unconfirmed) caller, which its request must
    /// confirm; `None` when there is nothing to confirm.
    pub fn assumed_version(&self) -> Option<i64> {
        self.memo.as_ref().filter(|_| self.unconfirmed).map(|memo| memo.version())
    }
}

/// Errors of the identity module.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Credentials or token are missing, wrong, expired or revoked. The message never says which.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// Too many failed logins from this address (for this client id): try again after `retry_after`.
    #[error("too many failed logins; retry after {} s", retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0))]
    Throttled {
        /// How long the caller must wait.
        retry_after: std::time::Duration,
    },
    /// The caller's policies do not allow the request.
    #[error(transparent)]
    PermissionDenied(#[from] Denied),
    /// A request field is malformed.
    #[error("{field}: {reason}")]
    InvalidArgument {
        /// The request field.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The addressed identity, secret, role or project does not exist in the caller's org.
    #[error("{0} not found")]
    NotFound(String),
    /// The thing to create exists already.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The request is valid but the current state forbids it.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The database failed, or refused the change (see [`DbError`]).
    #[error("database: {0}")]
    Db(#[from] DbError),
    /// A credentials file could not be written.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl From<DbErr> for IdentityError {
    fn from(error: DbErr) -> Self {
        Self::Db(error.into())
    }
}

impl IdentityError {
    fn invalid(field: &str, reason: impl Into<String>) -> Self {
        Self::InvalidArgument { field: field.to_owned(), reason: reason.into() }
    }
}

/// The identity domain's entry point for management calls.
#[derive(Clone)]
pub struct Identities {
    store: crate::store::Store,
}

impl Identities {
    /// Management over `store`.
    pub fn new(store: crate::store::Store) -> Self {
        Self { store }
    }
}

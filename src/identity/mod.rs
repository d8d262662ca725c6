//! Machine identities and authentication: bootstrap of the first org admin, Login with client id + secret,
//! and resolving bearer tokens to a [`Principal`].

mod bootstrap;
mod credentials;
mod login;

use sea_orm::DbErr;

pub use bootstrap::{BootstrapCredentials, bootstrap};
pub use login::{LoginOutcome, authenticate, login};

/// Who is calling: resolved once per request from the bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The identity's id.
    pub identity_id: String,
    /// The identity's org.
    pub org_id: String,
    /// The identity's name.
    pub name: String,
    /// The id of the access token used, so the token can revoke itself.
    pub token_id: String,
}

/// Errors of the identity module.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Credentials or token are missing, wrong, expired or revoked. The message never says which.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] DbErr),
    /// A credentials file could not be written.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

//! The root key's life (docs/ARCHITECTURE.md, "Root key"): where it comes from (`source`, `key_file`), the
//! check that refuses a start with another key (`check`), everything it seals (`sealed`) and rotation to a new
//! key (`rotate`).

pub mod check;
mod key_file;
pub mod rotate;
mod sealed;
mod source;

use std::path::Path;

use sea_orm::DbErr;

pub use sealed::Resealed;
pub use source::KeySource;

use crate::{config::RootKeyFlags, crypto::RootKey, store::Store};

/// Why the root key cannot be used. Messages never hold key material, command output or secret values.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Both flags (or environment variables) name a root key.
    #[error(
        "both --root-key (HUSH_ROOT_KEY) and --root-key-command (HUSH_ROOT_KEY_COMMAND) are set: give the root key \
         one way only"
    )]
    TwoSources,
    /// The key from `origin` is not base64 of 32 bytes.
    #[error("the root key from {origin} is not base64 of exactly 32 bytes")]
    Malformed {
        /// Where the key came from.
        origin: String,
    },
    /// `--root-key-command` failed.
    #[error("--root-key-command {0}")]
    Command(String),
    /// A key file could not be read or written.
    #[error("root key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// No key was given and the data dir has no key file, but the database holds sealed data.
    #[error(
        "{path} does not exist, but this database holds data sealed with a root key: put that key there, or give \
         it with --root-key or --root-key-command (a restored backup needs the key of the server it came from)"
    )]
    MissingKeyFile {
        /// The key file that should hold the key.
        path: String,
    },
    /// The key is not the one the data was sealed with.
    #[error("the root key from {origin} does not match this data: {hint}")]
    Mismatch {
        /// Where the key came from.
        origin: String,
        /// What to do about it.
        hint: &'static str,
    },
    /// The key opens some sealed values but not all: those are damaged (or were written with another key).
    #[error(
        "the root key from {origin} opens {opened} of the {total} sealed values in this database but not {first}: \
         that value is damaged or was sealed with another key (restore it from a backup)"
    )]
    Damaged {
        /// Where the key came from.
        origin: String,
        /// Values that opened.
        opened: usize,
        /// Sealed values in all.
        total: usize,
        /// The first that did not open, e.g. `project '…' data key`.
        first: String,
    },
    /// A rotation found a value the current key does not open; nothing was changed.
    #[error(
        "{0} does not open with the current root key, so the rotation stopped and changed nothing (the current key \
         still opens everything else); restore that value from a backup, or delete what it belongs to, and rotate \
         again"
    )]
    Unreadable(String),
    /// `--new-root-key-file` names the data dir's key file or its staged successor.
    #[error(
        "--new-root-key-file must not be root.key or root.key.next of the data dir (the rotation replaces those): \
         put the new key in a file of its own"
    )]
    NewKeyFileInPlace,
    /// The new key is the current one.
    #[error("the new root key is the current one: nothing to rotate")]
    SameKey,
    /// A server (or another rotation) uses the database.
    #[error("a hush server is using this database (it holds the database lock): stop every `hush serve` on it first")]
    InUse,
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] DbErr),
}

/// The root key `hush serve` runs with: from the flags or the data dir's key file (generated when the database
/// holds nothing sealed yet), checked against the data. A key that does not match is refused here, before
/// anything listens.
pub async fn for_serving(store: &Store, flags: &RootKeyFlags, data_dir: &Path) -> Result<RootKey, KeyError> {
    let source = KeySource::from_flags(flags, data_dir)?;
    let unused = key_file::KeyFile::in_dir(data_dir);
    if source.key_file().is_none() && unused.path().exists() {
        tracing::warn!(path = %unused.path().display(), origin = source.origin(), "the data dir's key file is not used: the root key comes from a flag");
    }
    let key = source.load(store, key_file::Missing::Generate).await?;
    check::verify_or_seal(store, &key, &source).await?;
    Ok(key)
}

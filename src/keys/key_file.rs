//! The root key file in the data dir (`root.key`, 0600), used when no key is given by flag or command.
//!
//! A rotation must never leave the operator without the key the data needs, even if it dies half-way. So it
//! writes the new key to `root.key.next` (synced) before its transaction commits and renames it over
//! `root.key` after. At any moment the key the database's check needs is in `root.key` or in `root.key.next`,
//! and whichever of them opens the check wins on the next start: [`KeyFile::settle`] finishes a rotation that
//! committed (renames `.next` over `root.key`) and removes the `.next` of one that did not.

use std::path::{Path, PathBuf};

use super::{KeyError, check, sealed};
use crate::{crypto::RootKey, store::Store};

/// Name of the root key file in the data dir.
const KEY_FILE: &str = "root.key";
/// Name of the new key a rotation stages next to it until the database uses it.
const STAGED_KEY_FILE: &str = "root.key.next";

/// What to do when the key file does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// Generate a key when the database holds nothing sealed yet (first start).
    Generate,
    /// Refuse.
    Refuse,
}

/// The data dir's key file and its staged successor.
pub struct KeyFile {
    path: PathBuf,
    staged: PathBuf,
}

impl KeyFile {
    /// The key file of `data_dir`.
    pub fn in_dir(data_dir: &Path) -> Self {
        Self { path: data_dir.join(KEY_FILE), staged: data_dir.join(STAGED_KEY_FILE) }
    }

    /// `<data-dir>/root.key`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The key the data needs, from `root.key` or, after a rotation that committed but did not get to rename
    /// its staged key, from `root.key.next` (renamed over `root.key` here).
    pub(super) async fn settle(&self, store: &Store, missing: Missing) -> Result<RootKey, KeyError> {
        let current = read(&self.path)?;
        let staged = match read(&self.staged) {
            // Cut short by a crash before the rotation committed: the data never needed it.
            Err(KeyError::Malformed { .. }) => {
                self.discard_staged();
                tracing::warn!(path = %self.staged.display(), "removed an incomplete staged root key");
                None
            }
            other => other?,
        };
        if let Some(staged) = staged {
            let stored = check::stored(store.conn()).await?;
            let opens = |key: &RootKey| stored.as_deref().is_some_and(|sealed| key.opens_check(sealed));
            if opens(&staged) && !current.as_ref().is_some_and(opens) {
                self.promote()?;
                tracing::info!(path = %self.path.display(), "finished an interrupted root key rotation: the key file now holds the new key");
                return Ok(staged);
            }
            self.discard_staged();
            tracing::warn!(path = %self.staged.display(), "removed a staged root key left by a rotation that did not commit");
        }
        match current {
            Some(key) => Ok(key),
            None if missing == Missing::Generate
                && check::stored(store.conn()).await?.is_none()
                && !sealed::any(store.conn()).await? =>
            {
                let key = RootKey::generate();
                crate::fs_private::write_private_synced(&self.path, key.to_base64().as_bytes())
                    .map_err(|e| self.io(&self.path, e))?;
                Ok(key)
            }
            None => Err(KeyError::MissingKeyFile { path: self.path.display().to_string() }),
        }
    }

    /// Writes `key` to `root.key.next`, on disk before this returns.
    pub(super) fn stage(&self, key: &RootKey) -> Result<(), KeyError> {
        crate::fs_private::write_private_synced(&self.staged, key.to_base64().as_bytes())
            .map_err(|e| self.io(&self.staged, e))
    }

    /// Renames `root.key.next` over `root.key`.
    pub(super) fn promote(&self) -> Result<(), KeyError> {
        crate::fs_private::replace_synced(&self.staged, &self.path).map_err(|e| self.io(&self.path, e))
    }

    /// Removes `root.key.next` (best effort: the next start removes it otherwise).
    pub(super) fn discard_staged(&self) {
        let _ = std::fs::remove_file(&self.staged);
    }

    /// Whether `path` is `root.key` or `root.key.next` (which a rotation replaces or removes).
    pub(super) fn is_one_of_its_files(&self, path: &Path) -> bool {
        // By folder and name, since the files need not exist yet.
        let resolved = |file: &Path| {
            let folder = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            Some(std::fs::canonicalize(folder).ok()?.join(file.file_name()?))
        };
        let theirs = resolved(path);
        theirs.is_some() && (theirs == resolved(&self.path) || theirs == resolved(&self.staged))
    }

    /// `root.key.next`.
    pub(super) fn staged_path(&self) -> &Path {
        &self.staged
    }

    fn io(&self, path: &Path, source: std::io::Error) -> KeyError {
        KeyError::Io { path: path.display().to_string(), source }
    }
}

/// The key in `path`; `None` when the file does not exist.
pub(super) fn read(path: &Path) -> Result<Option<RootKey>, KeyError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let text = zeroize::Zeroizing::new(text);
            RootKey::from_base64(&text)
                .map(Some)
                .map_err(|_| KeyError::Malformed { origin: path.display().to_string() })
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(KeyError::Io { path: path.display().to_string(), source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn its_files_are_recognised_by_any_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let file = KeyFile::in_dir(&dir.path().join("."));
        assert!(file.is_one_of_its_files(&dir.path().join("root.key.next")));
        assert!(file.is_one_of_its_files(&dir.path().join("sub/../root.key")));
        assert!(!file.is_one_of_its_files(&dir.path().join("sub/root.key")));
        assert!(!file.is_one_of_its_files(&dir.path().join("new.key")));
    }
}

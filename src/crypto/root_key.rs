//! The root key: from `HUSH_ROOT_KEY` (base64 of 32 bytes) or a key file generated on first start (mode 0600).

use std::{io, path::Path};

use base64::{Engine, engine::general_purpose::STANDARD};
use zeroize::Zeroizing;

use super::{CryptoError, DataKey, KEY_LEN, associated_data, open, seal};

/// The key that seals every project's data key. Never leaves the process.
pub struct RootKey(Zeroizing<[u8; KEY_LEN]>);

/// Why the root key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RootKeyError {
    /// The configured value is not base64 of exactly 32 bytes.
    #[error("root key must be base64 of exactly {KEY_LEN} bytes")]
    Malformed,
    /// The key file could not be read or written.
    #[error("root key file {path}: {source}")]
    Io {
        /// The key file.
        path: String,
        /// The underlying error.
        source: io::Error,
    },
}

impl RootKey {
    /// Parses base64 (standard alphabet, padded) of 32 bytes.
    pub fn from_base64(encoded: &str) -> Result<Self, RootKeyError> {
        let bytes = Zeroizing::new(STANDARD.decode(encoded.trim()).map_err(|_| RootKeyError::Malformed)?);
        let key: [u8; KEY_LEN] = bytes.as_slice().try_into().map_err(|_| RootKeyError::Malformed)?;
        Ok(Self(Zeroizing::new(key)))
    }

    /// Reads the key file, or creates it with a fresh random key (mode 0600) when it does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, RootKeyError> {
        let io_err = |source| RootKeyError::Io { path: path.display().to_string(), source };
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_base64(&text),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                let key = DataKey::generate();
                crate::fs_private::write_private(path, STANDARD.encode(key.0.as_ref()).as_bytes()).map_err(io_err)?;
                Ok(Self(key.0))
            }
            Err(err) => Err(io_err(err)),
        }
    }

    /// Seals a project's data key, bound to the project id.
    pub fn seal_data_key(&self, project_id: &str, data_key: &DataKey) -> Vec<u8> {
        seal(&self.0, data_key.0.as_ref(), &data_key_binding(project_id))
    }

    /// Opens a project's data key sealed by [`RootKey::seal_data_key`].
    pub fn open_data_key(&self, project_id: &str, sealed: &[u8]) -> Result<DataKey, CryptoError> {
        let plain = open(&self.0, sealed, &data_key_binding(project_id))?;
        let key: [u8; KEY_LEN] = plain.as_slice().try_into().map_err(|_| CryptoError::Truncated)?;
        Ok(DataKey(Zeroizing::new(key)))
    }
}

impl RootKey {
    /// Seals a small record (e.g. an audit stream's credentials) bound to its kind and id.
    pub fn seal_record(&self, kind: &str, id: &str, plaintext: &[u8]) -> Vec<u8> {
        seal(&self.0, plaintext, &associated_data("hush/record/v1", &[kind.as_bytes(), id.as_bytes()]))
    }

    /// Opens a record sealed by [`RootKey::seal_record`] with the same kind and id.
    pub fn open_record(&self, kind: &str, id: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        open(&self.0, sealed, &associated_data("hush/record/v1", &[kind.as_bytes(), id.as_bytes()]))
    }
}

fn data_key_binding(project_id: &str) -> Vec<u8> {
    associated_data("hush/project-data-key/v1", &[project_id.as_bytes()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_wrong_length_and_bad_base64() {
        assert!(matches!(RootKey::from_base64("AAAA"), Err(RootKeyError::Malformed)));
        assert!(matches!(RootKey::from_base64("not base64!"), Err(RootKeyError::Malformed)));
        assert!(RootKey::from_base64(&STANDARD.encode([7u8; 32])).is_ok());
    }

    #[test]
    fn key_file_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("root.key");
        let first = RootKey::load_or_create(&path).unwrap();
        let sealed = first.seal_data_key("p1", &DataKey::generate());
        let second = RootKey::load_or_create(&path).unwrap();
        assert!(second.open_data_key("p1", &sealed).is_ok());
        assert!(second.open_data_key("p2", &sealed).is_err());
    }
}

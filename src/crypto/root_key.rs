//! The root key: 32 bytes that seal every project's data key, every sealed record and the key check. Where it
//! comes from (flag, command, data dir file) is `crate::keys`' business; this file only seals and opens.

use base64::{Engine, engine::general_purpose::STANDARD};
use zeroize::Zeroizing;

use super::{CryptoError, DataKey, KEY_LEN, associated_data, open, seal};

/// What the key check seals: a fixed text, so opening it proves the key is the one the data was sealed with.
const CHECK_PLAINTEXT: &[u8] = b"hush root key check";

/// The key that seals every project's data key. Never leaves the process.
pub struct RootKey(Zeroizing<[u8; KEY_LEN]>);

/// The configured value is not base64 of exactly 32 bytes (the value itself is never part of the error).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a root key must be base64 of exactly {KEY_LEN} bytes")]
pub struct MalformedRootKey;

impl RootKey {
    /// Parses base64 (standard alphabet, padded) of 32 bytes; surrounding whitespace is ignored.
    pub fn from_base64(encoded: &str) -> Result<Self, MalformedRootKey> {
        let bytes = Zeroizing::new(STANDARD.decode(encoded.trim()).map_err(|_| MalformedRootKey)?);
        let key: [u8; KEY_LEN] = bytes.as_slice().try_into().map_err(|_| MalformedRootKey)?;
        Ok(Self(Zeroizing::new(key)))
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        Self(DataKey::generate().0)
    }

    /// The key as base64, for writing it to a key file.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.0.as_ref()))
    }

    /// Whether `other` is the same key.
    pub fn is(&self, other: &RootKey) -> bool {
        self.0.as_ref() == other.0.as_ref()
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

    /// Opens a project's data key sealed with this key and seals it with `new` (root key rotation).
    pub fn reseal_data_key(&self, new: &RootKey, project_id: &str, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        Ok(new.seal_data_key(project_id, &self.open_data_key(project_id, sealed)?))
    }

    /// Seals a small record (e.g. an audit stream's credentials) bound to its kind and id.
    pub fn seal_record(&self, kind: &str, id: &str, plaintext: &[u8]) -> Vec<u8> {
        seal(&self.0, plaintext, &record_binding(kind, id))
    }

    /// Opens a record sealed by [`RootKey::seal_record`] with the same kind and id.
    pub fn open_record(&self, kind: &str, id: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        open(&self.0, sealed, &record_binding(kind, id))
    }

    /// Opens a record sealed with this key and seals it with `new` (root key rotation).
    pub fn reseal_record(&self, new: &RootKey, kind: &str, id: &str, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        Ok(new.seal_record(kind, id, &self.open_record(kind, id, sealed)?))
    }

    /// The key check: a value only this key opens, stored with the data so a start with another key is refused
    /// before anything is served.
    pub fn seal_check(&self) -> Vec<u8> {
        seal(&self.0, CHECK_PLAINTEXT, &check_binding())
    }

    /// Whether `sealed` is a key check sealed with this key.
    pub fn opens_check(&self, sealed: &[u8]) -> bool {
        open(&self.0, sealed, &check_binding()).is_ok_and(|plain| plain.as_slice() == CHECK_PLAINTEXT)
    }
}

fn data_key_binding(project_id: &str) -> Vec<u8> {
    associated_data("hush/project-data-key/v1", &[project_id.as_bytes()])
}

fn record_binding(kind: &str, id: &str) -> Vec<u8> {
    associated_data("hush/record/v1", &[kind.as_bytes(), id.as_bytes()])
}

fn check_binding() -> Vec<u8> {
    associated_data("hush/root-key-check/v1", &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_wrong_length_and_bad_base64() {
        assert_eq!(RootKey::from_base64("AAAA").err(), Some(MalformedRootKey));
        assert_eq!(RootKey::from_base64("not base64!").err(), Some(MalformedRootKey));
        assert!(RootKey::from_base64(&format!("  {}\n", STANDARD.encode([7u8; 32]))).is_ok());
    }

    #[test]
    fn the_check_opens_only_with_its_own_key() {
        let (key, other) = (RootKey::generate(), RootKey::generate());
        let check = key.seal_check();
        assert!(key.opens_check(&check));
        assert!(!other.opens_check(&check));
        assert!(!key.opens_check(&check[..20]));
        // A record sealed with the key is not a key check, even with matching bytes.
        assert!(!key.opens_check(&key.seal_record("", "", CHECK_PLAINTEXT)));
    }

    #[test]
    fn resealing_moves_data_keys_and_records_to_the_new_key() {
        let (old, new) = (RootKey::generate(), RootKey::generate());
        let sealed = old.seal_data_key("p1", &DataKey::generate());
        let moved = old.reseal_data_key(&new, "p1", &sealed).unwrap();
        assert!(new.open_data_key("p1", &moved).is_ok());
        assert!(old.open_data_key("p1", &moved).is_err());
        assert_eq!(new.reseal_data_key(&old, "p1", &sealed).err(), Some(CryptoError::Authentication));

        let record = old.seal_record("kind", "id", b"config");
        let moved = old.reseal_record(&new, "kind", "id", &record).unwrap();
        assert_eq!(new.open_record("kind", "id", &moved).unwrap().as_slice(), b"config");
        assert!(old.reseal_record(&new, "kind", "other-id", &record).is_err());
    }

    #[test]
    fn base64_round_trips() {
        let key = RootKey::generate();
        assert!(RootKey::from_base64(&key.to_base64()).unwrap().is(&key));
        assert!(!RootKey::generate().is(&key));
    }
}

//! Envelope encryption (docs/ARCHITECTURE.md).
//!
//! A 32-byte root key seals one random data key per project; the data key seals secret values with
//! AES-256-GCM. Every seal carries associated data naming exactly what the ciphertext belongs to (the project
//! for a data key; project, environment, path, key and version for a value), so a ciphertext copied to another
//! row, or tampered with, fails to open instead of decrypting to the wrong secret.

mod root_key;

use aes_gcm::{
    Aes256Gcm, Key, Nonce,
    aead::{Aead, KeyInit, OsRng, Payload, rand_core::RngCore},
};
use zeroize::Zeroizing;

pub use root_key::{MalformedRootKey, RootKey};

/// Length of an AES-256 key in bytes.
pub const KEY_LEN: usize = 32;
/// Length of an AES-GCM nonce in bytes; nonces are random per seal and stored in front of the ciphertext.
const NONCE_LEN: usize = 12;

/// Why a sealed blob could not be opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    /// The blob is shorter than a nonce plus a tag: it was truncated or is not a sealed blob at all.
    #[error("sealed data is truncated")]
    Truncated,
    /// Authentication failed: the ciphertext was altered or belongs to another record or key.
    #[error("ciphertext failed authentication: it was altered or belongs to another record")]
    Authentication,
}

/// Seals `plaintext` under `key`, binding it to `aad`. Output: nonce || ciphertext || tag.
fn seal(key: &[u8; KEY_LEN], plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key));
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    let ciphertext = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad })
        .expect("AES-GCM encryption cannot fail for in-memory buffers below 64 GiB");
    let mut sealed = Vec::with_capacity(NONCE_LEN + ciphertext.len());
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(&ciphertext);
    sealed
}

/// Opens a blob made by [`seal`] with the same key and associated data.
fn open(key: &[u8; KEY_LEN], sealed: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    // 16 bytes is the GCM tag.
    if sealed.len() < NONCE_LEN + 16 {
        return Err(CryptoError::Truncated);
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key));
    cipher
        .decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad })
        .map(Zeroizing::new)
        .map_err(|_| CryptoError::Authentication)
}

/// Encodes fields as length-prefixed parts so that no two different tuples share an encoding
/// (`("a/b", "c")` and `("a", "b/c")` must differ).
fn associated_data(domain: &str, fields: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    for part in std::iter::once(domain.as_bytes()).chain(fields.iter().copied()) {
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

/// A project's data encryption key, in memory only while it is used.
pub struct DataKey(Zeroizing<[u8; KEY_LEN]>);

/// Names the exact record a secret value belongs to; it is the associated data of the value's seal.
#[derive(Debug, Clone, Copy)]
pub struct ValueBinding<'a> {
    /// Project id.
    pub project_id: &'a str,
    /// Environment id.
    pub environment_id: &'a str,
    /// Folder path.
    pub path: &'a str,
    /// Secret key.
    pub key: &'a str,
    /// Version number the value is stored under.
    pub version: i32,
}

impl ValueBinding<'_> {
    fn encode(&self) -> Vec<u8> {
        associated_data(
            "hush/secret-value/v1",
            &[
                self.project_id.as_bytes(),
                self.environment_id.as_bytes(),
                self.path.as_bytes(),
                self.key.as_bytes(),
                &self.version.to_be_bytes(),
            ],
        )
    }
}

impl DataKey {
    /// A fresh random data key.
    pub fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        OsRng.fill_bytes(key.as_mut());
        Self(key)
    }

    /// Seals a secret value for the record named by `binding`.
    pub fn seal_value(&self, binding: ValueBinding<'_>, value: &[u8]) -> Vec<u8> {
        seal(&self.0, value, &binding.encode())
    }

    /// Opens a secret value sealed for the record named by `binding`.
    pub fn open_value(&self, binding: ValueBinding<'_>, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        open(&self.0, sealed, &binding.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(key: &str, version: i32) -> ValueBinding<'_> {
        ValueBinding { project_id: "p", environment_id: "e", path: "/api", key, version }
    }

    #[test]
    fn value_round_trips_only_under_its_own_binding() {
        let dk = DataKey::generate();
        let sealed = dk.seal_value(binding("A", 1), b"hunter2");
        assert_eq!(dk.open_value(binding("A", 1), &sealed).unwrap().as_slice(), b"hunter2");
        assert_eq!(dk.open_value(binding("B", 1), &sealed).unwrap_err(), CryptoError::Authentication);
        assert_eq!(dk.open_value(binding("A", 2), &sealed).unwrap_err(), CryptoError::Authentication);
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
    }

    #[test]
    fn tampered_or_truncated_values_fail() {
        let dk = DataKey::generate();
        let mut sealed = dk.seal_value(binding("A", 1), b"v");
        assert_eq!(dk.open_value(binding("A", 1), &sealed[..10]).unwrap_err(), CryptoError::Truncated);
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert_eq!(dk.open_value(binding("A", 1), &sealed).unwrap_err(), CryptoError::Authentication);
    }

    #[test]
    fn associated_data_is_unambiguous() {
        assert_ne!(associated_data("d", &[b"a/b", b"c"]), associated_data("d", &[b"a", b"b/c"]));
    }
}

//! Random credentials (256-bit, base64url) and the hashes they are stored as.

use std::fmt::Write as _;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::{RngCore, rngs::OsRng};
use sha2::{Digest, Sha256};

/// Prefix of client secrets, so leaked ones are easy to recognise (and to scan for).
pub const CLIENT_SECRET_PREFIX: &str = "hush_cs_";
/// Prefix of access tokens.
pub const ACCESS_TOKEN_PREFIX: &str = "hush_at_";
/// How many leading characters of a client secret are kept in clear so a person can tell secrets apart.
const VISIBLE_PREFIX_LEN: usize = CLIENT_SECRET_PREFIX.len() + 4;

/// A fresh random credential: `prefix` followed by 32 random bytes in base64url.
pub fn generate(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// The stored form of a credential. The input has 256 bits of entropy, so a plain SHA-256 is enough:
/// there is nothing for a slow hash to protect against.
pub fn hash(credential: &str) -> String {
    // Runs on every authenticated request: one string, not one per byte.
    Sha256::digest(credential.as_bytes()).iter().fold(String::with_capacity(64), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    })
}

/// The part of a client secret that may be shown again after creation.
pub fn visible_prefix(secret: &str) -> String {
    secret.chars().take(VISIBLE_PREFIX_LEN).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_unique_and_hash_stably() {
        let a = generate(ACCESS_TOKEN_PREFIX);
        let b = generate(ACCESS_TOKEN_PREFIX);
        assert_ne!(a, b);
        assert!(a.starts_with(ACCESS_TOKEN_PREFIX) && a.len() == ACCESS_TOKEN_PREFIX.len() + 43);
        assert_eq!(hash(&a), hash(&a));
        assert_ne!(hash(&a), hash(&b));
        assert_eq!(hash(&a).len(), 64);
    }
}

//! https on the one port: rustls with ALPN `h2` and `http/1.1`, certificates re-read without dropping open
//! connections, optional client certificates, a self-signed certificate for development, and the rule that
//! refuses cleartext on a non-loopback address.

mod files;
mod flags;
mod incoming;
mod reload;
mod self_signed;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

pub use files::TlsFiles;
pub use flags::TlsFlags;
pub use incoming::{HANDSHAKE_TIMEOUT, MaybeTls, accept};
pub use reload::{POLL_INTERVAL, ReloadableConfig};
pub use self_signed::{CERT_FILE as SELF_SIGNED_CERT_FILE, KEY_FILE as SELF_SIGNED_KEY_FILE, fingerprint};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(
        "refusing to serve cleartext on {0}: access tokens and secret values would cross the network unencrypted. \
         Serve https with --tls-cert and --tls-key (or --tls-self-signed for development), listen on a loopback \
         address, or pass --allow-plaintext (HUSH_ALLOW_PLAINTEXT=true) when a TLS-terminating proxy is in front"
    )]
    Plaintext(SocketAddr),
    #[error("--tls-client-ca needs --tls-cert and --tls-key or --tls-self-signed")]
    ClientCaWithoutTls,
    #[error("{0}: {1}")]
    File(PathBuf, String),
    #[error("{0}: no PEM certificate in the file")]
    NoCertificate(PathBuf),
    #[error("--tls-client-ca {0}: {1}")]
    ClientCa(PathBuf, String),
    #[error("TLS configuration: {0}")]
    Config(rustls::Error),
    #[error("making the self-signed certificate: {0}")]
    SelfSigned(rcgen::Error),
}

impl TlsError {
    fn file(path: &Path, error: impl std::fmt::Display) -> Self {
        Self::File(path.to_owned(), error.to_string())
    }
}

/// The TLS configuration `flags` ask for (None: cleartext), after checking that cleartext is allowed on `listen`.
/// A self-signed certificate is made in `data_dir` when asked for, and its fingerprint logged.
pub fn prepare(flags: &TlsFlags, listen: SocketAddr, data_dir: &Path) -> Result<Option<ReloadableConfig>, TlsError> {
    let files = match (&flags.tls_cert, &flags.tls_key, flags.tls_self_signed) {
        (Some(cert), Some(key), _) => {
            TlsFiles { cert: cert.clone(), key: key.clone(), client_ca: flags.tls_client_ca.clone() }
        }
        (_, _, true) => {
            let files = self_signed::ensure(data_dir, listen)?;
            tracing::info!(
                cert = %files.cert.display(),
                sha256 = %fingerprint(&files.cert)?,
                "serving https with a self-signed certificate (development only): give clients this file as CA"
            );
            TlsFiles { client_ca: flags.tls_client_ca.clone(), ..files }
        }
        _ if flags.tls_client_ca.is_some() => return Err(TlsError::ClientCaWithoutTls),
        _ if !is_loopback(listen) && !flags.allow_plaintext => return Err(TlsError::Plaintext(listen)),
        _ => {
            if !is_loopback(listen) {
                tracing::warn!(address = %listen, "serving cleartext (--allow-plaintext): a TLS proxy must be in front");
            }
            return Ok(None);
        }
    };
    ReloadableConfig::load(files).map(Some)
}

fn is_loopback(listen: SocketAddr) -> bool {
    listen.ip().to_canonical().is_loopback()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(listen: &str, flags: &TlsFlags) -> Result<bool, TlsError> {
        prepare(flags, listen.parse().unwrap(), Path::new("/nonexistent")).map(|tls| tls.is_none())
    }

    #[test]
    fn cleartext_only_on_loopback_unless_allowed() {
        let default = TlsFlags::default();
        for loopback in ["127.0.0.1:1", "127.1.2.3:1", "[::1]:1", "[::ffff:127.0.0.1]:1"] {
            assert!(plain(loopback, &default).unwrap(), "{loopback}");
        }
        for exposed in ["0.0.0.0:1", "[::]:1", "10.0.0.5:1", "[::ffff:10.0.0.5]:1"] {
            assert!(matches!(plain(exposed, &default), Err(TlsError::Plaintext(_))), "{exposed}");
        }
        let allowed = TlsFlags { allow_plaintext: true, ..TlsFlags::default() };
        assert!(plain("0.0.0.0:1", &allowed).unwrap());
        let client_ca_alone = TlsFlags { tls_client_ca: Some("ca.pem".into()), ..TlsFlags::default() };
        assert!(matches!(plain("127.0.0.1:1", &client_ca_alone), Err(TlsError::ClientCaWithoutTls)));
    }

    #[test]
    fn unreadable_or_mismatched_files_name_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let files = |cert: &str, key: &str| TlsFiles {
            cert: dir.path().join(cert),
            key: dir.path().join(key),
            client_ca: None,
        };
        let error = files("missing.crt", "missing.key").load().unwrap_err().to_string();
        assert!(error.contains("missing.crt"), "{error}");
        std::fs::write(dir.path().join("empty.crt"), "").unwrap();
        let error = files("empty.crt", "missing.key").load().unwrap_err().to_string();
        assert!(error.contains("no PEM certificate"), "{error}");
        let a = self_signed::ensure(&dir.path().join("a"), "127.0.0.1:1".parse().unwrap()).unwrap();
        let b = self_signed::ensure(&dir.path().join("b"), "127.0.0.1:1".parse().unwrap()).unwrap();
        let mismatched = TlsFiles { cert: a.cert, key: b.key, client_ca: None };
        let error = mismatched.load().unwrap_err().to_string();
        assert!(error.contains("key"), "a key that does not belong to the certificate is refused: {error}");
    }
}

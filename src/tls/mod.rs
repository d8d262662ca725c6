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
pub use incoming::{HANDSHAKE_TIMEOUT, MaybeTls, incoming};
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

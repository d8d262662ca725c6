//! The TLS flags of `hush serve`.

use std::path::PathBuf;

/// How `hush serve` secures its one port.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsFlags {
    /// PEM certificate chain (leaf first) to serve https on the listen address; re-read on SIGHUP and when the
    /// file changes.
    #[arg(long, env = "HUSH_TLS_CERT", requires = "tls_key", conflicts_with = "tls_self_signed")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `--tls-cert`.
    #[arg(long, env = "HUSH_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Development only: serve https with a self-signed certificate kept in the data dir (made on first use for
    /// localhost, 127.0.0.1, ::1 and the listen address, or the host name when listening on every address);
    /// logs its SHA-256 fingerprint. Delete `tls-self-signed.crt` to make a new one.
    #[arg(long, env = "HUSH_TLS_SELF_SIGNED", value_parser = clap::builder::BoolishValueParser::new())]
    pub tls_self_signed: bool,
    /// PEM bundle of CAs that sign client certificates: with it, clients must present one (mutual TLS).
    #[arg(long, env = "HUSH_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
    /// Serve cleartext on a non-loopback address: only when a TLS-terminating proxy is in front.
    #[arg(long, env = "HUSH_ALLOW_PLAINTEXT", value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_plaintext: bool,
}

//! `--tls-self-signed`: a development certificate kept in the data dir, made once and reused, so clients that
//! trust it keep working across restarts.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    path::Path,
};

use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, KeyPair};
use sha2::{Digest, Sha256};

use super::{TlsError, files::TlsFiles};

/// Certificate file written in the data dir.
pub const CERT_FILE: &str = "tls-self-signed.crt";
/// Private key file written in the data dir (mode 0600).
pub const KEY_FILE: &str = "tls-self-signed.key";

/// The self-signed certificate files in `data_dir`, made for `listen` when missing.
pub fn ensure(data_dir: &Path, listen: SocketAddr) -> Result<TlsFiles, TlsError> {
    let files = TlsFiles { cert: data_dir.join(CERT_FILE), key: data_dir.join(KEY_FILE), client_ca: None };
    if !files.cert.exists() || !files.key.exists() {
        let (cert, key) = generate(listen)?;
        crate::fs_private::write_private(&files.key, key.as_bytes()).map_err(|e| TlsError::file(&files.key, e))?;
        std::fs::write(&files.cert, cert).map_err(|e| TlsError::file(&files.cert, e))?;
    }
    Ok(files)
}

/// The SHA-256 fingerprint of the first certificate in `path`, as `openssl x509 -fingerprint -sha256` prints it.
pub fn fingerprint(path: &Path) -> Result<String, TlsError> {
    let certs = super::files::read_certs(path)?;
    let digest = Sha256::digest(&certs[0]);
    Ok(digest.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":"))
}

/// A PEM certificate and key for localhost, the loopback addresses and the listen address; for a server that
/// listens on every address (which names no host a client could dial), the machine's host name instead.
fn generate(listen: SocketAddr) -> Result<(String, String), TlsError> {
    let mut ips = vec![IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::LOCALHOST)];
    let mut names = vec!["localhost".to_owned()];
    if listen.ip().is_unspecified() {
        names.extend(host_name());
    } else if !ips.contains(&listen.ip()) {
        ips.push(listen.ip());
    }
    names.extend(ips.iter().map(IpAddr::to_string));
    let mut params = CertificateParams::new(names).map_err(TlsError::SelfSigned)?;
    params.distinguished_name.push(rcgen::DnType::CommonName, "hush development certificate");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().map_err(TlsError::SelfSigned)?;
    let cert = params.self_signed(&key).map_err(TlsError::SelfSigned)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// This machine's host name when it is a usable DNS name.
#[cfg(unix)]
fn host_name() -> Option<String> {
    let uname = rustix::system::uname();
    let name = uname.nodename().to_str().ok()?;
    let usable = !name.is_empty()
        && name != "localhost"
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    usable.then(|| name.to_owned())
}

#[cfg(not(unix))]
fn host_name() -> Option<String> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn der(listen: &str) -> Vec<u8> {
        let (pem, _) = generate(listen.parse().unwrap()).unwrap();
        rustls_pki_types::pem::PemObject::from_pem_slice(pem.as_bytes())
            .map(|c: rustls_pki_types::CertificateDer<'_>| c.to_vec())
            .unwrap()
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn names_the_listen_address_or_the_host() {
        assert!(contains(&der("10.1.2.3:8443"), &[10, 1, 2, 3]), "a specific address is a SAN");
        let any = der("0.0.0.0:8443");
        assert!(contains(&any, b"localhost") && contains(&any, &[127, 0, 0, 1]));
        if let Some(host) = host_name() {
            assert!(contains(&any, host.as_bytes()), "listening on every address names the host {host}");
        }
    }
}

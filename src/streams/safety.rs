//! Refusing destinations on private, loopback or link-local addresses (unless the server allows them), so an
//! audit stream cannot be used to reach internal services.

use std::net::IpAddr;

use super::{StreamsError, config::ProviderConfig};

fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_private() || v4.is_loopback() || v4.is_link_local() || v4.is_unspecified() || v4.is_broadcast()
        }
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || (segments[0] & 0xfe00) == 0xfc00 // unique local
                || (segments[0] & 0xffc0) == 0xfe80 // link local
                || v6.to_ipv4_mapped().is_some_and(|v4| is_internal(IpAddr::V4(v4)))
        }
    }
}

/// The URLs a configuration sends to, with the request field each comes from.
fn destinations(config: &ProviderConfig) -> Vec<(&'static str, String)> {
    match config {
        ProviderConfig::Custom { url, .. } => vec![("custom.url", url.clone())],
        ProviderConfig::Datadog { site, url, .. } if url.is_empty() => {
            vec![("datadog.site", format!("https://http-intake.logs.{site}/"))]
        }
        ProviderConfig::Datadog { url, .. } => vec![("datadog.url", url.clone())],
        ProviderConfig::Splunk { host, .. } => vec![("splunk.host", host.clone())],
        ProviderConfig::Cribl { url, .. } => vec![("cribl.url", url.clone())],
        ProviderConfig::Azure { dce_url, login_url, .. } => {
            let mut out = vec![("azure.dce_url", dce_url.clone())];
            if !login_url.is_empty() {
                out.push(("azure.login_url", login_url.clone()));
            }
            out
        }
    }
}

/// Fails when a destination resolves to an internal address and `allow_private` is off.
pub async fn check(config: &ProviderConfig, allow_private: bool) -> Result<(), StreamsError> {
    if allow_private {
        return Ok(());
    }
    for (field, url) in destinations(config) {
        let parsed = reqwest::Url::parse(&url).map_err(|e| StreamsError::InvalidArgument {
            field: field.into(),
            reason: format!("'{url}' is not a URL: {e}"),
        })?;
        let host = parsed.host_str().unwrap_or_default().to_owned();
        let port = parsed.port_or_known_default().unwrap_or(443);
        let addresses: Vec<IpAddr> = match tokio::net::lookup_host((host.as_str(), port)).await {
            Ok(found) => found.map(|a| a.ip()).collect(),
            Err(error) => {
                return Err(StreamsError::InvalidArgument {
                    field: field.into(),
                    reason: format!("cannot resolve '{host}': {error}"),
                });
            }
        };
        if let Some(internal) = addresses.into_iter().find(|ip| is_internal(*ip)) {
            return Err(StreamsError::InvalidArgument {
                field: field.into(),
                reason: format!(
                    "'{host}' resolves to the private or loopback address {internal}; set HUSH_STREAMS_ALLOW_PRIVATE=true to allow it"
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses() {
        for ip in ["127.0.0.1", "10.1.2.3", "192.168.0.1", "172.16.0.1", "169.254.169.254", "::1", "fe80::1", "fd00::1"]
        {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "2606:4700::1111"] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn loopback_destinations_are_refused_unless_allowed() {
        let config = ProviderConfig::Cribl { url: "http://127.0.0.1:9/in".into(), token: "t".into() };
        let error = check(&config, false).await.unwrap_err();
        assert!(error.to_string().starts_with("cribl.url: "), "{error}");
        assert!(check(&config, true).await.is_ok());
    }
}

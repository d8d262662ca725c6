//! Checking a configuration's destinations when it is stored, so a stream that could only reach internal
//! addresses is refused up front with the field at fault. Deliveries are vetted again at connection time
//! (the resolver in `resolver`), since a name's answer may change after this check.

use super::{StreamsError, config::ProviderConfig, resolver::Vetting};

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

/// Fails when a destination is not a URL, does not resolve, or resolves to an address `vetting` refuses.
pub async fn check(config: &ProviderConfig, vetting: &Vetting) -> Result<(), StreamsError> {
    for (field, url) in destinations(config) {
        let invalid = |reason: String| StreamsError::InvalidArgument { field: field.into(), reason };
        let parsed = url::Url::parse(&url).map_err(|e| invalid(format!("not a URL: {e}")))?;
        let host = parsed.host().ok_or_else(|| invalid("the URL has no host".into()))?;
        vetting.vet_host(host).await.map_err(|refused| invalid(refused.to_string()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::streams::resolver::SystemLookup;

    #[tokio::test]
    async fn loopback_destinations_are_refused_unless_allowed() {
        let config = ProviderConfig::Cribl { url: "http://127.0.0.1:9/in".into(), token: "t".into() };
        let error = check(&config, &Vetting::new(Arc::new(SystemLookup), false)).await.unwrap_err();
        assert!(error.to_string().starts_with("cribl.url: "), "{error}");
        assert!(check(&config, &Vetting::new(Arc::new(SystemLookup), true)).await.is_ok());
    }
}

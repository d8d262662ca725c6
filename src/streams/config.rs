//! Provider configurations. Credentials are write-only: stored sealed, shown as [`REDACTED`], and a
//! [`REDACTED`] sent back on update keeps the stored value.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::StreamsError;

/// What credentials look like in responses.
pub const REDACTED: &str = "[REDACTED]";

/// Where and how a stream delivers.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProviderConfig {
    /// Any HTTP endpoint: a JSON array per request (batch) or one JSON object per request (legacy single).
    Custom { url: String, headers: BTreeMap<String, String>, batch: bool },
    /// Datadog logs intake v2 (`DD-API-KEY`, JSON array).
    Datadog { site: String, api_key: String, url: String },
    /// Splunk HTTP Event Collector (`Authorization: Splunk <token>`, concatenated event objects).
    Splunk { host: String, token: String },
    /// Cribl HTTP source (NDJSON, bearer token).
    Cribl { url: String, token: String },
    /// Azure Monitor Logs Ingestion API (OAuth2 client credentials, JSON array).
    Azure {
        tenant_id: String,
        client_id: String,
        client_secret: String,
        dce_url: String,
        dcr_immutable_id: String,
        table: String,
        login_url: String,
    },
}

// Never print credentials, not even in debug output.
impl std::fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProviderConfig({})", self.kind())
    }
}

fn invalid(field: &str, reason: impl Into<String>) -> StreamsError {
    StreamsError::InvalidArgument { field: field.into(), reason: reason.into() }
}

fn require_url(field: &str, url: &str) -> Result<(), StreamsError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| invalid(field, format!("'{url}' is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(invalid(field, format!("'{url}' must be an http(s) URL with a host")));
    }
    Ok(())
}

fn require(field: &str, value: &str) -> Result<(), StreamsError> {
    if value.trim().is_empty() { Err(invalid(field, "is required")) } else { Ok(()) }
}

impl ProviderConfig {
    /// The provider's name.
    pub fn kind(&self) -> &'static str {
        match self {
            ProviderConfig::Custom { .. } => "custom",
            ProviderConfig::Datadog { .. } => "datadog",
            ProviderConfig::Splunk { .. } => "splunk",
            ProviderConfig::Cribl { .. } => "cribl",
            ProviderConfig::Azure { .. } => "azure",
        }
    }

    /// Checks required fields and URLs; field names are those of the request (`custom.url`, …).
    pub fn validate(&self) -> Result<(), StreamsError> {
        match self {
            ProviderConfig::Custom { url, headers, .. } => {
                require_url("custom.url", url)?;
                for name in headers.keys() {
                    http::HeaderName::from_bytes(name.as_bytes())
                        .map_err(|_| invalid("custom.headers", format!("'{name}' is not a header name")))?;
                }
                Ok(())
            }
            ProviderConfig::Datadog { site, api_key, url } => {
                require("datadog.api_key", api_key)?;
                if url.is_empty() { require("datadog.site", site) } else { require_url("datadog.url", url) }
            }
            ProviderConfig::Splunk { host, token } => {
                require_url("splunk.host", host)?;
                require("splunk.token", token)
            }
            ProviderConfig::Cribl { url, token } => {
                require_url("cribl.url", url)?;
                require("cribl.token", token)
            }
            ProviderConfig::Azure {
                tenant_id,
                client_id,
                client_secret,
                dce_url,
                dcr_immutable_id,
                table,
                login_url,
            } => {
                require("azure.tenant_id", tenant_id)?;
                require("azure.client_id", client_id)?;
                require("azure.client_secret", client_secret)?;
                require_url("azure.dce_url", dce_url)?;
                require("azure.dcr_immutable_id", dcr_immutable_id)?;
                require("azure.table", table)?;
                if login_url.is_empty() { Ok(()) } else { require_url("azure.login_url", login_url) }
            }
        }
    }

    /// The configuration with every credential replaced by [`REDACTED`].
    pub fn redacted(&self) -> ProviderConfig {
        let mut copy = self.clone();
        copy.for_each_secret(|secret, _| *secret = REDACTED.to_owned());
        copy
    }

    /// Where `update` sends [`REDACTED`] for a credential, keeps the one in `stored` (same provider only).
    pub fn keep_redacted_from(mut self, stored: &ProviderConfig) -> ProviderConfig {
        let mut kept: Vec<String> = Vec::new();
        let mut stored = stored.clone();
        if stored.kind() == self.kind() {
            stored.for_each_secret(|secret, name| kept.push(format!("{name}\u{0}{secret}")));
            self.for_each_secret(|secret, name| {
                if secret == REDACTED {
                    if let Some(old) = kept.iter().find_map(|k| k.strip_prefix(&format!("{name}\u{0}"))) {
                        *secret = old.to_owned();
                    }
                }
            });
        }
        self
    }

    /// Every credential, with a name that identifies it within the provider.
    fn for_each_secret(&mut self, mut visit: impl FnMut(&mut String, &str)) {
        match self {
            ProviderConfig::Custom { headers, .. } => {
                for (name, value) in headers.iter_mut() {
                    visit(value, name);
                }
            }
            ProviderConfig::Datadog { api_key, .. } => visit(api_key, "api_key"),
            ProviderConfig::Splunk { token, .. } | ProviderConfig::Cribl { token, .. } => visit(token, "token"),
            ProviderConfig::Azure { client_secret, .. } => visit(client_secret, "client_secret"),
        }
    }

    /// Every credential value, for checks that nothing leaks.
    pub fn secrets(&self) -> Vec<String> {
        let mut copy = self.clone();
        let mut out = Vec::new();
        copy.for_each_secret(|secret, _| out.push(secret.clone()));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_and_keeping_credentials() {
        let stored = ProviderConfig::Splunk { host: "https://splunk.example".into(), token: "t0ken".into() };
        let shown = stored.redacted();
        assert_eq!(shown, ProviderConfig::Splunk { host: "https://splunk.example".into(), token: REDACTED.into() });
        let edited = ProviderConfig::Splunk { host: "https://other.example".into(), token: REDACTED.into() };
        assert_eq!(
            edited.keep_redacted_from(&stored),
            ProviderConfig::Splunk { host: "https://other.example".into(), token: "t0ken".into() }
        );
        assert!(!format!("{stored:?}").contains("t0ken"));
    }
}

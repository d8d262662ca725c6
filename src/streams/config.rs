//! Provider configurations. Credentials are write-only: stored sealed, shown as [`REDACTED`], and a
//! [`REDACTED`] sent back on update keeps the stored value.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{StreamsError, url_secrets};

/// What credentials look like in responses.
pub const REDACTED: &str = "[REDACTED]";

/// Where and how a stream delivers.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProviderConfig {
    /// Any HTTP endpoint: a JSON array per request (batch) or one JSON object per request (legacy single),
    /// gzip-compressed when `gzip` (stored before it existed: off).
    Custom {
        url: String,
        headers: BTreeMap<String, String>,
        batch: bool,
        #[serde(default)]
        gzip: bool,
    },
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
    // Errors leave the URL out: it may carry credentials.
    let parsed = url::Url::parse(url).map_err(|e| invalid(field, format!("not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(invalid(field, "must be an http(s) URL with a host"));
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

    /// The configuration with every credential, and the userinfo and query values of every URL, replaced by
    /// [`REDACTED`].
    pub fn redacted(&self) -> ProviderConfig {
        let mut copy = self.clone();
        copy.for_each_secret(|secret, _| *secret = REDACTED.to_owned());
        copy.for_each_url(|url, _| *url = url_secrets::redact(url));
        copy
    }

    /// For `update`: every credential or URL part sent as [`REDACTED`] takes its value from `stored`, but
    /// only while the provider and every destination field stay the same. A credential must never follow
    /// a stream to a new destination, so a placeholder left then is refused, naming its field.
    pub fn keep_redacted_from(mut self, stored: &ProviderConfig) -> Result<ProviderConfig, StreamsError> {
        let moved = if stored.kind() != self.kind() {
            Some("the provider changed".to_owned())
        } else {
            let (new, old) = (self.destination(), stored.destination());
            new.iter().zip(&old).find(|(n, o)| n != o).map(|((field, _), _)| format!("{field} changed"))
        };
        if moved.is_none() {
            let mut stored = stored.clone();
            let mut secrets = BTreeMap::new();
            stored.for_each_secret(|secret, field| {
                secrets.insert(field, secret.clone());
            });
            self.for_each_secret(|secret, field| {
                if let Some(old) = secrets.get(&field).filter(|_| secret == REDACTED) {
                    *secret = old.clone();
                }
            });
            let mut urls = BTreeMap::new();
            stored.for_each_url(|url, field| {
                urls.insert(field, url.clone());
            });
            self.for_each_url(|url, field| {
                if let Some(old) = urls.get(field) {
                    *url = url_secrets::restore(url, old);
                }
            });
        }
        let mut left = None;
        self.for_each_secret(|secret, field| {
            if secret == REDACTED {
                left.get_or_insert(field);
            }
        });
        self.for_each_url(|url, field| {
            if url_secrets::has_redacted(url) {
                left.get_or_insert(field.to_owned());
            }
        });
        match (left, moved) {
            (None, _) => Ok(self),
            (Some(field), Some(moved)) => Err(invalid(
                &field,
                format!(
                    "{REDACTED} keeps a stored value only while the destination stays the same ({moved}); send it in full"
                ),
            )),
            (Some(field), None) => Err(invalid(
                &field,
                format!("{REDACTED} stands for a stored value and none is stored; send it in full"),
            )),
        }
    }

    /// The fields that decide where requests (and so credentials) go, URLs with their secret parts redacted.
    fn destination(&self) -> Vec<(&'static str, String)> {
        let mut copy = self.clone();
        let mut out = Vec::new();
        copy.for_each_url(|url, field| out.push((field, url_secrets::redact(url))));
        match self {
            ProviderConfig::Datadog { site, .. } => out.push(("datadog.site", site.clone())),
            ProviderConfig::Azure { tenant_id, .. } => out.push(("azure.tenant_id", tenant_id.clone())),
            _ => {}
        }
        out
    }

    /// Every credential, with its request field (`splunk.token`, `custom.headers.<name>`, …).
    fn for_each_secret(&mut self, mut visit: impl FnMut(&mut String, String)) {
        match self {
            ProviderConfig::Custom { headers, .. } => {
                for (name, value) in headers.iter_mut() {
                    visit(value, format!("custom.headers.{name}"));
                }
            }
            ProviderConfig::Datadog { api_key, .. } => visit(api_key, "datadog.api_key".into()),
            ProviderConfig::Splunk { token, .. } => visit(token, "splunk.token".into()),
            ProviderConfig::Cribl { token, .. } => visit(token, "cribl.token".into()),
            ProviderConfig::Azure { client_secret, .. } => visit(client_secret, "azure.client_secret".into()),
        }
    }

    /// Every destination URL, with its request field.
    fn for_each_url(&mut self, mut visit: impl FnMut(&mut String, &'static str)) {
        match self {
            ProviderConfig::Custom { url, .. } => visit(url, "custom.url"),
            ProviderConfig::Datadog { url, .. } => visit(url, "datadog.url"),
            ProviderConfig::Splunk { host, .. } => visit(host, "splunk.host"),
            ProviderConfig::Cribl { url, .. } => visit(url, "cribl.url"),
            ProviderConfig::Azure { dce_url, login_url, .. } => {
                visit(dce_url, "azure.dce_url");
                visit(login_url, "azure.login_url");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_kept_only_for_the_same_destination() {
        let stored = ProviderConfig::Splunk { host: "https://splunk.example".into(), token: "t0ken".into() };
        let shown = stored.redacted();
        assert_eq!(shown, ProviderConfig::Splunk { host: "https://splunk.example".into(), token: REDACTED.into() });
        assert_eq!(shown.clone().keep_redacted_from(&stored).unwrap(), stored);
        let moved = ProviderConfig::Splunk { host: "https://other.example".into(), token: REDACTED.into() };
        let refused = moved.keep_redacted_from(&stored).unwrap_err().to_string();
        assert!(refused.starts_with("splunk.token: ") && refused.contains("splunk.host changed"), "{refused}");
        assert!(!format!("{stored:?}").contains("t0ken"));
    }

    #[test]
    fn urls_are_redacted_and_round_trip() {
        let stored = ProviderConfig::Cribl { url: "https://u:p@c.example/in?key=k".into(), token: "t".into() };
        let shown = stored.redacted();
        let ProviderConfig::Cribl { url, .. } = &shown else { unreachable!() };
        assert!(!url.contains("u:p") && !url.contains("key=k"), "{url}");
        assert_eq!(shown.clone().keep_redacted_from(&stored).unwrap(), stored);
        let elsewhere = ProviderConfig::Cribl { url: url.replace("c.example", "evil.example"), token: "new".into() };
        let refused = elsewhere.keep_redacted_from(&stored).unwrap_err().to_string();
        assert!(refused.starts_with("cribl.url: "), "{refused}");
    }
}

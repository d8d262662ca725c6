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

/// Longest destination URL.
const MAX_URL_LEN: usize = 2048;
/// Most extra headers of a Custom stream, and the longest name and value.
const MAX_HEADERS: usize = 32;
const MAX_HEADER_NAME_LEN: usize = 128;
const MAX_HEADER_VALUE_LEN: usize = 4096;
/// Largest configuration as stored (JSON): bounds every other field together.
const MAX_CONFIG_BYTES: usize = 64 * 1024;
/// Headers hush sets itself or that frame the request: a Custom stream may not send its own.
const RESERVED_HEADERS: [&str; 12] = [
    "content-type",
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "host",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
    "expect",
];

fn require_url(field: &str, url: &str) -> Result<(), StreamsError> {
    if url.len() > MAX_URL_LEN {
        return Err(invalid(field, format!("longer than {MAX_URL_LEN} bytes")));
    }
    // Errors leave the URL out: it may carry credentials.
    let parsed = url::Url::parse(url).map_err(|e| invalid(field, format!("not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(invalid(field, "must be an http(s) URL with a host"));
    }
    Ok(())
}

/// A Custom stream's extra headers: valid names and values (no line breaks or other control characters),
/// bounded, and none that hush sets or that frame the request (a `content-length` of the caller's would cut
/// the body short, and what is left would be read as the next request on the connection).
fn validate_headers(headers: &BTreeMap<String, String>) -> Result<(), StreamsError> {
    if headers.len() > MAX_HEADERS {
        return Err(invalid("custom.headers", format!("more than {MAX_HEADERS} headers")));
    }
    for (name, value) in headers {
        let field = format!("custom.headers.{name}");
        if name.len() > MAX_HEADER_NAME_LEN {
            return Err(invalid("custom.headers", format!("a header name is longer than {MAX_HEADER_NAME_LEN} bytes")));
        }
        http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| invalid("custom.headers", format!("'{name}' is not a header name")))?;
        if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(invalid(&field, "is set by hush (or frames the request) and cannot be replaced"));
        }
        if value.len() > MAX_HEADER_VALUE_LEN {
            return Err(invalid(&field, format!("longer than {MAX_HEADER_VALUE_LEN} bytes")));
        }
        // The error never shows the value: it may be a credential.
        if http::HeaderValue::from_str(value).is_err() {
            return Err(invalid(&field, "must be visible ASCII, spaces and tabs (no line breaks)"));
        }
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

    /// Checks required fields, URLs, headers and sizes; field names are those of the request (`custom.url`, …).
    pub fn validate(&self) -> Result<(), StreamsError> {
        let size = serde_json::to_vec(self).map_or(usize::MAX, |json| json.len());
        if size > MAX_CONFIG_BYTES {
            return Err(invalid(self.kind(), format!("the configuration is larger than {MAX_CONFIG_BYTES} bytes")));
        }
        match self {
            ProviderConfig::Custom { url, headers, .. } => {
                require_url("custom.url", url)?;
                validate_headers(headers)
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

    #[test]
    fn custom_headers_cannot_inject_or_reframe_and_sizes_are_bounded() {
        let custom = |headers: &[(&str, &str)], url: &str| ProviderConfig::Custom {
            url: url.into(),
            headers: headers.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect(),
            batch: true,
            gzip: false,
        };
        let refused = |config: ProviderConfig| config.validate().unwrap_err().to_string();
        let url = "https://r.example/in";
        assert!(custom(&[("authorization", "Bearer x\ty")], url).validate().is_ok());
        let injected = refused(custom(&[("x-a", "v\r\nX-Injected: 1")], url));
        assert!(injected.starts_with("custom.headers.x-a: ") && !injected.contains("Injected"), "{injected}");
        for name in ["Content-Length", "transfer-encoding", "host", "content-encoding", "content-type"] {
            let reframed = refused(custom(&[(name, "5")], url));
            assert!(reframed.starts_with(&format!("custom.headers.{name}: ")), "{reframed}");
        }
        let many: Vec<(String, String)> = (0..=MAX_HEADERS).map(|i| (format!("x-{i}"), "v".into())).collect();
        let many: Vec<(&str, &str)> = many.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        assert!(refused(custom(&many, url)).starts_with("custom.headers: "));
        let long_value = "v".repeat(MAX_HEADER_VALUE_LEN + 1);
        assert!(refused(custom(&[("x-a", &long_value)], url)).starts_with("custom.headers.x-a: "));
        let long_url = format!("{url}?{}", "q".repeat(MAX_URL_LEN));
        assert!(refused(custom(&[], &long_url)).starts_with("custom.url: "));
        let huge = ProviderConfig::Splunk { host: url.into(), token: "t".repeat(MAX_CONFIG_BYTES) };
        assert!(refused(huge).starts_with("splunk: "));
    }
}

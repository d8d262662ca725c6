//! Sending requests to a destination: one batch (every request of it must be accepted), a test event, and
//! Azure's OAuth token. Failures are [`DeliveryError`]s, which never carry a URL (it may hold credentials),
//! request headers, or a destination's answer body (which could be anything the destination chooses to show).

use std::time::{Duration, Instant};

use serde_json::Value;

use super::{
    config::ProviderConfig,
    outbound::{self, Outbound},
    provider::{self, Entry, Outgoing},
};

/// Most of a destination's answer read (Azure token answers; other answers are never read).
const MAX_ANSWER_BYTES: usize = 16 * 1024;
/// Time limit of one request to a destination.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Renew an Azure token this long before it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(120);

/// Why a delivery attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// The destination may not be reached (vetting) or its URL is unusable.
    #[error("refused: {0}")]
    Refused(String),
    /// No answer: connection refused, TLS, timeout, … (every cause, outermost first).
    #[error("request failed: {0}")]
    Request(String),
    /// The destination answered with a status other than 2xx.
    #[error("destination answered {status}{}", retry_after.map(|s| format!(" (retry-after={})", s.as_secs())).unwrap_or_default())]
    Status {
        status: http::StatusCode,
        /// What a 429 or 503 asked for with `Retry-After` (seconds).
        retry_after: Option<Duration>,
    },
    /// Azure's token endpoint did not give a token.
    #[error("azure token: {0}")]
    Token(String),
}

impl DeliveryError {
    /// How long the destination asked to be left alone, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            DeliveryError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The HTTP status the destination answered, 0 when there was no answer.
    pub fn status_code(&self) -> u16 {
        match self {
            DeliveryError::Status { status, .. } => status.as_u16(),
            _ => 0,
        }
    }
}

/// A cached Azure token and when it expires.
pub type AzureToken = Option<(String, Instant)>;

/// Delivers `entries` once: every request of the batch must be accepted (2xx). Addresses are vetted as they
/// are connected to ([`Outbound`]), not here: a name may answer differently each time.
pub async fn send(
    http: &Outbound,
    config: &ProviderConfig,
    entries: &[Entry],
    azure_token: &mut AzureToken,
) -> Result<u16, DeliveryError> {
    let token = match provider::azure_token_request(config) {
        Some(request) => Some(fetch_azure_token(http, request, azure_token).await?),
        None => None,
    };
    let mut last = 0;
    for outgoing in provider::requests(config, entries, token.as_deref()) {
        last = post(http, outgoing).await?;
    }
    Ok(last)
}

/// The cached Azure token, or a new one from the token endpoint (client credentials).
async fn fetch_azure_token(
    http: &Outbound,
    (url, form): (String, Vec<(&'static str, String)>),
    cache: &mut AzureToken,
) -> Result<String, DeliveryError> {
    if let Some((token, expires)) = cache
        && Instant::now() + TOKEN_MARGIN < *expires
    {
        return Ok(token.clone());
    }
    let body = form.iter().map(|(k, v)| format!("{k}={}", urlencode(v))).collect::<Vec<_>>().join("&");
    let response = http
        .post(&url)
        .map_err(DeliveryError::Refused)?
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .timeout(REQUEST_TIMEOUT)
        .send()
        .await
        .map_err(|e| DeliveryError::Token(format!("request failed: {}", outbound::describe(e))))?;
    let status = response.status();
    let text = bounded_text(response).await;
    if !status.is_success() {
        return Err(DeliveryError::Token(format!("the token endpoint answered {status}")));
    }
    let json: Value =
        serde_json::from_str(&text).map_err(|_| DeliveryError::Token("the answer is not JSON".to_owned()))?;
    let token = json["access_token"]
        .as_str()
        .ok_or_else(|| DeliveryError::Token("the answer has no access_token".to_owned()))?
        .to_owned();
    let lifetime = json["expires_in"].as_u64().unwrap_or(3600);
    *cache = Some((token.clone(), Instant::now() + Duration::from_secs(lifetime)));
    Ok(token)
}

/// One POST; 2xx is success.
async fn post(http: &Outbound, outgoing: Outgoing) -> Result<u16, DeliveryError> {
    let mut request = http.post(&outgoing.url).map_err(DeliveryError::Refused)?.timeout(REQUEST_TIMEOUT);
    for (name, value) in &outgoing.headers {
        request = request.header(name, value);
    }
    let response =
        request.body(outgoing.body).send().await.map_err(|e| DeliveryError::Request(outbound::describe(e)))?;
    let status = response.status();
    if status.is_success() {
        return Ok(status.as_u16());
    }
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(retry_after)
        .filter(|_| matches!(status.as_u16(), 429 | 503));
    Err(DeliveryError::Status { status, retry_after })
}

/// A `Retry-After` value: seconds, or an HTTP date (RFC 9110), as the time from now (zero if it is past).
fn retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some((at.with_timezone(&chrono::Utc) - chrono::Utc::now()).to_std().unwrap_or_default())
}

/// Reads at most [`MAX_ANSWER_BYTES`] of an answer.
async fn bounded_text(mut response: reqwest::Response) -> String {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = MAX_ANSWER_BYTES.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_ANSWER_BYTES {
            break;
        }
    }
    String::from_utf8_lossy(&body).into_owned()
}

fn urlencode(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, URL_COMPONENT).to_string()
}

/// Everything but RFC 3986's unreserved characters is escaped in form values.
const URL_COMPONENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_say_what_happened_without_the_answer() {
        let asked = DeliveryError::Status {
            status: http::StatusCode::TOO_MANY_REQUESTS,
            retry_after: Some(Duration::from_secs(3)),
        };
        assert_eq!(asked.to_string(), "destination answered 429 Too Many Requests (retry-after=3)");
        assert_eq!(asked.retry_after(), Some(Duration::from_secs(3)));
        assert_eq!(asked.status_code(), 429);
        let plain = DeliveryError::Status { status: http::StatusCode::INTERNAL_SERVER_ERROR, retry_after: None };
        assert_eq!(plain.to_string(), "destination answered 500 Internal Server Error");
        assert_eq!(DeliveryError::Request("connection refused".into()).status_code(), 0);
        assert_eq!(urlencode("a b/c~"), "a%20b%2Fc~");
        assert_eq!(retry_after(" 7 "), Some(Duration::from_secs(7)));
        let soon = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc2822().replace("+0000", "GMT");
        assert!(retry_after(&soon).is_some_and(|d| d > Duration::from_secs(25) && d <= Duration::from_secs(30)));
        assert_eq!(retry_after("Sun, 06 Nov 1994 08:49:37 GMT"), Some(Duration::ZERO));
        assert_eq!(retry_after("soon"), None);
    }
}

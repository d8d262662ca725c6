//! Turning a batch of audit entries into the HTTP requests each provider expects. Pure functions, so the
//! formats are tested without a network; the engine sends the requests.

use chrono::{DateTime, Utc};

use super::config::ProviderConfig;
use crate::audit::AuditRecord;

/// Azure Monitor ingestion API version.
const AZURE_API_VERSION: &str = "2023-01-01";
/// Default Azure login endpoint.
const AZURE_LOGIN: &str = "https://login.microsoftonline.com";
/// OAuth scope of the Logs Ingestion API.
const AZURE_SCOPE: &str = "https://monitor.azure.com//.default";

/// One audit entry ready to send: its JSON object as text (made once, whatever the provider) and its time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub json: String,
    pub created_at: DateTime<Utc>,
}

impl From<&AuditRecord> for Entry {
    fn from(record: &AuditRecord) -> Self {
        Self { json: record.to_json_string(), created_at: record.created_at }
    }
}

/// What one request of a provider may carry. Every batch stays within them; an entry that alone exceeds
/// `max_entry_bytes` is dropped (and counted) instead of being sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Entries per request.
    pub max_events: usize,
    /// Bytes of one request body before compression (entries, separators and the provider's wrapping).
    pub max_bytes: usize,
    /// Bytes of one entry's JSON.
    pub max_entry_bytes: usize,
    /// Most bytes the provider's format wraps around one entry (Datadog's tags, Splunk's envelope).
    pub wrapping: usize,
}

const MB: usize = 1024 * 1024;
/// The reference's bound for Custom, Cribl, Splunk and Azure: 500 entries or 1 MB per request. Azure's Logs
/// Ingestion API takes at most 1 MB per call; Splunk HEC's `max_content_length` is 1 MB on Splunk Cloud.
pub const DEFAULT_LIMITS: Limits = Limits { max_events: 500, max_bytes: MB, max_entry_bytes: MB - 2, wrapping: 0 };
/// Datadog's logs intake v2: up to 1 000 entries and 5 MB (uncompressed) per request, 1 MB per log.
const DATADOG_LIMITS: Limits =
    Limits { max_events: 1000, max_bytes: 5 * MB, max_entry_bytes: MB - DATADOG_WRAPPING, wrapping: DATADOG_WRAPPING };
/// Splunk's envelope around an entry: `{"time":<up to 20 characters>,"source":…,"event":` … `}` and a newline.
const SPLUNK_WRAPPING: usize = 96;
const SPLUNK_LIMITS: Limits =
    Limits { max_events: 500, max_bytes: MB, max_entry_bytes: MB - SPLUNK_WRAPPING, wrapping: SPLUNK_WRAPPING };
/// The fields Datadog's format adds to each entry.
const DATADOG_FIELDS: &str = r#""ddsource":"hush","ddtags":"source:hush","service":"hush","#;
const DATADOG_WRAPPING: usize = DATADOG_FIELDS.len();

/// The request limits of `config`'s provider.
pub fn limits(config: &ProviderConfig) -> Limits {
    match config {
        ProviderConfig::Datadog { .. } => DATADOG_LIMITS,
        ProviderConfig::Splunk { .. } => SPLUNK_LIMITS,
        ProviderConfig::Custom { .. } | ProviderConfig::Cribl { .. } | ProviderConfig::Azure { .. } => DEFAULT_LIMITS,
    }
}

/// Whether request bodies are gzip-compressed: Datadog and Splunk HEC always accept it; Custom when asked to.
fn gzipped(config: &ProviderConfig) -> bool {
    match config {
        ProviderConfig::Datadog { .. } | ProviderConfig::Splunk { .. } => true,
        ProviderConfig::Custom { gzip, .. } => *gzip,
        ProviderConfig::Cribl { .. } | ProviderConfig::Azure { .. } => false,
    }
}

/// One HTTP POST to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

fn json_headers(extra: impl IntoIterator<Item = (String, String)>) -> Vec<(String, String)> {
    std::iter::once(("content-type".to_owned(), "application/json".to_owned())).chain(extra).collect()
}

fn trim(url: &str) -> &str {
    url.trim_end_matches('/')
}

/// `items` as a JSON array.
fn array<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let mut body = String::from("[");
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(item);
    }
    body.push(']');
    body
}

/// `entry` (a JSON object) with Datadog's fields added in front.
fn datadog_log(entry: &str) -> String {
    let fields = entry.strip_prefix('{').unwrap_or(entry);
    let separator = if fields.starts_with('}') { &DATADOG_FIELDS[..DATADOG_FIELDS.len() - 1] } else { DATADOG_FIELDS };
    format!("{{{separator}{fields}")
}

/// `entry` in Splunk HEC's event envelope, with its time in epoch seconds.
fn splunk_event(entry: &Entry) -> String {
    let time = entry.created_at.timestamp_micros() as f64 / 1e6;
    let time = serde_json::to_string(&time).expect("a float serializes");
    format!(r#"{{"event":{},"source":"hush","sourcetype":"hush:audit","time":{time}}}"#, entry.json) + "\n"
}

/// The requests that deliver `entries` (within [`limits`]). Custom single mode makes one request per entry;
/// every other mode one request per batch. Azure needs its OAuth token.
pub fn requests(config: &ProviderConfig, entries: &[Entry], azure_token: Option<&str>) -> Vec<Outgoing> {
    let mut requests = match config {
        ProviderConfig::Custom { url, headers, batch, .. } => {
            let headers = json_headers(headers.iter().map(|(k, v)| (k.clone(), v.clone())));
            if *batch {
                let body = array(entries.iter().map(|e| e.json.as_str()));
                vec![Outgoing { url: url.clone(), headers, body: body.into_bytes() }]
            } else {
                entries
                    .iter()
                    .map(|e| Outgoing { url: url.clone(), headers: headers.clone(), body: e.json.clone().into_bytes() })
                    .collect()
            }
        }
        ProviderConfig::Datadog { site, api_key, url } => {
            let url = if url.is_empty() { format!("https://http-intake.logs.{site}/api/v2/logs") } else { url.clone() };
            let logs: Vec<String> = entries.iter().map(|e| datadog_log(&e.json)).collect();
            let headers = json_headers([("dd-api-key".to_owned(), api_key.clone())]);
            vec![Outgoing { url, headers, body: array(logs.iter().map(String::as_str)).into_bytes() }]
        }
        ProviderConfig::Splunk { host, token } => {
            let body: String = entries.iter().map(splunk_event).collect();
            let headers = json_headers([("authorization".to_owned(), format!("Splunk {token}"))]);
            vec![Outgoing { url: format!("{}/services/collector/event", trim(host)), headers, body: body.into_bytes() }]
        }
        ProviderConfig::Cribl { url, token } => {
            let body: String = entries.iter().map(|e| format!("{}\n", e.json)).collect();
            let headers = vec![
                ("content-type".to_owned(), "application/x-ndjson".to_owned()),
                ("authorization".to_owned(), format!("Bearer {token}")),
            ];
            vec![Outgoing { url: url.clone(), headers, body: body.into_bytes() }]
        }
        ProviderConfig::Azure { dce_url, dcr_immutable_id, table, .. } => {
            let stream = if table.starts_with("Custom-") { table.clone() } else { format!("Custom-{table}") };
            let url = format!(
                "{}/dataCollectionRules/{dcr_immutable_id}/streams/{stream}?api-version={AZURE_API_VERSION}",
                trim(dce_url)
            );
            let headers =
                json_headers([("authorization".to_owned(), format!("Bearer {}", azure_token.unwrap_or_default()))]);
            let body = array(entries.iter().map(|e| e.json.as_str()));
            vec![Outgoing { url, headers, body: body.into_bytes() }]
        }
    };
    if gzipped(config) {
        for request in &mut requests {
            request.body = gzip(&request.body);
            request.headers.push(("content-encoding".to_owned(), "gzip".to_owned()));
        }
    }
    requests
}

/// `body` gzip-compressed. Fast compression: audit JSON shrinks about tenfold even so, and the CPU goes to
/// delivering, not squeezing the last percent.
fn gzip(body: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 4), flate2::Compression::fast());
    encoder.write_all(body).expect("writing to memory cannot fail");
    encoder.finish().expect("writing to memory cannot fail")
}

/// The OAuth2 client-credentials token request of an Azure stream (None for other providers).
pub fn azure_token_request(config: &ProviderConfig) -> Option<(String, Vec<(&'static str, String)>)> {
    let ProviderConfig::Azure { tenant_id, client_id, client_secret, login_url, .. } = config else { return None };
    let base = if login_url.is_empty() { AZURE_LOGIN } else { trim(login_url) };
    let form = vec![
        ("grant_type", "client_credentials".to_owned()),
        ("client_id", client_id.clone()),
        ("client_secret", client_secret.clone()),
        ("scope", AZURE_SCOPE.to_owned()),
    ];
    Some((format!("{base}/{tenant_id}/oauth2/v2.0/token"), form))
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeMap, io::Read};

    use serde_json::{Value, json};

    use super::*;

    fn entries() -> Vec<Entry> {
        [("a", "get-secret", "2026-11-23T10:00:00.000000Z"), ("b", "create-secret", "2026-11-23T10:00:01.000000Z")]
            .into_iter()
            .map(|(id, event, at)| Entry {
                json: json!({"id": id, "eventType": event, "createdAt": at}).to_string(),
                created_at: at.parse().unwrap(),
            })
            .collect()
    }

    /// The body as sent, decompressed when the request says it is gzip.
    fn body(request: &Outgoing) -> String {
        if request.headers.contains(&("content-encoding".into(), "gzip".into())) {
            let mut text = String::new();
            flate2::read::GzDecoder::new(&request.body[..]).read_to_string(&mut text).unwrap();
            text
        } else {
            String::from_utf8(request.body.clone()).unwrap()
        }
    }

    fn values(text: &str) -> Vec<Value> {
        serde_json::Deserializer::from_str(text).into_iter().map(Result::unwrap).collect()
    }

    #[test]
    fn custom_batch_single_and_gzip() {
        let headers = BTreeMap::from([("x-team".to_owned(), "sec".to_owned())]);
        let config =
            |batch, gzip| ProviderConfig::Custom { url: "http://r/in".into(), headers: headers.clone(), batch, gzip };
        let out = requests(&config(true, false), &entries(), None);
        assert_eq!(out.len(), 1);
        let batch: Value = serde_json::from_slice(&out[0].body).unwrap();
        assert_eq!(batch.as_array().unwrap().len(), 2);
        assert!(out[0].headers.contains(&("x-team".into(), "sec".into())));
        let out = requests(&config(false, false), &entries(), None);
        assert_eq!(out.len(), 2);
        assert_eq!(serde_json::from_slice::<Value>(&out[1].body).unwrap()["id"], "b");
        let zipped = requests(&config(true, true), &entries(), None);
        assert!(zipped[0].headers.contains(&("content-encoding".into(), "gzip".into())));
        assert_eq!(serde_json::from_str::<Value>(&body(&zipped[0])).unwrap(), batch);
    }

    #[test]
    fn splunk_cribl_datadog_azure() {
        let splunk =
            requests(&ProviderConfig::Splunk { host: "https://s/".into(), token: "T".into() }, &entries(), None);
        assert_eq!(splunk[0].url, "https://s/services/collector/event");
        assert!(splunk[0].headers.contains(&("authorization".into(), "Splunk T".into())));
        assert!(splunk[0].headers.contains(&("content-encoding".into(), "gzip".into())));
        let events = values(&body(&splunk[0]));
        assert_eq!(events.len(), 2);
        assert_eq!(events[0]["event"]["id"], "a");
        assert_eq!(events[0]["time"], 1_795_428_000.0);
        assert_eq!(events[1]["sourcetype"], "hush:audit");

        let cribl =
            requests(&ProviderConfig::Cribl { url: "https://c/in".into(), token: "K".into() }, &entries(), None);
        assert_eq!(body(&cribl[0]).lines().count(), 2);

        let dd = ProviderConfig::Datadog { site: "datadoghq.eu".into(), api_key: "D".into(), url: String::new() };
        let out = requests(&dd, &entries(), None);
        assert_eq!(out[0].url, "https://http-intake.logs.datadoghq.eu/api/v2/logs");
        assert!(out[0].headers.contains(&("dd-api-key".into(), "D".into())));
        let logs: Value = serde_json::from_str(&body(&out[0])).unwrap();
        assert_eq!(logs[0]["ddsource"], "hush");
        assert_eq!(logs[1]["id"], "b");
        assert_eq!(datadog_log("{}"), r#"{"ddsource":"hush","ddtags":"source:hush","service":"hush"}"#);

        let azure = ProviderConfig::Azure {
            tenant_id: "t".into(),
            client_id: "c".into(),
            client_secret: "s".into(),
            dce_url: "https://dce/".into(),
            dcr_immutable_id: "dcr-1".into(),
            table: "HushAudit_CL".into(),
            login_url: String::new(),
        };
        let out = requests(&azure, &entries(), Some("tok"));
        assert_eq!(
            out[0].url,
            "https://dce/dataCollectionRules/dcr-1/streams/Custom-HushAudit_CL?api-version=2023-01-01"
        );
        assert!(out[0].headers.contains(&("authorization".into(), "Bearer tok".into())));
        let (token_url, form) = azure_token_request(&azure).unwrap();
        assert_eq!(token_url, "https://login.microsoftonline.com/t/oauth2/v2.0/token");
        assert!(form.contains(&("grant_type", "client_credentials".into())));
    }

    #[test]
    fn a_full_batch_of_the_largest_entries_fits_each_providers_request_limit() {
        let configs = [
            ProviderConfig::Custom { url: "http://r".into(), headers: BTreeMap::new(), batch: true, gzip: false },
            ProviderConfig::Datadog { site: "x".into(), api_key: "k".into(), url: String::new() },
            ProviderConfig::Splunk { host: "https://s".into(), token: "t".into() },
        ];
        for config in configs {
            let limits = limits(&config);
            // The largest entry alone, and entries as large as fit the byte budget together.
            let entry = |size: usize| Entry {
                json: format!(r#"{{"id":"{}"}}"#, "x".repeat(size - 10)),
                created_at: "2026-11-23T10:00:00.123456Z".parse().unwrap(),
            };
            let alone = requests(&config, &[entry(limits.max_entry_bytes)], None);
            assert!(body(&alone[0]).len() <= limits.max_bytes, "{config:?}: one entry");
            let each = limits.max_bytes / limits.max_events - limits.wrapping - 1;
            let full: Vec<Entry> = (0..limits.max_events).map(|_| entry(each)).collect();
            let out = requests(&config, &full, None);
            assert!(body(&out[0]).len() <= limits.max_bytes, "{config:?}: a full batch");
        }
    }
}

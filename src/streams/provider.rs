//! Turning a batch of audit entries into the HTTP requests each provider expects. Pure functions, so the
//! formats are tested without a network; the engine sends the requests.

use serde_json::{Value, json};

use super::config::ProviderConfig;

/// Azure Monitor ingestion API version.
const AZURE_API_VERSION: &str = "2023-01-01";
/// Default Azure login endpoint.
const AZURE_LOGIN: &str = "https://login.microsoftonline.com";
/// OAuth scope of the Logs Ingestion API.
const AZURE_SCOPE: &str = "https://monitor.azure.com//.default";

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

/// The requests that deliver `entries` (audit entries as JSON objects). Custom single mode makes one request
/// per entry; every other mode one request per batch. Azure needs its OAuth token.
pub fn requests(config: &ProviderConfig, entries: &[Value], azure_token: Option<&str>) -> Vec<Outgoing> {
    match config {
        ProviderConfig::Custom { url, headers, batch } => {
            let headers = json_headers(headers.iter().map(|(k, v)| (k.clone(), v.clone())));
            if *batch {
                vec![Outgoing {
                    url: url.clone(),
                    headers,
                    body: Value::from(entries.to_vec()).to_string().into_bytes(),
                }]
            } else {
                entries
                    .iter()
                    .map(|e| Outgoing { url: url.clone(), headers: headers.clone(), body: e.to_string().into_bytes() })
                    .collect()
            }
        }
        ProviderConfig::Datadog { site, api_key, url } => {
            let url = if url.is_empty() { format!("https://http-intake.logs.{site}/api/v2/logs") } else { url.clone() };
            let logs: Vec<Value> = entries
                .iter()
                .map(|e| {
                    let mut log = json!({ "ddsource": "hush", "service": "hush", "ddtags": "source:hush" });
                    if let (Some(log), Some(entry)) = (log.as_object_mut(), e.as_object()) {
                        log.extend(entry.clone());
                    }
                    log
                })
                .collect();
            let headers = json_headers([("dd-api-key".to_owned(), api_key.clone())]);
            vec![Outgoing { url, headers, body: Value::from(logs).to_string().into_bytes() }]
        }
        ProviderConfig::Splunk { host, token } => {
            let mut body = String::new();
            for entry in entries {
                let time = entry["createdAt"]
                    .as_str()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.timestamp_micros() as f64 / 1e6);
                body.push_str(
                    &json!({ "time": time, "source": "hush", "sourcetype": "hush:audit", "event": entry }).to_string(),
                );
                body.push('\n');
            }
            let headers = json_headers([("authorization".to_owned(), format!("Splunk {token}"))]);
            vec![Outgoing { url: format!("{}/services/collector/event", trim(host)), headers, body: body.into_bytes() }]
        }
        ProviderConfig::Cribl { url, token } => {
            let mut body = String::new();
            for entry in entries {
                body.push_str(&entry.to_string());
                body.push('\n');
            }
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
            vec![Outgoing { url, headers, body: Value::from(entries.to_vec()).to_string().into_bytes() }]
        }
    }
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
    use std::collections::BTreeMap;

    use super::*;

    fn entries() -> Vec<Value> {
        vec![
            json!({"id": "a", "eventType": "get-secret", "createdAt": "2026-11-23T10:00:00.000000Z"}),
            json!({"id": "b", "eventType": "create-secret", "createdAt": "2026-11-23T10:00:01.000000Z"}),
        ]
    }

    #[test]
    fn custom_batch_and_single() {
        let headers = BTreeMap::from([("x-team".to_owned(), "sec".to_owned())]);
        let batch = ProviderConfig::Custom { url: "http://r/in".into(), headers: headers.clone(), batch: true };
        let out = requests(&batch, &entries(), None);
        assert_eq!(out.len(), 1);
        let body: Value = serde_json::from_slice(&out[0].body).unwrap();
        assert_eq!(body.as_array().unwrap().len(), 2);
        assert!(out[0].headers.contains(&("x-team".into(), "sec".into())));
        let single = ProviderConfig::Custom { url: "http://r/in".into(), headers, batch: false };
        let out = requests(&single, &entries(), None);
        assert_eq!(out.len(), 2);
        assert_eq!(serde_json::from_slice::<Value>(&out[1].body).unwrap()["id"], "b");
    }

    #[test]
    fn splunk_cribl_datadog_azure() {
        let splunk =
            requests(&ProviderConfig::Splunk { host: "https://s/".into(), token: "T".into() }, &entries(), None);
        assert_eq!(splunk[0].url, "https://s/services/collector/event");
        assert!(splunk[0].headers.contains(&("authorization".into(), "Splunk T".into())));
        let text = String::from_utf8(splunk[0].body.clone()).unwrap();
        let events: Vec<Value> = serde_json::Deserializer::from_str(&text).into_iter().map(Result::unwrap).collect();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0]["event"]["id"], "a");
        assert_eq!(events[0]["time"], 1_795_428_000.0);

        let cribl =
            requests(&ProviderConfig::Cribl { url: "https://c/in".into(), token: "K".into() }, &entries(), None);
        assert_eq!(String::from_utf8(cribl[0].body.clone()).unwrap().lines().count(), 2);

        let dd = ProviderConfig::Datadog { site: "datadoghq.eu".into(), api_key: "D".into(), url: String::new() };
        let out = requests(&dd, &entries(), None);
        assert_eq!(out[0].url, "https://http-intake.logs.datadoghq.eu/api/v2/logs");
        assert!(out[0].headers.contains(&("dd-api-key".into(), "D".into())));
        assert_eq!(serde_json::from_slice::<Value>(&out[0].body).unwrap()[0]["ddsource"], "hush");

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
}

//! An audit stream destination for tests: an in-process HTTP server that records what it gets, answers as
//! planned (failures on purpose, `Retry-After`, slowness) and tracks concurrent requests.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{Router, body::Bytes, extract::State, http::HeaderMap, response::IntoResponse, routing::post};

/// One request a receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    /// The query string, empty when there was none.
    pub query: String,
    pub headers: HeaderMap,
    pub body: String,
}

/// How a receiver answers the next request.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    Status(u16),
    /// A failure status with this body (to check a destination's answer is never shown back).
    Body(u16, &'static str),
    TooManyRequests {
        retry_after_secs: u64,
    },
}

#[derive(Clone, Default)]
pub struct Receiver {
    received: Arc<Mutex<Vec<Received>>>,
    plan: Arc<Mutex<VecDeque<Answer>>>,
    /// Requests being answered right now, and the most ever at once.
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
    /// How long each answer takes.
    pub delay: Arc<Mutex<Duration>>,
    outage: Arc<Mutex<Outage>>,
}

/// A planned outage: every delivery is answered 503 for a while.
#[derive(Debug, Clone, Copy, Default)]
enum Outage {
    #[default]
    None,
    /// Starts with the next delivery and lasts this long.
    Armed(Duration),
    Until(Instant),
}

async fn record(
    State(receiver): State<Receiver>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let path = uri.path().to_owned();
    let query = uri.query().unwrap_or_default().to_owned();
    let body = decoded(&headers, body);
    let now = receiver.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    receiver.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let delay = *receiver.delay.lock().unwrap();
    tokio::time::sleep(delay).await;
    let response = answer(&receiver, path, query, headers, body);
    receiver.in_flight.fetch_sub(1, Ordering::SeqCst);
    response
}

/// The body as the sender meant it: gunzipped when it says `Content-Encoding: gzip`.
fn decoded(headers: &HeaderMap, body: Bytes) -> Bytes {
    if headers.get("content-encoding").is_none_or(|e| e != "gzip") {
        return body;
    }
    let mut plain = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut plain).expect("a gzip body");
    plain.into()
}

fn answer(
    receiver: &Receiver,
    path: String,
    query: String,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    if path.ends_with("/oauth2/v2.0/token") {
        receiver.received.lock().unwrap().push(Received {
            path,
            query,
            headers,
            body: String::from_utf8_lossy(&body).into(),
        });
        return axum::Json(serde_json::json!({ "access_token": "azure-access-token", "expires_in": 3600 }))
            .into_response();
    }
    let down = {
        let mut outage = receiver.outage.lock().unwrap();
        if let Outage::Armed(length) = *outage {
            *outage = Outage::Until(Instant::now() + length);
        }
        matches!(*outage, Outage::Until(end) if Instant::now() < end)
    };
    if down {
        return (axum::http::StatusCode::SERVICE_UNAVAILABLE, "down on purpose").into_response();
    }
    let answer = receiver.plan.lock().unwrap().pop_front().unwrap_or(Answer::Status(200));
    match answer {
        Answer::Status(code) if code < 300 => {
            receiver.received.lock().unwrap().push(Received {
                path,
                query,
                headers,
                body: String::from_utf8_lossy(&body).into(),
            });
            axum::http::StatusCode::from_u16(code).unwrap().into_response()
        }
        Answer::Status(code) => {
            (axum::http::StatusCode::from_u16(code).unwrap(), "receiver failing on purpose").into_response()
        }
        Answer::Body(code, text) => (axum::http::StatusCode::from_u16(code).unwrap(), text).into_response(),
        Answer::TooManyRequests { retry_after_secs } => {
            (axum::http::StatusCode::TOO_MANY_REQUESTS, [("retry-after", retry_after_secs.to_string())], "slow down")
                .into_response()
        }
    }
}

impl Receiver {
    /// Serves on `listener` until the returned handle is aborted.
    pub fn serve(&self, listener: tokio::net::TcpListener) -> tokio::task::JoinHandle<()> {
        let app = Router::new().fallback(post(record)).with_state(self.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        })
    }

    pub async fn start(&self) -> (String, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        (url, self.serve(listener))
    }

    pub fn fail_next(&self, answers: &[Answer]) {
        self.plan.lock().unwrap().extend(answers.iter().copied());
    }

    /// Answers every delivery 503 for `length`, starting with the next one (the worst case for a sender:
    /// its first failure is the outage's first moment).
    pub fn outage(&self, length: Duration) {
        *self.outage.lock().unwrap() = Outage::Armed(length);
    }

    /// Whether a planned outage is over (or none was planned).
    pub fn outage_over(&self) -> bool {
        match *self.outage.lock().unwrap() {
            Outage::None => true,
            Outage::Armed(_) => false,
            Outage::Until(end) => Instant::now() >= end,
        }
    }

    /// Planned answers not used yet.
    pub fn plan_left(&self) -> usize {
        self.plan.lock().unwrap().len()
    }

    /// The most requests this receiver ever answered at once.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Every audit entry id delivered to `path` (any provider format), in the order received.
    pub fn ids(&self, path: &str) -> Vec<String> {
        self.entries(path).iter().map(|entry| entry["id"].as_str().unwrap().to_owned()).collect()
    }

    /// Every audit entry delivered to `path` (any provider format), in the order received.
    pub fn entries(&self, path: &str) -> Vec<serde_json::Value> {
        let mut entries = Vec::new();
        for r in self.received().iter().filter(|r| r.path == path) {
            let values: Vec<serde_json::Value> =
                serde_json::Deserializer::from_str(&r.body).into_iter().map(Result::unwrap).collect();
            for value in values {
                let items = match value {
                    serde_json::Value::Array(items) => items,
                    other => vec![other],
                };
                for item in items {
                    entries.push(if item.get("event").is_some() { item["event"].clone() } else { item });
                }
            }
        }
        entries
    }
}

/// Waits until `done` holds, or panics after `limit`.
pub async fn eventually(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

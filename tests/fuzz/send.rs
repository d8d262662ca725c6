//! Sending a case over its transport and judging the answer: the caller's fault must be answered as such
//! (a 4xx, or a gRPC code other than INTERNAL, UNKNOWN, DATA_LOSS or UNAVAILABLE), and promptly.

use std::time::Duration;

use tonic::{Code, transport::Channel};

use super::{
    common::raw,
    mutations::{Auth, Case, Transport},
};

/// Longest a single answer may take before it counts as a hang.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// The server's request body limit (4 MiB and a gRPC frame header).
const BODY_LIMIT: usize = 4 * 1024 * 1024 + 5;
/// Largest JSON error body: a bounded message and the code, JSON-escaped.
const MAX_JSON_ERROR_BYTES: usize = 8 * hush::gateway::bounded_errors::MAX_MESSAGE_BYTES;
/// gRPC codes that blame the server.
const SERVER_FAULTS: [Code; 4] = [Code::Unknown, Code::Internal, Code::Unavailable, Code::DataLoss];

/// Connections to the server under test.
#[derive(Clone)]
pub struct Target {
    pub base: String,
    pub http1: reqwest::Client,
    pub grpc: Channel,
    pub admin_token: String,
}

impl Target {
    fn authorization(&self, auth: Auth) -> Option<String> {
        match auth {
            Auth::Admin => Some(format!("Bearer {}", self.admin_token)),
            Auth::None => None,
            Auth::Garbage => Some(format!("Bearer {}", "garbage.!~".repeat(50))),
        }
    }

    /// Sends `case`; `Ok` names the answer (a gRPC code or an HTTP status), `Err` describes one that blames the
    /// server.
    pub async fn judge(&self, case: &Case) -> Result<String, String> {
        match tokio::time::timeout(ANSWER_TIMEOUT, self.send(case)).await {
            // The server answers a body over its limit as soon as it has read the limit and closes the
            // connection; a client still sending sees the connection go.
            Ok(Err(_)) if case.body.len() > BODY_LIMIT => Ok("cut off over the body limit".to_owned()),
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {ANSWER_TIMEOUT:?}")),
        }
    }

    async fn send(&self, case: &Case) -> Result<String, String> {
        match case.transport {
            Transport::Grpc => self.grpc(case).await,
            Transport::GrpcWeb => self.grpc_web(case).await,
            Transport::Json | Transport::Sse => self.http1(case).await,
        }
    }

    /// JSON and SSE: any 4xx is the caller's fault, but its error body must be bounded.
    async fn http1(&self, case: &Case) -> Result<String, String> {
        let mut request =
            self.http1.post(format!("{}{}", self.base, case.path)).header("content-type", "application/json");
        if let Some(value) = self.authorization(case.auth) {
            request = request.header("authorization", value);
        }
        if let Some(id) = &case.last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.body(case.body.clone()).send().await.map_err(|e| format!("transport error: {e}"))?;
        let status = response.status();
        if status.is_success() {
            return Ok(format!("HTTP {}", status.as_u16())); // An answer, or an SSE stream that opened.
        }
        let body = response.text().await.unwrap_or_default();
        if status.is_server_error() {
            return Err(format!("HTTP {status}: {}", body.chars().take(500).collect::<String>()));
        }
        if body.len() > MAX_JSON_ERROR_BYTES {
            return Err(format!("HTTP {status} with a {}-byte error: errors must be bounded", body.len()));
        }
        Ok(format!("HTTP {}", status.as_u16()))
    }

    async fn grpc_web(&self, case: &Case) -> Result<String, String> {
        let authorization = self.authorization(case.auth);
        let answer = raw::grpc_web(
            &self.http1,
            &self.base,
            &case.path,
            authorization.as_deref(),
            case.body.clone(),
            case.streaming,
        )
        .await?;
        answer.map_or(Ok("stream opened".to_owned()), judge)
    }

    async fn grpc(&self, case: &Case) -> Result<String, String> {
        let authorization = self.authorization(case.auth);
        let answer =
            raw::grpc(&self.grpc, &self.base, &case.path, authorization.as_deref(), case.body.clone(), case.streaming)
                .await?;
        answer.map_or(Ok("stream opened".to_owned()), judge)
    }
}

/// An answer blames the server when its code does, or when its message is not bounded.
fn judge(status: tonic::Status) -> Result<String, String> {
    if SERVER_FAULTS.contains(&status.code()) {
        return Err(format!("{:?}: {}", status.code(), status.message()));
    }
    if status.message().len() > hush::gateway::bounded_errors::MAX_MESSAGE_BYTES {
        return Err(format!("a message of {} bytes: errors must be bounded", status.message().len()));
    }
    Ok(format!("{:?}", status.code()))
}

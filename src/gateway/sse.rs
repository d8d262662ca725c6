//! `POST /api/v1/events/subscribe/project-events`: event subscriptions over Server-Sent Events, in the shape
//! curl users and existing SDKs know. It calls the same subscription code as gRPC `Subscribe`.
//!
//! - Body: `{"projectId": "…", "register": [{"event": "secret:create", "conditions": {"environmentSlug":
//!   "dev", "secretPath": "/micro_service1"}}]}`.
//! - Each event: `id:` is the cursor (so `Last-Event-ID` resumes), `data:` is
//!   `{"projectType": "secret-manager", "data": {"eventType": …, "payload": [...]}}`, or CloudEvents 1.0 JSON
//!   with `?format=cloudevents`. Heartbeats are SSE comments. Errors before the stream opens are JSON.

use std::convert::Infallible;

use axum::{
    Extension,
    extract::{Query, State},
    response::{
        IntoResponse, Response,
        sse::{Event as SseEvent, Sse},
    },
};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_stream::{Stream, StreamExt};
use tonic::transport::server::TcpConnectInfo;

use super::{GatewayState, errors};
use crate::{
    events::{Event, SubscribeRequest, SubscriptionItem, Wire, cloudevent},
    identity::Principal,
};

/// Header browsers and curl users send to resume.
const LAST_EVENT_ID: &str = "last-event-id";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Body {
    project_id: String,
    #[serde(default)]
    register: Vec<Register>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Register {
    event: String,
    #[serde(default)]
    conditions: Option<Conditions>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Conditions {
    #[serde(default)]
    environment_slug: String,
    #[serde(default)]
    secret_path: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct Format {
    /// `cloudevents` for CloudEvents 1.0 JSON frames.
    #[serde(default)]
    format: Option<String>,
}

fn bad_request(message: String) -> Response {
    errors::response(&tonic::Status::invalid_argument(message))
}

/// The `data:` of an event in the common shape.
fn project_event_json(event: &Event) -> Value {
    let payload = match &event.payload.import_mutation {
        Some(folder) => json!(folder),
        None => json!(event.payload.secrets),
    };
    json!({
        "projectType": "secret-manager",
        "data": { "eventType": event.event_type.as_str(), "operation": event.payload.operation, "payload": payload },
    })
}

fn frame(item: Result<SubscriptionItem, crate::events::EventsError>, cloudevents: bool) -> SseEvent {
    match item {
        Ok(SubscriptionItem::Event(delivery)) => {
            // Serialized once per delivery for every stream that sends it in the same shape.
            let data = if cloudevents {
                delivery.encoded(Wire::CloudEvents, |event| Bytes::from(cloudevent::to_json(event).to_string()))
            } else {
                delivery.encoded(Wire::ProjectEvents, |event| Bytes::from(project_event_json(event).to_string()))
            };
            SseEvent::default().id(delivery.cursor()).data(String::from_utf8_lossy(&data))
        }
        Ok(SubscriptionItem::Heartbeat(_)) => SseEvent::default().comment("heartbeat"),
        Ok(SubscriptionItem::Lagged { resume_after, reason }) => SseEvent::default()
            .event("lagged")
            .data(json!({ "resumeAfter": resume_after, "reason": reason }).to_string()),
        Err(error) => {
            let status = tonic::Status::from(error);
            SseEvent::default().event("error").data(errors::body(status.code(), status.message()))
        }
    }
}

pub async fn subscribe(
    State(state): State<GatewayState>,
    Extension(caller): Extension<Principal>,
    Query(format): Query<Format>,
    headers: http::HeaderMap,
    extensions: http::Extensions,
    body: Bytes,
) -> Response {
    let cloudevents = match format.format.as_deref() {
        None | Some("") => false,
        Some("cloudevents") => true,
        Some(other) => return bad_request(format!("format: unknown format '{other}' (use cloudevents)")),
    };
    let mut json = serde_json::Deserializer::from_slice(&body);
    let body: Body = match serde_path_to_error::deserialize(&mut json) {
        Ok(body) => body,
        Err(error) => return bad_request(format!("invalid request body: {}: {}", error.path(), error.inner())),
    };
    let resume_after = headers.get(LAST_EVENT_ID).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let request = SubscribeRequest {
        project_id: body.project_id,
        registrations: body
            .register
            .into_iter()
            .map(|r| {
                let conditions = r.conditions.unwrap_or_default();
                (r.event, conditions.environment_slug, conditions.secret_path)
            })
            .collect(),
        resume_after,
        connection: extensions.get::<TcpConnectInfo>().and_then(TcpConnectInfo::remote_addr),
    };
    match state.events.subscribe(caller, request).await {
        Ok(subscription) => {
            let stream = subscription.map(move |item| Ok::<_, Infallible>(frame(item, cloudevents)));
            sse(stream).into_response()
        }
        Err(error) => errors::response(&tonic::Status::from(error)),
    }
}

fn sse(stream: impl Stream<Item = Result<SseEvent, Infallible>> + Send + 'static) -> impl IntoResponse {
    // Proxies must not buffer the stream.
    ([(http::HeaderName::from_static("x-accel-buffering"), "no")], Sse::new(stream))
}

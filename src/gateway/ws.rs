//! `GET /api/v1/events/subscribe/{eventType}`: event subscriptions over WebSocket, the transport of Vault's
//! event notifications (`wscat … /v1/sys/events/subscribe/kv-v2/data-write?json=true`). It calls the same
//! subscription code as gRPC `Subscribe` and SSE: the same permission checks (before the upgrade, and again on
//! every permission change), caps, resume and lag semantics.
//!
//! - Path: the event type, wildcards allowed (`secret:*`, `*`). Query: `projectId` (required), `environment`,
//!   `secretPath` (glob), `resumeAfter` (a cursor), `json` (`true`: CloudEvents 1.0 JSON text frames; default
//!   binary `SubscribeResponse` protobuf frames, one event per frame).
//! - Authentication: `Authorization: Bearer <token>`, or, for browsers (which cannot set headers on a
//!   WebSocket), the subprotocols `hush.bearer, hush.bearer.<token>`: the server selects `hush.bearer`, so the
//!   token is never echoed.
//! - Refusals before the stream opens are ordinary HTTP errors (401, 403, 404, 400 with a JSON body). After it
//!   opens, the server pings every heartbeat interval and ends with a close frame whose code says why:
//!   1001 server shutting down, 4000 lagged (the reason holds the cursor to resume after), 4401 the token
//!   expired or was revoked, 4403 a permission was withdrawn, 4404 the project was deleted, 4429 a cap, 1011
//!   anything else. A client's own frames other than pong and close are ignored.

use axum::{
    Extension,
    extract::{
        Path, Query, State,
        ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade},
    },
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use futures_util::SinkExt;
use serde::Deserialize;
use tokio_stream::StreamExt;
use tonic::transport::server::TcpConnectInfo;

use super::{GatewayState, access_log::Transport, errors, metrics::Metrics};
use crate::{
    events::{EventsError, SubscribeRequest, Subscription, SubscriptionItem, Wire, cloudevent},
    identity::Principal,
};

/// The subprotocol a browser names to carry its token (`hush.bearer.<token>` beside it).
pub const BEARER_PROTOCOL: &str = "hush.bearer";
/// Most bytes of events waiting to be written to one socket; a reading client never gets near it.
const MAX_WRITE_BUFFER: usize = 1024 * 1024;
/// How long the pong to a client's ping may take to leave. Each ping is answered before the next message is
/// read, so a client that floods pings and never reads the pongs stops being read once the kernel's buffers are
/// full, and is disconnected after this, instead of the pongs piling up in memory (they once grew by ~3 GB per
/// socket: the WebSocket library queues a pong per ping, outside the write buffer's cap).
const PONG_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Largest frame or message a client may send: it has nothing to say beyond pings, pongs and a close.
const MAX_CLIENT_MESSAGE: usize = 4 * 1024;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WsQuery {
    project_id: String,
    #[serde(default)]
    environment: String,
    #[serde(default)]
    secret_path: String,
    #[serde(default)]
    resume_after: Option<String>,
    #[serde(default)]
    json: bool,
}

pub async fn subscribe(
    State(state): State<GatewayState>,
    Extension(caller): Extension<Principal>,
    Path(event_type): Path<String>,
    query: Result<Query<WsQuery>, axum::extract::rejection::QueryRejection>,
    extensions: http::Extensions,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Query(query) = match query {
        Ok(query) => query,
        Err(rejection) => return errors::response(&tonic::Status::invalid_argument(rejection.body_text())),
    };
    let request = SubscribeRequest {
        project_id: query.project_id,
        registrations: vec![(event_type, query.environment, query.secret_path)],
        resume_after: query.resume_after,
        connection: extensions.get::<TcpConnectInfo>().and_then(TcpConnectInfo::remote_addr),
    };
    // Subscribed before the upgrade: a refusal is an HTTP error the client can read, and once the 101 is
    // sent nothing committed afterwards is missed.
    let metrics = state.metrics.clone();
    match state.events.subscribe(caller, request).await {
        Ok(subscription) => upgrade
            .protocols([BEARER_PROTOCOL])
            .max_write_buffer_size(MAX_WRITE_BUFFER)
            .max_message_size(MAX_CLIENT_MESSAGE)
            .max_frame_size(MAX_CLIENT_MESSAGE)
            .on_upgrade(move |socket| async move {
                let _counted = OpenStream::new(metrics);
                pump(socket, subscription, query.json).await;
            })
            .into_response(),
        Err(error) => errors::response(&tonic::Status::from(error)),
    }
}

/// Counts an open WebSocket subscription in `hush_streams_open{transport="websocket"}` while it lives.
struct OpenStream(Metrics);

impl OpenStream {
    fn new(metrics: Metrics) -> Self {
        metrics.stream_opened(Transport::WebSocket);
        Self(metrics)
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.stream_closed(Transport::WebSocket);
    }
}

/// Sends the subscription's items as frames until it ends, the client closes, or the connection fails.
async fn pump(mut socket: WebSocket, mut subscription: Subscription, json: bool) {
    let close = loop {
        tokio::select! {
            item = subscription.next() => match item {
                Some(Ok(SubscriptionItem::Event(delivery))) => {
                    let frame = if json {
                        let text = delivery.encoded(Wire::CloudEvents, |event| Bytes::from(cloudevent::to_json(event).to_string()));
                        Message::Text(Utf8Bytes::try_from(text).expect("JSON is UTF-8"))
                    } else {
                        Message::Binary(crate::api::encode_subscribe_response(SubscriptionItem::Event(delivery)))
                    };
                    if socket.send(frame).await.is_err() {
                        return;
                    }
                }
                // Keep-alive: the client's pong is read below; a dead peer fails a later send.
                Some(Ok(SubscriptionItem::Heartbeat(_))) => {
                    if socket.send(Message::Ping(Bytes::new())).await.is_err() {
                        return;
                    }
                }
                Some(Ok(SubscriptionItem::Lagged { resume_after, reason })) => {
                    break (4000, format!("lagged: {reason}; resume after {resume_after}"));
                }
                Some(Err(error)) => break close_for(&error),
                None => break (1001, "server shutting down".to_owned()),
            },
            received = socket.recv() => match received {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(Message::Ping(_))) => {
                    if !matches!(tokio::time::timeout(PONG_TIMEOUT, socket.flush()).await, Ok(Ok(()))) {
                        return;
                    }
                }
                Some(Ok(_)) => {}
            },
        }
    };
    let (code, reason) = close;
    // A close reason is at most 123 bytes.
    let reason: String = reason.char_indices().take_while(|(i, c)| i + c.len_utf8() <= 123).map(|(_, c)| c).collect();
    let _ = socket.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
}

/// The close code and reason of an error that ends an open subscription.
fn close_for(error: &EventsError) -> (u16, String) {
    let code = match error {
        EventsError::Unauthenticated(_) => 4401,
        EventsError::PermissionDenied(_) => 4403,
        EventsError::NotFound(_) => 4404,
        EventsError::ResourceExhausted(_) => 4429,
        _ => 1011,
    };
    (code, error.to_string())
}

//! `hush.v1.EventsService`: Subscribe as a server stream over the domain subscription.
//!
//! Served by hand rather than through the generated server, for one reason: the generated one encodes every
//! message of every stream itself, so an event fanned out to 10 000 streams was converted and encoded 10 000
//! times, and each stream held tonic's 8 KiB write buffer while idle. Here the stream carries bytes encoded
//! once per delivery ([`Delivery::encoded`](events::Delivery::encoded)) and a small buffer.

use std::convert::Infallible;

use bytes::{BufMut, Bytes};
use prost::Message as _;
use tokio_stream::StreamExt;
use tonic::{
    Request, Response, Status,
    codec::{BufferSettings, Codec, EncodeBuf, Encoder},
    codegen::{BoxFuture, BoxStream},
    server::{Grpc, ServerStreamingService},
};

use super::{auth::principal, convert::timestamp};
use crate::{
    events::{self, EventHub, SubscriptionItem, Wire},
    limits::MAX_MESSAGE_BYTES,
    pb,
};

/// The one method of the service (gRPC and grpc-web).
pub const SUBSCRIBE_PATH: &str = "/hush.v1.EventsService/Subscribe";

/// The EventsService, served over gRPC and grpc-web.
#[derive(Clone)]
pub struct EventsApi {
    hub: EventHub,
}

impl EventsApi {
    /// Handlers over this instance's event hub.
    pub fn new(hub: EventHub) -> Self {
        Self { hub }
    }
}

impl From<&events::Event> for pb::Event {
    fn from(e: &events::Event) -> Self {
        Self {
            cursor: e.cursor(),
            id: e.id.clone(),
            r#type: e.event_type.as_str().to_owned(),
            project_id: e.project_id.clone(),
            time: timestamp(e.time),
            secrets: e
                .payload
                .secrets
                .iter()
                .map(|s| pb::SecretRef {
                    environment: s.environment.clone(),
                    secret_path: s.secret_path.clone(),
                    secret_key: s.secret_key.clone(),
                    version: s.version,
                    previous_version: s.previous_version,
                })
                .collect(),
            import_mutation: e
                .payload
                .import_mutation
                .as_ref()
                .map(|m| pb::ImportMutation { environment: m.environment.clone(), secret_path: m.secret_path.clone() }),
            operation: e.payload.operation.clone(),
            actor: Some(pb::Actor {
                r#type: match e.actor.kind.as_str() {
                    "identity" => pb::ActorType::Identity,
                    "platform" => pb::ActorType::Platform,
                    _ => pb::ActorType::Unspecified,
                } as i32,
                identity_id: e.actor.id.clone(),
                name: e.actor.name.clone(),
            }),
        }
    }
}

/// A subscription item as `SubscribeResponse` protobuf bytes; events are encoded once for every stream that
/// sends the same delivery.
pub fn encode(item: SubscriptionItem) -> Bytes {
    use pb::subscribe_response::Message;
    let message = |message: Message| Bytes::from(pb::SubscribeResponse { message: Some(message) }.encode_to_vec());
    match item {
        SubscriptionItem::Event(delivery) => {
            delivery.encoded(Wire::Protobuf, |event| message(Message::Event(event.into())))
        }
        SubscriptionItem::Heartbeat(time) => message(Message::Heartbeat(pb::Heartbeat { time: timestamp(time) })),
        SubscriptionItem::Lagged { resume_after, reason } => {
            message(Message::Lagged(pb::Lagged { resume_after, reason }))
        }
    }
}

impl From<pb::SubscribeRequest> for events::SubscribeRequest {
    fn from(r: pb::SubscribeRequest) -> Self {
        Self {
            project_id: r.project_id,
            registrations: r
                .registrations
                .into_iter()
                .map(|reg| {
                    let conditions = reg.conditions.unwrap_or_default();
                    (reg.event_type, conditions.environment_slug, conditions.secret_path)
                })
                .collect(),
            resume_after: r.resume_after,
            connection: None,
        }
    }
}

/// Bytes of a `SubscribeResponse` that are encoded already (see [`encode`]); requests are decoded with prost.
/// Its write buffer is small: an idle stream holds one, and events are a few hundred bytes.
#[derive(Debug, Clone, Copy, Default)]
struct SubscribeCodec;

impl Codec for SubscribeCodec {
    type Encode = Bytes;
    type Decode = pb::SubscribeRequest;
    type Encoder = PreEncoded;
    type Decoder = tonic_prost::ProstDecoder<pb::SubscribeRequest>;

    fn encoder(&mut self) -> PreEncoded {
        PreEncoded
    }

    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstDecoder::new(BufferSettings::default())
    }
}

/// Writes protobuf bytes as they are.
#[derive(Debug, Clone, Copy)]
struct PreEncoded;

impl Encoder for PreEncoded {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::new(STREAM_WRITE_BUFFER, STREAM_YIELD_THRESHOLD)
    }
}

/// Bytes each stream's write buffer starts with (tonic's default, 8 KiB, would dominate an idle stream).
const STREAM_WRITE_BUFFER: usize = 512;
/// Encoded bytes after which a stream hands what it has to HTTP/2 instead of encoding more.
const STREAM_YIELD_THRESHOLD: usize = 32 * 1024;

/// The Subscribe method.
struct SubscribeMethod(EventHub);

impl ServerStreamingService<pb::SubscribeRequest> for SubscribeMethod {
    type Response = Bytes;
    type ResponseStream = BoxStream<Bytes>;
    type Future = BoxFuture<Response<Self::ResponseStream>, Status>;

    fn call(&mut self, request: Request<pb::SubscribeRequest>) -> Self::Future {
        let hub = self.0.clone();
        Box::pin(async move {
            let caller = principal(&request)?;
            let connection = request.remote_addr();
            let mut subscribe: events::SubscribeRequest = request.into_inner().into();
            subscribe.connection = connection;
            let subscription = hub.subscribe(caller, subscribe).await?;
            let stream = subscription.map(|item| item.map(encode).map_err(Status::from));
            Ok(Response::new(Box::pin(stream) as Self::ResponseStream))
        })
    }
}

impl tonic::server::NamedService for EventsApi {
    const NAME: &'static str = pb::events_service_server::SERVICE_NAME;
}

impl<B> tower::Service<http::Request<B>> for EventsApi
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != SUBSCRIBE_PATH {
            return Box::pin(async { Ok(Status::unimplemented("").into_http()) });
        }
        let method = SubscribeMethod(self.hub.clone());
        Box::pin(async move {
            let mut grpc = Grpc::new(SubscribeCodec)
                .apply_max_message_size_config(Some(MAX_MESSAGE_BYTES), Some(MAX_MESSAGE_BYTES));
            Ok(grpc.server_streaming(method, request).await)
        })
    }
}

//! Requests that are the caller's fault, refused as INVALID_ARGUMENT before tonic sees them.
//!
//! tonic answers INTERNAL when a request body is not one well-formed protobuf message (a truncated frame,
//! invalid UTF-8 in a string, a wrong wire type, no message at all), which blames the server for the caller's
//! bytes (and logs it as a server fault, which anyone could do unauthenticated through the health check). And
//! PostgreSQL cannot store a NUL character in text, so a NUL in any text field would fail at the database.
//! This layer reads each gRPC request to a hush RPC or to the health service (grpc-web and JSON calls arrive
//! here as gRPC), decodes it against the descriptor set and checks every text field, so both are refused in
//! one place for every RPC, naming the field. Secret values (fields named `value`) may hold any text: they
//! are stored encrypted, never as text.

use std::sync::LazyLock;

use bytes::{Buf, Bytes, BytesMut};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use prost_reflect::{DescriptorPool, DynamicMessage, MapKey, MethodDescriptor, ReflectMessage, Value};
use tonic::{Status, body::Body};
use tower::Layer;

use super::{
    edges::is_grpc,
    grpc_web::ReceivedBody,
    json::{MAX_BODY_BYTES, method, method_in},
};
use crate::around::{Around, BoxFuture, Inner, Step, around};

/// Bytes before each gRPC message: a compression flag and a big-endian length.
const FRAME_HEADER: usize = 5;
/// The field name used when the fault is in the body as a whole rather than in one field.
const BODY_FIELD: &str = "request body";

/// The standard health service's descriptors (`grpc.health.v1`).
static HEALTH: LazyLock<DescriptorPool> = LazyLock::new(|| {
    DescriptorPool::decode(tonic_health::pb::FILE_DESCRIPTOR_SET).expect("tonic-health ships a valid descriptor set")
});

/// The RPC of a path whose requests are checked here: hush's own and the health service's (each takes one
/// request message). Reflection, a bidirectional stream, and unknown paths are not.
fn checked_method(path: &str) -> Option<MethodDescriptor> {
    method(path).or_else(|| method_in(&HEALTH, path))
}

/// Layer refusing malformed gRPC requests and text fields with control characters.
#[derive(Clone, Default)]
pub struct RefuseMalformedLayer;

impl<S> Layer<S> for RefuseMalformedLayer {
    type Service = Around<Self, S>;

    fn layer(&self, inner: S) -> Self::Service {
        around(self, inner)
    }
}

/// Why a frame whose first byte is `flag` is not accepted, if it is not: 0 is a message, 1 a compressed one
/// (refused), and anything else no gRPC request frame at all (grpc-web's 0x80 marks trailers, which only
/// answers carry).
fn refused_flag(flag: u8) -> Option<String> {
    match flag {
        0 => None,
        1 => Some("holds a compressed message; compression is not accepted".to_owned()),
        other => Some(format!("starts with {other:#04x}, which is not a gRPC message frame (0, or 1 if compressed)")),
    }
}

/// The one message of a gRPC request body (whose flag byte `read_body` checked), or why there is not exactly one.
fn single_message(mut body: Bytes) -> Result<Bytes, String> {
    if body.is_empty() {
        return Err("holds no message".to_owned());
    }
    if body.len() < FRAME_HEADER {
        return Err(format!("ends inside the {FRAME_HEADER}-byte gRPC frame header"));
    }
    // The flag byte was checked as the body arrived (`read_body`).
    body.advance(1);
    let len = body.get_u32() as usize;
    match body.len().cmp(&len) {
        std::cmp::Ordering::Less => Err(format!("frame announces {len} bytes but {} follow", body.len())),
        std::cmp::Ordering::Greater => Err("holds more than one message".to_owned()),
        std::cmp::Ordering::Equal => Ok(body),
    }
}

/// Whether a text field may not hold `c`: control characters other than tab and line breaks.
fn refused(c: char) -> bool {
    c.is_control() && !matches!(c, '\t' | '\n' | '\r')
}

fn check_text(field: &str, text: &str) -> Result<(), Status> {
    match text.chars().find(|c| refused(*c)) {
        Some(c) => Err(crate::api::status::invalid_argument(
            field.to_owned(),
            format!("contains the control character U+{:04X}; text fields may not", c as u32),
        )),
        None => Ok(()),
    }
}

/// Checks every text field of `message` (nested messages, lists and maps included); `prefix` is the path of
/// `message` in the request (`""` at the top, `secrets[2].` below).
fn check_fields(message: &DynamicMessage, prefix: &str) -> Result<(), Status> {
    for (field, value) in message.fields() {
        let path = format!("{prefix}{}", field.name());
        if field.name() == "value" && message.descriptor().package_name() == "hush.v1" {
            continue;
        }
        check_value(&path, value)?;
    }
    Ok(())
}

fn check_value(path: &str, value: &Value) -> Result<(), Status> {
    match value {
        Value::String(text) => check_text(path, text),
        Value::Message(nested) => check_fields(nested, &format!("{path}.")),
        Value::List(items) => {
            items.iter().enumerate().try_for_each(|(i, item)| check_value(&format!("{path}[{i}]"), item))
        }
        Value::Map(entries) => entries.iter().try_for_each(|(key, item)| {
            if let MapKey::String(key) = key {
                check_text(&format!("{path} key"), key)?;
            }
            check_value(&format!("{path}[]"), item)
        }),
        _ => Ok(()),
    }
}

/// Why a request body could not be read: for a grpc-web request whose body arrived intact, grpc-web's
/// decoding refused the caller's bytes (say grpc-web-text that is not base64); otherwise the client went away or
/// stopped sending.
fn unreadable(error: &Status, received: Option<&ReceivedBody>) -> Status {
    match received {
        Some(received) if !received.failed() => crate::api::status::invalid_argument(
            BODY_FIELD.to_owned(),
            format!("is not valid grpc-web: {}", error.message().trim_start_matches("tonic-web: ")),
        ),
        _ => Status::cancelled("request body unreadable"),
    }
}

/// Reads a gRPC request body whole, refusing it as soon as it is larger than one message may be, or as soon
/// as its frame header announces a larger message (without waiting for bytes that may never come).
async fn read_body(body: Body, received: Option<&ReceivedBody>) -> Result<Bytes, Status> {
    let too_large = || Status::resource_exhausted(format!("request body is larger than {MAX_BODY_BYTES} bytes"));
    let mut body = std::pin::pin!(body);
    let mut bytes = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(|error| unreadable(&error, received))?.into_data() else {
            continue;
        };
        bytes.extend_from_slice(&data);
        // Before the length it announces: a body that is no gRPC frame is refused as such.
        if let Some(refused) = bytes.first().and_then(|&flag| refused_flag(flag)) {
            return Err(crate::api::status::invalid_argument(BODY_FIELD.to_owned(), refused));
        }
        let announced = match bytes.get(1..FRAME_HEADER) {
            Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]),
            _ => 0,
        };
        if bytes.len() > MAX_BODY_BYTES + FRAME_HEADER
            || usize::try_from(announced).map_or(true, |n| n > MAX_BODY_BYTES)
        {
            return Err(too_large());
        }
    }
    Ok(bytes.freeze())
}

/// Reads and checks a gRPC request to `method`; gives back the body to pass on, or the answer to send.
async fn checked_body(method: MethodDescriptor, body: Body, received: Option<&ReceivedBody>) -> Result<Bytes, Status> {
    let bytes = read_body(body, received).await?;
    let invalid = |reason: String| crate::api::status::invalid_argument(BODY_FIELD.to_owned(), reason);
    let payload = single_message(bytes.clone()).map_err(invalid)?;
    let message = DynamicMessage::decode(method.input(), payload)
        .map_err(|error| invalid(format!("is not a valid {}: {error}", method.input().name())))?;
    check_fields(&message, "")?;
    Ok(bytes)
}

impl Step for RefuseMalformedLayer {
    fn step<S: Inner>(&self, request: Request<Body>, mut inner: S) -> BoxFuture<Response<Body>, S::Error> {
        // Neither hush nor the health service has a client-streaming RPC, so reading a request whole changes
        // nothing for the service.
        let Some(method) = checked_method(request.uri().path()).filter(|_| is_grpc(&request)) else {
            return Box::pin(inner.call(request));
        };
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            match checked_body(method, body, parts.extensions.get::<ReceivedBody>()).await {
                Ok(bytes) => inner.call(Request::from_parts(parts, Body::new(Full::new(bytes)))).await,
                Err(status) => Ok(status.into_http()),
            }
        })
    }
}

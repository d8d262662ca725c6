//! Generic JSON transcoding for every unary RPC: `POST /hush.v1.<Service>/<Method>` with
//! `Content-Type: application/json` and a canonical proto3 JSON body (the Connect unary shape).
//!
//! The layer turns the JSON into the protobuf request (using the descriptor set), sends it as an ordinary gRPC
//! call through the rest of the stack (auth, services) in-process, and turns the answer back into JSON. There
//! is no handler per RPC: a new RPC in the contract is reachable from curl the moment it is implemented.

use std::sync::LazyLock;

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, MethodDescriptor};
use tonic::{Code, Status, body::Body};
use tower::Layer;

use super::errors;
use crate::{
    around::{Around, BoxFuture, Inner, Step, around},
    pb,
};

/// Largest request message accepted, as JSON here and as protobuf in `malformed`.
pub(super) const MAX_BODY_BYTES: usize = crate::limits::MAX_MESSAGE_BYTES;
/// Package whose services are transcoded.
const PACKAGE_PREFIX: &str = "/hush.v1.";
/// Request headers passed on to the gRPC call (everything the services and auth look at).
const FORWARDED_HEADERS: [header::HeaderName; 3] =
    [header::AUTHORIZATION, header::USER_AGENT, header::HeaderName::from_static("x-forwarded-for")];

static POOL: LazyLock<DescriptorPool> =
    LazyLock::new(|| DescriptorPool::decode(pb::FILE_DESCRIPTOR_SET).expect("build.rs wrote a valid descriptor set"));

/// Whether a request is a JSON call of a hush RPC.
fn is_json_rpc<B>(request: &Request<B>) -> bool {
    request.method() == Method::POST
        && super::edges::is_json(request)
        && request.uri().path().starts_with(PACKAGE_PREFIX)
}

/// The RPC named by a path like `/hush.v1.SecretsService/CreateSecret`.
pub(crate) fn method(path: &str) -> Option<MethodDescriptor> {
    method_in(&POOL, path)
}

/// The RPC of `pool` named by a path like `/grpc.health.v1.Health/Check`.
pub(super) fn method_in(pool: &DescriptorPool, path: &str) -> Option<MethodDescriptor> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    pool.get_service_by_name(service)?.methods().find(|m| m.name() == method)
}

fn json_response(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(Body::new(Full::new(Bytes::from(body))));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn error_response(code: Code, message: &str) -> Response<Body> {
    json_response(errors::http_status(code), errors::body(code, message))
}

/// The `Content-Length` of a request, if it sent one.
fn announced_length<B>(request: &Request<B>) -> Option<u64> {
    request.headers().get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// 413 for a body beyond [`MAX_BODY_BYTES`].
fn too_large() -> Response<Body> {
    let message = format!("request body larger than {MAX_BODY_BYTES} bytes");
    json_response(StatusCode::PAYLOAD_TOO_LARGE, errors::body(Code::ResourceExhausted, &message))
}

/// Parses the JSON body into the RPC's request message, naming the offending field on error.
fn decode_json(method: &MethodDescriptor, body: &[u8]) -> Result<DynamicMessage, String> {
    let body = if body.iter().all(u8::is_ascii_whitespace) { b"{}".as_slice() } else { body };
    let mut json = serde_json::Deserializer::from_slice(body);
    let mut track = serde_path_to_error::Track::new();
    let message =
        DynamicMessage::deserialize(method.input(), serde_path_to_error::Deserializer::new(&mut json, &mut track))
            .map_err(|error| {
                let (path, error) = (track.path().to_string(), without_value(&error.to_string()));
                if path == "." { error } else { format!("{path}: {error}") }
            })?;
    json.end().map_err(|e| e.to_string())?;
    Ok(message)
}

/// serde's message without the value it could not take: "invalid type: integer `4711`, expected a string"
/// becomes "invalid type: integer, expected a string". A secret sent as a JSON number (or any value sent with
/// the wrong type) must not come back in the error, where clients and proxies log it.
fn without_value(message: &str) -> String {
    let Some((kind, rest)) = ["invalid type: ", "invalid value: "]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix).map(|rest| (prefix, rest)))
    else {
        return message.to_owned();
    };
    // From the right: a string value may hold ", expected " itself.
    let Some((unexpected, expected)) = rest.rsplit_once(", expected ") else { return kind.trim_end().to_owned() };
    let what = unexpected.split(['`', '"']).next().unwrap_or_default().trim_end();
    format!("{kind}{what}, expected {expected}")
}

/// A gRPC length-prefixed frame holding one message.
fn grpc_frame(message: &DynamicMessage) -> Bytes {
    let payload = message.encode_to_vec();
    let mut frame = BytesMut::with_capacity(payload.len() + 5);
    frame.put_u8(0);
    frame.put_u32(payload.len() as u32);
    frame.put_slice(&payload);
    frame.freeze()
}

fn grpc_request(original: http::request::Parts, body: Bytes) -> Request<Body> {
    let mut request = Request::post(original.uri)
        .version(http::Version::HTTP_2)
        .body(Body::new(Full::new(body)))
        .expect("static request parts are valid");
    let headers = request.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert(header::TE, HeaderValue::from_static("trailers"));
    for name in FORWARDED_HEADERS {
        if let Some(value) = original.headers.get(&name) {
            headers.insert(name, value.clone());
        }
    }
    // Connection details (the peer address) travel with the call.
    *request.extensions_mut() = original.extensions;
    request
}

/// Turns the gRPC answer into a JSON response.
async fn json_from_grpc(method: &MethodDescriptor, response: Response<Body>) -> Response<Body> {
    let (parts, body) = response.into_parts();
    let collected = match body.collect().await {
        Ok(collected) => collected,
        Err(error) => return error_response(Code::Internal, &format!("reading the answer failed: {error}")),
    };
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let status = Status::from_header_map(&parts.headers).or_else(|| Status::from_header_map(&trailers));
    match status {
        Some(status) if status.code() != Code::Ok => return errors::response(&status).map(Body::new),
        _ => {}
    }
    let bytes = collected.to_bytes();
    let Some(payload) = bytes.get(5..) else {
        return error_response(Code::Internal, "the service sent no message");
    };
    match DynamicMessage::decode(method.output(), payload) {
        Ok(message) => match serde_json::to_string(&message) {
            Ok(json) => json_response(StatusCode::OK, json),
            Err(error) => error_response(Code::Internal, &error.to_string()),
        },
        Err(error) => error_response(Code::Internal, &format!("undecodable answer: {error}")),
    }
}

/// Layer that transcodes JSON calls and passes every other request through untouched.
#[derive(Clone, Default)]
pub struct JsonTranscodeLayer;

impl<S> Layer<S> for JsonTranscodeLayer {
    type Service = Around<Self, S>;

    fn layer(&self, inner: S) -> Self::Service {
        around(self, inner)
    }
}

impl Step for JsonTranscodeLayer {
    fn step<S: Inner>(&self, request: Request<Body>, mut inner: S) -> BoxFuture<Response<Body>, S::Error> {
        if !is_json_rpc(&request) {
            return Box::pin(inner.call(request));
        }
        Box::pin(async move {
            let Some(method) = method(request.uri().path()) else {
                return Ok(error_response(Code::Unimplemented, &format!("no RPC at {}", request.uri().path())));
            };
            if method.is_client_streaming() || method.is_server_streaming() {
                let message = "streaming RPCs are not available as JSON: use gRPC, grpc-web or the SSE route";
                return Ok(error_response(Code::InvalidArgument, message));
            }
            // A body announced too large is refused before a byte of it is read.
            if announced_length(&request).is_some_and(|length| length > MAX_BODY_BYTES as u64) {
                return Ok(too_large());
            }
            let (parts, body) = request.into_parts();
            let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
                Ok(body) => body.to_bytes(),
                Err(error) if error.is::<LengthLimitError>() => return Ok(too_large()),
                Err(error) => {
                    return Ok(error_response(Code::Cancelled, &format!("reading the request body failed: {error}")));
                }
            };
            let message = match decode_json(&method, &body) {
                Ok(message) => message,
                Err(reason) => {
                    return Ok(error_response(Code::InvalidArgument, &format!("invalid request body: {reason}")));
                }
            };
            let response = inner.call(grpc_request(parts, grpc_frame(&message))).await?;
            Ok(json_from_grpc(&method, response).await)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::without_value;

    #[test]
    fn errors_keep_the_kind_of_a_wrong_value_and_drop_the_value() {
        let cases = [
            (
                "invalid type: integer `987654321123`, expected a string at line 1 column 9",
                "invalid type: integer, expected a string at line 1 column 9",
            ),
            (
                "invalid type: floating point `5.5`, expected a string",
                "invalid type: floating point, expected a string",
            ),
            (
                "invalid value: string \"s3cret, expected x\", expected an integer",
                "invalid value: string, expected an integer",
            ),
            ("invalid type: map, expected a string", "invalid type: map, expected a string"),
            ("unknown field `nope`, expected one of `a`, `b`", "unknown field `nope`, expected one of `a`, `b`"),
        ];
        for (serde, answered) in cases {
            assert_eq!(without_value(serde), answered);
        }
    }
}

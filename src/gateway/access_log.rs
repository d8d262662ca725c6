//! One structured log line per request, and the `x-request-id` that ties it to the caller.
//!
//! The line is written when the answer's body is finished or dropped, so it carries the gRPC code from the
//! trailers and the whole latency, streams included. Its level says whose fault an error is: caller mistakes
//! (bad input, missing permission, unknown path: every HTTP 4xx and their gRPC codes) are `info`, because an
//! operator cannot act on them; `warn` for an unavailable server or a timeout; `error` only for server faults
//! (INTERNAL, UNKNOWN, DATA_LOSS, HTTP 5xx), with the route so the operator knows where to look.
//! Secret values never reach this line: it holds no header values other than the request id, no query and
//! no body.

use std::{
    pin::Pin,
    sync::{Arc, OnceLock},
    task::{Context, Poll},
    time::Instant,
};

use http::{HeaderValue, Request, Response, header::HeaderName};
use http_body::{Body as HttpBody, Frame, SizeHint};
use tonic::{Code, body::Body, transport::server::TcpConnectInfo};
use tower::{Layer, Service};
use tracing::{Instrument, Level};

use super::metrics::Metrics;

/// Header carrying the request id, accepted from callers and returned on every answer.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Longest request id accepted from a caller; longer ones are replaced.
pub const MAX_REQUEST_ID_LEN: usize = 128;
/// Longest route written to the log (paths are caller-chosen).
const MAX_ROUTE_LEN: usize = 128;

/// The caller's identity id, filled in by the auth layer once the token is resolved.
#[derive(Clone, Default)]
pub struct Caller(Arc<OnceLock<String>>);

impl Caller {
    /// Records who the caller is.
    pub fn set(&self, identity_id: &str) {
        let _ = self.0.set(identity_id.to_owned());
    }
}

/// A caller's request id if it is 1..=128 characters of `A-Z a-z 0-9 - _ . : /`, else a fresh UUID: ids are
/// copied into logs, so anything that could forge or break a log line is replaced rather than passed on.
fn request_id(given: Option<&HeaderValue>) -> HeaderValue {
    let sane = |v: &&HeaderValue| {
        (1..=MAX_REQUEST_ID_LEN).contains(&v.len())
            && v.as_bytes().iter().all(|b| b.is_ascii_alphanumeric() || b"-_.:/".contains(b))
    };
    match given.filter(sane) {
        Some(value) => value.clone(),
        None => HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()).expect("a UUID is a valid header value"),
    }
}

/// The path as logged: bounded, with anything but printable ASCII replaced.
fn route(path: &str) -> String {
    path.chars().take(MAX_ROUTE_LEN).map(|c| if c.is_ascii_graphic() { c } else { '?' }).collect()
}

/// How a request reached the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Grpc,
    GrpcWeb,
    Http,
    /// A subscription after its upgrade (counted by the WebSocket route itself: the request ends with the 101).
    WebSocket,
}

impl Transport {
    fn of<B>(request: &Request<B>) -> Self {
        let content_type = request.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        match content_type {
            Some(t) if t.starts_with("application/grpc-web") => Self::GrpcWeb,
            Some(t) if t.starts_with("application/grpc") => Self::Grpc,
            _ => Self::Http,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Grpc => "grpc",
            Self::GrpcWeb => "grpc-web",
            Self::Http => "http",
            Self::WebSocket => "websocket",
        }
    }
}

/// The gRPC status code of a header map (response headers of an error, or trailers).
fn grpc_code(headers: &http::HeaderMap) -> Option<Code> {
    let value = headers.get("grpc-status")?.to_str().ok()?.parse::<i32>().ok()?;
    Some(Code::from_i32(value))
}

/// Whether an answer is the server's fault (`error`), a transient unavailability (`warn`) or neither.
fn level(status: Option<http::StatusCode>, code: Option<Code>) -> Level {
    match (code, status) {
        (Some(Code::Internal | Code::Unknown | Code::DataLoss), _) => Level::ERROR,
        (Some(Code::Unavailable | Code::DeadlineExceeded), _) => Level::WARN,
        (Some(_), _) | (None, None) => Level::INFO,
        (None, Some(status)) if matches!(status.as_u16(), 503 | 504) => Level::WARN,
        (None, Some(status)) if status.is_server_error() => Level::ERROR,
        (None, Some(_)) => Level::INFO,
    }
}

/// What is known of a request until its answer is finished; written to the log when dropped.
struct Record {
    start: Instant,
    method: http::Method,
    route: String,
    transport: Transport,
    peer: Option<std::net::SocketAddr>,
    request_id: HeaderValue,
    caller: Caller,
    /// `None` until an answer is produced (stays `None` when the caller left first).
    status: Option<http::StatusCode>,
    code: Option<Code>,
    metrics: Metrics,
    /// Set while this answer is an open stream counted in the metrics.
    stream: bool,
}

macro_rules! access_line {
    ($level:expr, $($fields:tt)*) => {
        match $level {
            Level::ERROR => tracing::error!($($fields)*),
            Level::WARN => tracing::warn!($($fields)*),
            _ => tracing::info!($($fields)*),
        }
    };
}

impl Drop for Record {
    fn drop(&mut self) {
        let latency = self.start.elapsed();
        // A gRPC answer that ended without trailers was cut off: the client went away.
        let code = match self.transport {
            Transport::Http | Transport::WebSocket => self.code,
            Transport::Grpc | Transport::GrpcWeb => Some(self.code.unwrap_or(Code::Cancelled)),
        };
        self.metrics.record_request(&self.route, self.transport, self.status, code, latency);
        if self.stream {
            self.metrics.stream_closed(self.transport);
        }
        let code_name = code.map(super::errors::code_name);
        access_line!(
            level(self.status, code),
            route = %self.route,
            method = %self.method,
            transport = self.transport.as_str(),
            status = self.status.map(|s| s.as_u16()),
            grpc_code = code_name,
            latency_ms = (latency.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
            caller = self.caller.0.get().map(String::as_str),
            peer = self.peer.map(tracing::field::display),
            request_id = self.request_id.to_str().unwrap_or_default(),
            "request"
        );
    }
}

/// The answer's body; the [`Record`] rides along and is written when the body ends or is dropped.
struct Logged {
    inner: Body,
    record: Record,
}

impl HttpBody for Logged {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(trailers) = frame.trailers_ref()
            && let Some(code) = grpc_code(trailers)
        {
            self.record.code = Some(code);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Layer writing the access log line and the request id of every request, and recording its metrics.
#[derive(Clone)]
pub struct AccessLogLayer {
    pub metrics: Metrics,
}

impl<S> Layer<S> for AccessLogLayer {
    type Service = AccessLog<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AccessLog { inner, metrics: self.metrics.clone() }
    }
}

/// The service made by [`AccessLogLayer`].
#[derive(Clone)]
pub struct AccessLog<S> {
    inner: S,
    metrics: Metrics,
}

impl<S, ReqBody> Service<Request<ReqBody>> for AccessLog<S>
where
    S: Service<Request<ReqBody>, Response = Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn std::future::Future<Output = Result<Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let id = request_id(request.headers().get(&REQUEST_ID));
        request.headers_mut().insert(REQUEST_ID, id.clone());
        let caller = Caller::default();
        request.extensions_mut().insert(caller.clone());
        let transport = Transport::of(&request);
        let mut record = Record {
            start: Instant::now(),
            method: request.method().clone(),
            route: route(request.uri().path()),
            transport,
            peer: request.extensions().get::<TcpConnectInfo>().and_then(TcpConnectInfo::remote_addr),
            request_id: id.clone(),
            caller,
            status: None,
            code: None,
            metrics: self.metrics.clone(),
            stream: false,
        };
        let span = tracing::info_span!("request", route = %record.route, request_id = id.to_str().unwrap_or_default());
        let answer = self.inner.call(request).instrument(span);
        Box::pin(async move {
            let mut response = answer.await?;
            response.headers_mut().insert(REQUEST_ID, id);
            record.status = Some(response.status());
            record.code = grpc_code(response.headers());
            // An error before the first message (in the headers) is not a stream that opened.
            if record.code.is_none() && response.status().is_success() && Metrics::is_stream(&record.route) {
                record.stream = true;
                record.metrics.stream_opened(record.transport);
            }
            Ok(response.map(|inner| Body::new(Logged { inner, record })))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_kept_when_sane_and_replaced_otherwise() {
        let keep = HeaderValue::from_static("req-42_a.b:c/d");
        assert_eq!(request_id(Some(&keep)), keep);
        let long = HeaderValue::from_str(&"a".repeat(MAX_REQUEST_ID_LEN + 1)).unwrap();
        for bad in
            [HeaderValue::from_static(""), HeaderValue::from_static("a b"), HeaderValue::from_static("x\"y"), long]
        {
            let replaced = request_id(Some(&bad));
            assert_ne!(replaced, bad);
            assert!(uuid::Uuid::parse_str(replaced.to_str().unwrap()).is_ok());
        }
    }

    #[test]
    fn client_errors_are_never_error_level() {
        use http::StatusCode;
        for code in [
            Code::InvalidArgument,
            Code::NotFound,
            Code::AlreadyExists,
            Code::PermissionDenied,
            Code::Unauthenticated,
            Code::FailedPrecondition,
            Code::ResourceExhausted,
            Code::Unimplemented,
            Code::Cancelled,
        ] {
            assert_eq!(level(Some(StatusCode::OK), Some(code)), Level::INFO, "{code:?}");
        }
        for status in [400, 401, 403, 404, 405, 413, 415, 429] {
            assert_eq!(level(Some(StatusCode::from_u16(status).unwrap()), None), Level::INFO, "{status}");
        }
        assert_eq!(level(Some(StatusCode::OK), Some(Code::Internal)), Level::ERROR);
        assert_eq!(level(Some(StatusCode::INTERNAL_SERVER_ERROR), None), Level::ERROR);
        assert_eq!(level(None, None), Level::INFO, "the caller left before an answer");
    }
}

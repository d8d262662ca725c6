//! Load shedding and the unary deadline. Every unary RPC (gRPC, grpc-web or JSON) takes one of
//! `max_in_flight` permits before anything reads its body; when none is free the caller is refused at once
//! with RESOURCE_EXHAUSTED (HTTP 503 for JSON) and `Retry-After`, rather than queueing without bound. This
//! also bounds the memory held by request bodies to `max_in_flight` × 4 MiB. A unary request that takes
//! longer than the deadline (or than the caller's own `grpc-timeout`, when shorter), body upload included,
//! ends with DEADLINE_EXCEEDED. Event streams (gRPC and
//! SSE), health checks, reflection and the HTTP routes are neither counted nor timed. Whatever is answered,
//! every request's handler runs on to its end (see [`super::detach`]).

use std::{sync::Arc, time::Duration};

use http::{HeaderValue, Request, Response, StatusCode, header};
use tokio::sync::Semaphore;
use tonic::{Code, Status, body::Body};
use tower::Layer;

use super::{RETRY_AFTER_SECS, detach::run_to_completion};
use crate::{
    around::{Around, BoxFuture, Inner, Step, around},
    gateway::{errors, json::method},
};

/// Layer applying the in-flight limit and the deadline to unary RPCs.
#[derive(Clone)]
pub struct UnaryLimitsLayer {
    permits: Arc<Semaphore>,
    deadline: Duration,
}

impl UnaryLimitsLayer {
    pub fn new(max_in_flight: usize, deadline: Duration) -> Self {
        Self { permits: Arc::new(Semaphore::new(max_in_flight)), deadline }
    }
}

impl<S> Layer<S> for UnaryLimitsLayer {
    type Service = Around<Self, S>;

    fn layer(&self, inner: S) -> Self::Service {
        around(self, inner)
    }
}

/// How the caller speaks, which decides the shape of a refusal.
#[derive(Clone)]
enum Protocol {
    /// gRPC or grpc-web: a trailers-only answer in the caller's content type.
    Grpc(HeaderValue),
    /// JSON: an HTTP status and a JSON error body.
    Json,
}

fn protocol<B>(request: &Request<B>) -> Protocol {
    match request.headers().get(header::CONTENT_TYPE) {
        Some(value) if value.as_bytes().starts_with(b"application/grpc") => Protocol::Grpc(value.clone()),
        _ => Protocol::Json,
    }
}

/// The answer refusing a request with `status`; `http` is the HTTP status given to JSON callers.
fn refusal(protocol: &Protocol, status: &Status, http: StatusCode) -> Response<Body> {
    match protocol {
        Protocol::Grpc(content_type) => {
            let mut response = status.clone().into_http::<Body>();
            response.headers_mut().insert(header::CONTENT_TYPE, content_type.clone());
            response
        }
        Protocol::Json => {
            let mut response = Response::new(Body::new(http_body_util::Full::new(bytes::Bytes::from(errors::body(
                status.code(),
                status.message(),
            )))));
            *response.status_mut() = http;
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        }
    }
}

fn overloaded(protocol: &Protocol) -> Response<Body> {
    let status = Status::new(Code::ResourceExhausted, "the server is at its limit of requests in flight; retry later");
    let mut response = refusal(protocol, &status, StatusCode::SERVICE_UNAVAILABLE);
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    response
}

fn too_slow(protocol: &Protocol, deadline: Duration) -> Response<Body> {
    let status = Status::deadline_exceeded(format!("the request took longer than {}s", deadline.as_secs_f32()));
    refusal(protocol, &status, StatusCode::GATEWAY_TIMEOUT)
}

/// The deadline a gRPC caller sent in `grpc-timeout` (at most 8 digits and a unit, per the gRPC spec); a
/// malformed one is ignored and the server's deadline applies.
fn caller_deadline<B>(request: &Request<B>) -> Option<Duration> {
    let text = request.headers().get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = text.split_at(text.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

impl Step for UnaryLimitsLayer {
    fn step<S: Inner>(&self, request: Request<Body>, mut inner: S) -> BoxFuture<Response<Body>, S::Error> {
        let unary = method(request.uri().path()).is_some_and(|m| !m.is_server_streaming() && !m.is_client_streaming());
        if !unary {
            return Box::pin(run_to_completion(inner.call(request), None));
        }
        let protocol = protocol(&request);
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            return Box::pin(async move { Ok(overloaded(&protocol)) });
        };
        let deadline = caller_deadline(&request).map_or(self.deadline, |d| d.min(self.deadline));
        Box::pin(async move {
            // The deadline ends the wait for the answer, not the work (see `detach`), which keeps the permit.
            let answer = tokio::time::timeout(deadline, run_to_completion(inner.call(request), Some(permit))).await;
            answer.unwrap_or_else(|_| Ok(too_slow(&protocol, deadline)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_timeout(value: &str) -> Request<()> {
        Request::builder().header("grpc-timeout", value).body(()).unwrap()
    }

    #[test]
    fn reads_the_callers_grpc_timeout() {
        assert_eq!(caller_deadline(&with_timeout("250m")), Some(Duration::from_millis(250)));
        assert_eq!(caller_deadline(&with_timeout("2S")), Some(Duration::from_secs(2)));
        assert_eq!(caller_deadline(&with_timeout("1H")), Some(Duration::from_secs(3600)));
        for malformed in ["", "S", "123456789S", "10x", "-1S", "1.5S"] {
            assert_eq!(caller_deadline(&with_timeout(malformed)), None, "{malformed}");
        }
        assert_eq!(caller_deadline(&Request::new(())), None);
    }
}

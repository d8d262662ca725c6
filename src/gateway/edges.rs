//! Honest answers at the HTTP edge. Without this layer every request the routes do not know reaches tonic,
//! which answers HTTP 200 with `content-type: application/grpc` and the error hidden in headers: `curl -sf`
//! "succeeds", a browser sees a blank page. Requests that really are gRPC or grpc-web
//! (`content-type: application/grpc*`) pass untouched, so gRPC clients see gRPC statuses as before; for
//! everything else:
//!
//! - an HTTP route of the gateway passes on;
//! - a hush RPC path passes on when it is a JSON call (`POST` with `Content-Type: application/json`), gets
//!   `415` naming the header for any other `POST`, and `405` for other methods;
//! - a gRPC-only service (health, reflection) gets `404` pointing to the HTTP equivalent;
//! - anything else gets `404 {"code":"not_found",…}`.

use std::task::{Context, Poll};

use axum::response::IntoResponse;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use tonic::{Code, body::Body};
use tower::{Layer, Service};

use super::{
    AUDIT_EXPORT_PATH, HEALTHZ_PATH, INDEX_PATH, METRICS_PATH, READYZ_PATH, SSE_SUBSCRIBE_PATH, UI_PATH, errors,
};

/// The message of a 404 for a path nothing serves.
const NOT_FOUND: &str = "nothing is served at this path; GET / says what is";
/// gRPC services that have no JSON form; their HTTP equivalents are named in the 404.
const GRPC_ONLY_SERVICES: [&str; 3] =
    ["grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"];

/// Whether a request is gRPC or grpc-web, which tonic answers in its own protocol.
pub fn is_grpc<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

/// Whether a request's body is declared JSON (`application/json`, any parameters).
pub(super) fn is_json<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

fn is_http_route(path: &str, ui: bool) -> bool {
    [INDEX_PATH, HEALTHZ_PATH, READYZ_PATH, METRICS_PATH, SSE_SUBSCRIBE_PATH, AUDIT_EXPORT_PATH].contains(&path)
        || super::is_ws_subscribe_path(path)
        || (ui && (path == UI_PATH || path.starts_with(&format!("{UI_PATH}/"))))
}

fn json_error(status: StatusCode, code: Code, message: &str) -> Response<Body> {
    (status, [(header::CONTENT_TYPE, "application/json")], errors::body(code, message)).into_response().map(Body::new)
}

/// The answer for a path nothing serves (to this caller).
pub(super) fn not_found() -> axum::response::Response {
    (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "application/json")], errors::body(Code::NotFound, NOT_FOUND))
        .into_response()
}

/// The answer for a request that is not gRPC, or `None` to pass it on.
fn refusal<B>(request: &Request<B>, ui: bool) -> Option<Response<Body>> {
    let path = request.uri().path();
    if is_grpc(request) || is_http_route(path, ui) {
        return None;
    }
    let service = path.strip_prefix('/').and_then(|p| p.split_once('/')).map(|(service, _)| service);
    if service.is_some_and(|s| GRPC_ONLY_SERVICES.contains(&s)) {
        let message = "this service is served over gRPC only; over HTTP, use GET /healthz and GET /readyz";
        return Some(json_error(StatusCode::NOT_FOUND, Code::NotFound, message));
    }
    if service.is_some_and(|s| s.starts_with("hush.v1.")) && super::json::method(path).is_some() {
        if request.method() != Method::POST {
            let mut answer = json_error(
                StatusCode::METHOD_NOT_ALLOWED,
                Code::Unimplemented,
                "RPCs are called with POST (JSON body, `Content-Type: application/json`)",
            );
            answer.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
            return Some(answer);
        }
        if is_json(request) {
            return None;
        }
        let message = "send `Content-Type: application/json` with a JSON body \
                       (`application/grpc` or `application/grpc-web` for gRPC)";
        return Some(json_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, Code::InvalidArgument, message));
    }
    if path == UI_PATH || path.starts_with(&format!("{UI_PATH}/")) {
        let message = "the web client is not served here: start `hush serve` with --ui-dir";
        return Some(json_error(StatusCode::NOT_FOUND, Code::NotFound, message));
    }
    Some(not_found().map(Body::new))
}

/// Layer answering non-gRPC requests that no route serves; `ui` says whether `/ui/` is served.
#[derive(Clone, Copy)]
pub struct HonestEdgesLayer {
    pub ui: bool,
}

impl<S> Layer<S> for HonestEdgesLayer {
    type Service = HonestEdges<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HonestEdges { inner, ui: self.ui }
    }
}

/// The service made by [`HonestEdgesLayer`].
#[derive(Clone)]
pub struct HonestEdges<S> {
    inner: S,
    ui: bool,
}

impl<S, ReqBody> Service<Request<ReqBody>> for HonestEdges<S>
where
    S: Service<Request<ReqBody>, Response = Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        match refusal(&request, self.ui) {
            Some(answer) => Box::pin(std::future::ready(Ok(answer))),
            None => Box::pin(self.inner.call(request)),
        }
    }
}

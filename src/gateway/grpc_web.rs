//! grpc-web only where it applies. `tonic_web::GrpcWebLayer` answers 400 to every HTTP/1.1 request that is not
//! grpc-web, which would shut out curl and browsers from the HTTP routes sharing the port; this layer sends
//! grpc-web and HTTP/2 requests through it and plain HTTP/1.1 requests (SSE, metrics) straight on.
//!
//! tonic-web reports a grpc-web-text body that is not base64 as an error of the body, like a connection that
//! failed while sending it. So a grpc-web request carries [`ReceivedBody`], which says whether the body as it
//! arrived failed: a body error without that is the caller's encoding (`gateway::malformed`).

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{Request, Response, Version, header};
use http_body::Frame;
use tonic::{Status, body::Body};
use tonic_web::GrpcWebService;
use tower::{Layer, Service, ServiceExt};

/// In a grpc-web request's extensions: whether its body failed as it arrived (the connection, the body
/// deadline), as opposed to failing to decode.
#[derive(Clone, Default)]
pub struct ReceivedBody(Arc<AtomicBool>);

impl ReceivedBody {
    /// Whether the body as sent by the client failed.
    pub fn failed(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// A request body that records its failure in [`ReceivedBody`].
struct Watched {
    inner: Body,
    received: ReceivedBody,
}

impl http_body::Body for Watched {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Err(_))) = &polled {
            self.received.0.store(true, Ordering::SeqCst);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Layer applying grpc-web translation to grpc-web and HTTP/2 requests only.
#[derive(Clone, Default)]
pub struct GrpcWebWhereItApplies;

impl<S: Clone> Layer<S> for GrpcWebWhereItApplies {
    type Service = Split<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Split { grpc_web: tonic_web::GrpcWebLayer::new().layer(inner.clone()), plain: inner }
    }
}

/// The service made by [`GrpcWebWhereItApplies`].
#[derive(Clone)]
pub struct Split<S> {
    grpc_web: GrpcWebService<S>,
    plain: S,
}

fn is_grpc_web<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc-web"))
}

impl<S> Service<Request<Body>> for Split<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Both wrap clones of the same service; readiness of one is readiness of the other.
        self.plain.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let grpc_web = is_grpc_web(&request);
        if grpc_web {
            let received = ReceivedBody::default();
            request.extensions_mut().insert(received.clone());
            request = request.map(|inner| Body::new(Watched { inner, received }));
        }
        if grpc_web || request.version() == Version::HTTP_2 {
            // `oneshot` polls the wrapper ready before calling it.
            Box::pin(ServiceExt::<Request<Body>>::oneshot(self.grpc_web.clone(), request))
        } else {
            let clone = self.plain.clone();
            let mut plain = std::mem::replace(&mut self.plain, clone);
            Box::pin(plain.call(request))
        }
    }
}

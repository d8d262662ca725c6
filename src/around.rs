//! One tower service for the layers that look at a request and then answer it themselves or hand it (maybe
//! rebuilt) to the inner service: refusing malformed gRPC bodies, JSON transcoding, the unary limits. Each
//! such layer is a [`Step`]; [`Around`] is the service plumbing they would otherwise each repeat.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use http::{Request, Response};
use tonic::body::Body;
use tower::Service;

/// The future every step answers with.
pub type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

/// A service a step can hand requests to.
pub trait Inner:
    Service<Request<Body>, Response = Response<Body>, Future: Send + 'static, Error: Send + 'static> + Send + 'static
{
}

impl<S> Inner for S where
    S: Service<Request<Body>, Response = Response<Body>, Future: Send + 'static, Error: Send + 'static>
        + Send
        + 'static
{
}

/// What a layer does with one request, given the (ready) inner service to pass it on to.
pub trait Step: Clone {
    fn step<S: Inner>(&self, request: Request<Body>, inner: S) -> BoxFuture<Response<Body>, S::Error>;
}

/// The service made by a [`Step`] used as a layer.
#[derive(Clone)]
pub struct Around<T, S> {
    step: T,
    inner: S,
}

/// Wraps `inner` in `step`: what every step's `Layer::layer` returns.
pub fn around<T, S>(step: &T, inner: S) -> Around<T, S>
where
    T: Step,
{
    Around { step: step.clone(), inner }
}

impl<T, S> Service<Request<Body>> for Around<T, S>
where
    T: Step,
    S: Inner + Clone,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Response<Body>, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        // The service that was polled ready goes with this request; a fresh clone stays for the next one.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        self.step.step(request, inner)
    }
}

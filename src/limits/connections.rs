//! The accept loop, with the connection limits hyper leaves to the caller: a cap on open connections,
//! the HTTP/1 header timeout, HTTP/2 keep-alive pings and concurrent streams, a deadline on request bodies,
//! idle connections closed, and a lingering close. A connection is idle while it has no open request: an event
//! stream keeps its connection open however quiet it is, while a client that connects and sends nothing is
//! closed.

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::conn::auto,
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore, watch},
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tonic::{body::Body, transport::server::TcpConnectInfo};
use tower::{Service, ServiceExt};

use super::{
    LimitSettings,
    body_deadline::DeadlineBody,
    fairness::{FairExecutor, route_next_request},
    lingering_close::LingeringClose,
};
use crate::tls::{self, ReloadableConfig};

/// Pause after a failed accept (e.g. out of file descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves `service` on `listener` (inside TLS when `tls` is set) until `shutdown` is cancelled, then waits for
/// open connections to finish.
pub async fn serve<S, B>(
    listener: TcpListener,
    service: S,
    settings: &LimitSettings,
    tls: Option<ReloadableConfig>,
    shutdown: CancellationToken,
) -> anyhow::Result<()>
where
    S: Service<Request<Body>, Response = Response<B>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<tonic::codegen::StdError>,
{
    let mut builder = auto::Builder::new(FairExecutor);
    builder.http1().timer(TokioTimer::new()).header_read_timeout(settings.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(settings.max_concurrent_streams)
        .keep_alive_interval(settings.http2_keepalive_interval)
        .keep_alive_timeout(settings.http2_keepalive_timeout);
    let builder = Arc::new(builder);
    let slots = Arc::new(Semaphore::new(settings.max_connections));
    // Warn once per episode of a full server, not once per refused connection.
    let full = AtomicBool::new(false);
    let connections = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            if !full.swap(true, Ordering::Relaxed) {
                tracing::warn!(max = settings.max_connections, "connection limit reached; closing new connections");
            }
            drop(stream);
            continue;
        };
        full.store(false, Ordering::Relaxed);
        // Small gRPC frames (events, heartbeats) must not wait for delayed ACKs: without TCP_NODELAY a
        // stream's p99 latency gains ~40 ms (measured with benches/load.rs).
        stream.set_nodelay(true).ok();
        let connection = Connection {
            builder: builder.clone(),
            info: TcpConnectInfo { local_addr: stream.local_addr().ok(), remote_addr: Some(peer) },
            idle_timeout: settings.idle_timeout,
            body_timeout: settings.body_read_timeout,
            tls: tls.clone(),
            shutdown: shutdown.clone(),
            _slot: slot,
        };
        connections.spawn(connection.serve(stream, service.clone()));
    }
    // Stop accepting (the listen socket closes), then let open connections drain.
    drop(listener);
    connections.close();
    connections.wait().await;
    Ok(())
}

/// One accepted connection and what it needs to be served.
struct Connection {
    builder: Arc<auto::Builder<FairExecutor>>,
    info: TcpConnectInfo,
    idle_timeout: Duration,
    body_timeout: Duration,
    tls: Option<ReloadableConfig>,
    shutdown: CancellationToken,
    /// Frees a place under the connection cap when the connection ends.
    _slot: OwnedSemaphorePermit,
}

impl Connection {
    async fn serve<S, B>(self, stream: TcpStream, service: S)
    where
        S: Service<Request<Body>, Response = Response<B>, Error = Infallible> + Clone + Send + 'static,
        S::Future: Send + 'static,
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<tonic::codegen::StdError>,
    {
        // Under TLS: the linger reads the client's raw bytes after TLS's close_notify.
        let stream = LingeringClose::new(stream);
        // The handshake holds this connection's slot, so handshakes count against the connection cap.
        let Some(stream) = tls::accept(self.tls.as_ref(), stream, &self.info.remote_addr).await else { return };
        let (open_requests, watch_open) = watch::channel(0usize);
        let per_connection = PerConnection {
            inner: service,
            info: self.info,
            open_requests: Arc::new(open_requests),
            body_timeout: self.body_timeout,
        };
        // With upgrades: a WebSocket subscription takes the connection over after its 101.
        let connection = self.builder.serve_connection_with_upgrades(TokioIo::new(stream), per_connection);
        let mut connection = std::pin::pin!(connection);
        let mut idle = std::pin::pin!(idle_for(watch_open, self.idle_timeout));
        let mut closing = false;
        loop {
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                    return;
                }
                _ = self.shutdown.cancelled(), if !closing => {
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
                _ = idle.as_mut(), if !closing => {
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// Completes once no request has been open for `limit`.
async fn idle_for(mut open_requests: watch::Receiver<usize>, limit: Duration) {
    loop {
        if *open_requests.borrow_and_update() == 0 {
            if tokio::time::timeout(limit, open_requests.changed()).await.is_err() {
                return;
            }
        } else if open_requests.changed().await.is_err() {
            return;
        }
    }
}

/// The service of one connection: gives each request the peer address and a body deadline, and counts it
/// as open until its answer has been sent whole.
#[derive(Clone)]
struct PerConnection<S> {
    inner: S,
    info: TcpConnectInfo,
    open_requests: Arc<watch::Sender<usize>>,
    body_timeout: Duration,
}

/// Whether a request body stays open for the whole call: reflection is a bidirectional stream that tools
/// like grpcurl keep open while they run. hush's own RPCs all send one request message.
fn streams_its_body(path: &str) -> bool {
    path.starts_with("/grpc.reflection.")
}

/// Counts one open request for as long as it lives.
struct OpenRequest(Arc<watch::Sender<usize>>);

impl OpenRequest {
    fn new(open_requests: Arc<watch::Sender<usize>>) -> Self {
        open_requests.send_modify(|n| *n += 1);
        Self(open_requests)
    }
}

impl Drop for OpenRequest {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

/// Whether a request is an event stream, whose task runs on the streams runtime (see `fairness`).
fn is_event_stream(path: &str) -> bool {
    path == crate::api::SUBSCRIBE_PATH
        || path == crate::gateway::SSE_SUBSCRIBE_PATH
        || crate::gateway::is_ws_subscribe_path(path)
}

/// A hyper service rather than a tower one: hyper calls it for a new HTTP/2 request right before it spawns
/// the request's task, which is when the task's runtime is chosen (`fairness`).
impl<S, B> hyper::service::Service<Request<Incoming>> for PerConnection<S>
where
    S: Service<Request<Body>, Response = Response<B>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<tonic::codegen::StdError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        route_next_request(is_event_stream(request.uri().path()));
        let open = OpenRequest::new(self.open_requests.clone());
        let mut request = if streams_its_body(request.uri().path()) {
            request.map(Body::new)
        } else {
            request.map(|body| Body::new(DeadlineBody::new(body, self.body_timeout)))
        };
        request.extensions_mut().insert(self.info.clone());
        let answer = self.inner.clone().oneshot(request);
        Box::pin(async move {
            let response = answer.await?;
            // The request stays open until its answer (an event stream included) has been sent or dropped.
            Ok(response.map(|body| {
                Body::new(body.map_frame(move |frame| {
                    let _ = &open;
                    frame
                }))
            }))
        })
    }
}

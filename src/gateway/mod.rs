//! The HTTP side of the one port (docs/ARCHITECTURE.md): a thin translation onto the same service code, so auth,
//! permissions and audit are identical to gRPC.
//!
//! - `json`: every unary RPC as JSON (`POST /hush.v1.<Service>/<Method>`, the Connect unary shape), one
//!   generic transcoder driven by the descriptor set.
//! - `sse`: event subscriptions over Server-Sent Events in the common `project-events` shape.
//! - `audit_export`: the audit log as NDJSON for curl.
//! - `metrics`: Prometheus text exposition.
//! - `malformed`: malformed gRPC bodies and control characters in text refused as INVALID_ARGUMENT.
//! - `edges`: honest HTTP answers (404, 405, 415) for requests that are not gRPC and that no route serves.
//! - `index`, `probes`: `GET /`, `GET /healthz`, `GET /readyz`.
//! - `bounded_errors`: error answers of bounded size.

pub mod access_log;
mod audit_export;
pub mod bounded_errors;
pub mod edges;
pub mod errors;
pub mod grpc_web;
mod index;
pub mod json;
pub mod malformed;
pub mod metrics;
mod probes;
mod sse;
pub mod ws;

use axum::{Router, routing::get, routing::post};

use crate::events::EventHub;

/// Path of the SSE subscription route.
pub const SSE_SUBSCRIBE_PATH: &str = "/api/v1/events/subscribe/project-events";
/// Path of the WebSocket subscription route (`{event_type}`: the event type, wildcards allowed).
pub const WS_SUBSCRIBE_PATH: &str = "/api/v1/events/subscribe/{event_type}";
/// Whether `path` is a WebSocket subscription (`/api/v1/events/subscribe/{eventType}`, one segment; the SSE
/// route shares the prefix).
pub fn is_ws_subscribe_path(path: &str) -> bool {
    path != SSE_SUBSCRIBE_PATH
        && path.strip_prefix("/api/v1/events/subscribe/").is_some_and(|t| !t.is_empty() && !t.contains('/'))
}

/// Path of the NDJSON audit log export.
pub const AUDIT_EXPORT_PATH: &str = "/api/v1/audit-logs/export";
/// Path of the Prometheus metrics.
pub const METRICS_PATH: &str = "/metrics";

/// The index page.
pub const INDEX_PATH: &str = "/";
/// Liveness probe.
pub const HEALTHZ_PATH: &str = "/healthz";
/// Readiness probe.
pub const READYZ_PATH: &str = "/readyz";

/// Where the web client is served.
pub const UI_PATH: &str = "/ui";

/// State shared by the HTTP routes.
#[derive(Clone)]
pub struct GatewayState {
    pub events: EventHub,
    pub store: crate::store::Store,
    pub streams: crate::streams::Streams,
    pub vault: crate::secrets::Vault,
    pub metrics: metrics::Metrics,
}

/// The routes of `--metrics-listen`: `/metrics` for any peer, nothing else.
pub fn metrics_router(state: GatewayState) -> Router {
    Router::new().route(METRICS_PATH, get(metrics::render)).fallback(|| async { edges::not_found() }).with_state(state)
}

/// The HTTP routes served beside the gRPC services; `ui_dir` is the built web client, if any.
pub fn router(state: GatewayState, ui_dir: Option<&std::path::Path>) -> Router {
    let ui = ui_dir.is_some();
    let router = Router::new()
        .route(INDEX_PATH, get(move |headers| index::index(ui, headers)))
        .route(HEALTHZ_PATH, get(probes::healthz))
        .route(READYZ_PATH, get(probes::readyz))
        .route(SSE_SUBSCRIBE_PATH, post(sse::subscribe))
        .route(WS_SUBSCRIBE_PATH, get(ws::subscribe))
        .route(METRICS_PATH, get(metrics::render_on_main_port))
        .route(AUDIT_EXPORT_PATH, get(audit_export::export))
        .with_state(state);
    match ui_dir {
        Some(dir) => router
            .nest_service(UI_PATH, tower_http::services::ServeDir::new(dir).append_index_html_on_directories(true)),
        None => router,
    }
}

/// Serves [`metrics_router`] on `address` until `shutdown` is cancelled.
pub async fn serve_metrics(
    address: std::net::SocketAddr,
    state: GatewayState,
    shutdown: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let listener =
        tokio::net::TcpListener::bind(address).await.with_context(|| format!("--metrics-listen {address}"))?;
    tracing::info!(address = %listener.local_addr()?, "metrics are served at /metrics");
    tokio::spawn(async move {
        let served = axum::serve(listener, metrics_router(state)).with_graceful_shutdown(shutdown.cancelled_owned());
        if let Err(error) = served.await {
            tracing::error!(%error, "the metrics listener failed");
        }
    });
    Ok(())
}

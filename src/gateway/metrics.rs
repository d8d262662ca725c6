//! Prometheus metrics (OpenMetrics text via `prometheus-client`): requests and latency per route (RED),
//! open streams by transport, database pool use, event subscriptions and the audit streams' delivery.
//!
//! `/metrics` on the main port answers loopback peers only (others get the same 404 as an unknown path), so a
//! server on a public address does not publish its traffic; `--metrics-listen` serves it on an address of
//! its own for a scraper elsewhere. Route labels are only the routes hush serves (anything else is
//! `unmatched`), so callers cannot grow the label set.

use std::{net::SocketAddr, time::Duration};

use axum::{
    extract::State,
    response::{IntoResponse, Response},
};
use http::{Extensions, StatusCode};
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use tonic::{Code, transport::server::TcpConnectInfo};

use super::{
    AUDIT_EXPORT_PATH, GatewayState, HEALTHZ_PATH, INDEX_PATH, METRICS_PATH, READYZ_PATH, SSE_SUBSCRIBE_PATH, UI_PATH,
    access_log::Transport, edges,
};

/// OpenMetrics text content type.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Latency buckets in seconds: 1 ms to 10 s.
const LATENCY_BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];
/// gRPC-only methods that are labelled by name (the services accept any path below them).
const GRPC_ONLY_METHODS: [&str; 4] = [
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    transport: &'static str,
    /// The gRPC code name for gRPC and grpc-web, the HTTP status for HTTP.
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    transport: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransportLabels {
    transport: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StreamLabels {
    stream: String,
    name: String,
}

type StreamState = crate::store::entities::audit_stream_state::Model;
/// A per-stream counter: its name, help and where its value is in the stream's state.
type StreamCounter = (&'static str, &'static str, fn(&StreamState) -> i64);
type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// This instance's request metrics; cheap to clone (the families share their values).
#[derive(Clone)]
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily,
    open_streams: Family<TransportLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            latency: Family::new_with_constructor(|| Histogram::new(LATENCY_BUCKETS)),
            open_streams: Family::default(),
        }
    }
}

/// The route label: the path when hush serves it, else `unmatched`.
fn route_label(route: &str) -> String {
    let served = [INDEX_PATH, HEALTHZ_PATH, READYZ_PATH, METRICS_PATH, SSE_SUBSCRIBE_PATH, AUDIT_EXPORT_PATH]
        .contains(&route)
        || GRPC_ONLY_METHODS.contains(&route)
        || super::json::method(route).is_some();
    if served {
        route.to_owned()
    } else if super::is_ws_subscribe_path(route) {
        // One label for every event type: a label per type would let callers grow the metric without bound.
        super::WS_SUBSCRIBE_PATH.to_owned()
    } else if route == UI_PATH || route.starts_with(&format!("{UI_PATH}/")) {
        UI_PATH.to_owned()
    } else {
        "unmatched".to_owned()
    }
}

/// Streams are labelled by how they are carried; an open HTTP stream is SSE.
fn stream_transport(transport: Transport) -> &'static str {
    match transport {
        Transport::Http => "sse",
        other => other.as_str(),
    }
}

impl Metrics {
    /// Counts a finished request and its latency.
    pub fn record_request(
        &self,
        route: &str,
        transport: Transport,
        status: Option<StatusCode>,
        code: Option<Code>,
        latency: Duration,
    ) {
        let route = route_label(route);
        let code = match (code, status) {
            (Some(code), _) => super::errors::code_name(code).to_owned(),
            (None, Some(status)) => status.as_u16().to_string(),
            (None, None) => "no_answer".to_owned(),
        };
        let transport = transport.as_str();
        self.requests.get_or_create(&RequestLabels { route: route.clone(), transport, code }).inc();
        self.latency.get_or_create(&RouteLabels { route, transport }).observe(latency.as_secs_f64());
    }

    /// Whether an answer on `route` is a stream (server-streaming RPC or SSE) that opened.
    pub fn is_stream(route: &str) -> bool {
        route == SSE_SUBSCRIBE_PATH || super::json::method(route).is_some_and(|m| m.is_server_streaming())
    }

    pub fn stream_opened(&self, transport: Transport) {
        self.open_streams.get_or_create(&TransportLabels { transport: stream_transport(transport) }).inc();
    }

    pub fn stream_closed(&self, transport: Transport) {
        self.open_streams.get_or_create(&TransportLabels { transport: stream_transport(transport) }).dec();
    }
}

/// Whether the request came from this machine (the main port serves `/metrics` to loopback peers only).
fn from_loopback(extensions: &Extensions) -> bool {
    extensions
        .get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .is_some_and(|peer: SocketAddr| peer.ip().to_canonical().is_loopback())
}

/// `GET /metrics` on the main port: loopback peers only.
pub async fn render_on_main_port(state: State<GatewayState>, extensions: Extensions) -> Response {
    if !from_loopback(&extensions) {
        return edges::not_found();
    }
    render(state).await
}

/// `GET /metrics`: the text exposition.
pub async fn render(State(state): State<GatewayState>) -> Response {
    let mut registry = Registry::with_prefix("hush");
    let metrics = &state.metrics;
    registry.register("requests", "Requests answered, by route, transport and code", metrics.requests.clone());
    registry.register(
        "request_duration_seconds",
        "Time from request to the end of the answer (streams: until they close)",
        metrics.latency.clone(),
    );
    registry.register("streams_open", "Open streams, by transport", metrics.open_streams.clone());
    let subscriptions = Gauge::<i64>::default();
    subscriptions.set(state.events.open_subscriptions());
    registry.register("event_subscriptions_open", "Event subscriptions open on this instance", subscriptions);
    let counters = [
        (
            "event_access_rechecks",
            "Access re-reads for open event streams after permission changes (one per token and project affected)",
            state.events.access_rechecks(),
        ),
        ("db_statements", "Statements sent to the database by this instance", state.store.statements_executed()),
        (
            "db_write_statements",
            "Of those, statements that write rows (INSERT, UPDATE, DELETE, or a WITH holding one)",
            state.store.write_statements_executed(),
        ),
        (
            "log_lines_dropped",
            "Log lines dropped because stderr was not read fast enough (see src/log_output.rs)",
            crate::log_output::dropped_lines(),
        ),
    ];
    // Totals kept elsewhere, shown as counters.
    for (name, help, total) in counters {
        let counter = Counter::<u64>::default();
        counter.inc_by(total);
        registry.register(name, help, counter);
    }
    let (open, idle) = state.store.pool_usage();
    let (in_use, opened) = (Gauge::<i64>::default(), Gauge::<i64>::default());
    in_use.set(i64::from(open) - idle as i64);
    opened.set(i64::from(open));
    registry.register("db_pool_connections_in_use", "Database connections in use", in_use);
    registry.register("db_pool_connections_open", "Database connections open (in use and idle)", opened);
    stream_metrics(&state, &mut registry).await;
    let mut text = String::new();
    match encode(&mut text, &registry) {
        Ok(()) => ([(http::header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(error) => {
            tracing::error!(%error, "encoding metrics failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// The audit streams' delivery counters and lag, read from their stored state.
async fn stream_metrics(state: &GatewayState, registry: &mut Registry) {
    let streams = match state.streams.metrics().await {
        Ok(streams) => streams,
        Err(error) => {
            tracing::warn!(%error, "reading audit stream metrics failed");
            return;
        }
    };
    let counters: [StreamCounter; 4] = [
        ("audit_stream_delivered_events", "Audit entries delivered", |s| s.delivered_events),
        ("audit_stream_retries", "Delivery retries", |s| s.retries),
        ("audit_stream_dropped_batches", "Batches dropped after the last retry", |s| s.dropped_batches),
        ("audit_stream_dropped_events", "Entries in dropped batches", |s| s.dropped_events),
    ];
    let label = |id: &str, name: &str| StreamLabels { stream: id.to_owned(), name: name.to_owned() };
    for (metric, help, value) in counters {
        let family = Family::<StreamLabels, Counter>::default();
        for (id, name, stream, _) in &streams {
            family.get_or_create(&label(id, name)).inc_by(value(stream).max(0) as u64);
        }
        registry.register(metric, help, family);
    }
    let lag = Family::<StreamLabels, Gauge>::default();
    let paused = Family::<StreamLabels, Gauge>::default();
    for (id, name, stream, behind) in &streams {
        lag.get_or_create(&label(id, name)).set(*behind);
        paused.get_or_create(&label(id, name)).set(i64::from(stream.paused_at.is_some()));
    }
    registry.register(
        "audit_stream_paused",
        "1 while a stream in pause mode holds a batch its destination refused through every retry",
        paused,
    );
    registry.register(
        "audit_stream_lag_events",
        "Audit log positions between the stream's cursor and its org's newest entry (an upper bound of the \
         entries not yet delivered)",
        lag,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(addr: &str) -> Extensions {
        let mut extensions = Extensions::new();
        extensions.insert(TcpConnectInfo { local_addr: None, remote_addr: Some(addr.parse().unwrap()) });
        extensions
    }

    #[test]
    fn only_loopback_peers_see_metrics_on_the_main_port() {
        assert!(from_loopback(&peer("127.0.0.1:5000")));
        assert!(from_loopback(&peer("[::1]:5000")));
        assert!(from_loopback(&peer("[::ffff:127.0.0.1]:5000")));
        assert!(!from_loopback(&peer("10.0.0.7:5000")));
        assert!(!from_loopback(&peer("[2001:db8::1]:5000")));
        assert!(!from_loopback(&Extensions::new()), "no peer address: refused");
    }

    #[test]
    fn caller_chosen_paths_do_not_become_labels() {
        assert_eq!(route_label("/hush.v1.SecretsService/GetSecret"), "/hush.v1.SecretsService/GetSecret");
        assert_eq!(route_label("/grpc.health.v1.Health/Check"), "/grpc.health.v1.Health/Check");
        assert_eq!(route_label("/ui/assets/app.js"), "/ui");
        for path in ["/nope", "/hush.v1.SecretsService/Nope", "/grpc.health.v1.Health/x1", "/wp-admin"] {
            assert_eq!(route_label(path), "unmatched", "{path}");
        }
    }
}

//! `GET /metrics`: Prometheus text exposition of this instance's gauges and counters.

use std::fmt::Write;

use axum::extract::State;

use super::GatewayState;

/// Prometheus text format content type.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

pub async fn render(State(state): State<GatewayState>) -> ([(http::HeaderName, &'static str); 1], String) {
    let mut out = String::new();
    let _ = writeln!(out, "# HELP hush_event_subscriptions_open Event subscriptions open on this instance.");
    let _ = writeln!(out, "# TYPE hush_event_subscriptions_open gauge");
    let _ = writeln!(out, "hush_event_subscriptions_open {}", state.events.open_subscriptions());
    match state.streams.metrics().await {
        Ok(streams) => {
            for (name, kind, help, value) in [
                ("hush_audit_stream_delivered_events_total", "counter", "Audit entries delivered.", 0),
                ("hush_audit_stream_retries_total", "counter", "Delivery retries.", 1),
                ("hush_audit_stream_dropped_batches_total", "counter", "Batches dropped after the last retry.", 2),
                ("hush_audit_stream_dropped_events_total", "counter", "Entries in dropped batches.", 3),
                ("hush_audit_stream_lag_events", "gauge", "Audit entries not yet delivered.", 4),
            ] {
                let _ = writeln!(out, "# HELP {name} {help}");
                let _ = writeln!(out, "# TYPE {name} {kind}");
                for (id, stream_name, s, lag) in &streams {
                    let v = [s.delivered_events, s.retries, s.dropped_batches, s.dropped_events, *lag][value];
                    let label = stream_name.replace('\\', "\\\\").replace('"', "\\\"");
                    let _ = writeln!(out, "{name}{{stream=\"{id}\",name=\"{label}\"}} {v}");
                }
            }
        }
        Err(error) => tracing::warn!(%error, "reading audit stream metrics failed"),
    }
    ([(http::header::CONTENT_TYPE, CONTENT_TYPE)], out)
}

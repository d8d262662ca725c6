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
    ([(http::header::CONTENT_TYPE, CONTENT_TYPE)], out)
}

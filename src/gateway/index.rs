//! `GET /`: what this server is and where to go next, so a browser or `curl` opening the address sees more
//! than a blank page. HTML by default, JSON for `Accept: application/json`.

use axum::{
    Json,
    response::{Html, IntoResponse, Response},
};
use http::{HeaderMap, header};
use serde_json::json;

use super::{HEALTHZ_PATH, READYZ_PATH, UI_PATH};

const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Where the documentation lives: the README and docs/ of the source this binary was built from.
const DOCS: &str = "README.md and docs/ in the hush source repository";

fn wants_json(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("application/json"))
}

/// Serves the index; `ui` says whether the web client is served at `/ui/`.
pub async fn index(ui: bool, headers: HeaderMap) -> Response {
    let ui_path = format!("{UI_PATH}/");
    if wants_json(&headers) {
        return Json(json!({
            "name": "hush",
            "version": VERSION,
            "ui": ui.then_some(ui_path),
            "docs": DOCS,
            "healthz": HEALTHZ_PATH,
            "readyz": READYZ_PATH,
        }))
        .into_response();
    }
    let ui_line = if ui {
        format!(r#"<p>Web client: <a href="{ui_path}">{ui_path}</a></p>"#)
    } else {
        "<p>The web client is not served here (start <code>hush serve</code> with <code>--ui-dir</code>).</p>"
            .to_owned()
    };
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>hush {VERSION}</title></head><body>\
         <h1>hush {VERSION}</h1><p>A gRPC-first secrets service. This address speaks gRPC (with reflection), \
         grpc-web, and JSON at <code>POST /hush.v1.&lt;Service&gt;/&lt;Method&gt;</code>.</p>{ui_line}\
         <p>Documentation: {DOCS}.</p><p>Probes: <a href=\"{HEALTHZ_PATH}\">{HEALTHZ_PATH}</a>, \
         <a href=\"{READYZ_PATH}\">{READYZ_PATH}</a></p></body></html>"
    ))
    .into_response()
}

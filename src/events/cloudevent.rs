//! CloudEvents 1.0 JSON framing of events, for the CLI and the SSE gateway.

use serde_json::{Value, json};

use super::Event;

/// CloudEvents `source` of a project's events.
pub fn source(project_id: &str) -> String {
    format!("/hush/projects/{project_id}")
}

/// The event as a CloudEvents 1.0 JSON object. `data` carries the event type, names and paths (never values),
/// the actor and the cursor to resume after.
pub fn to_json(event: &Event) -> Value {
    json!({
        "specversion": "1.0",
        "id": event.id,
        "source": source(&event.project_id),
        "type": event.event_type.as_str(),
        "time": event.time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "datacontenttype": "application/json",
        "subject": event.cursor(),
        "data": {
            "eventType": event.event_type.as_str(),
            "operation": event.payload.operation,
            "projectId": event.project_id,
            "cursor": event.cursor(),
            "payload": event.payload,
            "actor": event.actor,
        },
    })
}

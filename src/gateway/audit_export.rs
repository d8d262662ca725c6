//! `GET /api/v1/audit-logs/export?…`: the audit log as NDJSON, streamed in constant memory, with the same
//! filters and permission as `ExportAuditLogs`.

use axum::{
    Extension,
    body::Body,
    extract::{Query, State},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use tokio_stream::{StreamExt, wrappers::ReceiverStream};

use super::{GatewayState, errors};
use crate::{
    audit::{self, AuditFilter},
    identity::Principal,
};

/// Query parameters; repeated filters are comma-separated (`eventType=get-secret,create-secret`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExportQuery {
    #[serde(default)]
    event_type: Option<String>,
    /// `identity`, `platform` or `unknownUser`.
    #[serde(default)]
    actor_type: Option<String>,
    #[serde(default)]
    actor_id: Option<String>,
    #[serde(default)]
    project_id: Option<String>,
    #[serde(default)]
    user_agent_type: Option<String>,
    /// RFC 3339 or a duration ago (`1h`), inclusive.
    #[serde(default, deserialize_with = "crate::time_spec::deserialize_option")]
    since: Option<DateTime<Utc>>,
    /// RFC 3339 or a duration ago, exclusive.
    #[serde(default, deserialize_with = "crate::time_spec::deserialize_option")]
    until: Option<DateTime<Utc>>,
}

pub async fn export(
    State(state): State<GatewayState>,
    Extension(caller): Extension<Principal>,
    query: Result<Query<ExportQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(query) = match query {
        Ok(query) => query,
        Err(rejection) => return errors::response(&tonic::Status::invalid_argument(rejection.body_text())),
    };
    let filter = AuditFilter {
        event_types: query
            .event_type
            .map(|t| t.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect())
            .unwrap_or_default(),
        actor_type: query.actor_type,
        actor_id: query.actor_id.unwrap_or_default(),
        project_id: query.project_id.unwrap_or_default(),
        user_agent_type: query.user_agent_type.unwrap_or_default(),
        start_time: query.since,
        end_time: query.until,
    };
    let chunks = match audit::export(&state.store, &caller, filter).await {
        Ok(chunks) => chunks,
        Err(error) => return errors::response(&tonic::Status::from(error)),
    };
    let lines = ReceiverStream::new(chunks).map(|chunk| {
        chunk.map(|entries| {
            let mut out = String::new();
            for entry in entries {
                out.push_str(&entry.to_json_string());
                out.push('\n');
            }
            out
        })
    });
    ([(http::header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(lines)).into_response()
}

//! `hush.v1.AuditLogsService`: filtered listing and streaming export of the org's audit log.

use chrono::{DateTime, Utc};
use tokio_stream::{StreamExt, wrappers::ReceiverStream};
use tonic::{Request, Response, Status};

use super::{auth::principal, convert::timestamp, status::invalid_argument};
use crate::{
    audit::{self, AuditFilter, AuditRecord},
    pb,
    pb::audit_logs_service_server::AuditLogsService,
    store::Store,
};

/// The AuditLogsService handlers.
pub struct AuditLogsApi {
    store: Store,
}

impl AuditLogsApi {
    /// Handlers over `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

fn time(field: &str, t: Option<prost_types::Timestamp>) -> Result<Option<DateTime<Utc>>, Status> {
    t.map(|t| {
        DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)
            .ok_or_else(|| invalid_argument(format!("filter.{field}"), "is out of range".into()))
    })
    .transpose()
}

/// The wire name of an actor type as stored.
fn actor_type(value: i32) -> Result<Option<String>, Status> {
    match pb::ActorType::try_from(value) {
        Ok(pb::ActorType::Unspecified) => Ok(None),
        Ok(pb::ActorType::Identity) => Ok(Some("identity".into())),
        Ok(pb::ActorType::Platform) => Ok(Some("platform".into())),
        Ok(pb::ActorType::UnknownUser) => Ok(Some("unknownUser".into())),
        Err(_) => Err(invalid_argument("filter.actor_type".into(), format!("unknown actor type {value}"))),
    }
}

/// The domain filter of a request's filter.
pub fn filter(f: Option<pb::AuditLogFilter>) -> Result<AuditFilter, Status> {
    let f = f.unwrap_or_default();
    Ok(AuditFilter {
        actor_type: actor_type(f.actor_type)?,
        start_time: time("start_time", f.start_time)?,
        end_time: time("end_time", f.end_time)?,
        event_types: f.event_types,
        actor_id: f.actor_id,
        project_id: f.project_id,
        user_agent_type: f.user_agent_type,
    })
}

fn struct_value(value: &serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match value {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(items) => {
            Kind::ListValue(prost_types::ListValue { values: items.iter().map(struct_value).collect() })
        }
        serde_json::Value::Object(map) => Kind::StructValue(to_struct(map)),
    };
    prost_types::Value { kind: Some(kind) }
}

fn to_struct(map: &serde_json::Map<String, serde_json::Value>) -> prost_types::Struct {
    prost_types::Struct { fields: map.iter().map(|(k, v)| (k.clone(), struct_value(v))).collect() }
}

impl From<AuditRecord> for pb::AuditLog {
    fn from(r: AuditRecord) -> Self {
        let actor_type = match r.actor_type.as_str() {
            "identity" => pb::ActorType::Identity,
            "platform" => pb::ActorType::Platform,
            "unknownUser" => pb::ActorType::UnknownUser,
            _ => pb::ActorType::Unspecified,
        };
        Self {
            event_metadata: r.event_metadata.as_object().map(to_struct),
            id: r.id,
            actor: Some(pb::Actor { r#type: actor_type as i32, identity_id: r.actor_id, name: r.actor_name }),
            ip_address: r.ip_address,
            user_agent: r.user_agent,
            user_agent_type: r.user_agent_type,
            event_type: r.event_type,
            org_id: r.org_id,
            project_id: r.project_id.unwrap_or_default(),
            create_time: timestamp(r.created_at),
            expire_time: timestamp(r.expires_at),
        }
    }
}

#[tonic::async_trait]
impl AuditLogsService for AuditLogsApi {
    async fn list_audit_logs(
        &self,
        request: Request<pb::ListAuditLogsRequest>,
    ) -> Result<Response<pb::ListAuditLogsResponse>, Status> {
        let caller = principal(&request)?;
        let req = request.into_inner();
        let page = audit::list(&self.store, &caller, &filter(req.filter)?, req.page_size, &req.page_token).await?;
        Ok(Response::new(pb::ListAuditLogsResponse {
            audit_logs: page.entries.into_iter().map(Into::into).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    async fn export_audit_logs(
        &self,
        request: Request<pb::ExportAuditLogsRequest>,
    ) -> Result<Response<tonic::codegen::BoxStream<pb::ExportAuditLogsResponse>>, Status> {
        let caller = principal(&request)?;
        let filter = filter(request.into_inner().filter)?;
        let chunks = audit::export(&self.store, &caller, filter).await?;
        let stream = ReceiverStream::new(chunks).map(|chunk| match chunk {
            Ok(entries) => {
                Ok(pb::ExportAuditLogsResponse { audit_logs: entries.into_iter().map(Into::into).collect() })
            }
            Err(error) => {
                tracing::error!(%error, "audit export failed");
                Err(Status::internal("audit export failed; the server log has details"))
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

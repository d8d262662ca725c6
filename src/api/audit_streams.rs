//! `hush.v1.AuditStreamsService`: protobuf in, domain call, protobuf out. Credentials come back redacted.

use tonic::{Request, Response, Status};

use super::{auth::principal, convert::timestamp, status::invalid_argument};
use crate::{
    pb::{self, audit_streams_service_server::AuditStreamsService},
    streams::{FailureMode, ProviderConfig, StreamRecord, StreamStatus, Streams},
};

/// The AuditStreamsService handlers.
pub struct AuditStreamsApi {
    streams: Streams,
}

impl AuditStreamsApi {
    /// Handlers over `streams`.
    pub fn new(streams: Streams) -> Self {
        Self { streams }
    }
}

/// The three request messages carry the same provider oneof under different Rust names.
macro_rules! provider_from {
    ($oneof:path) => {{
        use $oneof as P;
        |provider: P| match provider {
            P::Custom(c) => ProviderConfig::Custom {
                url: c.url,
                headers: c.headers.into_iter().collect(),
                batch: c.batch,
                gzip: c.gzip,
            },
            P::Datadog(d) => ProviderConfig::Datadog { site: d.site, api_key: d.api_key, url: d.url },
            P::Splunk(s) => ProviderConfig::Splunk { host: s.host, token: s.token },
            P::Cribl(c) => ProviderConfig::Cribl { url: c.url, token: c.token },
            P::Azure(a) => ProviderConfig::Azure {
                tenant_id: a.tenant_id,
                client_id: a.client_id,
                client_secret: a.client_secret,
                dce_url: a.dce_url,
                dcr_immutable_id: a.dcr_immutable_id,
                table: a.table,
                login_url: a.login_url,
            },
        }
    }};
}

fn to_pb_provider(config: ProviderConfig) -> pb::audit_stream::Provider {
    use pb::audit_stream::Provider as P;
    match config {
        ProviderConfig::Custom { url, headers, batch, gzip } => {
            P::Custom(pb::CustomProvider { url, headers: headers.into_iter().collect(), batch, gzip })
        }
        ProviderConfig::Datadog { site, api_key, url } => P::Datadog(pb::DatadogProvider { site, api_key, url }),
        ProviderConfig::Splunk { host, token } => P::Splunk(pb::SplunkProvider { host, token }),
        ProviderConfig::Cribl { url, token } => P::Cribl(pb::CriblProvider { url, token }),
        ProviderConfig::Azure { tenant_id, client_id, client_secret, dce_url, dcr_immutable_id, table, login_url } => {
            P::Azure(pb::AzureProvider {
                tenant_id,
                client_id,
                client_secret,
                dce_url,
                dcr_immutable_id,
                table,
                login_url,
            })
        }
    }
}

impl From<StreamRecord> for pb::AuditStream {
    fn from(s: StreamRecord) -> Self {
        Self {
            id: s.id,
            org_id: s.org_id,
            name: s.name,
            create_time: timestamp(s.created_at),
            update_time: timestamp(s.updated_at),
            provider: Some(to_pb_provider(s.config)),
            on_failure: match s.on_failure {
                FailureMode::Drop => pb::AuditStreamFailureMode::Drop,
                FailureMode::Pause => pb::AuditStreamFailureMode::Pause,
            }
            .into(),
        }
    }
}

impl From<StreamStatus> for pb::AuditStreamStatus {
    fn from(s: StreamStatus) -> Self {
        Self {
            audit_stream_id: s.stream_id,
            queue_depth: s.queue_depth,
            cursor_lag: prost_types::Duration::try_from(s.cursor_lag).ok(),
            last_success_time: s.last_success_at.and_then(timestamp),
            last_error: s.last_error,
            last_error_time: s.last_error_at.and_then(timestamp),
            attempts: s.attempts,
            delivered_events: s.delivered_events,
            dropped_batches: s.dropped_batches,
            dropped_events: s.dropped_events,
            paused: s.paused_at.is_some(),
            pause_time: s.paused_at.and_then(timestamp),
        }
    }
}

/// The failure mode a request asks for; None when unspecified.
fn failure_mode(value: i32) -> Result<Option<FailureMode>, Status> {
    match pb::AuditStreamFailureMode::try_from(value) {
        Ok(pb::AuditStreamFailureMode::Unspecified) => Ok(None),
        Ok(pb::AuditStreamFailureMode::Drop) => Ok(Some(FailureMode::Drop)),
        Ok(pb::AuditStreamFailureMode::Pause) => Ok(Some(FailureMode::Pause)),
        Err(_) => Err(invalid_argument("on_failure".into(), format!("{value} is not a failure mode"))),
    }
}

/// The mask path of an update's provider.
fn update_provider_kind(provider: &pb::update_audit_stream_request::Provider) -> &'static str {
    use pb::update_audit_stream_request::Provider as P;
    match provider {
        P::Custom(_) => "custom",
        P::Datadog(_) => "datadog",
        P::Splunk(_) => "splunk",
        P::Cribl(_) => "cribl",
        P::Azure(_) => "azure",
    }
}

/// The fields an update mask may name.
const UPDATABLE: [&str; 7] = ["name", "on_failure", "custom", "datadog", "splunk", "cribl", "azure"];

fn required<T>(value: Option<T>) -> Result<T, Status> {
    value.ok_or_else(|| {
        invalid_argument("provider".into(), "one of custom, datadog, splunk, cribl, azure is required".into())
    })
}

#[tonic::async_trait]
impl AuditStreamsService for AuditStreamsApi {
    async fn create_audit_stream(
        &self,
        request: Request<pb::CreateAuditStreamRequest>,
    ) -> Result<Response<pb::CreateAuditStreamResponse>, Status> {
        let caller = principal(&request)?;
        let req = request.into_inner();
        let config = provider_from!(pb::create_audit_stream_request::Provider)(required(req.provider)?);
        let on_failure = failure_mode(req.on_failure)?.unwrap_or_default();
        let stream = self.streams.create(&caller, &req.name, config, on_failure, req.skip_test).await?;
        Ok(Response::new(pb::CreateAuditStreamResponse { audit_stream: Some(stream.into()) }))
    }

    async fn get_audit_stream(
        &self,
        request: Request<pb::GetAuditStreamRequest>,
    ) -> Result<Response<pb::GetAuditStreamResponse>, Status> {
        let caller = principal(&request)?;
        let stream = self.streams.get(&caller, &request.get_ref().audit_stream_id).await?;
        Ok(Response::new(pb::GetAuditStreamResponse { audit_stream: Some(stream.into()) }))
    }

    async fn list_audit_streams(
        &self,
        request: Request<pb::ListAuditStreamsRequest>,
    ) -> Result<Response<pb::ListAuditStreamsResponse>, Status> {
        let caller = principal(&request)?;
        let req = request.get_ref();
        let page = self.streams.list(&caller, req.page_size, &req.page_token).await?;
        Ok(Response::new(pb::ListAuditStreamsResponse {
            audit_streams: page.streams.into_iter().map(Into::into).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    async fn update_audit_stream(
        &self,
        request: Request<pb::UpdateAuditStreamRequest>,
    ) -> Result<Response<pb::UpdateAuditStreamResponse>, Status> {
        let caller = principal(&request)?;
        let req = request.into_inner();
        let paths: Vec<String> = req.update_mask.map(|m| m.paths).unwrap_or_default();
        if let Some(unknown) = paths.iter().find(|p| !UPDATABLE.contains(&p.as_str())) {
            let reason = format!("'{unknown}' is not one of {}", UPDATABLE.join(", "));
            return Err(invalid_argument("update_mask".into(), reason));
        }
        let wants = |field: &str| paths.is_empty() || paths.iter().any(|p| p == field);
        let named = |field: &str| paths.iter().any(|p| p == field);
        if named("name") && req.name.is_empty() {
            return Err(invalid_argument("name".into(), "the update mask names it: 1 to 64 characters".into()));
        }
        if let Some(kind) = paths.iter().find(|p| UPDATABLE[2..].contains(&p.as_str())) {
            let sent = req.provider.as_ref().map(update_provider_kind);
            if sent != Some(kind.as_str()) {
                let reason = format!("names '{kind}' but the request carries {}", sent.unwrap_or("no provider"));
                return Err(invalid_argument("update_mask".into(), reason));
            }
        }
        let name = (wants("name") && !req.name.is_empty()).then_some(req.name.as_str());
        let on_failure = if wants("on_failure") { failure_mode(req.on_failure)? } else { None };
        if on_failure.is_none() && paths.iter().any(|p| p == "on_failure") {
            return Err(invalid_argument("on_failure".into(), "the update mask names it: DROP or PAUSE".into()));
        }
        let config = req
            .provider
            .filter(|_| paths.is_empty() || paths.iter().any(|p| UPDATABLE[2..].contains(&p.as_str())))
            .map(provider_from!(pb::update_audit_stream_request::Provider));
        let stream = self.streams.update(&caller, &req.audit_stream_id, name, config, on_failure).await?;
        Ok(Response::new(pb::UpdateAuditStreamResponse { audit_stream: Some(stream.into()) }))
    }

    async fn delete_audit_stream(
        &self,
        request: Request<pb::DeleteAuditStreamRequest>,
    ) -> Result<Response<pb::DeleteAuditStreamResponse>, Status> {
        let caller = principal(&request)?;
        self.streams.delete(&caller, &request.get_ref().audit_stream_id).await?;
        Ok(Response::new(pb::DeleteAuditStreamResponse {}))
    }

    async fn test_audit_stream(
        &self,
        request: Request<pb::TestAuditStreamRequest>,
    ) -> Result<Response<pb::TestAuditStreamResponse>, Status> {
        let caller = principal(&request)?;
        let outcome = self.streams.test(&caller, &request.get_ref().audit_stream_id).await?;
        Ok(Response::new(pb::TestAuditStreamResponse {
            success: outcome.success,
            status_code: outcome.status_code,
            message: outcome.message,
        }))
    }

    async fn get_audit_stream_status(
        &self,
        request: Request<pb::GetAuditStreamStatusRequest>,
    ) -> Result<Response<pb::GetAuditStreamStatusResponse>, Status> {
        let caller = principal(&request)?;
        let status = self.streams.status(&caller, &request.get_ref().audit_stream_id).await?;
        Ok(Response::new(pb::GetAuditStreamStatusResponse { status: Some(status.into()) }))
    }

    async fn backfill_audit_stream(
        &self,
        request: Request<pb::BackfillAuditStreamRequest>,
    ) -> Result<Response<pb::BackfillAuditStreamResponse>, Status> {
        let caller = principal(&request)?;
        let req = request.into_inner();
        let time = |field: &str, t: Option<prost_types::Timestamp>| {
            t.map(|t| {
                chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)
                    .ok_or_else(|| invalid_argument(field.into(), "is out of range".into()))
            })
            .transpose()
        };
        let start = time("start_time", req.start_time)?
            .ok_or_else(|| invalid_argument("start_time".into(), "is required".into()))?;
        let end = time("end_time", req.end_time)?;
        let queued = self.streams.backfill(&caller, &req.audit_stream_id, start, end).await?;
        Ok(Response::new(pb::BackfillAuditStreamResponse { queued_events: queued }))
    }
}

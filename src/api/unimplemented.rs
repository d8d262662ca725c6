//! Services of the contract whose RPCs are not built yet: the generated default stubs answer UNIMPLEMENTED.

use crate::pb::{audit_logs_service_server::AuditLogsService, audit_streams_service_server::AuditStreamsService};

/// AuditLogsService, until audit logs are built.
pub struct AuditLogsApi;
/// AuditStreamsService, until audit streams are built.
pub struct AuditStreamsApi;

#[tonic::async_trait]
impl AuditLogsService for AuditLogsApi {}
#[tonic::async_trait]
impl AuditStreamsService for AuditStreamsApi {}

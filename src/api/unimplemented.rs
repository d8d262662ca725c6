//! Services of the contract whose RPCs are not built yet: the generated default stubs answer UNIMPLEMENTED.

use crate::pb::audit_streams_service_server::AuditStreamsService;

/// AuditStreamsService, until audit streams are built.
pub struct AuditStreamsApi;

#[tonic::async_trait]
impl AuditStreamsService for AuditStreamsApi {}

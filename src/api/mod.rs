//! The gRPC surface: translates protobuf to domain calls and domain errors to `tonic::Status`. No business
//! logic lives here.

pub mod audit_logs;
mod audit_streams;
pub mod auth;
mod convert;
mod events;
mod identity;
mod projects;
mod secrets;
pub(crate) mod status;

pub use audit_logs::AuditLogsApi;
pub use audit_streams::AuditStreamsApi;
pub use events::{EventsApi, SUBSCRIBE_PATH, encode as encode_subscribe_response};
pub use identity::IdentityApi;
pub use projects::ProjectsApi;
pub use secrets::SecretsApi;

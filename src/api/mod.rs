//! The gRPC surface: translates protobuf to domain calls and domain errors to `tonic::Status`. No business
//! logic lives here.

pub mod auth;
mod convert;
mod events;
mod identity;
mod projects;
mod secrets;
mod status;
mod unimplemented;

pub use events::EventsApi;
pub use identity::IdentityApi;
pub use projects::ProjectsApi;
pub use secrets::SecretsApi;
pub use unimplemented::{AuditLogsApi, AuditStreamsApi};

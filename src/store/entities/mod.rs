//! sea-orm entities, one file per table.

pub mod access_token;
pub mod audit_log;
pub mod audit_stream;
pub mod audit_stream_state;
pub mod authz_version;
pub mod client_secret;
pub mod environment;
pub mod event;
pub mod folder;
pub mod identity;
pub mod org;
pub mod outbox_state;
pub mod permission_change;
pub mod project;
pub mod project_membership;
pub mod role;
pub mod root_key_check;
pub mod secret;
pub mod secret_import;
pub mod secret_version;

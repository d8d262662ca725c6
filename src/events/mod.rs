//! Live secret events (docs/ARCHITECTURE.md): a transactional outbox written with every change, one tailer per
//! instance that fans committed rows out to local subscriptions, and permission-aware, resumable streams.
//! Events carry names and paths, never values.

pub mod cloudevent;
mod hub;
pub mod outbox;
mod registration;
mod subscribers;
mod subscription;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use hub::{EventHub, HubSettings};
pub use registration::{EventPattern, Registration};
pub use subscribers::StreamLimits;
pub use subscription::{SubscribeRequest, Subscription, SubscriptionItem};

use crate::{
    identity::{Denied, Principal},
    store::DbError,
};

/// Kinds of secret events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    Create,
    Update,
    Delete,
    ImportMutation,
}

impl EventType {
    /// Every event type.
    pub const ALL: [EventType; 4] =
        [EventType::Create, EventType::Update, EventType::Delete, EventType::ImportMutation];

    /// The wire name, e.g. `secret:create`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Create => "secret:create",
            EventType::Update => "secret:update",
            EventType::Delete => "secret:delete",
            EventType::ImportMutation => "secret:import-mutation",
        }
    }

    /// Parses a wire name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == text)
    }
}

/// A secret named by an event (never its value), with its versions: a consumer holding a value can tell whether
/// it is already the current one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    pub environment: String,
    pub secret_path: String,
    pub secret_key: String,
    /// The version after the change; none for a delete (and in events stored before versions were recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// The version before the change; none for a create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_version: Option<u32>,
}

/// The importing folder an import-mutation event is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportMutation {
    pub environment: String,
    pub secret_path: String,
}

/// What an event row's payload column holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payload {
    /// What was done, as the audit log names it: `create-secret`, `update-secret`, `rollback-secret`,
    /// `delete-secret`, the batch and folder/environment/project deletes, `create-secret-import`, …
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub operation: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import_mutation: Option<ImportMutation>,
}

/// Who caused an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Actor {
    /// `identity` for machine identities, `platform` for background jobs.
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    pub name: String,
}

impl From<&Principal> for Actor {
    fn from(p: &Principal) -> Self {
        Self { kind: "identity".into(), id: p.identity_id.clone(), name: p.name.clone() }
    }
}

/// A committed event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The cursor: position in commit order.
    pub seq: i64,
    /// Unique id (UUID).
    pub id: String,
    pub project_id: String,
    pub event_type: EventType,
    pub time: DateTime<Utc>,
    pub payload: Payload,
    pub actor: Actor,
}

impl Event {
    /// The cursor as clients see it.
    pub fn cursor(&self) -> String {
        self.seq.to_string()
    }
}

/// The wire formats an event is sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// A protobuf `SubscribeResponse` (gRPC and grpc-web).
    Protobuf,
    /// The `data:` of an SSE frame in the common project-events shape.
    ProjectEvents,
    /// The `data:` of an SSE frame as CloudEvents 1.0 JSON.
    CloudEvents,
}

/// An event as subscriptions send it. Every subscription that may see the whole event shares one `Delivery`,
/// and each wire format is encoded once, by the first transport that needs it, for all of them.
#[derive(Debug)]
pub struct Delivery {
    event: Event,
    encodings: [std::sync::OnceLock<bytes::Bytes>; 3],
}

impl Delivery {
    /// A delivery of `event`, not encoded yet.
    pub fn new(event: Event) -> Self {
        Self { event, encodings: Default::default() }
    }

    /// The event in `wire` format: made by `encode` the first time, shared afterwards.
    pub fn encoded(&self, wire: Wire, encode: impl FnOnce(&Event) -> bytes::Bytes) -> bytes::Bytes {
        self.encodings[wire as usize].get_or_init(|| encode(&self.event)).clone()
    }
}

impl std::ops::Deref for Delivery {
    type Target = Event;
    fn deref(&self) -> &Event {
        &self.event
    }
}

/// Errors of the events domain.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    /// A request field is malformed.
    #[error("{field}: {reason}")]
    InvalidArgument { field: String, reason: String },
    /// The project does not exist in the caller's org.
    #[error("{0} not found")]
    NotFound(String),
    /// The caller may not subscribe (any more).
    #[error(transparent)]
    PermissionDenied(#[from] Denied),
    /// The caller's token was revoked or expired, or its identity deleted, while streaming.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// The resume cursor is older than the outbox retention.
    #[error("{0}")]
    FailedPrecondition(String),
    /// Too many open subscriptions (of this identity, or on this connection).
    #[error("{0}")]
    ResourceExhausted(String),
    /// The database failed, or refused the change (see [`DbError`]).
    #[error("database: {0}")]
    Db(#[from] DbError),
}

impl From<sea_orm::DbErr> for EventsError {
    fn from(error: sea_orm::DbErr) -> Self {
        Self::Db(error.into())
    }
}

impl From<crate::secrets::SecretsError> for EventsError {
    fn from(error: crate::secrets::SecretsError) -> Self {
        use crate::secrets::SecretsError as S;
        match error {
            S::InvalidArgument { field, reason } => EventsError::InvalidArgument { field, reason },
            S::NotFound(what) => EventsError::NotFound(what),
            S::PermissionDenied(denied) => EventsError::PermissionDenied(denied),
            S::Db(db) => EventsError::Db(db),
            other @ (S::AlreadyExists(_)
            | S::FailedPrecondition(_)
            | S::Aborted(_)
            | S::PermissionsChanged
            | S::Integrity { .. }) => EventsError::FailedPrecondition(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn policies_know_every_event_type() {
        let names: Vec<&str> = super::EventType::ALL.iter().map(|t| t.as_str()).collect();
        assert_eq!(names, crate::identity::policy::SECRET_EVENT_TYPES);
    }
}

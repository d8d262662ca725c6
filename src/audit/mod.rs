//! Audit logs (docs/ARCHITECTURE.md): every action, reads too, recorded with who, from where, what and when.
//! Writes record their entry in the same transaction as the change; reads record theirs before they answer,
//! in groups (see `store::audit_appender`).
//! Entries never contain a secret value.

pub mod caps;
pub mod denials;
pub mod event_types;
pub mod pruner;
mod query;
mod request_meta;

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{DbErr, Set};
use serde_json::Value;

pub use query::{AuditFilter, AuditPage, AuditRecord, export, list, prune_expired};
pub use request_meta::{RequestMeta, TrustedProxies, USER_AGENT_TYPES, user_agent_type};

use crate::{
    identity::Principal,
    store::{Store, WriteTxn, entities::audit_log},
};

/// Who an entry is about.
#[derive(Debug, Clone)]
pub struct AuditActor {
    /// `identity`, `platform` or `unknownUser`.
    pub kind: &'static str,
    pub id: String,
    pub name: String,
    pub org_id: String,
}

impl From<&Principal> for AuditActor {
    fn from(p: &Principal) -> Self {
        Self { kind: "identity", id: p.identity_id.clone(), name: p.name.clone(), org_id: p.org_id.clone() }
    }
}

/// What happened.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    /// Kebab-case event type, e.g. `create-secret`.
    pub event_type: &'static str,
    /// The project, for project-level actions.
    pub project_id: Option<&'a str>,
    /// Names, ids, paths, versions; never a value.
    pub metadata: Value,
}

impl<'a> Entry<'a> {
    /// An entry about a project-level action.
    pub fn project(event_type: &'static str, project_id: &'a str, metadata: Value) -> Self {
        debug_assert!(event_types::is_known(event_type), "{event_type} is missing from audit::EVENT_TYPES");
        Self { event_type, project_id: Some(project_id), metadata }
    }

    /// An entry about an org-level action.
    pub fn org(event_type: &'static str, metadata: Value) -> Self {
        debug_assert!(event_types::is_known(event_type), "{event_type} is missing from audit::EVENT_TYPES");
        Self { event_type, project_id: None, metadata }
    }
}

fn row(actor: &AuditActor, meta: &RequestMeta, entry: Entry<'_>, retention: Duration) -> audit_log::ActiveModel {
    let now = Utc::now();
    let expires: DateTime<Utc> = chrono::Duration::from_std(retention)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    // Every stored field passes a cap here (one place), whoever built the entry.
    audit_log::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        actor_type: Set(actor.kind.to_owned()),
        actor_id: Set(caps::text(&actor.id, caps::MAX_ID_BYTES)),
        actor_name: Set(caps::text(&actor.name, caps::MAX_NAME_BYTES)),
        ip_address: Set(caps::text(&meta.ip, caps::MAX_ID_BYTES)),
        user_agent: Set(caps::text(&meta.user_agent, caps::MAX_USER_AGENT_BYTES)),
        user_agent_type: Set(meta.user_agent_type.to_owned()),
        event_type: Set(entry.event_type.to_owned()),
        event_metadata: Set(caps::metadata(entry.metadata)),
        org_id: Set(caps::text(&actor.org_id, caps::MAX_ID_BYTES)),
        project_id: Set(entry.project_id.map(|id| caps::text(id, caps::MAX_ID_BYTES))),
        created_at: Set(now),
        expires_at: Set(expires),
        ..Default::default()
    }
}

/// Records an entry in the caller's write transaction: it exists if and only if the change commits.
pub fn record(txn: &WriteTxn, caller: &Principal, entry: Entry<'_>) {
    record_as(txn, &caller.into(), &caller.meta, entry);
}

/// Records an entry for an explicit actor (logins, background jobs) in the given transaction.
pub fn record_as(txn: &WriteTxn, actor: &AuditActor, meta: &RequestMeta, entry: Entry<'_>) {
    txn.append_audit(row(actor, meta, entry, txn.audit_retention()));
}

/// Records an entry for a read: durable when this returns, committed together with the entries of
/// concurrent reads (see `store::audit_appender`).
pub async fn record_read(store: &Store, caller: &Principal, entry: Entry<'_>) -> Result<(), DbErr> {
    record_alone(store, &caller.into(), &caller.meta, entry).await
}

/// Records an entry that belongs to no write (a read, a refusal) for an explicit actor; durable when this
/// returns.
pub async fn record_alone(
    store: &Store,
    actor: &AuditActor,
    meta: &RequestMeta,
    entry: Entry<'_>,
) -> Result<(), DbErr> {
    store.append_audit(row(actor, meta, entry, store.audit_retention())).await
}

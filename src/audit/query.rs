//! Reading the audit log: filtered, newest-first pages with a stable cursor, constant-memory export, and the
//! retention pruner.

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select,
};
use serde::Serialize;
use serde_json::json;
use tokio::sync::mpsc;

use super::Entry;
use crate::{
    identity::{
        IdentityError, Principal, access,
        policy::{Action, Resource, Subject},
    },
    store::{Store, entities::audit_log},
};

/// Entries per export chunk: memory stays bounded by this, whatever the range.
pub const EXPORT_CHUNK: u64 = 1000;
/// Expired entries deleted per statement, so pruning never holds a long lock.
const PRUNE_BATCH: u64 = 1000;

/// Filters of List and Export; empty fields mean "any".
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub event_types: Vec<String>,
    /// `identity`, `platform` or `unknownUser`.
    pub actor_type: Option<String>,
    pub actor_id: String,
    pub project_id: String,
    pub user_agent_type: String,
    /// Inclusive.
    pub start_time: Option<DateTime<Utc>>,
    /// Exclusive.
    pub end_time: Option<DateTime<Utc>>,
}

/// An entry as callers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub seq: i64,
    pub id: String,
    pub actor_type: String,
    pub actor_id: String,
    pub actor_name: String,
    pub ip_address: String,
    pub user_agent: String,
    pub user_agent_type: String,
    pub event_type: String,
    pub event_metadata: serde_json::Value,
    pub org_id: String,
    pub project_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl From<audit_log::Model> for AuditRecord {
    fn from(m: audit_log::Model) -> Self {
        Self {
            seq: m.seq,
            id: m.id,
            actor_type: m.actor_type,
            actor_id: m.actor_id,
            actor_name: m.actor_name,
            ip_address: m.ip_address,
            user_agent: m.user_agent,
            user_agent_type: m.user_agent_type,
            event_type: m.event_type,
            event_metadata: m.event_metadata,
            org_id: m.org_id,
            project_id: m.project_id,
            created_at: m.created_at,
            expires_at: m.expires_at,
        }
    }
}

/// An entry's JSON shape, the audit-log reference's (keys in alphabetical order, as they always were).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Shape<'a> {
    actor: &'a str,
    actor_metadata: ActorMetadata<'a>,
    created_at: String,
    event_metadata: &'a serde_json::Value,
    event_type: &'a str,
    expires_at: String,
    id: &'a str,
    ip_address: &'a str,
    org_id: &'a str,
    project_id: Option<&'a str>,
    user_agent: &'a str,
    user_agent_type: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ActorMetadata<'a> {
    identity_id: &'a str,
    name: &'a str,
}

impl AuditRecord {
    fn shape(&self) -> Shape<'_> {
        Shape {
            actor: &self.actor_type,
            actor_metadata: ActorMetadata { identity_id: &self.actor_id, name: &self.actor_name },
            created_at: self.created_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            event_metadata: &self.event_metadata,
            event_type: &self.event_type,
            expires_at: self.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            id: &self.id,
            ip_address: &self.ip_address,
            org_id: &self.org_id,
            project_id: self.project_id.as_deref(),
            user_agent: &self.user_agent,
            user_agent_type: &self.user_agent_type,
        }
    }

    /// The entry as one JSON object (NDJSON export, stream deliveries), in the audit-log reference's shape.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self.shape()).expect("the shape serializes")
    }

    /// [`to_json`](Self::to_json) as text, made without building the object first (stream deliveries).
    pub fn to_json_string(&self) -> String {
        serde_json::to_string(&self.shape()).expect("the shape serializes")
    }
}

/// One page, newest first.
#[derive(Debug)]
pub struct AuditPage {
    pub entries: Vec<AuditRecord>,
    pub next_page_token: Option<String>,
}

fn filtered(org_id: &str, filter: &AuditFilter) -> Select<audit_log::Entity> {
    let mut condition = Condition::all().add(audit_log::Column::OrgId.eq(org_id));
    if !filter.event_types.is_empty() {
        condition = condition.add(audit_log::Column::EventType.is_in(filter.event_types.clone()));
    }
    if let Some(actor_type) = &filter.actor_type {
        condition = condition.add(audit_log::Column::ActorType.eq(actor_type.as_str()));
    }
    if !filter.actor_id.is_empty() {
        condition = condition.add(audit_log::Column::ActorId.eq(filter.actor_id.as_str()));
    }
    if !filter.project_id.is_empty() {
        condition = condition.add(audit_log::Column::ProjectId.eq(filter.project_id.as_str()));
    }
    if !filter.user_agent_type.is_empty() {
        condition = condition.add(audit_log::Column::UserAgentType.eq(filter.user_agent_type.as_str()));
    }
    if let Some(start) = filter.start_time {
        condition = condition.add(audit_log::Column::CreatedAt.gte(start));
    }
    if let Some(end) = filter.end_time {
        condition = condition.add(audit_log::Column::CreatedAt.lt(end));
    }
    audit_log::Entity::find().filter(condition)
}

fn invalid(field: &str, reason: &str) -> IdentityError {
    IdentityError::InvalidArgument { field: field.into(), reason: reason.into() }
}

/// Actor types entries record.
const ACTOR_TYPES: [&str; 3] = ["identity", "platform", "unknownUser"];

/// Refuses a filter value no entry can have, naming the field: an event type hush never records, an actor type
/// or user agent type it does not know, an id that is not a UUID. A typo must not read as "nothing happened".
fn check_filter(filter: &AuditFilter) -> Result<(), IdentityError> {
    if let Some(actor_type) = filter.actor_type.as_deref().filter(|t| !ACTOR_TYPES.contains(t)) {
        return Err(invalid("filter.actor_type", &format!("'{actor_type}' is not one of {}", ACTOR_TYPES.join(", "))));
    }
    let agents = super::USER_AGENT_TYPES;
    if !filter.user_agent_type.is_empty() && !agents.contains(&filter.user_agent_type.as_str()) {
        let reason = format!("'{}' is not one of {}", filter.user_agent_type, agents.join(", "));
        return Err(invalid("filter.user_agent_type", &reason));
    }
    for (field, id) in [("filter.actor_id", &filter.actor_id), ("filter.project_id", &filter.project_id)] {
        if !id.is_empty() && uuid::Uuid::parse_str(id).is_err() {
            return Err(invalid(field, &format!("'{id}' is not a UUID")));
        }
    }
    if let (Some(start), Some(end)) = (filter.start_time, filter.end_time)
        && end <= start
    {
        return Err(invalid("filter.end_time", "must be after start_time"));
    }
    for (i, event_type) in filter.event_types.iter().enumerate() {
        if !super::event_types::is_known(event_type) {
            let near = crate::near_names::near_matches(event_type, super::event_types::EVENT_TYPES.iter().copied());
            let hint = if near.is_empty() { String::new() } else { format!(" (did you mean {}?)", near.join(", ")) };
            return Err(invalid(
                &format!("filter.event_types[{i}]"),
                &format!("'{event_type}' is not an audit event type{hint}"),
            ));
        }
    }
    Ok(())
}

async fn require_read(store: &Store, caller: &Principal) -> Result<(), IdentityError> {
    if store.audit_stream_only() {
        return Err(IdentityError::FailedPrecondition(
            "audit storage is off (HUSH_AUDIT_STORAGE=off): entries are kept only until the audit streams deliver \
             them and cannot be queried"
                .into(),
        ));
    }
    access::org_grants(store.conn(), caller).await?.require(Subject::AuditLogs, Action::Read, Resource::default())?;
    Ok(())
}

fn filter_metadata(filter: &AuditFilter) -> serde_json::Value {
    json!({
        "eventTypes": filter.event_types,
        "actorType": filter.actor_type,
        "actorId": filter.actor_id,
        "projectId": filter.project_id,
        "userAgentType": filter.user_agent_type,
        "startTime": filter.start_time,
        "endTime": filter.end_time,
    })
}

/// A page of the caller's org's entries, newest first. The page token is the last entry's sequence number, so
/// entries inserted meanwhile (always newer) never shift later pages: no duplicate, no skip.
pub async fn list(
    store: &Store,
    caller: &Principal,
    filter: &AuditFilter,
    page_size: i32,
    page_token: &str,
) -> Result<AuditPage, IdentityError> {
    let size = crate::paging::page_size(page_size).map_err(|reason| invalid("page_size", reason))?;
    check_filter(filter)?;
    require_read(store, caller).await?;
    let mut query = filtered(&caller.org_id, filter);
    if !page_token.is_empty() {
        let before: i64 =
            page_token.parse().map_err(|_| invalid("page_token", "is not a token from a previous page"))?;
        query = query.filter(audit_log::Column::Seq.lt(before));
    }
    let rows = query.order_by_desc(audit_log::Column::Seq).limit(size + 1).all(store.conn()).await?;
    let (rows, next_page_token) = crate::paging::split_page(rows, size, |row| row.seq.to_string());
    let entries: Vec<AuditRecord> = rows.into_iter().map(Into::into).collect();
    super::record_read(store, caller, Entry::org("get-audit-logs", filter_metadata(filter))).await?;
    Ok(AuditPage { entries, next_page_token })
}

/// Streams every matching entry, oldest first, in chunks of [`EXPORT_CHUNK`]; the receiver ends after the
/// last chunk (or with an error).
pub async fn export(
    store: &Store,
    caller: &Principal,
    filter: AuditFilter,
) -> Result<mpsc::Receiver<Result<Vec<AuditRecord>, DbErr>>, IdentityError> {
    check_filter(&filter)?;
    require_read(store, caller).await?;
    super::record_read(store, caller, Entry::org("export-audit-logs", filter_metadata(&filter))).await?;
    // Two chunks in flight at most: the reader's pace bounds memory.
    let (tx, rx) = mpsc::channel(2);
    let store = store.clone();
    let org_id = caller.org_id.clone();
    tokio::spawn(async move {
        let mut after = 0i64;
        loop {
            let chunk = filtered(&org_id, &filter)
                .filter(audit_log::Column::Seq.gt(after))
                .order_by_asc(audit_log::Column::Seq)
                .limit(EXPORT_CHUNK)
                .all(store.conn())
                .await;
            let chunk: Vec<AuditRecord> = match chunk {
                Ok(rows) => rows.into_iter().map(Into::into).collect(),
                Err(error) => {
                    let _ = tx.send(Err(error)).await;
                    return;
                }
            };
            let Some(last) = chunk.last() else { return };
            after = last.seq;
            let full = chunk.len() as u64 == EXPORT_CHUNK;
            if tx.send(Ok(chunk)).await.is_err() || !full {
                return;
            }
        }
    });
    Ok(rx)
}

/// Deletes expired entries in bounded batches; returns how many were deleted.
pub async fn prune_expired(db: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<u64, DbErr> {
    let mut deleted = 0;
    loop {
        let batch: Vec<i64> = audit_log::Entity::find()
            .select_only()
            .column(audit_log::Column::Seq)
            .filter(audit_log::Column::ExpiresAt.lt(now))
            .limit(PRUNE_BATCH)
            .into_tuple()
            .all(db)
            .await?;
        if batch.is_empty() {
            return Ok(deleted);
        }
        deleted +=
            audit_log::Entity::delete_many().filter(audit_log::Column::Seq.is_in(batch)).exec(db).await?.rows_affected;
    }
}

/// Stream-only mode: deletes entries at or below the lowest cursor of their org's streams.
pub async fn prune_delivered(store: &Store) -> Result<u64, DbErr> {
    use std::collections::HashMap;

    use crate::store::entities::{audit_stream, audit_stream_state};
    let txn = store.begin_write().await?;
    let db = &*txn;
    let mut lowest: HashMap<String, i64> = HashMap::new();
    for (stream, state) in audit_stream::Entity::find().find_also_related(audit_stream_state::Entity).all(db).await? {
        // A pending backfill still needs the entries after its start.
        let position =
            state.map_or(0, |s| if s.backfill_to > s.backfill_from { s.cursor.min(s.backfill_from) } else { s.cursor });
        lowest.entry(stream.org_id).and_modify(|c| *c = (*c).min(position)).or_insert(position);
    }
    let orgs: Vec<String> = audit_log::Entity::find()
        .select_only()
        .column(audit_log::Column::OrgId)
        .distinct()
        .into_tuple()
        .all(db)
        .await?;
    let mut deleted = 0;
    for org in orgs {
        let mut condition = Condition::all().add(audit_log::Column::OrgId.eq(org.as_str()));
        if let Some(cursor) = lowest.get(&org) {
            condition = condition.add(audit_log::Column::Seq.lte(*cursor));
        }
        deleted += audit_log::Entity::delete_many().filter(condition).exec(db).await?.rows_affected;
    }
    txn.commit().await?;
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, DbBackend, QueryTrait, Statement};

    use super::*;

    /// SQLite keeps only the audit indexes its planner reads (migration m0008): the listing and the export, with
    /// each filter and with all of them, still search an index; none scans the log.
    #[tokio::test]
    async fn sqlite_reads_the_log_through_an_index_for_every_filter() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            Store::connect(&format!("sqlite://{}?mode=rwc", dir.path().join("hush.db").display())).await.unwrap();
        let now = Utc::now();
        let filters = [
            AuditFilter::default(),
            AuditFilter { event_types: vec!["get-secret".into(), "create-secret".into()], ..Default::default() },
            AuditFilter { actor_type: Some("identity".into()), ..Default::default() },
            AuditFilter { actor_id: "actor".into(), ..Default::default() },
            AuditFilter { project_id: "project".into(), ..Default::default() },
            AuditFilter { user_agent_type: "cli".into(), ..Default::default() },
            AuditFilter { start_time: Some(now), end_time: Some(now), ..Default::default() },
            AuditFilter {
                event_types: vec!["get-secret".into()],
                actor_type: Some("identity".into()),
                actor_id: "actor".into(),
                project_id: "project".into(),
                user_agent_type: "cli".into(),
                start_time: Some(now),
                end_time: Some(now),
            },
        ];
        for filter in &filters {
            let listing =
                filtered("org", filter).filter(audit_log::Column::Seq.lt(100)).order_by_desc(audit_log::Column::Seq);
            let export =
                filtered("org", filter).filter(audit_log::Column::Seq.gt(0)).order_by_asc(audit_log::Column::Seq);
            for query in [listing.limit(51), export.limit(EXPORT_CHUNK)] {
                let query = query.build(DbBackend::Sqlite);
                let explain = Statement::from_sql_and_values(
                    DbBackend::Sqlite,
                    format!("EXPLAIN QUERY PLAN {}", query.sql),
                    query.values.map(|values| values.0).unwrap_or_default(),
                );
                let plan = store.conn().query_all_raw(explain).await.unwrap();
                let steps: Vec<String> = plan.iter().map(|row| row.try_get::<String>("", "detail").unwrap()).collect();
                assert!(
                    steps.iter().any(|step| step.starts_with("SEARCH audit_logs USING INDEX"))
                        && !steps.iter().any(|step| step.starts_with("SCAN audit_logs")),
                    "{filter:?}: {steps:?}"
                );
            }
        }
    }
}

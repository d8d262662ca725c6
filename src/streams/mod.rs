//! Audit log streams (docs/ARCHITECTURE.md): org-level destinations that receive the audit log through a durable,
//! leased, batched and retried delivery (see `engine` and `worker`). Credentials are sealed at rest and never
//! shown.

mod batch;
pub mod config;
pub mod engine;
mod outbound;
pub mod provider;
pub mod resolver;
pub mod retry;
mod routable;
mod safety;
mod state;
pub mod transport;
mod url_secrets;
mod worker;

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, ModelTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, sea_query::Expr,
};
use serde_json::json;

pub use config::{ProviderConfig, REDACTED};
pub use engine::EngineSettings;
pub use resolver::{Lookup, LookupFuture, SystemLookup};

use crate::{
    audit::{self, AuditRecord, Entry},
    crypto::{CryptoError, RootKey},
    identity::{
        Denied, Principal, access,
        policy::{Action, Resource, Subject},
    },
    store::{
        DbError, Store, WriteTxn,
        entities::{audit_log, audit_stream, audit_stream_state},
    },
};

/// Record kind the stream configurations are sealed under (root key rotation re-seals them under it too).
pub(crate) const SEAL_KIND: &str = "audit-stream";
/// Longest stream name.
const MAX_NAME_LEN: usize = 64;

/// Errors of the streams domain.
#[derive(Debug, thiserror::Error)]
pub enum StreamsError {
    #[error("{field}: {reason}")]
    InvalidArgument { field: String, reason: String },
    #[error("{0} not found")]
    NotFound(String),
    #[error(transparent)]
    PermissionDenied(#[from] Denied),
    #[error("{0}")]
    FailedPrecondition(String),
    /// A concurrent request changed what this one was based on; nothing was written.
    #[error("{0}")]
    Aborted(String),
    #[error("stored configuration of audit stream {0} failed to decrypt")]
    Integrity(String, #[source] CryptoError),
    #[error("database: {0}")]
    Db(#[from] DbError),
}

impl From<sea_orm::DbErr> for StreamsError {
    fn from(error: sea_orm::DbErr) -> Self {
        Self::Db(error.into())
    }
}

/// What a stream does with a batch its destination still refuses after the last retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailureMode {
    /// Record the batch as dropped and go on (the reference behaviour).
    #[default]
    Drop,
    /// Retry it at the cap interval until accepted; later entries wait behind it.
    Pause,
}

impl FailureMode {
    /// As stored (`audit_streams.on_failure`).
    pub fn as_str(self) -> &'static str {
        match self {
            FailureMode::Drop => "drop",
            FailureMode::Pause => "pause",
        }
    }

    /// From storage; anything unknown is the default.
    pub fn parse(stored: &str) -> Self {
        if stored == "pause" { FailureMode::Pause } else { FailureMode::Drop }
    }
}

/// One page of streams, by id.
#[derive(Debug)]
pub struct StreamPage {
    pub streams: Vec<StreamRecord>,
    pub next_page_token: Option<String>,
}

/// A stream as callers see it: credentials redacted.
#[derive(Debug, Clone)]
pub struct StreamRecord {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub config: ProviderConfig,
    pub on_failure: FailureMode,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Delivery status of a stream.
#[derive(Debug, Clone)]
pub struct StreamStatus {
    pub stream_id: String,
    pub queue_depth: i64,
    pub cursor_lag: Duration,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_error: String,
    pub last_error_at: Option<DateTime<Utc>>,
    pub attempts: i64,
    pub retries: i64,
    pub delivered_events: i64,
    pub dropped_batches: i64,
    pub dropped_events: i64,
    /// Since when a stream in pause mode has been holding a batch its destination refused; None when not paused.
    pub paused_at: Option<DateTime<Utc>>,
}

/// What a test delivery got back.
#[derive(Debug, Clone)]
pub struct TestOutcome {
    pub success: bool,
    pub status_code: i32,
    pub message: String,
}

/// The streams domain's entry point.
#[derive(Clone)]
pub struct Streams {
    store: Store,
    root_key: Arc<RootKey>,
    engine: EngineSettings,
    /// Decides which addresses destinations may have; `outbound` connects through it.
    vetting: resolver::Vetting,
    outbound: outbound::Outbound,
    /// Bumped when a stream was created, changed, backfilled or deleted (here or, relayed, elsewhere): wakes
    /// the engine's manager and workers.
    changed: Arc<tokio::sync::watch::Sender<u64>>,
}

fn invalid(field: &str, reason: impl Into<String>) -> StreamsError {
    StreamsError::InvalidArgument { field: field.into(), reason: reason.into() }
}

/// A stream name, trimmed: 1 to [`MAX_NAME_LEN`] characters, none of them control characters (line breaks
/// would forge lines in whatever prints names).
fn valid_name(name: &str) -> Result<&str, StreamsError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_LEN {
        return Err(invalid("name", format!("must be 1 to {MAX_NAME_LEN} characters")));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid("name", "must not contain control characters (line breaks, tabs, …)"));
    }
    Ok(name)
}

impl Streams {
    /// The streams of `store`, configurations sealed with `root_key`.
    pub fn new(store: Store, root_key: Arc<RootKey>, engine: EngineSettings) -> Self {
        let vetting = resolver::Vetting::new(engine.lookup.clone(), engine.allow_private);
        let outbound = outbound::Outbound::new(vetting.clone());
        let changed = Arc::new(tokio::sync::watch::Sender::new(0));
        Self { store, root_key, engine, vetting, outbound, changed }
    }

    /// Starts delivering on this instance as `owner` until `shutdown`.
    pub fn start_engine(&self, owner: String, shutdown: tokio_util::sync::CancellationToken) {
        engine::spawn(self.clone(), owner, shutdown);
    }

    /// Commits a change to a stream (or the stream set) and wakes the engine, here and on other instances.
    async fn commit_change(&self, txn: WriteTxn) -> Result<(), StreamsError> {
        txn.notify_instances(engine::STREAMS_NOTIFY_CHANNEL).await?;
        txn.commit().await?;
        crate::store::bump(&self.changed);
        Ok(())
    }

    fn open_config(&self, stream: &audit_stream::Model) -> Result<ProviderConfig, StreamsError> {
        let plain = self
            .root_key
            .open_record(SEAL_KIND, &stream.id, &stream.sealed_config)
            .map_err(|e| StreamsError::Integrity(stream.id.clone(), e))?;
        serde_json::from_slice(&plain)
            .map_err(|_| StreamsError::Integrity(stream.id.clone(), CryptoError::Authentication))
    }

    fn seal_config(&self, id: &str, config: &ProviderConfig) -> Vec<u8> {
        let plain = zeroize::Zeroizing::new(serde_json::to_vec(config).expect("configs serialize"));
        self.root_key.seal_record(SEAL_KIND, id, &plain)
    }

    fn record(&self, stream: &audit_stream::Model) -> Result<StreamRecord, StreamsError> {
        Ok(StreamRecord {
            id: stream.id.clone(),
            org_id: stream.org_id.clone(),
            name: stream.name.clone(),
            config: self.open_config(stream)?.redacted(),
            on_failure: FailureMode::parse(&stream.on_failure),
            created_at: stream.created_at,
            updated_at: stream.updated_at,
        })
    }

    async fn require(&self, caller: &Principal, action: Action) -> Result<(), StreamsError> {
        access::org_grants(self.store.conn(), caller).await?.require(
            Subject::AuditStreams,
            action,
            Resource::default(),
        )?;
        Ok(())
    }

    async fn find(&self, caller: &Principal, id: &str) -> Result<audit_stream::Model, StreamsError> {
        uuid::Uuid::parse_str(id).map_err(|_| invalid("audit_stream_id", format!("'{id}' is not a UUID")))?;
        audit_stream::Entity::find_by_id(id)
            .filter(audit_stream::Column::OrgId.eq(&caller.org_id))
            .one(self.store.conn())
            .await?
            .ok_or_else(|| StreamsError::NotFound(format!("audit stream '{id}'")))
    }

    /// Creates a stream that delivers entries written from now on. Unless `skip_test`, a test event is sent
    /// first and a refusal fails the call with the destination's status code (never its answer's body).
    pub async fn create(
        &self,
        caller: &Principal,
        name: &str,
        config: ProviderConfig,
        on_failure: FailureMode,
        skip_test: bool,
    ) -> Result<StreamRecord, StreamsError> {
        self.require(caller, Action::Create).await?;
        let name = valid_name(name)?;
        config.validate()?;
        safety::check(&config, &self.vetting).await?;
        if !skip_test {
            let outcome = self.deliver_test(&config).await;
            if !outcome.success {
                return Err(StreamsError::FailedPrecondition(format!(
                    "the destination refused the test event: {} (create with skip_test to store it anyway)",
                    outcome.message
                )));
            }
        }
        let id = uuid::Uuid::now_v7().to_string();
        let now = Utc::now();
        // The stream starts after every entry that can no longer appear below it (see `Store::audit_head`).
        let head = self.store.audit_head().await?;
        let txn = self.store.begin_write().await?;
        let stream = audit_stream::ActiveModel {
            id: Set(id.clone()),
            org_id: Set(caller.org_id.clone()),
            name: Set(name.to_owned()),
            provider: Set(config.kind().to_owned()),
            sealed_config: Set(self.seal_config(&id, &config)),
            on_failure: Set(on_failure.as_str().to_owned()),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&*txn)
        .await?;
        audit_stream_state::ActiveModel {
            stream_id: Set(id.clone()),
            cursor: Set(head),
            lease_owner: Set(None),
            lease_expires_at: Set(None),
            backfill_from: Set(0),
            backfill_to: Set(0),
            delivered_events: Set(0),
            dropped_batches: Set(0),
            dropped_events: Set(0),
            attempts: Set(0),
            retries: Set(0),
            last_success_at: Set(None),
            last_error: Set(String::new()),
            last_error_at: Set(None),
            paused_at: Set(None),
        }
        .insert(&*txn)
        .await?;
        let entry = json!({
            "auditStreamId": id, "name": name, "provider": config.kind(), "onFailure": on_failure.as_str()
        });
        audit::record(&txn, caller, Entry::org("create-audit-stream", entry));
        self.commit_change(txn).await?;
        self.record(&stream)
    }

    /// One stream of the caller's org.
    pub async fn get(&self, caller: &Principal, id: &str) -> Result<StreamRecord, StreamsError> {
        self.require(caller, Action::Read).await?;
        let stream = self.find(caller, id).await?;
        audit::record_read(&self.store, caller, Entry::org("get-audit-stream", json!({ "auditStreamId": id }))).await?;
        self.record(&stream)
    }

    /// The org's streams, oldest first.
    pub async fn list(&self, caller: &Principal, size: i32, page_token: &str) -> Result<StreamPage, StreamsError> {
        let size = crate::paging::page_size(size).map_err(|reason| invalid("page_size", reason))?;
        self.require(caller, Action::Read).await?;
        let mut query = audit_stream::Entity::find().filter(audit_stream::Column::OrgId.eq(&caller.org_id));
        if let Some(after) = crate::paging::id_after(page_token).map_err(|reason| invalid("page_token", reason))? {
            query = query.filter(audit_stream::Column::Id.gt(after));
        }
        let rows = query.order_by_asc(audit_stream::Column::Id).limit(size + 1).all(self.store.conn()).await?;
        let (rows, next_page_token) = crate::paging::split_page(rows, size, |row| row.id.clone());
        audit::record_read(&self.store, caller, Entry::org("get-audit-streams", json!({ "count": rows.len() })))
            .await?;
        let streams = rows.iter().map(|s| self.record(s)).collect::<Result<Vec<_>, _>>()?;
        Ok(StreamPage { streams, next_page_token })
    }

    /// Renames a stream and/or replaces its provider configuration. A credential (or URL part) sent as
    /// [`REDACTED`] keeps its stored value while the destination stays the same; a custom stream may go from
    /// single to batch, never back.
    pub async fn update(
        &self,
        caller: &Principal,
        id: &str,
        name: Option<&str>,
        config: Option<ProviderConfig>,
        on_failure: Option<FailureMode>,
    ) -> Result<StreamRecord, StreamsError> {
        self.require(caller, Action::Edit).await?;
        let stream = self.find(caller, id).await?;
        let stored = self.open_config(&stream)?;
        let mut active = stream.clone().into_active_model();
        if let Some(name) = name {
            active.name = Set(valid_name(name)?.to_owned());
        }
        if let Some(config) = config {
            let config = config.keep_redacted_from(&stored)?;
            if let (ProviderConfig::Custom { batch: true, .. }, ProviderConfig::Custom { batch: false, .. }) =
                (&stored, &config)
            {
                return Err(StreamsError::FailedPrecondition(
                    "a custom stream in batch mode cannot go back to single mode".into(),
                ));
            }
            config.validate()?;
            safety::check(&config, &self.vetting).await?;
            active.provider = Set(config.kind().to_owned());
            active.sealed_config = Set(self.seal_config(&stream.id, &config));
        }
        if let Some(mode) = on_failure {
            active.on_failure = Set(mode.as_str().to_owned());
        }
        active.updated_at = Set(Utc::now());
        let txn = self.store.begin_write().await?;
        // The new configuration was checked against the stored one read above (outside the transaction: the
        // destination check resolves names). Locked and compared here, so a concurrent update is never
        // overwritten by one that did not see it.
        let current = audit_stream::Entity::find_by_id(&stream.id).lock_exclusive().one(&*txn).await?;
        if current.as_ref() != Some(&stream) {
            return Err(StreamsError::Aborted(format!(
                "audit stream '{id}' was changed or deleted by a concurrent request; read it again and retry"
            )));
        }
        let updated = active.update(&*txn).await?;
        if on_failure == Some(FailureMode::Drop) {
            // A paused stream switched to drop is not paused any more: its batch is dropped at its next retry.
            audit_stream_state::Entity::update_many()
                .col_expr(audit_stream_state::Column::PausedAt, Expr::value(Option::<DateTime<Utc>>::None))
                .filter(audit_stream_state::Column::StreamId.eq(&stream.id))
                .exec(&*txn)
                .await?;
        }
        let entry = json!({
            "auditStreamId": id, "name": updated.name, "provider": updated.provider, "onFailure": updated.on_failure
        });
        audit::record(&txn, caller, Entry::org("update-audit-stream", entry));
        self.commit_change(txn).await?;
        self.record(&updated)
    }

    /// Deletes a stream; its delivery stops.
    pub async fn delete(&self, caller: &Principal, id: &str) -> Result<(), StreamsError> {
        self.require(caller, Action::Delete).await?;
        let stream = self.find(caller, id).await?;
        let txn = self.store.begin_write().await?;
        let entry = json!({ "auditStreamId": id, "name": stream.name });
        audit::record(&txn, caller, Entry::org("delete-audit-stream", entry));
        stream.delete(&*txn).await?;
        self.commit_change(txn).await?;
        Ok(())
    }

    /// Sends one test event and reports the destination's answer.
    pub async fn test(&self, caller: &Principal, id: &str) -> Result<TestOutcome, StreamsError> {
        self.require(caller, Action::Edit).await?;
        let stream = self.find(caller, id).await?;
        let config = self.open_config(&stream)?;
        let outcome = self.deliver_test(&config).await;
        let entry = json!({ "auditStreamId": id, "success": outcome.success, "statusCode": outcome.status_code });
        audit::record_read(&self.store, caller, Entry::org("test-audit-stream", entry)).await?;
        Ok(outcome)
    }

    async fn deliver_test(&self, config: &ProviderConfig) -> TestOutcome {
        let now = Utc::now();
        let event = AuditRecord {
            seq: 0,
            id: uuid::Uuid::now_v7().to_string(),
            actor_type: "platform".into(),
            actor_id: String::new(),
            actor_name: "hush".into(),
            ip_address: String::new(),
            user_agent: String::new(),
            user_agent_type: "other".into(),
            event_type: "test-audit-stream".into(),
            event_metadata: json!({ "test": true }),
            org_id: String::new(),
            project_id: None,
            created_at: now,
            expires_at: now,
        };
        let sent = transport::send(&self.outbound, config, &[(&event).into()], &mut None).await;
        match sent {
            Ok(status) => TestOutcome { success: true, status_code: status.into(), message: "accepted".into() },
            Err(error) => {
                TestOutcome { success: false, status_code: error.status_code().into(), message: error.to_string() }
            }
        }
    }

    /// Delivery status: backlog, lag, outcomes and counters.
    pub async fn status(&self, caller: &Principal, id: &str) -> Result<StreamStatus, StreamsError> {
        self.require(caller, Action::Read).await?;
        let stream = self.find(caller, id).await?;
        let db = self.store.conn();
        let state = audit_stream_state::Entity::find_by_id(&stream.id)
            .one(db)
            .await?
            .ok_or_else(|| StreamsError::NotFound(format!("audit stream '{id}'")))?;
        // From positions, not by counting: two indexed lookups, however long the backlog.
        let head = newest_position(db, &stream.org_id).await?;
        let queue_depth = lag(head, &state) + (state.backfill_to - state.backfill_from).max(0);
        let oldest = audit_log::Entity::find()
            .filter(audit_log::Column::OrgId.eq(&stream.org_id))
            .filter(audit_log::Column::Seq.gt(state.cursor))
            .order_by_asc(audit_log::Column::Seq)
            .one(db)
            .await?;
        let cursor_lag = oldest.map(|e| (Utc::now() - e.created_at).to_std().unwrap_or_default()).unwrap_or_default();
        Ok(StreamStatus {
            stream_id: stream.id,
            queue_depth,
            cursor_lag,
            last_success_at: state.last_success_at,
            last_error: state.last_error,
            last_error_at: state.last_error_at,
            attempts: state.attempts,
            retries: state.retries,
            delivered_events: state.delivered_events,
            dropped_batches: state.dropped_batches,
            dropped_events: state.dropped_events,
            paused_at: state.paused_at,
        })
    }

    /// Queues the entries of `[start, end)` for delivery again; returns how many.
    pub async fn backfill(
        &self,
        caller: &Principal,
        id: &str,
        start: DateTime<Utc>,
        end: Option<DateTime<Utc>>,
    ) -> Result<i64, StreamsError> {
        self.require(caller, Action::Edit).await?;
        let stream = self.find(caller, id).await?;
        let end = end.unwrap_or_else(Utc::now);
        if end <= start {
            return Err(invalid("end_time", "must be after start_time (unset means now)"));
        }
        let txn = self.store.begin_write().await?;
        let range = audit_log::Entity::find()
            .filter(audit_log::Column::OrgId.eq(&stream.org_id))
            .filter(audit_log::Column::CreatedAt.gte(start))
            .filter(audit_log::Column::CreatedAt.lt(end));
        let count = range.clone().count(&*txn).await? as i64;
        let bounds: Option<(Option<i64>, Option<i64>)> = range
            .select_only()
            .column_as(audit_log::Column::Seq.min(), "min")
            .column_as(audit_log::Column::Seq.max(), "max")
            .into_tuple()
            .one(&*txn)
            .await?;
        if let Some((Some(first), Some(last))) = bounds {
            // Locked: the range is widened from what is stored, and two backfills must not lose each other's.
            let state = audit_stream_state::Entity::find_by_id(&stream.id)
                .lock_exclusive()
                .one(&*txn)
                .await?
                .ok_or_else(|| StreamsError::NotFound(format!("audit stream '{id}'")))?;
            let pending = state.backfill_to > state.backfill_from;
            let from = if pending { state.backfill_from.min(first - 1) } else { first - 1 };
            let to = if pending { state.backfill_to.max(last) } else { last };
            let mut active = state.into_active_model();
            active.backfill_from = Set(from);
            active.backfill_to = Set(to);
            active.update(&*txn).await?;
        }
        let entry = json!({ "auditStreamId": id, "startTime": start, "endTime": end, "queuedEvents": count });
        audit::record(&txn, caller, Entry::org("backfill-audit-stream", entry));
        self.commit_change(txn).await?;
        Ok(count)
    }

    /// Per-stream counters for `/metrics`: (stream id, name, state, lag). The lag is read from positions, not
    /// counted: one indexed lookup of the newest `seq` per org, whatever the backlog (see [`lag`]).
    pub async fn metrics(&self) -> Result<Vec<(String, String, audit_stream_state::Model, i64)>, sea_orm::DbErr> {
        let db = self.store.conn();
        let mut heads: std::collections::HashMap<String, Option<i64>> = Default::default();
        let mut out = Vec::new();
        for (stream, state) in
            audit_stream::Entity::find().find_also_related(audit_stream_state::Entity).all(db).await?
        {
            let Some(state) = state else { continue };
            let head = match heads.get(&stream.org_id) {
                Some(head) => *head,
                None => {
                    let head = newest_position(db, &stream.org_id).await?;
                    *heads.entry(stream.org_id.clone()).or_default() = head;
                    head
                }
            };
            out.push((stream.id, stream.name, state.clone(), lag(head, &state)));
        }
        Ok(out)
    }
}

/// The newest audit log position (`seq`) of `org_id`; None when it has no entry.
async fn newest_position(db: &impl sea_orm::ConnectionTrait, org_id: &str) -> Result<Option<i64>, sea_orm::DbErr> {
    let newest: Option<Option<i64>> = audit_log::Entity::find()
        .select_only()
        .column_as(audit_log::Column::Seq.max(), "newest")
        .filter(audit_log::Column::OrgId.eq(org_id))
        .into_tuple()
        .one(db)
        .await?;
    Ok(newest.flatten())
}

/// Positions between a stream's cursor and its org's newest entry: 0 when caught up, and exact while one org
/// writes the audit log; positions are shared by all orgs, so with several it is an upper bound.
fn lag(head: Option<i64>, state: &audit_stream_state::Model) -> i64 {
    head.map_or(0, |head| (head - state.cursor).max(0))
}

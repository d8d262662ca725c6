//! The delivery engine (docs/ARCHITECTURE.md). Each instance runs one manager that, for every stream, tries to take the
//! stream's **lease** (owner + expiry, compare-and-set in the database); the holder alone delivers, so no two
//! instances send the same batch, and a crashed holder's lease expires and another instance takes over (the
//! sweeper). A delivery moves the stream's cursor over the audit log only after the destination accepted the
//! batch or every retry failed (then the batch is recorded as dropped): delivery is at-least-once and every
//! entry carries its `id` for de-duplication.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use chrono::Utc;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, UpdateMany,
    sea_query::{Expr, ExprTrait},
};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{
    Streams,
    config::ProviderConfig,
    outbound::{self, Outbound},
    provider::{self, Outgoing},
    resolver::Lookup,
    retry::RetryPolicy,
};
use crate::{
    audit::AuditRecord,
    store::entities::{audit_log, audit_stream, audit_stream_state},
};

/// Most entries in one batch.
pub const MAX_BATCH_EVENTS: usize = 500;
/// Most bytes (serialized entries) in one batch; an entry alone larger than this is dropped.
pub const MAX_BATCH_BYTES: usize = 1024 * 1024;
/// Most of a destination's answer read (Azure token answers; other answers are never read).
const MAX_ANSWER_BYTES: usize = 16 * 1024;
/// How often idle streams look for new entries, and the manager for new streams.
const POLL: Duration = Duration::from_millis(250);
/// Time limit of one request to a destination.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Renew an Azure token this long before it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(120);

/// Settings of the engine.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub retry: RetryPolicy,
    /// How long a lease lasts without renewal; a crashed instance's streams resume after this.
    pub lease: Duration,
    /// Allow destinations on addresses that are not globally routable (private, loopback, …).
    pub allow_private: bool,
    /// How destination names are resolved (the system resolver outside tests).
    pub lookup: Arc<dyn Lookup>,
}

/// The outcome of delivering one batch.
enum Outcome {
    Delivered,
    Dropped(String),
    /// The lease was lost or the server is stopping: nothing is recorded, the next holder resends.
    Abandoned,
}

/// A batch ready to send.
struct Batch {
    entries: Vec<Value>,
    /// Entries over [`MAX_BATCH_BYTES`] on their own: dropped with a reason.
    oversize: usize,
    last_seq: i64,
}

/// Starts the manager; it stops with `shutdown`.
pub fn spawn(streams: Streams, owner: String, shutdown: CancellationToken) {
    let running: Arc<Mutex<HashSet<String>>> = Arc::default();
    tokio::spawn(async move {
        loop {
            match audit_stream::Entity::find().all(streams.store.conn()).await {
                Ok(all) => {
                    for stream in all {
                        let fresh = running.lock().expect("lock").insert(stream.id.clone());
                        if fresh {
                            let worker =
                                Worker { streams: streams.clone(), owner: owner.clone(), stream_id: stream.id };
                            let running = running.clone();
                            let shutdown = shutdown.clone();
                            tokio::spawn(async move {
                                let id = worker.stream_id.clone();
                                worker.run(shutdown).await;
                                running.lock().expect("lock").remove(&id);
                            });
                        }
                    }
                }
                Err(error) => tracing::warn!(%error, "listing audit streams failed"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(POLL) => {}
            }
        }
    });
}

struct Worker {
    streams: Streams,
    owner: String,
    stream_id: String,
}

impl Worker {
    /// Delivers while this instance holds the stream's lease; waits while another instance holds it.
    async fn run(self, shutdown: CancellationToken) {
        let mut azure_token: Option<(String, Instant)> = None;
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            match self.take_lease().await {
                Ok(true) => {}
                Ok(false) => {
                    // Another instance delivers; look again later (it may crash).
                    if !self.stream_exists().await {
                        return;
                    }
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(POLL.max(self.streams.engine.lease / 4)) => {}
                    }
                    continue;
                }
                Err(error) => {
                    tracing::warn!(%error, stream = %self.stream_id, "audit stream lease failed");
                    tokio::time::sleep(POLL).await;
                    continue;
                }
            }
            match self.step(&mut azure_token, &shutdown).await {
                Ok(true) => {}
                Ok(false) => {
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(POLL) => {}
                    }
                }
                Err(StepError::Gone) => return,
                Err(StepError::Db(error)) => {
                    tracing::warn!(%error, stream = %self.stream_id, "audit stream delivery failed");
                    tokio::time::sleep(POLL).await;
                }
            }
        }
    }

    async fn stream_exists(&self) -> bool {
        audit_stream::Entity::find_by_id(&self.stream_id)
            .one(self.streams.store.conn())
            .await
            .map_or(true, |s| s.is_some())
    }

    /// Takes or renews the lease (compare-and-set): true when this instance holds it now.
    async fn take_lease(&self) -> Result<bool, sea_orm::DbErr> {
        let now = Utc::now();
        let until = now + chrono::Duration::from_std(self.streams.engine.lease).unwrap_or(chrono::Duration::MAX);
        let free = Condition::any()
            .add(audit_stream_state::Column::LeaseOwner.is_null())
            .add(audit_stream_state::Column::LeaseOwner.eq(&self.owner))
            .add(audit_stream_state::Column::LeaseExpiresAt.lt(now));
        let result = audit_stream_state::Entity::update_many()
            .col_expr(audit_stream_state::Column::LeaseOwner, Expr::value(self.owner.clone()))
            .col_expr(audit_stream_state::Column::LeaseExpiresAt, Expr::value(until))
            .filter(audit_stream_state::Column::StreamId.eq(&self.stream_id))
            .filter(free);
        Ok(self.write(result).await? == 1)
    }

    /// Delivers one batch if there is one; returns whether there was.
    async fn step(
        &self,
        azure_token: &mut Option<(String, Instant)>,
        shutdown: &CancellationToken,
    ) -> Result<bool, StepError> {
        let db = self.streams.store.conn();
        let (stream, Some(config)) = self.stored().await? else { return Ok(false) };
        let state = audit_stream_state::Entity::find_by_id(&self.stream_id).one(db).await?.ok_or(StepError::Gone)?;
        let backfill = state.backfill_to > state.backfill_from;
        let (after, upto) =
            if backfill { (state.backfill_from, Some(state.backfill_to)) } else { (state.cursor, None) };
        let Some(batch) = next_batch(db, &stream.org_id, after, upto).await? else { return Ok(false) };
        let outcome = if batch.entries.is_empty() {
            Outcome::Dropped(format!("{} entries larger than {MAX_BATCH_BYTES} bytes", batch.oversize))
        } else {
            self.deliver(config, &batch.entries, azure_token, shutdown).await?
        };
        self.record(&batch, backfill, after, outcome).await?;
        Ok(true)
    }

    /// The stream and its configuration as stored now; no configuration (logged) when it cannot be opened.
    async fn stored(&self) -> Result<(audit_stream::Model, Option<ProviderConfig>), StepError> {
        let db = self.streams.store.conn();
        let stream = audit_stream::Entity::find_by_id(&self.stream_id).one(db).await?.ok_or(StepError::Gone)?;
        let config = self
            .streams
            .open_config(&stream)
            .inspect_err(|error| {
                tracing::error!(%error, stream = %self.stream_id, "audit stream configuration cannot be opened");
            })
            .ok();
        Ok((stream, config))
    }

    /// Sends a batch with retries; between attempts the lease is kept alive. Each retry goes to the destination
    /// stored then, so a stream pointed at a working destination while a batch waits (UpdateAuditStream) sends
    /// it there instead of dropping it after the old destination's failures.
    async fn deliver(
        &self,
        mut config: ProviderConfig,
        entries: &[Value],
        azure_token: &mut Option<(String, Instant)>,
        shutdown: &CancellationToken,
    ) -> Result<Outcome, StepError> {
        let policy = self.streams.engine.retry;
        let mut last_error = String::new();
        for attempt in 0..policy.attempts {
            if attempt > 0 {
                let retry_after = parse_retry_after(&last_error);
                let delay = policy.delay(attempt - 1, retry_after);
                self.count_retry(&last_error).await?;
                if !self.wait_holding_lease(delay, shutdown).await? {
                    return Ok(Outcome::Abandoned);
                }
                if let (_, Some(stored)) = self.stored().await? {
                    config = stored;
                }
            }
            self.count_attempt().await?;
            match self.send(&config, entries, azure_token).await {
                Ok(()) => return Ok(Outcome::Delivered),
                Err(error) => {
                    tracing::warn!(stream = %self.stream_id, attempt = attempt + 1, %error, "audit stream delivery attempt failed");
                    last_error = error;
                }
            }
        }
        Ok(Outcome::Dropped(format!("after {} attempts: {last_error}", policy.attempts)))
    }

    /// Sleeps `delay`, renewing the lease on the way; false if the lease was lost or the server stops.
    async fn wait_holding_lease(&self, delay: Duration, shutdown: &CancellationToken) -> Result<bool, StepError> {
        let deadline = tokio::time::Instant::now() + delay;
        let step = self.streams.engine.lease / 3;
        loop {
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(true);
            }
            tokio::select! {
                () = shutdown.cancelled() => return Ok(false),
                () = tokio::time::sleep((deadline - now).min(step)) => {}
            }
            if !self.take_lease().await? {
                return Ok(false);
            }
        }
    }

    /// One attempt: every request of the batch must be accepted (2xx).
    async fn send(
        &self,
        config: &ProviderConfig,
        entries: &[Value],
        azure_token: &mut Option<(String, Instant)>,
    ) -> Result<(), String> {
        // Addresses are vetted as they are connected to (Outbound), not here: a name may answer differently.
        let token = match provider::azure_token_request(config) {
            Some(request) => Some(fetch_azure_token(&self.streams.outbound, request, azure_token).await?),
            None => None,
        };
        for outgoing in provider::requests(config, entries, token.as_deref()) {
            post(&self.streams.outbound, outgoing).await?;
        }
        Ok(())
    }

    /// Runs one state update as a write transaction (on SQLite that takes the single-writer lock, so it
    /// cannot invalidate another writer's transaction).
    async fn write(&self, update: UpdateMany<audit_stream_state::Entity>) -> Result<u64, sea_orm::DbErr> {
        let txn = self.streams.store.begin_write().await?;
        let rows = update.exec(&*txn).await?.rows_affected;
        txn.commit().await?;
        Ok(rows)
    }

    async fn count_attempt(&self) -> Result<(), StepError> {
        let update = audit_stream_state::Entity::update_many()
            .col_expr(audit_stream_state::Column::Attempts, Expr::col(audit_stream_state::Column::Attempts).add(1))
            .filter(audit_stream_state::Column::StreamId.eq(&self.stream_id));
        self.write(update).await?;
        Ok(())
    }

    async fn count_retry(&self, error: &str) -> Result<(), StepError> {
        let update = audit_stream_state::Entity::update_many()
            .col_expr(audit_stream_state::Column::Retries, Expr::col(audit_stream_state::Column::Retries).add(1))
            .col_expr(audit_stream_state::Column::LastError, Expr::value(error.to_owned()))
            .col_expr(audit_stream_state::Column::LastErrorAt, Expr::value(Utc::now()))
            .filter(audit_stream_state::Column::StreamId.eq(&self.stream_id));
        self.write(update).await?;
        Ok(())
    }

    /// Moves the position past the batch and counts the outcome, only while this instance holds the lease and
    /// the position is still `after`, where the batch started: a backfill requested meanwhile may have moved
    /// it back, and must not be overwritten (the batch is then sent again: delivery is at-least-once).
    async fn record(&self, batch: &Batch, backfill: bool, after: i64, outcome: Outcome) -> Result<(), StepError> {
        let sent = batch.entries.len() as i64;
        let position =
            if backfill { audit_stream_state::Column::BackfillFrom } else { audit_stream_state::Column::Cursor };
        let mut update = audit_stream_state::Entity::update_many()
            .col_expr(position, Expr::value(batch.last_seq))
            .filter(audit_stream_state::Column::StreamId.eq(&self.stream_id))
            .filter(audit_stream_state::Column::LeaseOwner.eq(&self.owner))
            .filter(position.eq(after));
        let col = |c: audit_stream_state::Column, n: i64| Expr::col(c).add(n);
        match &outcome {
            Outcome::Abandoned => return Ok(()),
            Outcome::Delivered => {
                update = update
                    .col_expr(
                        audit_stream_state::Column::DeliveredEvents,
                        col(audit_stream_state::Column::DeliveredEvents, sent),
                    )
                    .col_expr(audit_stream_state::Column::LastSuccessAt, Expr::value(Utc::now()));
            }
            Outcome::Dropped(reason) => {
                tracing::error!(stream = %self.stream_id, events = sent, reason = %reason, "audit stream batch dropped");
                update = update
                    .col_expr(
                        audit_stream_state::Column::DroppedBatches,
                        col(audit_stream_state::Column::DroppedBatches, 1),
                    )
                    .col_expr(
                        audit_stream_state::Column::DroppedEvents,
                        col(audit_stream_state::Column::DroppedEvents, sent),
                    )
                    .col_expr(audit_stream_state::Column::LastError, Expr::value(reason.clone()))
                    .col_expr(audit_stream_state::Column::LastErrorAt, Expr::value(Utc::now()));
            }
        }
        if batch.oversize > 0 {
            let oversize = batch.oversize as i64;
            tracing::error!(stream = %self.stream_id, events = oversize, "audit entries over 1 MB dropped");
            update = update
                .col_expr(
                    audit_stream_state::Column::DroppedBatches,
                    col(audit_stream_state::Column::DroppedBatches, 1),
                )
                .col_expr(
                    audit_stream_state::Column::DroppedEvents,
                    col(audit_stream_state::Column::DroppedEvents, oversize),
                )
                .col_expr(
                    audit_stream_state::Column::LastError,
                    Expr::value(format!("{oversize} entries larger than 1 MB dropped")),
                )
                .col_expr(audit_stream_state::Column::LastErrorAt, Expr::value(Utc::now()));
        }
        self.write(update).await?;
        Ok(())
    }
}

enum StepError {
    /// The stream was deleted.
    Gone,
    Db(sea_orm::DbErr),
}

impl From<sea_orm::DbErr> for StepError {
    fn from(error: sea_orm::DbErr) -> Self {
        StepError::Db(error)
    }
}

/// The next batch after `after` (up to `upto`), bounded by count and size; None when there is nothing to send.
async fn next_batch(
    db: &impl ConnectionTrait,
    org_id: &str,
    after: i64,
    upto: Option<i64>,
) -> Result<Option<Batch>, sea_orm::DbErr> {
    let mut query = audit_log::Entity::find()
        .filter(audit_log::Column::OrgId.eq(org_id))
        .filter(audit_log::Column::Seq.gt(after))
        .order_by_asc(audit_log::Column::Seq)
        .limit(MAX_BATCH_EVENTS as u64);
    if let Some(upto) = upto {
        query = query.filter(audit_log::Column::Seq.lte(upto));
    }
    let rows = query.all(db).await?;
    let Some(first) = rows.first() else { return Ok(None) };
    let mut batch = Batch { entries: Vec::new(), oversize: 0, last_seq: first.seq };
    let mut bytes = 2; // the array brackets
    for row in rows {
        let seq = row.seq;
        let entry = AuditRecord::from(row).to_json();
        let size = entry.to_string().len() + 1;
        if size > MAX_BATCH_BYTES {
            batch.oversize += 1;
        } else if bytes + size > MAX_BATCH_BYTES {
            // The rest goes in the next batch.
            break;
        } else {
            bytes += size;
            batch.entries.push(entry);
        }
        batch.last_seq = seq;
    }
    Ok(Some(batch))
}

/// The cached Azure token, or a new one from the token endpoint (client credentials).
async fn fetch_azure_token(
    http: &Outbound,
    (url, form): (String, Vec<(&'static str, String)>),
    cache: &mut Option<(String, Instant)>,
) -> Result<String, String> {
    if let Some((token, expires)) = cache {
        if Instant::now() + TOKEN_MARGIN < *expires {
            return Ok(token.clone());
        }
    }
    let body = form.iter().map(|(k, v)| format!("{k}={}", urlencode(v))).collect::<Vec<_>>().join("&");
    let response = http
        .post(&url)
        .map_err(|e| format!("azure token request: {e}"))?
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .timeout(REQUEST_TIMEOUT)
        .send()
        .await
        .map_err(|e| format!("azure token request failed: {}", outbound::describe(e)))?;
    let status = response.status();
    let text = bounded_text(response).await;
    if !status.is_success() {
        return Err(format!("azure token endpoint answered {status}"));
    }
    let json: Value = serde_json::from_str(&text).map_err(|_| "azure token answer is not JSON".to_owned())?;
    let token = json["access_token"].as_str().ok_or("azure token answer has no access_token")?.to_owned();
    let lifetime = json["expires_in"].as_u64().unwrap_or(3600);
    *cache = Some((token.clone(), Instant::now() + Duration::from_secs(lifetime)));
    Ok(token)
}

/// One POST; 2xx is success, anything else an error message: the status code (with `retry-after=N` when
/// the destination asked for a pause), never the answer's body, which could be anything the destination
/// (or whatever a name was pointed at) chooses to show.
async fn post(http: &Outbound, outgoing: Outgoing) -> Result<u16, String> {
    let mut request = http.post(&outgoing.url)?.timeout(REQUEST_TIMEOUT).body(outgoing.body);
    for (name, value) in &outgoing.headers {
        request = request.header(name, value);
    }
    // Errors never include the URL (it may carry credentials) or request headers.
    let response = request.send().await.map_err(|e| format!("request failed: {}", outbound::describe(e)))?;
    let status = response.status();
    if status.is_success() {
        return Ok(status.as_u16());
    }
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|_| status.as_u16() == 429 || status.as_u16() == 503);
    let mut message = format!("destination answered {status}");
    if let Some(seconds) = retry_after {
        message.push_str(&format!(" (retry-after={seconds})"));
    }
    Err(message)
}

/// Sends one batch once, for TestAuditStream: the status code, or the status code (0 when there was no
/// answer) and the error.
pub async fn test_delivery(http: &Outbound, config: &ProviderConfig, entries: &[Value]) -> Result<u16, (u16, String)> {
    let mut cache = None;
    let token = match provider::azure_token_request(config) {
        Some(request) => Some(fetch_azure_token(http, request, &mut cache).await.map_err(|e| (0, e))?),
        None => None,
    };
    let mut last = 0;
    for outgoing in provider::requests(config, entries, token.as_deref()) {
        last = post(http, outgoing).await.map_err(|e| (status_of(&e), e))?;
    }
    Ok(last)
}

/// The HTTP status an error message reports, 0 if none.
fn status_of(error: &str) -> u16 {
    error.strip_prefix("destination answered ").and_then(|r| r.get(..3)).and_then(|c| c.parse().ok()).unwrap_or(0)
}

fn parse_retry_after(error: &str) -> Option<Duration> {
    let start = error.rfind("(retry-after=")? + "(retry-after=".len();
    let end = error[start..].find(')')? + start;
    error[start..end].parse().ok().map(Duration::from_secs)
}

/// Reads at most [`MAX_ANSWER_BYTES`] of an answer.
async fn bounded_text(mut response: reqwest::Response) -> String {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = MAX_ANSWER_BYTES.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_ANSWER_BYTES {
            break;
        }
    }
    String::from_utf8_lossy(&body).into_owned()
}

fn urlencode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_round_trips_through_the_error() {
        assert_eq!(parse_retry_after("destination answered 429 (retry-after=3)"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("destination answered 500"), None);
        assert_eq!(urlencode("a b/c"), "a%20b%2Fc");
    }
}

//! One stream's delivery loop on this instance. A worker is woken when audit entries commit (here, or on
//! another instance through PostgreSQL's NOTIFY) or the stream changes (updated, backfilled, deleted); it then
//! delivers batch after batch until the stream is caught up, and sleeps. An idle stream costs no statement.
//!
//! Only the holder of the stream's **lease** (owner + expiry, compare-and-set in the database) delivers, so no
//! two instances send the same batch. A worker takes the lease when it has a batch to send, renews it once a
//! third of it has passed (a recorded batch renews it too), and lets it lapse when idle: a crashed holder's
//! streams are taken over once its lease expires. The position moves past a batch only after the destination
//! accepted it, or every retry failed and the stream drops (in `pause` mode it retries at the cap interval
//! until accepted): delivery is at-least-once and every entry carries its `id` for de-duplication.

use std::time::Duration;

use tokio::{sync::watch, time::Instant};
use tokio_util::sync::CancellationToken;

use super::{
    FailureMode, Streams, batch,
    config::ProviderConfig,
    provider,
    state::{Outcome, Position, StreamState},
    transport::{self, AzureToken},
};
use crate::store::entities::audit_stream;

/// Pause after a database error before the next pass.
const AFTER_DB_ERROR: Duration = Duration::from_secs(1);

/// What wakes a worker: audit entries committed, or the stream set or a stream changed.
pub(super) struct Wakeups {
    pub audit: watch::Receiver<u64>,
    pub streams: watch::Receiver<u64>,
}

impl Wakeups {
    /// Forgets the wake-ups so far: a pass that starts after this sees everything they announced.
    fn seen(&mut self) {
        self.audit.borrow_and_update();
        self.streams.borrow_and_update();
    }

    /// Returns at the next wake-up (never, once both senders are gone).
    async fn next(&mut self) {
        tokio::select! {
            Ok(()) = self.audit.changed() => {}
            Ok(()) = self.streams.changed() => {}
            else => std::future::pending().await,
        }
    }
}

/// How a pass ended.
enum Pass {
    /// Caught up: nothing to send until the next wake-up.
    Idle,
    /// Another instance holds the lease; look again when it expires (it may have crashed).
    HeldElsewhere(Duration),
    /// The stream was deleted, or the server stops.
    Finished,
}

enum WorkerError {
    Gone,
    Db(sea_orm::DbErr),
}

impl From<sea_orm::DbErr> for WorkerError {
    fn from(error: sea_orm::DbErr) -> Self {
        WorkerError::Db(error)
    }
}

pub(super) struct Worker {
    pub streams: Streams,
    pub owner: String,
    pub stream_id: String,
    /// When this instance last took or renewed the lease; None when it does not hold it.
    pub renewed: Option<Instant>,
    pub azure_token: AzureToken,
    /// Stream changes, watched while a failed batch waits for its retry: an updated destination (or failure
    /// mode) is tried at once instead of after the backoff.
    pub stream_changes: watch::Receiver<u64>,
}

impl Worker {
    fn state(&self) -> StreamState<'_> {
        StreamState {
            store: &self.streams.store,
            stream_id: &self.stream_id,
            owner: &self.owner,
            lease: self.streams.engine.lease,
        }
    }

    /// Delivers until `stop`, or until the stream is deleted.
    pub async fn run(mut self, mut wake: Wakeups, stop: CancellationToken) {
        loop {
            wake.seen();
            let retry_in = match self.pass(&stop).await {
                Ok(Pass::Idle) => None,
                Ok(Pass::HeldElsewhere(wait)) => Some(wait),
                Ok(Pass::Finished) | Err(WorkerError::Gone) => return,
                Err(WorkerError::Db(error)) => {
                    tracing::warn!(%error, stream = %self.stream_id, "audit stream delivery failed");
                    Some(AFTER_DB_ERROR)
                }
            };
            let sleep = async {
                match retry_in {
                    Some(wait) => tokio::time::sleep(wait).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = stop.cancelled() => return,
                () = wake.next() => {}
                () = sleep => {}
            }
        }
    }

    /// Sends batches until there is none left.
    async fn pass(&mut self, stop: &CancellationToken) -> Result<Pass, WorkerError> {
        loop {
            if stop.is_cancelled() {
                return Ok(Pass::Finished);
            }
            let Some((stream, state)) = self.state().load().await? else { return Ok(Pass::Finished) };
            let Some(config) = self.config(&stream) else { return Ok(Pass::Idle) };
            let backfill = state.backfill_to > state.backfill_from;
            let (position, after, upto) = if backfill {
                (Position::Backfill, state.backfill_from, state.backfill_to)
            } else {
                // Only as far as no entry can still appear below (see `Store::audit_head`).
                (Position::Cursor, state.cursor, self.streams.store.audit_head().await?)
            };
            let limits = provider::limits(&config);
            let db = self.streams.store.conn();
            let batch = match batch::next(db, &stream.org_id, after, upto, limits).await? {
                Some(batch) => batch,
                // A backfill range whose entries are all gone (pruned) is finished by moving past it.
                None if backfill => batch::Batch { entries: Vec::new(), oversize: 0, last_seq: state.backfill_to },
                None => return Ok(Pass::Idle),
            };
            // Entries committed after an UpdateAuditStream go where it points: if the stream changed since its
            // configuration was read above, the batch may hold such entries, so read it again.
            if self.state().version().await? != Some(stream.updated_at) {
                continue;
            }
            if !self.hold_lease().await? {
                let expires = state.lease_expires_at.map_or(chrono::Duration::zero(), |at| at - chrono::Utc::now());
                let wait = expires.to_std().unwrap_or_default().min(self.streams.engine.lease);
                return Ok(Pass::HeldElsewhere(wait + Duration::from_millis(10)));
            }
            let outcome = if batch.entries.is_empty() {
                Outcome::Delivered
            } else {
                match self.deliver(stream, config, &batch.entries, stop).await? {
                    Some(outcome) => outcome,
                    // The lease was lost or the server is stopping: nothing is recorded, the next holder resends.
                    None => continue,
                }
            };
            let state = self.state();
            let recorded =
                state.record(position, after, batch.last_seq, batch.entries.len(), batch.oversize, &outcome).await?;
            self.renewed = recorded.then(Instant::now);
        }
    }

    /// The stream's configuration; None (logged) when it cannot be opened.
    fn config(&self, stream: &audit_stream::Model) -> Option<ProviderConfig> {
        self.streams
            .open_config(stream)
            .inspect_err(|error| {
                tracing::error!(%error, stream = %self.stream_id, "audit stream configuration cannot be opened");
            })
            .ok()
    }

    /// Takes the lease, or renews it once a third of it has passed: true while this instance holds it.
    async fn hold_lease(&mut self) -> Result<bool, sea_orm::DbErr> {
        let lease = self.streams.engine.lease;
        if self.renewed.is_some_and(|at| at.elapsed() < lease / 3) {
            return Ok(true);
        }
        let held = self.state().take_lease().await?;
        self.renewed = held.then(Instant::now);
        Ok(held)
    }

    /// Sends a batch with retries; between attempts the lease is kept alive. Each retry goes to the destination
    /// (and uses the failure mode) stored then, so a stream pointed at a working destination while a batch
    /// waits (UpdateAuditStream) sends it there — at once: a change to the stream ends the wait. Such an early
    /// attempt does not count towards the drop, so the outage a batch survives keeps its floor whatever is
    /// edited meanwhile. None when the lease was lost or the server stops.
    async fn deliver(
        &mut self,
        stream: audit_stream::Model,
        mut config: ProviderConfig,
        entries: &[provider::Entry],
        stop: &CancellationToken,
    ) -> Result<Option<Outcome>, WorkerError> {
        let policy = self.streams.engine.retry;
        let (mut mode, mut version) = (FailureMode::parse(&stream.on_failure), stream.updated_at);
        let mut failures = 0u32;
        let mut early = false;
        loop {
            let error = match transport::send(&self.streams.outbound, &config, entries, &mut self.azure_token).await {
                Ok(_) => return Ok(Some(Outcome::Delivered)),
                Err(error) => error,
            };
            if !early {
                failures += 1;
            }
            let exhausted = failures >= policy.attempts;
            let retrying = !exhausted || mode == FailureMode::Pause;
            tracing::warn!(stream = %self.stream_id, attempt = failures, %error, "audit stream delivery attempt failed");
            self.state().failed(&error.to_string(), retrying).await?;
            if !retrying {
                return Ok(Some(Outcome::Dropped(format!("after {failures} attempts: {error}"))));
            }
            let delay = if exhausted {
                self.state().pause().await?;
                policy.paused_delay(error.retry_after())
            } else {
                policy.delay(failures - 1, error.retry_after())
            };
            early = match self.wait_holding_lease(delay, version, stop).await? {
                Waited::Elapsed => false,
                Waited::StreamChanged => true,
                Waited::Abandoned => return Ok(None),
            };
            let (stream, _) = self.state().load().await?.ok_or(WorkerError::Gone)?;
            if let Some(stored) = self.config(&stream) {
                config = stored;
            }
            (mode, version) = (FailureMode::parse(&stream.on_failure), stream.updated_at);
        }
    }

    /// Sleeps `delay`, renewing the lease on the way, unless the stream is changed (its `updated_at` moves on
    /// from `version`) or the lease is lost or the server stops.
    async fn wait_holding_lease(
        &mut self,
        delay: Duration,
        version: chrono::DateTime<chrono::Utc>,
        stop: &CancellationToken,
    ) -> Result<Waited, WorkerError> {
        let deadline = Instant::now() + delay;
        self.stream_changes.borrow_and_update();
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(Waited::Elapsed);
            }
            let renew_at = self.renewed.map_or(now, |at| at + self.streams.engine.lease / 3);
            tokio::select! {
                () = stop.cancelled() => return Ok(Waited::Abandoned),
                Ok(()) = self.stream_changes.changed() => {
                    // Some stream changed: this one?
                    match self.state().load().await? {
                        Some((stream, _)) if stream.updated_at == version => continue,
                        _ => return Ok(Waited::StreamChanged),
                    }
                }
                () = tokio::time::sleep_until(deadline.min(renew_at.max(now))) => {}
            }
            if Instant::now() < deadline && !self.hold_lease().await? {
                return Ok(Waited::Abandoned);
            }
        }
    }
}

/// How a wait between two attempts ended.
enum Waited {
    Elapsed,
    /// The stream was updated (or deleted) meanwhile.
    StreamChanged,
    /// The lease was lost or the server stops.
    Abandoned,
}

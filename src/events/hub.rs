//! The per-instance event machinery: one tailer that reads committed outbox rows in cursor order and hands
//! each to the subscriptions of its project (`subscribers`), one sweeper that sends heartbeats and ends
//! streams whose token expired, one watcher of the permission version that re-checks affected streams, and
//! one pruner.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use chrono::Utc;
use futures_util::StreamExt;
use sea_orm::{ColumnTrait, DbBackend, EntityTrait, QueryFilter};
use tokio_util::sync::CancellationToken;

use super::{
    Delivery, EventsError, SubscriptionItem, outbox,
    subscribers::{Registry, StreamLimits, Subscriber},
    subscription::require_some_scope,
};
use crate::{
    identity::{self, Grants, Principal, access},
    store::{Changed, Store, entities::project},
};

/// Rows read per outbox query.
const TAIL_BATCH: u64 = 500;
/// On PostgreSQL the tailer also polls this often, in case a wake-up was missed (e.g. a dropped LISTEN
/// connection), and on any database after a failed read. SQLite has one writer, this process, whose commits
/// always wake the tailer: an idle SQLite server does not poll.
const TAIL_FALLBACK_POLL: Duration = Duration::from_secs(1);
/// How often the permission version is read; revocations reach live streams within about this long.
const AUTHZ_POLL: Duration = Duration::from_millis(250);
/// Longest pause between two sweeps (heartbeats, token expiry); shorter when heartbeats are more frequent.
const SWEEP_EVERY: Duration = Duration::from_millis(500);
/// Subscriptions swept between two yields to the runtime.
const SWEEP_CHUNK: usize = 1024;
/// Access re-checks (token, membership, role) run at once after a permission change.
const RECHECK_CONCURRENCY: usize = 8;

/// Settings of the event machinery.
#[derive(Debug, Clone)]
pub struct HubSettings {
    /// Idle streams get a heartbeat this often.
    pub heartbeat: Duration,
    /// Outbox rows older than this are pruned; resuming from before them is refused.
    pub retention: Duration,
    /// Caps on open subscriptions.
    pub limits: StreamLimits,
}

/// Handle to this instance's event machinery; cheap to clone.
#[derive(Clone)]
pub struct EventHub {
    pub(super) store: Store,
    pub(super) settings: HubSettings,
    pub(super) registry: Arc<Registry>,
    /// Whether the tailer runs and its last outbox read succeeded.
    tailing: Arc<AtomicBool>,
    /// Access re-reads (token, membership, role) made for open streams.
    rechecks: Arc<AtomicU64>,
    /// Cancelled when the server shuts down.
    pub(super) shutdown: CancellationToken,
    /// Where the hub's tasks run.
    pub(super) runtime: tokio::runtime::Handle,
}

impl EventHub {
    /// Starts the tailer, the sweeper, the permission watcher and the pruner on `runtime` (where the event
    /// streams' own tasks run); they stop when `shutdown` is cancelled.
    pub async fn start(
        store: Store,
        settings: HubSettings,
        runtime: &tokio::runtime::Handle,
        shutdown: CancellationToken,
    ) -> Result<Self, sea_orm::DbErr> {
        let head = store.outbox_head().await?;
        let version = store.permission_version().await?;
        let hub = Self {
            store: store.clone(),
            settings: settings.clone(),
            registry: Arc::default(),
            tailing: Arc::new(AtomicBool::new(true)),
            rechecks: Arc::default(),
            shutdown: shutdown.clone(),
            runtime: runtime.clone(),
        };
        runtime.spawn(hub.clone().tail(head, shutdown.clone()));
        runtime.spawn(hub.clone().sweep(shutdown.clone()));
        runtime.spawn(hub.clone().watch_authz(version, shutdown.clone()));
        runtime.spawn(prune(store, settings.retention, shutdown));
        Ok(hub)
    }

    /// Whether the event tailer runs and its last read of the outbox succeeded.
    pub fn tailing(&self) -> bool {
        self.tailing.load(Ordering::Relaxed)
    }

    /// Number of open subscriptions on this instance.
    pub fn open_subscriptions(&self) -> i64 {
        self.registry.open() as i64
    }

    /// Access re-reads made for open streams since start: one per token and project affected by a permission
    /// change, however many streams share them.
    pub fn access_rechecks(&self) -> u64 {
        self.rechecks.load(Ordering::Relaxed)
    }

    /// Reads committed outbox rows after `last` in cursor order and dispatches them.
    async fn tail(self, mut last: i64, shutdown: CancellationToken) {
        let mut listener = listen(&self.store).await;
        let postgres = self.store.backend() == DbBackend::Postgres;
        loop {
            loop {
                let read = async {
                    let head = self.store.outbox_head().await?;
                    outbox::after(self.store.conn(), last, head, None, TAIL_BATCH).await
                };
                match read.await {
                    Ok(events) => {
                        self.tailing.store(true, Ordering::Relaxed);
                        let full = events.len() as u64 == TAIL_BATCH;
                        for event in events {
                            last = event.seq;
                            for lagging in self.registry.dispatch(&Arc::new(Delivery::new(event))).await {
                                self.catch_up(lagging);
                            }
                        }
                        if !full {
                            break;
                        }
                    }
                    Err(error) => {
                        self.tailing.store(false, Ordering::Relaxed);
                        tracing::warn!(%error, "reading the event outbox failed; retrying");
                        break;
                    }
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => {
                    self.tailing.store(false, Ordering::Relaxed);
                    return;
                }
                () = self.store.outbox_appended() => {}
                () = notified(&mut listener, &self.store) => {}
                () = tokio::time::sleep(TAIL_FALLBACK_POLL), if postgres || !self.tailing.load(Ordering::Relaxed) => {}
            }
        }
    }

    /// Sends heartbeats to idle streams and ends streams whose token expired; on shutdown ends them all.
    async fn sweep(self, shutdown: CancellationToken) {
        let heartbeat = self.settings.heartbeat;
        let every = (heartbeat / 2).clamp(Duration::from_millis(10), SWEEP_EVERY);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(every) => {}
            }
            let now = Utc::now();
            for chunk in self.registry.all().chunks(SWEEP_CHUNK) {
                for subscriber in chunk {
                    if subscriber.caller.token_expires_at <= now {
                        self.end(subscriber, EventsError::Unauthenticated("access token expired"));
                        continue;
                    }
                    let mut state = subscriber.state();
                    if state.ended || state.catching_up || state.last_sent.elapsed() < heartbeat {
                        continue;
                    }
                    // A full queue is not idle: no heartbeat needed.
                    if subscriber.out.try_send(Ok(SubscriptionItem::Heartbeat(now))).is_ok() {
                        state.last_sent = Instant::now();
                    }
                }
                tokio::task::yield_now().await;
            }
        }
        // Dropping every subscription's sender ends its stream.
        for subscriber in self.registry.all() {
            self.registry.remove(&subscriber);
        }
    }

    /// Re-checks the access of open streams whenever the permission version changes.
    async fn watch_authz(self, mut seen: i64, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(AUTHZ_POLL);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            match self.store.permission_changes_since(seen).await {
                Ok((current, changed)) => {
                    seen = current;
                    let affected: Vec<_> = match changed {
                        Changed::Nobody => continue,
                        Changed::Everyone => self.registry.all(),
                        // Only streams whose grants are older than their identity's latest change.
                        Changed::Identities(changed) => self
                            .registry
                            .all()
                            .into_iter()
                            .filter(|s| {
                                changed.get(&s.caller.identity_id).is_some_and(|&at| at > s.state().grants_version)
                            })
                            .collect(),
                    };
                    self.recheck(affected, current).await;
                }
                Err(error) => tracing::warn!(%error, "reading the permission version failed"),
            }
        }
    }

    /// Re-reads the access of `subscribers`, once per token and project however many streams share them;
    /// ends the streams that lost it and narrows the others to their new grants (current as of permission
    /// `version`, read before).
    pub(super) async fn recheck(&self, subscribers: Vec<Arc<Subscriber>>, version: i64) {
        let mut groups: HashMap<(String, String), Vec<Arc<Subscriber>>> = HashMap::new();
        for subscriber in subscribers {
            let key = (subscriber.caller.token_id.clone(), subscriber.project_id.clone());
            groups.entry(key).or_default().push(subscriber);
        }
        let checks = futures_util::stream::iter(groups.into_values()).map(|group| async move {
            let access = current_access(&self.store, &group[0].caller, &group[0].project_id).await;
            for subscriber in &group {
                let granted = match &access {
                    Ok(grants) => require_some_scope(grants, &subscriber.registrations).map(|()| grants.clone()),
                    Err(lost) => Err(lost.to_error()),
                };
                match granted {
                    Ok(grants) => {
                        let mut state = subscriber.state();
                        state.grants = grants;
                        state.grants_version = version;
                    }
                    Err(error) => self.end(subscriber, error),
                }
            }
            // Counted once applied: whoever sees the count move sees the streams' new access.
            self.rechecks.fetch_add(1, Ordering::Relaxed);
        });
        checks.buffer_unordered(RECHECK_CONCURRENCY).collect::<()>().await;
    }
}

/// Why a stream's access is gone.
enum Lost {
    /// The token was revoked or expired, or its identity deleted.
    Token,
    /// The project was deleted.
    Project(String),
    Denied(identity::Denied),
    /// The check itself failed.
    Database(String),
}

impl Lost {
    fn to_error(&self) -> EventsError {
        match self {
            Lost::Token => EventsError::Unauthenticated("access token was revoked or its identity deleted"),
            Lost::Project(id) => EventsError::NotFound(format!("project '{id}'")),
            Lost::Denied(denied) => EventsError::PermissionDenied(denied.clone()),
            Lost::Database(message) => sea_orm::DbErr::Custom(message.clone()).into(),
        }
    }
}

/// The caller's current grants in the project, if it still holds its token and may subscribe there.
async fn current_access(store: &Store, caller: &Principal, project_id: &str) -> Result<Grants, Lost> {
    if let Err(error) = identity::revalidate(store, caller).await {
        return Err(match error {
            identity::IdentityError::Db(db) => Lost::Database(db.to_string()),
            _ => Lost::Token,
        });
    }
    let db = store.conn();
    let database = |e: sea_orm::DbErr| Lost::Database(e.to_string());
    // An org admin's grants do not depend on the project: its existence is checked on its own.
    let project = project::Entity::find_by_id(project_id)
        .filter(project::Column::OrgId.eq(&caller.org_id))
        .one(db)
        .await
        .map_err(database)?;
    if project.is_none() {
        return Err(Lost::Project(project_id.to_owned()));
    }
    let grants = access::project_grants(db, caller, project_id).await.map_err(database)?;
    grants
        .require_anywhere(identity::policy::Subject::SecretEvents, identity::policy::Action::Subscribe)
        .map_err(Lost::Denied)?;
    Ok(grants)
}

/// Waits for a PostgreSQL notification; never returns when there is no listener.
async fn notified(listener: &mut Option<sea_orm::sqlx::postgres::PgListener>, store: &Store) {
    let Some(listener) = listener else { return std::future::pending().await };
    loop {
        match listener.recv().await {
            // This instance's own commits woke the tailer already (`Store::outbox_appended`).
            Ok(notification) if store.notified_by_itself(notification.payload()) => continue,
            Ok(_) => return,
            Err(error) => {
                tracing::warn!(%error, "event LISTEN connection failed; polling until it reconnects");
                return tokio::time::sleep(TAIL_FALLBACK_POLL).await;
            }
        }
    }
}

async fn listen(store: &Store) -> Option<sea_orm::sqlx::postgres::PgListener> {
    if store.backend() != DbBackend::Postgres {
        return None;
    }
    let pool = store.conn().get_postgres_connection_pool();
    match sea_orm::sqlx::postgres::PgListener::connect_with(pool).await {
        Ok(mut listener) => match listener.listen(outbox::NOTIFY_CHANNEL).await {
            Ok(()) => Some(listener),
            Err(error) => {
                tracing::warn!(%error, "cannot LISTEN for events; polling instead");
                None
            }
        },
        Err(error) => {
            tracing::warn!(%error, "cannot LISTEN for events; polling instead");
            None
        }
    }
}

/// Deletes outbox rows older than the retention, checking every tenth of it (at most every minute), and the
/// permission change records no instance needs any more.
async fn prune(store: Store, retention: Duration, shutdown: CancellationToken) {
    let every = (retention / 10).clamp(Duration::from_millis(100), Duration::from_secs(60));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        let cutoff = chrono::Utc::now() - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
        let result = async {
            let txn = store.begin_write().await?;
            txn.leaves_secret_rows_alone();
            let deleted = outbox::prune(&txn, cutoff).await?;
            txn.prune_permission_changes().await?;
            txn.commit().await?;
            Ok::<_, sea_orm::DbErr>(deleted)
        }
        .await;
        match result {
            Ok(0) => {}
            Ok(deleted) => tracing::debug!(deleted, "pruned expired events"),
            Err(error) => tracing::warn!(%error, "pruning events failed"),
        }
    }
}

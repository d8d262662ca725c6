//! The per-instance event machinery: one tailer that reads committed outbox rows in cursor order and
//! broadcasts them to local subscriptions, one watcher of the permission version, and one pruner.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicI64, Ordering},
    },
    time::Duration,
};

use sea_orm::DbBackend;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use super::{Event, outbox};
use crate::store::Store;

/// Events buffered for local subscriptions. A subscription that falls further behind is caught up from the
/// outbox, so this bounds memory, not correctness.
const BROADCAST_CAPACITY: usize = 4096;
/// Rows read per outbox query.
const TAIL_BATCH: u64 = 500;
/// The tailer also polls this often, in case a wake-up was missed (e.g. a dropped LISTEN connection).
const TAIL_FALLBACK_POLL: Duration = Duration::from_secs(1);
/// How often the permission version is read; revocations reach live streams within about this long.
const AUTHZ_POLL: Duration = Duration::from_millis(250);

/// Settings of the event machinery.
#[derive(Debug, Clone)]
pub struct HubSettings {
    /// Idle streams get a heartbeat this often.
    pub heartbeat: Duration,
    /// Outbox rows older than this are pruned; resuming from before them is refused.
    pub retention: Duration,
}

/// Handle to this instance's event machinery; cheap to clone.
#[derive(Clone)]
pub struct EventHub {
    pub(super) store: Store,
    pub(super) settings: HubSettings,
    pub(super) live: broadcast::Sender<Arc<Event>>,
    pub(super) authz: watch::Receiver<i64>,
    pub(super) shutdown: CancellationToken,
    /// Open subscriptions on this instance.
    pub(super) open: Arc<AtomicI64>,
    /// Whether the tailer runs and its last outbox read succeeded.
    tailing: Arc<AtomicBool>,
}

impl EventHub {
    /// Starts the tailer, the permission watcher and the pruner; they stop when `shutdown` is cancelled.
    pub async fn start(
        store: Store,
        settings: HubSettings,
        shutdown: CancellationToken,
    ) -> Result<Self, sea_orm::DbErr> {
        let head = outbox::head(store.conn()).await?;
        let (live, _) = broadcast::channel(BROADCAST_CAPACITY);
        let version = store.permission_version().await?;
        let (authz_tx, authz) = watch::channel(version);
        let tailing = Arc::new(AtomicBool::new(true));
        tokio::spawn(tail(store.clone(), live.clone(), head, tailing.clone(), shutdown.clone()));
        tokio::spawn(watch_authz(store.clone(), authz_tx, shutdown.clone()));
        tokio::spawn(prune(store.clone(), settings.retention, shutdown.clone()));
        Ok(Self { store, settings, live, authz, shutdown, open: Arc::new(AtomicI64::new(0)), tailing })
    }

    /// Whether the event tailer runs and its last read of the outbox succeeded.
    pub fn tailing(&self) -> bool {
        self.tailing.load(Ordering::Relaxed)
    }

    /// Number of open subscriptions on this instance.
    pub fn open_subscriptions(&self) -> i64 {
        self.open.load(Ordering::Relaxed)
    }
}

/// Waits for a PostgreSQL notification; never returns when there is no listener.
async fn notified(listener: &mut Option<sea_orm::sqlx::postgres::PgListener>) {
    match listener {
        Some(listener) => {
            if let Err(error) = listener.recv().await {
                tracing::warn!(%error, "event LISTEN connection failed; polling until it reconnects");
                tokio::time::sleep(TAIL_FALLBACK_POLL).await;
            }
        }
        None => std::future::pending().await,
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

/// Reads committed outbox rows after `last` in cursor order and broadcasts them.
async fn tail(
    store: Store,
    live: broadcast::Sender<Arc<Event>>,
    mut last: i64,
    tailing: Arc<AtomicBool>,
    shutdown: CancellationToken,
) {
    let mut listener = listen(&store).await;
    loop {
        loop {
            match outbox::after(store.conn(), last, None, TAIL_BATCH).await {
                Ok(events) => {
                    tailing.store(true, Ordering::Relaxed);
                    let full = events.len() as u64 == TAIL_BATCH;
                    for event in events {
                        last = event.seq;
                        // No receivers is fine: nobody is subscribed on this instance.
                        let _ = live.send(Arc::new(event));
                    }
                    if !full {
                        break;
                    }
                }
                Err(error) => {
                    tailing.store(false, Ordering::Relaxed);
                    tracing::warn!(%error, "reading the event outbox failed; retrying");
                    break;
                }
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => {
                tailing.store(false, Ordering::Relaxed);
                return;
            }
            () = store.outbox_appended() => {}
            () = notified(&mut listener) => {}
            () = tokio::time::sleep(TAIL_FALLBACK_POLL) => {}
        }
    }
}

/// Publishes the permission version whenever it changes.
async fn watch_authz(store: Store, version: watch::Sender<i64>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(AUTHZ_POLL);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match store.permission_version().await {
            Ok(current) => {
                version.send_if_modified(|seen| std::mem::replace(seen, current) != current);
            }
            Err(error) => tracing::warn!(%error, "reading the permission version failed"),
        }
    }
}

/// Deletes outbox rows older than the retention, checking every tenth of it (at most every minute).
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
            let deleted = outbox::prune(&txn, cutoff).await?;
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

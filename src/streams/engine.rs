//! The delivery engine (docs/ARCHITECTURE.md): one manager per instance keeps a [`Worker`] for every stream
//! and wakes them. The manager re-lists the streams only when they change — here, or on another instance
//! (PostgreSQL NOTIFY) — and the relay turns other instances' notifications into local wake-ups, so an idle
//! engine sends the database nothing.

use std::{collections::HashMap, sync::Arc, time::Duration};

use sea_orm::sqlx::postgres::PgListener;
use sea_orm::{DbBackend, EntityTrait, QuerySelect};
use tokio_util::sync::CancellationToken;

use super::{
    Streams,
    resolver::Lookup,
    retry::RetryPolicy,
    worker::{Wakeups, Worker},
};
use crate::store::{AUDIT_NOTIFY_CHANNEL, bump, entities::audit_stream};

/// PostgreSQL NOTIFY channel announcing that a stream was created, changed, backfilled or deleted.
pub const STREAMS_NOTIFY_CHANNEL: &str = "hush_audit_streams";
/// Pause before listing the streams again after a database error, and before reconnecting a lost LISTEN.
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(1);

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

/// Starts the manager (and on PostgreSQL the relay); they stop with `shutdown`.
pub fn spawn(streams: Streams, owner: String, shutdown: CancellationToken) {
    if streams.store.backend() == DbBackend::Postgres {
        tokio::spawn(relay(streams.clone(), shutdown.clone()));
    }
    tokio::spawn(manage(streams, owner, shutdown));
}

/// Keeps one worker per stream: started for new streams, stopped for deleted ones.
async fn manage(streams: Streams, owner: String, shutdown: CancellationToken) {
    let mut changed = streams.changed.subscribe();
    let mut workers: HashMap<String, CancellationToken> = HashMap::new();
    loop {
        changed.borrow_and_update();
        let listed: Result<Vec<String>, _> = audit_stream::Entity::find()
            .select_only()
            .column(audit_stream::Column::Id)
            .into_tuple()
            .all(streams.store.conn())
            .await;
        match listed {
            Ok(ids) => {
                streams.store.audit_streams_exist(!ids.is_empty());
                workers.retain(|id, stop| {
                    let keep = ids.contains(id);
                    if !keep {
                        stop.cancel();
                    }
                    keep
                });
                for id in ids {
                    if workers.contains_key(&id) {
                        continue;
                    }
                    let stop = shutdown.child_token();
                    workers.insert(id.clone(), stop.clone());
                    let wake = Wakeups { audit: streams.store.audit_appended(), streams: streams.changed.subscribe() };
                    let worker = Worker {
                        streams: streams.clone(),
                        owner: owner.clone(),
                        stream_id: id,
                        renewed: None,
                        azure_token: None,
                        stream_changes: streams.changed.subscribe(),
                    };
                    tokio::spawn(worker.run(wake, stop));
                }
            }
            Err(error) => {
                tracing::warn!(%error, "listing audit streams failed");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(RETRY_AFTER_ERROR) => continue,
                }
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            Ok(()) = changed.changed() => {}
        }
    }
}

/// Relays other instances' notifications (audit entries committed, streams changed) to this instance's
/// workers and manager. Whenever the LISTEN connection is (re)made, notifications may have been missed:
/// everything is woken once.
async fn relay(streams: Streams, shutdown: CancellationToken) {
    let wake_all = || {
        streams.store.audit_appended_elsewhere();
        bump(&streams.changed);
    };
    loop {
        let pool = streams.store.conn().get_postgres_connection_pool();
        let listening = async {
            let mut listener = PgListener::connect_with(pool).await?;
            listener.listen_all([AUDIT_NOTIFY_CHANNEL, STREAMS_NOTIFY_CHANNEL]).await?;
            Ok::<_, sea_orm::sqlx::Error>(listener)
        };
        let mut listener = match listening.await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, "cannot LISTEN for audit stream wake-ups; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(RETRY_AFTER_ERROR) => continue,
                }
            }
        };
        wake_all();
        loop {
            let received = tokio::select! {
                () = shutdown.cancelled() => return,
                received = listener.try_recv() => received,
            };
            match received {
                Ok(Some(notification)) if notification.channel() == AUDIT_NOTIFY_CHANNEL => {
                    // This instance's own audit commits woke its workers already.
                    if !streams.store.notified_by_itself(notification.payload()) {
                        streams.store.audit_appended_elsewhere();
                    }
                }
                Ok(Some(_)) => bump(&streams.changed),
                // The connection was lost: listen again on a new one, then wake everything.
                Ok(None) => break,
                Err(error) => {
                    tracing::warn!(%error, "audit stream LISTEN connection failed; reconnecting");
                    break;
                }
            }
        }
    }
}

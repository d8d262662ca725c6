//! Background deletion of expired audit entries.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::prune_expired;
use crate::store::Store;

/// Checks for expired entries every tenth of the retention, between 100 ms and a minute.
pub fn spawn(store: Store, retention: Duration, shutdown: CancellationToken) {
    let every = (retention / 10).clamp(Duration::from_millis(100), Duration::from_secs(60));
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
            let result = async {
                let txn = store.begin_write().await?;
                txn.leaves_secret_rows_alone();
                let deleted = prune_expired(&*txn, chrono::Utc::now()).await?;
                txn.commit().await?;
                Ok::<_, sea_orm::DbErr>(deleted)
            }
            .await;
            match result {
                Ok(0) => {}
                Ok(deleted) => tracing::debug!(deleted, "pruned expired audit entries"),
                Err(error) => tracing::warn!(%error, "pruning audit entries failed"),
            }
        }
    });
}

/// How often stream-only mode deletes what every stream has delivered.
const DELIVERED_SWEEP: Duration = Duration::from_millis(500);

/// Stream-only mode: deletes the entries every audit stream of their org has delivered (all of an org's
/// entries when it has no stream, since nothing would ever deliver them).
pub fn spawn_delivered(store: Store, shutdown: CancellationToken) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(DELIVERED_SWEEP) => {}
            }
            if let Err(error) = super::query::prune_delivered(&store).await {
                tracing::warn!(%error, "pruning delivered audit entries failed");
            }
        }
    });
}

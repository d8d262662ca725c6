//! Every request's handler runs to completion in a task of its own, whatever happens to the caller.
//!
//! A future dropped at an await point stops there. For a database transaction that is unsafe: sqlx 0.9
//! counts a PostgreSQL transaction only once `BEGIN` has answered (`PgTransactionManager::begin` raises
//! `transaction_depth` after `wait_until_ready`), and both its own rollback guard and sea-orm's
//! `DatabaseTransaction::drop` queue a `ROLLBACK` only when that depth is above zero. A request dropped while
//! `BEGIN` is on the wire therefore returns its connection to the pool *inside* a transaction: the next
//! request's `BEGIN` warns "there is already a transaction in progress", its `COMMIT` also commits whatever
//! the connection was carrying, and a `COMMIT` interrupted half-way later draws "there is no transaction in
//! progress". Rather than guard each of the 40-odd write paths (or patch the drivers), the server never
//! drops a handler: the handler runs in a spawned task that a vanished client, a closed connection or the
//! unary deadline cannot interrupt, so each transaction ends in its own `COMMIT` or `ROLLBACK`. The caller is
//! still answered (or abandoned) at once; only the work goes on to its end. The in-flight permit of a unary
//! request goes with its task, so work left behind by cancelled callers still counts against
//! `--max-in-flight` until it is done.

use std::future::Future;

use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument;

/// Runs `work` in a task of its own (holding `permit` until it ends) and waits for its output; dropping the
/// returned future leaves the task running to its end.
pub async fn run_to_completion<F>(work: F, permit: Option<OwnedSemaphorePermit>) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let task = tokio::spawn(
        async move {
            let output = work.await;
            drop(permit);
            output
        }
        .instrument(tracing::Span::current()),
    );
    match task.await {
        Ok(output) => output,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        // Cancelled: only when the runtime shuts down, and then nobody waits for this answer.
        Err(_) => std::future::pending().await,
    }
}

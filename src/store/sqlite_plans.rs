//! SQLite's query planner, told to plan each statement once.
//!
//! From SQLite 3.47 on, a statement with `LIMIT ?` lets its plan depend on the bound limit, and so marks
//! itself expired whenever that parameter is bound again: every run parsed and planned the statement anew
//! instead of reusing the prepared one. sea-orm binds every limit, `.one()` included (`LIMIT ?` with 1), so
//! the event tailer's query and every `.one()` lookup were prepared again on every run (about 6% of the server's
//! samples in a profile of the write benchmark). SQLite's query planner stability guarantee
//! (`SQLITE_DBCONFIG_ENABLE_QPSG`) keeps one plan per statement whatever is bound, which is what a statement
//! cache is for. hush never runs `ANALYZE`, so no statistics are given up with it.

use std::{ffi::c_int, ptr};

use sea_orm::sqlx::{Error, Sqlite, pool::PoolOptions, sqlite::SqliteConnection};

/// Sets the planner stability guarantee on every connection the pool opens.
pub(super) fn plan_once(pool: PoolOptions<Sqlite>) -> PoolOptions<Sqlite> {
    pool.after_connect(|connection, _| Box::pin(async move { stable_plans(connection, Change::Set).await.map(drop) }))
}

/// What [`stable_plans`] does with the setting.
#[derive(Clone, Copy)]
enum Change {
    Set = 1,
    #[cfg(test)]
    Read = -1,
}

/// Applies `change` to the planner stability guarantee of `connection`; returns whether it is on.
async fn stable_plans(connection: &mut SqliteConnection, change: Change) -> Result<bool, Error> {
    let mut handle = connection.lock_handle().await?;
    let mut on: c_int = 0;
    // SAFETY: the handle is an open connection that nothing else uses while `handle` lives (its worker thread
    // waits for the lock), and SQLITE_DBCONFIG_ENABLE_QPSG takes exactly an int (1 sets the guarantee, -1
    // leaves it) and a pointer to an int that receives the setting.
    let code = unsafe {
        libsqlite3_sys::sqlite3_db_config(
            handle.as_raw_handle().as_ptr(),
            libsqlite3_sys::SQLITE_DBCONFIG_ENABLE_QPSG,
            change as c_int,
            ptr::from_mut(&mut on),
        )
    };
    if code != libsqlite3_sys::SQLITE_OK {
        return Err(Error::Configuration(format!("SQLite refused the query planner setting (code {code})").into()));
    }
    Ok(on == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every connection of an SQLite store plans its statements once, the ones opened later too.
    #[tokio::test]
    async fn every_pooled_connection_keeps_its_plans() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::tests::sqlite_store(&dir).await;
        for connection in &mut crate::store::tests::every_pooled_connection(&store).await {
            assert!(stable_plans(connection, Change::Read).await.unwrap());
        }
    }
}

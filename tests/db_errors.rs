//! The one classification of database failures (`hush::store::DbError`), against real databases: a unique
//! violation is a duplicate, a deadlock PostgreSQL broke and a lock SQLite could not get are contention (the
//! API answers ALREADY_EXISTS and ABORTED for them), and anything else is the server's fault.

mod common;

use common::{Backend, fresh_postgres_database, with_database};
use hush::store::DbError;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseTransaction, DbErr, TransactionTrait};

backend_tests!(failures_get_one_meaning);

async fn exec(db: &impl ConnectionTrait, sql: &str) -> Result<(), DbErr> {
    db.execute_unprepared(sql).await.map(|_| ())
}

/// Runs `sql` in `txn`, then commits, or rolls back at once when it fails (releasing its locks).
async fn finish(txn: DatabaseTransaction, sql: &str) -> Result<(), DbErr> {
    match exec(&txn, sql).await {
        Ok(()) => txn.commit().await,
        Err(error) => {
            txn.rollback().await?;
            Err(error)
        }
    }
}

async fn failures_get_one_meaning(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let pg = match backend {
        Backend::Postgres => Some(fresh_postgres_database().await),
        Backend::Sqlite => None,
    };
    let url = match &pg {
        Some((server, name)) => with_database(server, name),
        None => format!("sqlite://{}?mode=rwc", dir.path().join("errors.db").display()),
    };
    // One connection each, so a setting made on it holds for every later statement.
    let one = || {
        let mut options = ConnectOptions::new(url.clone());
        options.max_connections(1).sqlx_logging(false);
        options
    };
    let (a, b) = (Database::connect(one()).await.unwrap(), Database::connect(one()).await.unwrap());
    exec(&a, "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)").await.unwrap();
    exec(&a, "INSERT INTO t (id, n) VALUES (1, 0), (2, 0)").await.unwrap();

    let duplicate = exec(&a, "INSERT INTO t (id, n) VALUES (1, 0)").await.unwrap_err();
    assert!(matches!(DbError::from(duplicate), DbError::Duplicate));
    let other = exec(&a, "SELECT * FROM no_such_table").await.unwrap_err();
    assert!(matches!(DbError::from(other), DbError::Other(_)));

    let contention = match backend {
        Backend::Postgres => {
            // Two transactions lock two rows in opposite orders: PostgreSQL aborts one of them (40P01).
            let (ta, tb) = (a.begin().await.unwrap(), b.begin().await.unwrap());
            exec(&ta, "UPDATE t SET n = 1 WHERE id = 1").await.unwrap();
            exec(&tb, "UPDATE t SET n = 1 WHERE id = 2").await.unwrap();
            let (ra, rb) = tokio::join!(
                finish(ta, "UPDATE t SET n = 2 WHERE id = 2"),
                finish(tb, "UPDATE t SET n = 2 WHERE id = 1")
            );
            assert!(ra.is_ok() != rb.is_ok(), "exactly one of the two is aborted: {ra:?} {rb:?}");
            ra.err().or(rb.err()).unwrap()
        }
        Backend::Sqlite => {
            // One connection writes; another that may not wait gets SQLITE_BUSY.
            exec(&b, "PRAGMA busy_timeout = 0").await.unwrap();
            let writer = a.begin().await.unwrap();
            exec(&writer, "UPDATE t SET n = 1 WHERE id = 1").await.unwrap();
            let busy = exec(&b, "UPDATE t SET n = 2 WHERE id = 2").await.unwrap_err();
            writer.rollback().await.unwrap();
            busy
        }
    };
    assert!(matches!(DbError::from(contention), DbError::Contention(_)), "contention");
    if let Some((server, name)) = pg {
        drop((a, b));
        let admin = Database::connect(&server).await.unwrap();
        exec(&admin, &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await.unwrap();
    }
}

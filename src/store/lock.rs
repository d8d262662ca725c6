//! The database lock: every `hush serve` holds it shared for as long as it runs; offline maintenance
//! (`hush keys rotate`) takes it exclusively and is refused while any server holds it, so a rotation never
//! re-seals data under a running server that would go on using the old key.
//!
//! - SQLite: an advisory lock (`flock`) on `<database file>.lock`, which the kernel releases when the process
//!   ends, `kill -9` included. SQLite's own locks cannot serve: they last one transaction, not a process life.
//!   A server also holds `<database file>.serve.lock` exclusively: an SQLite database has one server, whose
//!   writer lock, write groups and in-memory permission version assume it is the only writer (several
//!   instances share PostgreSQL, not a file).
//! - PostgreSQL: a session-level advisory lock on a connection of its own, released when that connection
//!   closes. If the connection breaks while the server runs, the lock is gone until the server restarts (the
//!   readiness probe still notices a rotation: see `keys::check::matches`).

use std::{fs::File, path::PathBuf};

use sea_orm::{DbBackend, DbErr, sqlx};

use super::Store;

/// PostgreSQL advisory lock key of the database lock ("hush" + 3).
pub const DATABASE_LOCK: i64 = 0x6875_7368_0003;
/// What a server logs while an offline operation holds the lock.
const WAITING: &str = "waiting for an offline operation on this database (hush keys rotate) to finish";

/// A held database lock; released when dropped.
#[derive(Default)]
pub struct DatabaseLock {
    /// SQLite: the locked file (none for in-memory SQLite, which no other process can reach).
    _file: Option<File>,
    /// SQLite, servers only: the file that keeps a second server off the database.
    _serving: Option<File>,
    /// PostgreSQL: the connection holding the session lock.
    _postgres: Option<sqlx::PgConnection>,
}

fn lock_error(what: &str, error: impl std::fmt::Display) -> DbErr {
    DbErr::Custom(format!("database lock: {what}: {error}"))
}

impl Store {
    /// A lock file next to the SQLite database file.
    fn lock_file(&self, suffix: &str) -> Option<PathBuf> {
        self.sqlite_file.as_ref().map(|file| {
            let mut name = file.clone().into_os_string();
            name.push(suffix);
            PathBuf::from(name)
        })
    }

    fn open_lock_file(&self) -> Result<Option<(PathBuf, File)>, DbErr> {
        self.open_file_beside(".lock")
    }

    /// Opens (creating it) `<database file><suffix>`; `None` unless the database is an SQLite file.
    fn open_file_beside(&self, suffix: &str) -> Result<Option<(PathBuf, File)>, DbErr> {
        let Some(path) = self.lock_file(suffix) else { return Ok(None) };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| lock_error(&path.display().to_string(), e))?;
        Ok(Some((path, file)))
    }

    /// Takes the lock shared, for a server's lifetime; waits while a rotation holds it. On SQLite it fails at
    /// once while another server uses the database file.
    pub async fn lock_for_serving(&self) -> Result<DatabaseLock, DbErr> {
        let serving = match self.open_file_beside(".serve.lock")? {
            Some((path, file)) => match file.try_lock() {
                Ok(()) => Some(file),
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(lock_error(
                        &path.display().to_string(),
                        "another hush server uses this SQLite database (one server per file; use PostgreSQL for \
                         several)",
                    ));
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(lock_error(&path.display().to_string(), e)),
            },
            None => None,
        };
        Ok(DatabaseLock { _serving: serving, ..self.lock_shared().await? })
    }

    /// Takes the lock shared; waits while a rotation holds it.
    async fn lock_shared(&self) -> Result<DatabaseLock, DbErr> {
        Ok(match self.backend() {
            DbBackend::Postgres => {
                let (mut conn, taken) = self.try_postgres_lock("SELECT pg_try_advisory_lock_shared($1)").await?;
                if !taken {
                    tracing::info!("{WAITING}");
                    sqlx::query("SELECT pg_advisory_lock_shared($1)")
                        .bind(DATABASE_LOCK)
                        .execute(&mut conn)
                        .await
                        .map_err(|e| lock_error("pg_advisory_lock_shared", e))?;
                }
                DatabaseLock { _postgres: Some(conn), ..Default::default() }
            }
            _ => match self.open_lock_file()? {
                None => DatabaseLock::default(),
                Some((path, file)) => {
                    let file = match file.try_lock_shared() {
                        Ok(()) => file,
                        Err(std::fs::TryLockError::WouldBlock) => {
                            tracing::info!(lock = %path.display(), "{WAITING}");
                            tokio::task::spawn_blocking(move || file.lock_shared().map(|()| file))
                                .await
                                .map_err(|e| lock_error(&path.display().to_string(), e))?
                                .map_err(|e| lock_error(&path.display().to_string(), e))?
                        }
                        Err(std::fs::TryLockError::Error(e)) => return Err(lock_error(&path.display().to_string(), e)),
                    };
                    DatabaseLock { _file: Some(file), ..Default::default() }
                }
            },
        })
    }

    /// Takes the lock exclusively, or `None` at once when a server (or another rotation) holds it.
    pub async fn try_lock_exclusive(&self) -> Result<Option<DatabaseLock>, DbErr> {
        Ok(Some(match self.backend() {
            DbBackend::Postgres => {
                let (conn, taken) = self.try_postgres_lock("SELECT pg_try_advisory_lock($1)").await?;
                if !taken {
                    return Ok(None);
                }
                DatabaseLock { _postgres: Some(conn), ..Default::default() }
            }
            _ => match self.open_lock_file()? {
                None => DatabaseLock::default(),
                Some((path, file)) => match file.try_lock() {
                    Ok(()) => DatabaseLock { _file: Some(file), ..Default::default() },
                    Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
                    Err(std::fs::TryLockError::Error(e)) => return Err(lock_error(&path.display().to_string(), e)),
                },
            },
        }))
    }

    /// Tries the advisory lock with `query` (`pg_try_advisory_lock` or its `_shared` form) on a PostgreSQL
    /// connection outside the pool, so the session lock on it lives exactly as long as the holder; the
    /// connection and whether the lock was taken.
    async fn try_postgres_lock(&self, query: &'static str) -> Result<(sqlx::PgConnection, bool), DbErr> {
        let pooled =
            self.conn.get_postgres_connection_pool().acquire().await.map_err(|e| lock_error("connecting", e))?;
        let mut conn = pooled.detach();
        let taken: bool = sqlx::query_scalar(query)
            .bind(DATABASE_LOCK)
            .fetch_one(&mut conn)
            .await
            .map_err(|e| lock_error(query, e))?;
        Ok((conn, taken))
    }
}

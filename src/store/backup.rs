//! Consistent copies of an SQLite database, for `hush backup` and `hush restore`.
//!
//! `VACUUM INTO` on a read-only connection of its own reads one snapshot (a single read transaction) while
//! a server goes on writing (in WAL mode readers and the writer do not block each other), so the copy holds
//! exactly the transactions committed when it started, the root key check included. A raw copy of the
//! database file and its WAL could catch a checkpoint half-way and be torn.
//!
//! The copy is written to a hidden file beside the target and linked to the target name only once it is
//! complete and checked: an interrupted backup never leaves a file that looks like a backup, and an existing
//! file is never replaced (linking fails when the name exists).

use std::path::{Path, PathBuf};

use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, RuntimeErr, Statement};

use super::migrations;

/// Why a copy was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The source does not exist.
    #[error("there is no database at {0}")]
    Missing(PathBuf),
    /// The target exists.
    #[error("{0} exists already: hush never overwrites a file with a backup; choose a new name")]
    Exists(PathBuf),
    /// The target data dir holds files.
    #[error("{0} is not empty: restore into a new or empty data dir")]
    NotEmpty(PathBuf),
    /// The file is not an SQLite database of hush.
    #[error("{path} is not a hush database: {reason}")]
    NotHush {
        /// The file.
        path: PathBuf,
        /// What is missing.
        reason: String,
    },
    /// `PRAGMA integrity_check` found a problem.
    #[error("{path} is damaged: integrity_check says {problem}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// Its first problem.
        problem: String,
    },
    /// The file was made by a newer hush (a migration this build does not know).
    #[error("{path} was made by a newer hush (it has migration {migration}, which this build does not know)")]
    Newer {
        /// The file.
        path: PathBuf,
        /// The unknown migration.
        migration: String,
    },
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The file is an SQLite database in WAL mode: a server's live database, not a backup.
    #[error(
        "{0} is a database in WAL mode (a server's own file, whose recent writes may sit in a -wal file beside it), \
         not a backup: make one with `hush backup`, which also works while the server is stopped"
    )]
    NotABackup(PathBuf),
    /// SQLite failed.
    #[error("{path}: {message}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// SQLite's words.
        message: String,
    },
}

/// What is copied from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// A server's database, maybe in use: read in one read transaction.
    Live,
    /// A backup file: a self-contained database (rollback journal; no WAL file beside it to miss).
    Backup,
}

/// SQLite's own words for `error` ("database disk image is malformed"), without sea-orm's wrapping.
fn sqlite_says(error: &DbErr) -> String {
    match error {
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            e.as_database_error().map_or_else(|| e.to_string(), |db| db.message().to_owned())
        }
        other => other.to_string(),
    }
}

/// The SQLite file header: 16 magic bytes; bytes 18 and 19 are 2 in WAL mode.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Copies the SQLite database `source` (possibly in use by a running server) to the new file `target`, 0600.
pub async fn backup(source: &Path, target: &Path) -> Result<(), BackupError> {
    copy(source, Source::Live, target).await
}

async fn copy(source: &Path, kind: Source, target: &Path) -> Result<(), BackupError> {
    if target.exists() {
        return Err(BackupError::Exists(target.to_path_buf()));
    }
    let db = open_hush_database(source, kind).await?;
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let partial = target.with_file_name(format!(".{name}.partial-{}", uuid::Uuid::new_v4().simple()));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BackupError::Io { path, source }
    };
    // An empty file of our own, 0600: VACUUM INTO fills an empty file and keeps its mode.
    crate::fs_private::create_private_synced(&partial, b"").map_err(io(&partial))?;
    let copied = async {
        let into = partial.to_str().ok_or_else(|| BackupError::Io {
            path: partial.clone(),
            source: std::io::Error::other("the path is not UTF-8"),
        })?;
        execute(&db, source, &format!("VACUUM INTO '{}'", into.replace('\'', "''"))).await?;
        db.close().await.ok();
        check(&partial, Source::Backup).await?;
        std::fs::File::open(&partial).and_then(|file| file.sync_all()).map_err(io(&partial))?;
        std::fs::hard_link(&partial, target).map_err(|error| match error.kind() {
            std::io::ErrorKind::AlreadyExists => BackupError::Exists(target.to_path_buf()),
            _ => BackupError::Io { path: target.to_path_buf(), source: error },
        })
    }
    .await;
    let _ = std::fs::remove_file(&partial);
    copied?;
    crate::fs_private::sync_parent(target).map_err(io(target))
}

/// Places the backup `from` as the database of the new data dir `data_dir` (created 0700; an existing one
/// must be empty), after checking it is an intact hush database this build can serve.
pub async fn restore(from: &Path, data_dir: &Path) -> Result<PathBuf, BackupError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BackupError::Io { path, source }
    };
    match std::fs::read_dir(data_dir).map(|mut entries| entries.next().is_some()) {
        Ok(true) => return Err(BackupError::NotEmpty(data_dir.to_path_buf())),
        Ok(false) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(io(data_dir)(error)),
    }
    check(from, Source::Backup).await?;
    crate::fs_private::create_private_dir(data_dir).map_err(io(data_dir))?;
    let target = data_dir.join(crate::config::SQLITE_FILE);
    copy(from, Source::Backup, &target).await?;
    Ok(target)
}

/// Checks that `file` is an intact hush database this build knows every migration of.
async fn check(file: &Path, kind: Source) -> Result<(), BackupError> {
    let db = open_hush_database(file, kind).await?;
    // SQLite reports a damaged page either as rows of integrity_check or as an error on the way.
    let damaged = |problem: String| BackupError::Damaged { path: file.to_path_buf(), problem };
    let problems = query_strings(&db, file, "PRAGMA integrity_check").await.map_err(|e| match e {
        BackupError::Sqlite { message, .. } => damaged(message),
        other => other,
    })?;
    if problems.first().is_none_or(|first| first != "ok") {
        return Err(damaged(problems.into_iter().next().unwrap_or_else(|| "nothing".into())));
    }
    let known = migrations::names();
    let applied = query_strings(&db, file, "SELECT version FROM seaql_migrations ORDER BY version").await?;
    if let Some(unknown) = applied.iter().find(|name| !known.contains(name)) {
        return Err(BackupError::Newer { path: file.to_path_buf(), migration: unknown.clone() });
    }
    db.close().await.ok();
    Ok(())
}

/// A read-only connection to the hush database `file` (it must exist and have the migrations table).
async fn open_hush_database(file: &Path, kind: Source) -> Result<DatabaseConnection, BackupError> {
    if !file.is_file() {
        return Err(BackupError::Missing(file.to_path_buf()));
    }
    let not_hush = |reason: &str| BackupError::NotHush { path: file.to_path_buf(), reason: reason.into() };
    // Read before SQLite opens it: opening a WAL database creates -wal and -shm files beside it.
    let mut header = [0u8; 20];
    let read = std::fs::File::open(file).and_then(|mut f| std::io::Read::read(&mut f, &mut header));
    let read = read.map_err(|source| BackupError::Io { path: file.to_path_buf(), source })?;
    if read < header.len() || &header[..16] != SQLITE_MAGIC {
        return Err(not_hush("not an SQLite database"));
    }
    if kind == Source::Backup && (header[18] == 2 || header[19] == 2) {
        return Err(BackupError::NotABackup(file.to_path_buf()));
    }
    let url = format!("sqlite://{}?mode=ro", file.display());
    let db = Database::connect(url).await.map_err(sqlite_error(file))?;
    let tables = db
        .query_all_raw(Statement::from_string(
            DbBackend::Sqlite,
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'seaql_migrations'",
        ))
        .await
        .map_err(|error| BackupError::Damaged { path: file.to_path_buf(), problem: sqlite_says(&error) })?;
    if tables.is_empty() {
        return Err(not_hush("no migrations table"));
    }
    Ok(db)
}

fn sqlite_error(file: &Path) -> impl Fn(DbErr) -> BackupError {
    let path = file.to_path_buf();
    move |error| BackupError::Sqlite { path: path.clone(), message: sqlite_says(&error) }
}

async fn execute(db: &DatabaseConnection, file: &Path, sql: &str) -> Result<(), BackupError> {
    db.execute_unprepared(sql).await.map(drop).map_err(sqlite_error(file))
}

/// The first column of every row `sql` returns, as text.
async fn query_strings(db: &DatabaseConnection, file: &Path, sql: &str) -> Result<Vec<String>, BackupError> {
    let rows = db.query_all_raw(Statement::from_string(DbBackend::Sqlite, sql)).await.map_err(sqlite_error(file))?;
    rows.iter().map(|row| row.try_get_by_index::<String>(0)).collect::<Result<_, _>>().map_err(sqlite_error(file))
}

//! The data dir's files are private to the server's user, even in a folder others may read: the process
//! umask is 077, and the database, its WAL and shared-memory files, the root key and the bootstrap credentials
//! are 0600, including files an earlier run left with a wider mode.

mod common;

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use common::{Backend, TestServer};
use hush::{config::ServeConfig, server::Server};

backend_tests!(files_are_private_in_a_shared_data_dir);

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

/// The files the server keeps in `dir` on `backend`.
fn kept_files(dir: &Path, backend: Backend) -> Vec<PathBuf> {
    let mut files = vec![dir.join("root.key"), dir.join("bootstrap.json")];
    if backend == Backend::Sqlite {
        files.extend(["hush.db", "hush.db-wal", "hush.db-shm"].map(|name| dir.join(name)));
    }
    files
}

async fn files_are_private_in_a_shared_data_dir(backend: Backend) {
    let parent = tempfile::tempdir().unwrap();
    let shared = parent.path().join("data");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();

    let dir = shared.clone();
    let mut server = TestServer::start_with(backend, move |config| config.storage.data_dir = dir).await;
    let project_id = server.project("p").await;
    // A write, so the WAL holds data.
    common::create_secret(&mut server.admin_secrets().await, &project_id, "dev", "/", "K", "v").await;
    for file in kept_files(&shared, backend) {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    // The umask applies to whatever the process creates next.
    let created = shared.join("created-later");
    std::fs::write(&created, b"x").unwrap();
    assert_eq!(mode(&created), 0o600);
    let database_url = server.database_url.clone();
    let root_key = std::fs::read_to_string(shared.join("root.key")).unwrap();
    server.halt().await; // Keeps the PostgreSQL database for the restart.

    // Files an earlier version left world-readable are made private at the next start.
    for file in kept_files(&shared, backend).iter().filter(|f| f.exists()) {
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let mut config = ServeConfig::with_data_dir(shared.clone());
    config.storage.database_url = Some(database_url);
    config.key.root_key = Some(root_key);
    let _restarted = Server::prepare(config).await.expect("restart on the same data dir");
    let database = ["hush.db", "hush.db-wal", "hush.db-shm"].map(|name| shared.join(name));
    for file in database.iter().filter(|f| f.exists()) {
        assert_eq!(mode(file), 0o600, "{} after a restart", file.display());
    }
    if backend == Backend::Sqlite {
        assert!(shared.join("hush.db").exists(), "the SQLite database lives in the data dir");
    }
}

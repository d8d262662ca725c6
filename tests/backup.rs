//! `hush backup` and `hush restore` as an operator runs them: a backup taken while clients keep writing holds
//! every write acknowledged before it started, restores into a fresh data dir and serves there with the same
//! root key; restore refuses a non-empty dir and files that are not intact hush databases; on PostgreSQL,
//! `hush backup` points at pg_dump.

mod common;

use std::{
    os::unix::fs::PermissionsExt,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use common::{
    Backend, create_secret,
    deployment::{Deployment, Output},
    get_secret,
};
use hush::pb;

/// Clients writing at once while the backup runs.
const WRITERS: usize = 4;
/// Batches of 200 secrets of 16 KiB (3.2 MB, under the 4 MiB message limit) written before the load starts.
const BULK_BATCHES: usize = 5;

/// `hush <args>` outside any deployment.
async fn hush(args: &[&str]) -> Output {
    let output = tokio::process::Command::new(common::cli::HUSH)
        .args(args)
        .env_remove("HUSH_DATA_DIR")
        .env_remove("HUSH_DATABASE_URL")
        .output()
        .await
        .expect("run hush");
    Output {
        status: output.status,
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_under_write_load_restores_every_acknowledged_write() {
    let data = Deployment::new(Backend::Sqlite).await;
    let served = data.serve_ok(&[]).await;
    let bootstrap = data.bootstrap();
    let (secrets, mut projects) = served.admin_clients(&bootstrap).await;
    let request = pb::CreateProjectRequest { name: "busy".into() };
    let project = projects.create_project(request).await.unwrap().into_inner().project.unwrap().id;

    // Some bulk first (16 MB of values), so the copy takes long enough for many writes to land during it.
    let mut bulk = secrets.clone();
    for batch in 0..BULK_BATCHES {
        let secrets = (0..200)
            .map(|n| pb::SecretInput {
                key: format!("BULK_{batch}_{n}"),
                value: "x".repeat(16384),
                comment: String::new(),
            })
            .collect();
        let request = pb::BatchCreateSecretsRequest {
            project_id: project.clone(),
            environment: "prod".into(),
            secret_path: "/bulk".into(),
            secrets,
        };
        bulk.batch_create_secrets(request).await.expect("bulk batch");
    }

    // Writers create secrets as fast as they are answered, noting when each was acknowledged.
    let acknowledged = Arc::new(Mutex::new(Vec::<(String, String, Instant)>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let (mut secrets, project, acknowledged, stop) =
            (secrets.clone(), project.clone(), acknowledged.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let (key, value) = (format!("K_{writer}_{n}"), format!("value {writer}/{n}"));
                create_secret(&mut secrets, &project, "dev", "/load", &key, &value).await;
                acknowledged.lock().unwrap().push((key, value, Instant::now()));
                n += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let backups = tempfile::tempdir().unwrap();
    let file = backups.path().join("hush-backup.db");
    let started = Instant::now();
    let backup = data.run(&["backup", "--to", file.to_str().unwrap()]).await;
    let took = started.elapsed();
    let written_during = acknowledged.lock().unwrap().iter().filter(|(_, _, at)| *at > started).count();
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }
    assert!(backup.status.success(), "{backup:?}");
    assert!(written_during > 0, "writes went on while the backup ran ({took:?})");
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    let leftovers: Vec<_> = std::fs::read_dir(backups.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers, [std::ffi::OsString::from("hush-backup.db")], "no partial file is left beside it");

    // Never over an existing file.
    let before = std::fs::read(&file).unwrap();
    let again = data.run(&["backup", "--to", file.to_str().unwrap()]).await;
    assert!(!again.status.success() && again.stderr.contains("exists already"), "{again:?}");
    assert_eq!(std::fs::read(&file).unwrap(), before);
    served.stop().await;

    // Restore into a fresh (empty) dir and serve there with the same root key.
    let restored = Deployment::new(Backend::Sqlite).await;
    let done = restored.run(&["restore", "--from", file.to_str().unwrap()]).await;
    assert!(done.status.success(), "{done:?}");
    assert_eq!(std::fs::metadata(restored.path().join("hush.db")).unwrap().permissions().mode() & 0o777, 0o600);
    let key = data.key_file().unwrap();
    let served = restored.serve_ok(&["--root-key", &key]).await;
    let mut secrets = pb::secrets_service_client::SecretsServiceClient::new(served.admin(&bootstrap).await);
    let acknowledged = acknowledged.lock().unwrap().clone();
    let before_backup: Vec<_> = acknowledged.iter().filter(|(_, _, at)| *at < started).collect();
    assert!(before_backup.len() >= WRITERS, "writes were acknowledged before the backup: {}", before_backup.len());
    for (key, value, _) in &before_backup {
        let secret =
            get_secret(&mut secrets, &project, "dev", "/load", key).await.unwrap_or_else(|s| panic!("{key}: {s:?}"));
        assert_eq!(&secret.value, value);
    }
    println!(
        "{} writes acknowledged before the backup, {written_during} during it ({took:?}), all restored",
        before_backup.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_what_it_cannot_serve() {
    let data = Deployment::new(Backend::Sqlite).await;
    data.serve_ok(&[]).await.stop().await;
    let files = tempfile::tempdir().unwrap();
    let file = files.path().join("backup.db");
    let backup = data.run(&["backup", "--to", file.to_str().unwrap()]).await;
    assert!(backup.status.success(), "{backup:?}");

    // A dir with anything in it is refused and left as it was.
    let occupied = files.path().join("occupied");
    std::fs::create_dir(&occupied).unwrap();
    std::fs::write(occupied.join("notes.txt"), "mine").unwrap();
    let refused = hush(&["restore", "--from", file.to_str().unwrap(), "--data-dir", occupied.to_str().unwrap()]).await;
    assert!(!refused.status.success() && refused.stderr.contains("is not empty"), "{refused:?}");
    assert_eq!(std::fs::read_dir(&occupied).unwrap().count(), 1);

    // Files that are not intact hush databases.
    let not_sqlite = files.path().join("random.bin");
    std::fs::write(&not_sqlite, rand::random::<[u8; 32]>().repeat(512)).unwrap();
    let other_sqlite = files.path().join("other.db");
    let other = sea_orm::Database::connect(format!("sqlite://{}?mode=rwc", other_sqlite.display())).await.unwrap();
    sea_orm::ConnectionTrait::execute_unprepared(&other, "CREATE TABLE t (x INTEGER)").await.unwrap();
    other.close().await.unwrap();
    let truncated = files.path().join("truncated.db");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let mut damaged = bytes.clone();
    let page = 4096;
    damaged[page * 2..page * 3].fill(0xAB);
    let damaged_file = files.path().join("damaged.db");
    std::fs::write(&damaged_file, &damaged).unwrap();
    let live = data.path().join("hush.db");
    let missing = files.path().join("missing.db");
    for (from, wanted) in [
        (&not_sqlite, "is not a hush database: not an SQLite database"),
        (&other_sqlite, "is not a hush database: no migrations table"),
        (&truncated, "malformed"),
        (&damaged_file, "is damaged: integrity_check says"),
        (&live, "is a database in WAL mode"),
        (&missing, "there is no database at"),
    ] {
        let target = files.path().join("fresh");
        let refused =
            hush(&["restore", "--from", from.to_str().unwrap(), "--data-dir", target.to_str().unwrap()]).await;
        assert!(!refused.status.success(), "{from:?} was restored: {refused:?}");
        assert!(refused.stderr.contains(wanted), "{from:?}: {}", refused.stderr);
        assert!(!target.exists(), "nothing is created for a refused restore");
        let sidecars = std::fs::read_dir(files.path()).unwrap().filter(|entry| {
            let name = entry.as_ref().unwrap().file_name().into_string().unwrap();
            name.ends_with("-wal") || name.ends_with("-shm")
        });
        assert_eq!(sidecars.count(), 0, "checking {from:?} left files beside it");
    }

    // A data dir that does not exist is created, private.
    let created = files.path().join("created");
    let done = hush(&["restore", "--from", file.to_str().unwrap(), "--data-dir", created.to_str().unwrap()]).await;
    assert!(done.status.success(), "{done:?}");
    assert_eq!(std::fs::metadata(&created).unwrap().permissions().mode() & 0o777, 0o700);

    // A restored data dir without its root key is refused with a pointer to the fix, not given a new key.
    let keyless = Deployment::new(Backend::Sqlite).await;
    let done = keyless.run(&["restore", "--from", file.to_str().unwrap()]).await;
    assert!(done.status.success(), "{done:?}");
    let refused = keyless.serve_refused(&[]).await;
    assert!(refused.stderr.contains("root.key does not exist, but this database holds data sealed"), "{refused:?}");
    assert!(keyless.key_file().is_none());
}

#[tokio::test]
async fn backup_on_postgresql_explains_pg_dump() {
    let url = "postgres://hush:s3cret-password@db.example:5432/hush";
    let target = tempfile::tempdir().unwrap();
    let file = target.path().join("backup.db");
    let explained = hush(&["backup", "--to", file.to_str().unwrap(), "--database-url", url]).await;
    assert!(!explained.status.success());
    assert!(
        explained.stderr.contains("pg_dump --format=custom") && explained.stderr.contains("pg_restore"),
        "{}",
        explained.stderr
    );
    assert!(!explained.stderr.contains("s3cret-password"), "the URL's password is never shown");
    assert!(!file.exists());
    // The same through the environment, as `hush serve` reads it.
    let explained = tokio::process::Command::new(common::cli::HUSH)
        .args(["backup", "--to", file.to_str().unwrap()])
        .env("HUSH_DATABASE_URL", url)
        .output()
        .await
        .unwrap();
    assert!(!explained.status.success() && String::from_utf8_lossy(&explained.stderr).contains("pg_dump"));
}

#[tokio::test]
async fn backup_of_a_missing_database_creates_nothing() {
    let empty = tempfile::tempdir().unwrap();
    let file = empty.path().join("backup.db");
    let data_dir = empty.path().join("no-such-data");
    let refused = hush(&["backup", "--to", file.to_str().unwrap(), "--data-dir", data_dir.to_str().unwrap()]).await;
    assert!(!refused.status.success() && refused.stderr.contains("there is no database at"), "{refused:?}");
    assert!(!file.exists() && !data_dir.exists());
}

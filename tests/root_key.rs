//! The root key as an operator meets it, with the real `hush` binary: a start with another key is refused
//! before anything listens, the key can come from a command, `hush keys rotate` moves everything to a new key in
//! one transaction (and an interrupted or failed rotation leaves the old key working), and a database from
//! before the key check is checked against its sealed data on its first start.

mod common;

use std::time::Duration;

use base64::{Engine, engine::general_purpose::STANDARD};
use common::{
    Backend, Bootstrap, create_secret,
    deployment::{Deployment, Output, Served},
    get_secret,
    receiver::Receiver,
};
use hush::pb::{self, audit_streams_service_client::AuditStreamsServiceClient};
use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};

backend_tests!(
    another_key_is_refused_before_listening,
    rotation_moves_every_value_to_the_new_key,
    failed_rotation_changes_nothing,
    killed_rotation_leaves_the_old_key_working,
    data_without_a_key_check_is_checked_against_its_sealed_values,
    a_server_waits_for_an_offline_operation,
);

/// The header credential of the seeded audit stream: it must survive a rotation byte for byte.
const STREAM_CREDENTIAL: &str = "stream-credential-7f3a";

/// A fresh random root key, base64.
fn random_key() -> String {
    STANDARD.encode(rand::random::<[u8; 32]>())
}

/// One stored secret value.
struct Stored {
    project: String,
    env: &'static str,
    path: &'static str,
    key: String,
    value: String,
}

/// What `seed` wrote.
struct Seeded {
    values: Vec<Stored>,
    stream_id: String,
}

/// Writes three projects with several secrets (one with two versions) and, when `receiver_url` is given, an
/// audit stream to it whose header holds [`STREAM_CREDENTIAL`].
async fn seed(served: &Served, bootstrap: &Bootstrap, receiver_url: Option<&str>) -> Seeded {
    let (mut secrets, mut projects) = served.admin_clients(bootstrap).await;
    let mut values = Vec::new();
    for p in 0..3 {
        let request = pb::CreateProjectRequest { name: format!("project-{p}") };
        let project = projects.create_project(request).await.expect("create project").into_inner().project.unwrap().id;
        for (env, path) in [("dev", "/"), ("prod", "/api/keys")] {
            for k in 0..2 {
                let key = format!("KEY_{p}_{k}");
                let value = format!("value {p}/{env}{path}/{k} ✓");
                create_secret(&mut secrets, &project, env, path, &key, "first version").await;
                let update = pb::UpdateSecretRequest {
                    project_id: project.clone(),
                    environment: env.into(),
                    secret_path: path.into(),
                    key: key.clone(),
                    value: value.clone(),
                    ..Default::default()
                };
                secrets.update_secret(update).await.expect("update secret");
                values.push(Stored { project: project.clone(), env, path, key, value });
            }
        }
    }
    let mut stream_id = String::new();
    if let Some(url) = receiver_url {
        let mut streams = AuditStreamsServiceClient::new(served.admin(bootstrap).await);
        let request = pb::CreateAuditStreamRequest {
            name: "siem".into(),
            skip_test: true,
            provider: Some(pb::create_audit_stream_request::Provider::Custom(pb::CustomProvider {
                url: format!("{url}/in"),
                headers: [("x-credential".to_owned(), STREAM_CREDENTIAL.to_owned())].into(),
                batch: true,
                ..Default::default()
            })),
            ..Default::default()
        };
        stream_id =
            streams.create_audit_stream(request).await.expect("create stream").into_inner().audit_stream.unwrap().id;
    }
    Seeded { values, stream_id }
}

/// A deployment whose first server (which generated root.key) wrote [`seed`]'s data and stopped: the data,
/// the admin's credentials, what was seeded and the root key.
async fn seeded_deployment(backend: Backend, receiver_url: Option<&str>) -> (Deployment, Bootstrap, Seeded, String) {
    let data = Deployment::new(backend).await;
    let served = data.serve_ok(&["--streams-allow-private", "true"]).await;
    let bootstrap = data.bootstrap();
    let seeded = seed(&served, &bootstrap, receiver_url).await;
    served.stop().await;
    let key = data.key_file().expect("the first start generated root.key");
    (data, bootstrap, seeded, key)
}

/// Every seeded value reads back as written, and the stream's credential reaches its destination intact.
async fn assert_everything_opens(served: &Served, bootstrap: &Bootstrap, seeded: &Seeded, receiver: Option<&Receiver>) {
    let (mut secrets, _) = served.admin_clients(bootstrap).await;
    for stored in &seeded.values {
        let secret = get_secret(&mut secrets, &stored.project, stored.env, stored.path, &stored.key)
            .await
            .unwrap_or_else(|status| panic!("{} in {}: {status:?}", stored.key, stored.project));
        assert_eq!(secret.value, stored.value, "{} in {}", stored.key, stored.project);
    }
    if let Some(receiver) = receiver {
        let mut streams = AuditStreamsServiceClient::new(served.admin(bootstrap).await);
        let request = pb::TestAuditStreamRequest { audit_stream_id: seeded.stream_id.clone() };
        let outcome = streams.test_audit_stream(request).await.expect("test the stream").into_inner();
        assert!(outcome.success, "{outcome:?}");
        let credentials: Vec<String> = receiver
            .received()
            .iter()
            .filter_map(|r| r.headers.get("x-credential").map(|v| v.to_str().unwrap().to_owned()))
            .collect();
        assert!(!credentials.is_empty() && credentials.iter().all(|c| c == STREAM_CREDENTIAL), "{credentials:?}");
    }
}

/// Asserts a refusal mentions `wanted` and shows none of `keys`.
fn assert_refused(output: &str, wanted: &str, keys: &[&str]) {
    assert!(output.contains(wanted), "expected {wanted:?} in: {output}");
    for key in keys {
        assert!(!output.contains(key.trim()), "key material in the output: {output}");
    }
}

async fn another_key_is_refused_before_listening(backend: Backend) {
    let (data, bootstrap, seeded, right) = seeded_deployment(backend, None).await;
    let wrong = random_key();

    let command = format!("echo {wrong}");
    for args in [["--root-key", wrong.as_str()], ["--root-key-command", command.as_str()]] {
        let refused = data.serve_refused(&args).await;
        assert_eq!(refused.status.code(), Some(1), "{refused:?}");
        assert_refused(&refused.stderr, "does not match this data", &[&wrong, &right]);
        assert!(refused.stderr.contains(args[0]), "names where the key came from: {}", refused.stderr);
        assert!(!refused.accepted_a_connection, "the port accepted a connection while the start was refused");
    }

    // A data dir key file that is not this data's (copied from elsewhere) is refused the same way, and the
    // message points at the fixes.
    let key_file = data.path().join("root.key");
    std::fs::write(&key_file, &wrong).unwrap();
    let refused = data.serve_refused(&[]).await;
    assert_refused(&refused.stderr, "does not match this data", &[&wrong, &right]);
    assert!(
        refused.stderr.contains("root.key") && refused.stderr.contains("--new-root-key-file"),
        "{}",
        refused.stderr
    );
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), wrong, "a refused start leaves the key file alone");

    // A missing key file is not replaced by a new key when the data is sealed with another.
    std::fs::remove_file(&key_file).unwrap();
    let refused = data.serve_refused(&[]).await;
    assert_refused(&refused.stderr, "does not exist, but this database holds data sealed with a root key", &[&right]);
    assert!(data.key_file().is_none(), "no key file was generated");

    std::fs::write(&key_file, &right).unwrap();
    let served = data.serve_ok(&[]).await;
    assert_everything_opens(&served, &bootstrap, &seeded, None).await;
    for line in served.process.lines() {
        assert!(!line.contains(right.trim()), "the key was logged: {line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_key_command_supplies_the_key_and_fails_clearly() {
    let data = Deployment::new(Backend::Sqlite).await;
    let key = random_key();
    let keys = tempfile::tempdir().unwrap();
    let key_path = keys.path().join("kms-output");
    std::fs::write(&key_path, &key).unwrap();
    let command = format!("cat '{}'", key_path.display());

    let served = data.serve_ok(&["--root-key-command", &command]).await;
    assert!(data.key_file().is_none(), "no key file is generated when a command gives the key");
    let bootstrap = data.bootstrap();
    let seeded = seed(&served, &bootstrap, None).await;
    let lines = served.process.lines();
    served.stop().await;
    assert!(lines.iter().all(|line| !line.contains(&key)), "the key was logged");

    // The environment variable works like the flag.
    let served =
        data.serve_with_env(&[], &[("HUSH_ROOT_KEY_COMMAND", &command)]).await.unwrap_or_else(|r| panic!("{r:?}"));
    assert_everything_opens(&served, &bootstrap, &seeded, None).await;
    served.stop().await;

    // Failures: a clear message, non-zero exit, never the command's output.
    let failing = [
        ("echo SECRET-OUTPUT; echo oops >&2; exit 3", "--root-key-command exited with 3"),
        ("echo SECRET-OUTPUT", "--root-key-command (HUSH_ROOT_KEY_COMMAND) is not base64 of exactly 32 bytes"),
        ("printf ''", "is not base64 of exactly 32 bytes"),
        ("kill -9 $$", "--root-key-command was killed by a signal"),
        ("yes SECRET-OUTPUT | head -c 100000", "printed more than 4096 bytes"),
        ("/nonexistent/kms-cli get key", "--root-key-command exited with 127"),
    ];
    for (failing, wanted) in failing {
        let refused = data.serve_refused(&["--root-key-command", failing]).await;
        assert_eq!(refused.status.code(), Some(1), "{refused:?}");
        assert_refused(&refused.stderr, wanted, &["SECRET-OUTPUT", &key]);
        assert!(!refused.accepted_a_connection);
    }
    // The command's stderr reaches the operator (a secret manager's "not logged in").
    let refused = data.serve_refused(&["--root-key-command", "echo 'kms: not logged in' >&2; exit 1"]).await;
    assert!(refused.stderr.contains("kms: not logged in"), "{}", refused.stderr);

    // One key source at a time, from flags or environment.
    let refused = data.serve_refused(&["--root-key", &key, "--root-key-command", &command]).await;
    assert_refused(&refused.stderr, "both --root-key (HUSH_ROOT_KEY) and --root-key-command", &[&key]);
    let refused = data
        .serve_with_env(&["--root-key-command", &command], &[("HUSH_ROOT_KEY", &key)])
        .await
        .err()
        .expect("refused");
    assert_refused(&refused.stderr, "both --root-key (HUSH_ROOT_KEY) and --root-key-command", &[&key]);
}

/// `hush keys rotate` on this deployment with extra arguments.
async fn rotate(data: &Deployment, new_key_file: &std::path::Path, args: &[&str]) -> Output {
    let mut command = data.command(&["keys", "rotate", "--new-root-key-file", new_key_file.to_str().unwrap()]);
    command.args(args);
    let output = command.output().await.expect("run hush keys rotate");
    Output {
        status: output.status,
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

async fn rotation_moves_every_value_to_the_new_key(backend: Backend) {
    let receiver = Receiver::default();
    let (receiver_url, _receiving) = receiver.start().await;
    let allow_private = ["--streams-allow-private", "true"];
    let (data, bootstrap, seeded, old) = seeded_deployment(backend, Some(&receiver_url)).await;
    let served = data.serve_ok(&[]).await;
    let keys = tempfile::tempdir().unwrap();
    let new_file = keys.path().join("new.key");

    // Not while a server runs: it would go on sealing with the old key.
    let refused = rotate(&data, &new_file, &[]).await;
    assert!(!refused.status.success());
    assert_refused(&refused.stderr, "a hush server is using this database", &[&old]);
    assert_eq!(data.key_file().unwrap(), old);
    served.stop().await;

    // The new key file does not exist: rotate generates it (0600), and root.key follows.
    let rotated = rotate(&data, &new_file, &[]).await;
    assert!(rotated.status.success(), "{rotated:?}");
    assert!(
        rotated.stdout.contains("re-sealed 3 project data keys, 1 audit stream configurations"),
        "{}",
        rotated.stdout
    );
    let new = std::fs::read_to_string(&new_file).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&new_file).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(data.key_file().unwrap().trim(), new.trim(), "root.key holds the new key");
    assert!(!data.path().join("root.key.next").exists());
    for output in [&rotated.stdout, &rotated.stderr] {
        assert!(!output.contains(old.trim()) && !output.contains(new.trim()), "key material printed: {output}");
    }

    let refused = data.serve_refused(&["--root-key", &old]).await;
    assert_refused(&refused.stderr, "does not match this data", &[&old, &new]);
    let served = data.serve_ok(&allow_private).await;
    assert_everything_opens(&served, &bootstrap, &seeded, Some(&receiver)).await;
    served.stop().await;

    // A rotation that died after its commit but before its rename leaves the old key in root.key and the new
    // one staged: the next start finishes the rename.
    std::fs::write(data.path().join("root.key"), &old).unwrap();
    std::fs::write(data.path().join("root.key.next"), &new).unwrap();
    let served = data.serve_ok(&allow_private).await;
    assert!(served.process.lines().iter().any(|l| l.contains("finished an interrupted root key rotation")));
    assert_eq!(data.key_file().unwrap().trim(), new.trim());
    assert!(!data.path().join("root.key.next").exists());
    assert_everything_opens(&served, &bootstrap, &seeded, None).await;
    served.stop().await;

    // Again with the current key given by a command: root.key is left alone, the new key goes where the
    // operator keeps it.
    let current_file = keys.path().join("current.key");
    std::fs::write(&current_file, &new).unwrap();
    let newer_file = keys.path().join("newer.key");
    let newer = random_key();
    std::fs::write(&newer_file, &newer).unwrap();
    let command = format!("cat '{}'", current_file.display());
    let rotated = rotate(&data, &newer_file, &["--root-key-command", &command]).await;
    assert!(rotated.status.success(), "{rotated:?}");
    assert!(rotated.stdout.contains("store the new key"), "{}", rotated.stdout);
    assert_eq!(data.key_file().unwrap().trim(), new.trim(), "root.key is not touched");
    let refused = data.serve_refused(&["--root-key-command", &command]).await;
    assert_refused(&refused.stderr, "does not match this data", &[&new, &newer]);
    assert!(refused.stderr.contains("--new-root-key-file"), "{}", refused.stderr);
    std::fs::write(&current_file, &newer).unwrap();
    let mut args = vec!["--root-key-command", command.as_str()];
    args.extend(allow_private);
    let served = data.serve_ok(&args).await;
    assert_everything_opens(&served, &bootstrap, &seeded, Some(&receiver)).await;
    served.stop().await;

    // Rotating to the key in use, or with the wrong current key, changes nothing.
    let same = rotate(&data, &newer_file, &["--root-key", &newer]).await;
    assert_refused(&same.stderr, "the new root key is the current one", &[&newer]);
    let wrong = rotate(&data, &new_file, &["--root-key", &old]).await;
    assert_refused(&wrong.stderr, "does not match this data", &[&old, &new, &newer]);
    let served = data.serve_ok(&["--root-key", &newer]).await;
    assert_everything_opens(&served, &bootstrap, &seeded, None).await;
}

async fn failed_rotation_changes_nothing(backend: Backend) {
    let (data, bootstrap, mut seeded, old) = seeded_deployment(backend, None).await;

    // The last project in id order gets a damaged data key, so the rotation has re-sealed the others before it
    // meets it.
    let damaged = seeded.values.iter().map(|s| s.project.clone()).max().unwrap();
    let db = data.raw_db().await;
    let sql = format!(
        "UPDATE projects SET sealed_data_key = sealed_data_key || {} WHERE id = '{damaged}'",
        byte_literal(db.get_database_backend())
    );
    db.execute_unprepared(&sql).await.unwrap();

    let keys = tempfile::tempdir().unwrap();
    let new_file = keys.path().join("new.key");
    let failed = rotate(&data, &new_file, &[]).await;
    assert!(!failed.status.success(), "{failed:?}");
    assert_refused(&failed.stderr, &format!("project '{damaged}' data key does not open"), &[&old]);
    assert!(failed.stderr.contains("changed nothing"), "{}", failed.stderr);
    assert_eq!(data.key_file().unwrap(), old, "root.key keeps the old key");
    assert!(!data.path().join("root.key.next").exists(), "the staged key is removed");
    let new = std::fs::read_to_string(&new_file).expect("the generated new key is kept");

    let refused = data.serve_refused(&["--root-key", &new]).await;
    assert_refused(&refused.stderr, "does not match this data", &[&old, &new]);
    let served = data.serve_ok(&[]).await;
    seeded.values.retain(|s| s.project != damaged);
    assert_everything_opens(&served, &bootstrap, &seeded, None).await;
}

/// SQL appending one byte to a blob.
fn byte_literal(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::Postgres => "'\\x00'::bytea",
        _ => "X'00'",
    }
}

async fn killed_rotation_leaves_the_old_key_working(backend: Backend) {
    let (data, bootstrap, seeded, old) = seeded_deployment(backend, None).await;

    // Another connection holds a write lock on the last project, so the rotation stops inside its transaction:
    // on PostgreSQL after re-sealing the other projects (a row lock), on SQLite at its first write (the
    // database's one writer lock). It is killed there.
    let last = seeded.values.iter().map(|s| s.project.clone()).max().unwrap();
    let db = data.raw_db().await;
    let blocker = db.begin().await.unwrap();
    blocker.execute_unprepared(&format!("UPDATE projects SET name = name WHERE id = '{last}'")).await.unwrap();

    let keys = tempfile::tempdir().unwrap();
    let new_file = keys.path().join("new.key");
    let command = data.command(&["keys", "rotate", "--new-root-key-file", new_file.to_str().unwrap()]);
    let mut rotation = common::serve_binary::Collected::spawn(command);
    let staged = data.path().join("root.key.next");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let waiting = match backend {
            Backend::Postgres => {
                let sql = "SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'UPDATE%projects%'";
                let row = db.query_one_raw(Statement::from_string(DbBackend::Postgres, sql)).await.unwrap().unwrap();
                row.try_get::<i64>("", "n").unwrap() > 0
            }
            // The staged key is written right before the transaction starts; give it time to reach the lock.
            Backend::Sqlite => {
                staged.exists() && {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    true
                }
            }
        };
        if waiting {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the rotation never waited on the lock: {:?}",
            rotation.lines()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(staged.exists(), "the new key is staged before the transaction");
    rotation.kill().await;
    blocker.rollback().await.unwrap();
    drop(db);

    let new = std::fs::read_to_string(&new_file).unwrap();
    let refused = data.serve_refused(&["--root-key", &new]).await;
    assert_refused(&refused.stderr, "does not match this data", &[&old, &new]);
    let served = data.serve_ok(&[]).await;
    assert_eq!(data.key_file().unwrap(), old);
    assert!(!staged.exists(), "the start removed the staged key of the rotation that did not commit");
    assert!(served.process.lines().iter().any(|l| l.contains("removed a staged root key")));
    assert_everything_opens(&served, &bootstrap, &seeded, None).await;
}

async fn data_without_a_key_check_is_checked_against_its_sealed_values(backend: Backend) {
    let receiver = Receiver::default();
    let (receiver_url, _receiving) = receiver.start().await;
    let (data, bootstrap, seeded, right) = seeded_deployment(backend, Some(&receiver_url)).await;
    let wrong = random_key();
    // As a database from 0.1.0 looks: sealed values, no key check.
    let db = data.raw_db().await;
    db.execute_unprepared("DELETE FROM root_key_check").await.unwrap();

    let refused = data.serve_refused(&["--root-key", &wrong]).await;
    assert_refused(&refused.stderr, "does not match this data", &[&wrong, &right]);

    // A damaged value is told apart from a wrong key, and nothing is sealed until every value opens.
    let damaged = seeded.values[0].project.clone();
    let sql = format!(
        "UPDATE projects SET sealed_data_key = sealed_data_key || {} WHERE id = '{damaged}'",
        byte_literal(db.get_database_backend())
    );
    db.execute_unprepared(&sql).await.unwrap();
    let refused = data.serve_refused(&[]).await;
    assert_refused(
        &refused.stderr,
        &format!("opens 3 of the 4 sealed values in this database but not project '{damaged}' data key"),
        &[&right],
    );
    let count = "SELECT count(*) AS n FROM root_key_check";
    let checks = db.query_one_raw(Statement::from_string(db.get_database_backend(), count)).await.unwrap().unwrap();
    assert_eq!(checks.try_get::<i64>("", "n").unwrap(), 0);
    db.execute_unprepared(&format!("DELETE FROM projects WHERE id = '{damaged}'")).await.unwrap();

    // The right key: every remaining value opens, the check is sealed, and from then on it decides.
    let served = data.serve_ok(&[]).await;
    assert!(served.process.lines().iter().any(|l| l.contains("sealed the root key check")));
    let remaining = Seeded {
        values: seeded.values.into_iter().filter(|s| s.project != damaged).collect(),
        stream_id: seeded.stream_id,
    };
    assert_everything_opens(&served, &bootstrap, &remaining, None).await;
    served.stop().await;
    let refused = data.serve_refused(&["--root-key", &wrong]).await;
    assert_refused(&refused.stderr, "does not match this data", &[&wrong, &right]);
}

async fn a_server_waits_for_an_offline_operation(backend: Backend) {
    let (data, bootstrap, seeded, _) = seeded_deployment(backend, None).await;
    // Hold the lock as `hush keys rotate` does.
    let lock_file = std::fs::File::open(data.path().join("hush.db.lock"));
    let mut options = sea_orm::ConnectOptions::new(data.database_url.clone().unwrap_or_default());
    options.max_connections(1);
    let pg_lock = match backend {
        Backend::Sqlite => {
            lock_file.as_ref().expect("the lock file beside the database").lock().unwrap();
            None
        }
        Backend::Postgres => {
            let db = sea_orm::Database::connect(options).await.unwrap();
            db.execute_unprepared(&format!("SELECT pg_advisory_lock({})", hush::store::DATABASE_LOCK)).await.unwrap();
            Some(db)
        }
    };
    let mut server = common::serve_binary::Collected::spawn(data.command(&["serve", "--listen", "127.0.0.1:0"]));
    server.wait_for_line(|l| l.contains("waiting for an offline operation"), Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!server.lines().iter().any(|l| l.contains("hush is listening")), "served while the lock was held");

    match pg_lock {
        Some(db) => db.close().await.unwrap(),
        None => lock_file.unwrap().unlock().unwrap(),
    }
    let addr = server.listening().await.expect("listens once the lock is released");
    let served = Served { addr, process: server };
    assert_everything_opens(&served, &bootstrap, &seeded, None).await;
}

//! The `hush` binary as users run it: `serve` with graceful shutdown, and the client commands.

mod common;

use std::{process::Stdio, time::Duration};

use common::{
    Backend, TestServer,
    cli::{HUSH, hush},
};
use tokio::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_logs_in_and_manages_secrets() {
    let server = TestServer::start(Backend::Sqlite).await;
    let config = tempfile::tempdir().unwrap();
    let dir = config.path();
    let url = server.url();

    let err = hush(dir, &["projects", "list", "--server", &url]).await.unwrap_err();
    assert!(err.contains("hush login"), "tells the user to log in: {err}");
    let bad = ["login", "--server", &url, "--client-id", &server.bootstrap.client_id, "--client-secret", "nope"];
    assert!(hush(dir, &bad).await.unwrap_err().contains("Unauthenticated"));

    let bootstrap = server.data_dir.path().join("bootstrap.json");
    hush(dir, &["login", "--server", &url, "--from-file", bootstrap.to_str().unwrap()]).await.unwrap();
    let project = hush(dir, &["projects", "create", "cli-demo"]).await.unwrap().trim().to_owned();
    assert!(uuid::Uuid::parse_str(&project).is_ok(), "prints the new project's id: {project}");
    assert!(hush(dir, &["projects", "list"]).await.unwrap().contains("cli-demo"));

    let folder = ["--project", project.as_str(), "--env", "dev", "--path", "/api"];
    let set = |key: &'static str, value: &'static str| {
        let mut args = vec!["secrets", "set", key, value];
        args.extend_from_slice(&folder);
        args
    };
    hush(dir, &set("DB_URL", "postgres://db")).await.unwrap();
    hush(dir, &set("DB_URL", "postgres://db2")).await.unwrap();
    hush(dir, &set("API_KEY", "k-123")).await.unwrap();
    let mut get = vec!["secrets", "get", "DB_URL"];
    get.extend_from_slice(&folder);
    assert_eq!(hush(dir, &get).await.unwrap(), "postgres://db2\n", "set on an existing key updates it");
    // Check-and-set: DB_URL is at version 2.
    let mut stale = set("DB_URL", "postgres://stale");
    stale.extend(["--expected-version", "1"]);
    let err = hush(dir, &stale).await.unwrap_err();
    assert!(err.contains("Aborted") && err.contains("is at version 2, not the expected version 1"), "{err}");
    assert_eq!(hush(dir, &get).await.unwrap(), "postgres://db2\n", "a stale check-and-set writes nothing");
    let mut current = set("DB_URL", "postgres://db3");
    current.extend(["--expected-version", "2"]);
    hush(dir, &current).await.unwrap();
    let mut current = set("DB_URL", "postgres://db2");
    current.extend(["--expected-version", "3"]);
    hush(dir, &current).await.unwrap();
    let mut list = vec!["secrets", "list"];
    list.extend_from_slice(&folder);
    assert_eq!(hush(dir, &list).await.unwrap(), "API_KEY=k-123\nDB_URL=postgres://db2\n");
    let mut delete = vec!["secrets", "delete", "API_KEY"];
    delete.extend_from_slice(&folder);
    let mut stale = delete.clone();
    stale.extend(["--expected-version", "2"]);
    assert!(hush(dir, &stale).await.unwrap_err().contains("is at version 1"), "a stale delete deletes nothing");
    hush(dir, &delete).await.unwrap();
    assert_eq!(hush(dir, &list).await.unwrap(), "DB_URL=postgres://db2\n");
    let err = hush(dir, &delete).await.unwrap_err();
    assert!(err.contains("NotFound") && err.contains("API_KEY"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_starts_bootstraps_and_stops_gracefully_on_sigterm() {
    let data = tempfile::tempdir().unwrap();
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let listen = format!("127.0.0.1:{port}");
    let mut child = Command::new(HUSH)
        .args(["serve", "--data-dir", data.path().to_str().unwrap(), "--listen", &listen])
        .env_remove("HUSH_DATABASE_URL")
        .env_remove("HUSH_ROOT_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("http://{listen}");
    let mut health = None;
    for _ in 0..100 {
        if let Ok(channel) = tonic::transport::Channel::from_shared(url.clone()).unwrap().connect().await {
            health = Some(tonic_health::pb::health_client::HealthClient::new(channel));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut health = health.expect("server came up within 10 s");
    health.check(tonic_health::pb::HealthCheckRequest::default()).await.unwrap();
    assert!(data.path().join("bootstrap.json").exists());

    let pid = child.id().unwrap().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().await.unwrap().success());
    let status =
        tokio::time::timeout(Duration::from_secs(10), child.wait()).await.expect("exits after SIGTERM").unwrap();
    assert!(status.success(), "graceful shutdown exits 0: {status:?}");
    let mut stderr = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).await.unwrap();
    assert!(stderr.contains("bootstrap.json"), "logs where the credentials are: {stderr}");
    assert!(!stderr.contains("hush_cs_"), "never logs the client secret itself");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_prints_events_as_cloudevents_json_lines() {
    use tokio::io::AsyncBufReadExt;
    let server = TestServer::start(Backend::Sqlite).await;
    let config = tempfile::tempdir().unwrap();
    let bootstrap = server.data_dir.path().join("bootstrap.json");
    hush(config.path(), &["login", "--server", &server.url(), "--from-file", bootstrap.to_str().unwrap()])
        .await
        .unwrap();
    let project = server.project("cli-events").await;
    let mut child = Command::new(HUSH)
        .args(["events", "subscribe", "secret:*", "--project", &project, "--env", "dev", "--path", "/**"])
        .env("HUSH_CONFIG_DIR", config.path())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut secrets = server.admin_secrets().await;
    // The subscription opens asynchronously: write until the first event shows up.
    let first = loop {
        common::create_secret(&mut secrets, &project, "prod", "/", &format!("P{}", uuid::Uuid::new_v4().simple()), "v")
            .await;
        common::create_secret(
            &mut secrets,
            &project,
            "dev",
            "/app",
            &format!("K{}", uuid::Uuid::new_v4().simple()),
            "v",
        )
        .await;
        if let Ok(line) = tokio::time::timeout(Duration::from_millis(300), lines.next_line()).await {
            break line.unwrap().expect("a line");
        }
    };
    let event: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(event["specversion"], "1.0");
    assert_eq!(event["type"], "secret:create");
    assert_eq!(event["source"], format!("/hush/projects/{project}"));
    assert!(event["id"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(chrono::DateTime::parse_from_rfc3339(event["time"].as_str().unwrap()).is_ok());
    assert_eq!(event["datacontenttype"], "application/json");
    let payload = &event["data"]["payload"]["secrets"][0];
    assert_eq!((payload["environment"].as_str(), payload["secretPath"].as_str()), (Some("dev"), Some("/app")));
}

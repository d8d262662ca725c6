//! `examples/subscribe.rs` (the Rust client's three steps: log in, read a secret, subscribe) run against a real
//! server: it reads the secret's version and prints the event a write makes. `cargo test` builds examples
//! before it runs tests.

mod common;

use std::process::Stdio;

use common::{Backend, TestServer, create_secret};
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_example_logs_in_reads_and_receives_an_event() {
    let example = std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().join("examples/subscribe");
    assert!(example.exists(), "{} is missing: run `cargo build --examples` (cargo test builds it)", example.display());
    let server = TestServer::start(Backend::Sqlite).await;
    let project = server.project("example").await;
    let mut secrets = server.admin_secrets().await;
    create_secret(&mut secrets, &project, "dev", "/", "DB", "never-printed").await;
    let mut child = tokio::process::Command::new(example)
        .args([server.url().as_str(), &project, "DB", "1"])
        .env("HUSH_CLIENT_ID", &server.bootstrap.client_id)
        .env("HUSH_CLIENT_SECRET", &server.bootstrap.client_secret)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let subscribed = tokio::time::timeout(std::time::Duration::from_secs(20), stderr.next_line()).await;
    assert!(subscribed.unwrap().unwrap().unwrap().starts_with("subscribed to"));
    create_secret(&mut secrets, &project, "dev", "/api", "NEW", "never-printed").await;
    let output =
        tokio::time::timeout(std::time::Duration::from_secs(20), child.wait_with_output()).await.unwrap().unwrap();
    assert!(output.status.success());
    assert_eq!(String::from_utf8(output.stdout).unwrap(), "DB is at version 1\nsecret:create dev:/api NEW v1\n");
}

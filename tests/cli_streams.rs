//! `hush streams create|list|status|test|backfill|delete` against an in-process server and HTTP receiver.

mod common;

use std::time::Duration;

use common::{
    Backend, TestServer,
    receiver::{Receiver, eventually},
};

/// The custom header's value: a credential that no CLI output may ever show.
const HEADER_SECRET: &str = "abc123";

/// Runs `hush args…` with its session kept in `config_dir`; returns stdout on success, stderr on failure. No
/// output, stdout or stderr, may contain the header credential.
async fn hush(config_dir: &std::path::Path, args: &[&str]) -> Result<String, String> {
    let common::cli::Run { success, stdout, stderr } = common::cli::run(config_dir, args).await;
    let shown_args: Vec<&str> = args.iter().copied().filter(|a| !a.contains(HEADER_SECRET)).collect();
    assert!(!stdout.contains(HEADER_SECRET), "hush {shown_args:?} printed the credential: {stdout}");
    assert!(!stderr.contains(HEADER_SECRET), "hush {shown_args:?} printed the credential: {stderr}");
    if success { Ok(stdout) } else { Err(stderr) }
}

async fn ok(config_dir: &std::path::Path, args: &[&str]) -> String {
    hush(config_dir, args).await.unwrap_or_else(|e| panic!("hush {args:?} failed: {e}"))
}

fn json_lines(stdout: &str) -> Vec<serde_json::Value> {
    stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_manages_audit_streams() {
    let server = TestServer::start_with(Backend::Sqlite, |c| {
        c.streams_allow_private = true;
        c.stream_retry_base = Duration::from_millis(50);
        c.stream_retry_cap = Duration::from_millis(200);
    })
    .await;
    let receiver = Receiver::default();
    let (receiver_url, _serving) = receiver.start().await;
    let config = tempfile::tempdir().unwrap();
    let dir = config.path();
    let bootstrap = server.data_dir.path().join("bootstrap.json");
    ok(dir, &["login", "--server", &server.url(), "--from-file", bootstrap.to_str().unwrap()]).await;

    // Flag mistakes are caught before anything is sent, naming the flag.
    let err = hush(dir, &["streams", "create", "broken", "--provider", "custom"]).await.unwrap_err();
    assert!(err.contains("--url"), "{err}");
    let err =
        hush(dir, &["streams", "create", "broken", "--provider", "splunk", "--host", &receiver_url]).await.unwrap_err();
    assert!(err.contains("--token") && err.contains("HUSH_STREAM_TOKEN"), "{err}");
    let args = ["streams", "create", "broken", "--provider", "custom", "--url", &receiver_url, "--site", "x"];
    let err = hush(dir, &args).await.unwrap_err();
    assert!(err.contains("--site"), "{err}");

    // Create (the destination gets a test event first) prints the id.
    let url = format!("{receiver_url}/in");
    let header = format!("x-secret={HEADER_SECRET}");
    let args = ["streams", "create", "siem", "--provider", "custom", "--url", &url, "--header", &header];
    let id = ok(dir, &args).await.trim().to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "prints the new stream's id: {id}");
    assert!(!receiver.received().is_empty(), "the test event was sent");

    // List: a line per stream as text; as JSON the AuditStream message, the header value redacted.
    assert_eq!(ok(dir, &["streams", "list"]).await, format!("{id}\tsiem\tcustom\tdrop\n"));
    let listed = json_lines(&ok(dir, &["streams", "list", "--output", "json"]).await);
    assert_eq!(listed.len(), 1, "{listed:?}");
    let stream = &listed[0];
    assert_eq!(stream["id"], id.as_str());
    assert_eq!(stream["name"], "siem");
    assert_eq!(stream["custom"]["url"], url.as_str());
    assert_eq!(stream["custom"]["batch"], true, "batch is the default");
    assert_eq!(stream["custom"]["headers"]["x-secret"], "[REDACTED]");
    assert_eq!(stream["onFailure"], "AUDIT_STREAM_FAILURE_MODE_DROP", "drop is the default");

    // Update: the failure mode and the name; nothing to change is refused before anything is sent.
    let json = ["--output", "json"];
    let updated: serde_json::Value = serde_json::from_str(
        &ok(dir, &[&["streams", "update", &id, "--on-failure", "pause"][..], &json].concat()).await,
    )
    .unwrap();
    let pause = "AUDIT_STREAM_FAILURE_MODE_PAUSE";
    assert_eq!((&updated["onFailure"], &updated["name"]), (&pause.into(), &"siem".into()), "{updated}");
    let renamed = ok(dir, &["streams", "update", &id, "--name", "siem-2"]).await;
    assert_eq!(renamed, format!("{id}\tsiem-2\tcustom\tpause\n"));
    let err = hush(dir, &["streams", "update", &id]).await.unwrap_err();
    assert!(err.contains("--name") && err.contains("--on-failure"), "{err}");

    // Audit activity reaches the receiver, and status says so.
    let project = ok(dir, &["projects", "create", "streamed"]).await.trim().to_owned();
    assert!(uuid::Uuid::parse_str(&project).is_ok());
    eventually(Duration::from_secs(15), "audit entries at the receiver", || {
        receiver.received().iter().any(|r| r.path == "/in" && r.body.contains("create-project"))
    })
    .await;
    assert!(receiver.received().iter().all(|r| r.headers["x-secret"] == HEADER_SECRET), "the header is sent");
    // 64-bit counters are strings in protobuf's JSON mapping.
    let count = |v: &serde_json::Value| v.as_str().and_then(|s| s.parse::<i64>().ok()).or(v.as_i64()).unwrap_or(0);
    let mut status = serde_json::Value::Null;
    for _ in 0..200 {
        status = serde_json::from_str(ok(dir, &["streams", "status", &id, "--output", "json"]).await.trim()).unwrap();
        if count(&status["deliveredEvents"]) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(count(&status["deliveredEvents"]) > 0, "{status}");
    for field in ["queueDepth", "lastError", "attempts", "deliveredEvents", "droppedBatches", "droppedEvents", "paused"]
    {
        assert!(status.get(field).is_some(), "status has {field}: {status}");
    }
    assert!(status["lastSuccessTime"].is_string(), "{status}");
    assert_eq!(status["paused"], false, "{status}");
    assert!(status.get("pauseTime").is_none_or(serde_json::Value::is_null), "{status}");
    assert!(count(&status["attempts"]) > 0, "{status}");
    let text = ok(dir, &["streams", "status", &id]).await;
    assert!(text.contains("\npaused\tno\n") || text.ends_with("\npaused\tno"), "{text}");

    // Test and backfill.
    assert_eq!(ok(dir, &["streams", "test", &id]).await, "ok 200\n");
    let queued: i64 = ok(dir, &["streams", "backfill", &id, "--since", "1h"]).await.trim().parse().unwrap();
    assert!(queued > 0, "backfill queued {queued}");
    let err = hush(dir, &["streams", "backfill", &id, "--since", "whenever"]).await.unwrap_err();
    assert!(err.contains("whenever"), "{err}");

    // Delete, then the list is empty; the id is gone.
    ok(dir, &["streams", "delete", &id]).await;
    assert_eq!(ok(dir, &["streams", "list"]).await, "");
    let err = hush(dir, &["streams", "status", &id]).await.unwrap_err();
    assert!(err.contains("NotFound"), "{err}");
}

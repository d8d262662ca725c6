//! `hush audit list|export`: JSON lines in the HTTP export's shape, filters, paging, relative `--since`.

mod common;

use common::{Backend, TestServer, http1};

/// A value that must never show up in the audit output.
const VALUE: &str = "cli-audit-marker-9c2f51";

/// Runs `hush args…` with its session kept in `config_dir`; returns (stdout, stderr) on success, stderr on failure.
async fn hush(config_dir: &std::path::Path, args: &[&str]) -> Result<(String, String), String> {
    let run = common::cli::run(config_dir, args).await;
    if run.success { Ok((run.stdout, run.stderr)) } else { Err(run.stderr) }
}

/// Stdout of a successful run, as JSON objects, one per line.
async fn lines(config_dir: &std::path::Path, args: &[&str]) -> Vec<serde_json::Value> {
    let (stdout, _) = hush(config_dir, args).await.unwrap_or_else(|e| panic!("hush {args:?} failed: {e}"));
    assert!(!stdout.contains(VALUE), "the secret value never appears: {stdout}");
    stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect()
}

fn event_types(lines: &[serde_json::Value]) -> Vec<&str> {
    lines.iter().map(|l| l["eventType"].as_str().expect("eventType")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_lists_and_exports_audit_logs_as_json_lines() {
    let server = TestServer::start(Backend::Sqlite).await;
    let config = tempfile::tempdir().unwrap();
    let dir = config.path();
    let bootstrap = server.data_dir.path().join("bootstrap.json");
    hush(dir, &["login", "--server", &server.url(), "--from-file", bootstrap.to_str().unwrap()]).await.unwrap();
    let (project, _) = hush(dir, &["projects", "create", "cli-audit"]).await.unwrap();
    let project = project.trim().to_owned();
    hush(dir, &["secrets", "set", "DB_PASSWORD", VALUE, "--project", &project, "--env", "dev", "--path", "/api"])
        .await
        .unwrap();

    // list: exactly the create, made by the CLI, naming the key.
    let created = lines(dir, &["audit", "list", "--event", "create-secret"]).await;
    assert_eq!(created.len(), 1, "{created:?}");
    let entry = &created[0];
    assert_eq!(entry["eventType"], "create-secret");
    assert_eq!(entry["userAgentType"], "cli");
    assert_eq!(entry["eventMetadata"]["secretKey"], "DB_PASSWORD");
    assert_eq!(entry["projectId"], project.as_str());
    assert_eq!(entry["actor"], "identity");
    assert_eq!(entry["actorMetadata"]["identityId"], server.bootstrap.identity_id.as_str());
    assert_eq!(entry["orgId"], server.bootstrap.org_id.as_str());
    for field in ["createdAt", "expiresAt"] {
        let time = entry[field].as_str().expect(field);
        assert!(chrono::DateTime::parse_from_rfc3339(time).is_ok() && time.ends_with('Z'), "{field}: {time}");
    }

    // export: the project's actions, oldest first.
    let exported = lines(dir, &["audit", "export", "--project", &project]).await;
    let types = event_types(&exported);
    let create_project = types.iter().position(|t| *t == "create-project").expect("create-project exported");
    let create_secret = types.iter().position(|t| *t == "create-secret").expect("create-secret exported");
    assert!(create_project < create_secret, "oldest first: {types:?}");
    assert!(exported.iter().all(|l| l["projectId"] == project.as_str()), "only the project's: {types:?}");
    assert!(exported.contains(entry), "list and export print the same line for an entry");
    let (cli_export, _) = hush(dir, &["audit", "export", "--project", &project]).await.unwrap();
    let token = server.admin_token().await;
    let auth = format!("Bearer {token}");
    let path = format!("/api/v1/audit-logs/export?projectId={project}");
    let (status, http_export) = http1::exchange(server.addr, "GET", &path, &[("authorization", &auth)], "").await;
    assert_eq!(status, 200, "{http_export}");
    assert_eq!(cli_export, http_export, "the CLI prints the HTTP export's lines byte for byte");

    // Comma-separated and repeated --event, actor filters.
    let both = lines(dir, &["audit", "export", "--event", "create-project,create-secret"]).await;
    assert_eq!(event_types(&both), ["create-project", "create-secret"]);
    let both = lines(dir, &["audit", "export", "--event", "create-project", "--event", "create-secret"]).await;
    assert_eq!(event_types(&both), ["create-project", "create-secret"]);
    let mine = ["audit", "export", "--actor", &server.bootstrap.identity_id, "--actor-type", "identity"];
    assert!(event_types(&lines(dir, &mine).await).contains(&"create-secret"));
    let platform = lines(dir, &["audit", "export", "--actor-type", "platform", "--event", "create-secret"]).await;
    assert!(platform.is_empty(), "{platform:?}");
    let curl = lines(dir, &["audit", "export", "--user-agent-type", "curl", "--event", "create-secret"]).await;
    assert!(curl.is_empty(), "{curl:?}");

    // Time filters: a relative --since, RFC 3339 --until.
    assert_eq!(lines(dir, &["audit", "list", "--since", "1h", "--event", "create-secret"]).await.len(), 1);
    let created_at = entry["createdAt"].as_str().unwrap();
    let until = lines(dir, &["audit", "export", "--until", created_at, "--event", "create-secret"]).await;
    assert!(until.is_empty(), "--until is exclusive: {until:?}");
    let since = lines(dir, &["audit", "export", "--since", created_at, "--event", "create-secret"]).await;
    assert_eq!(since.len(), 1, "--since is inclusive");
    let err = hush(dir, &["audit", "list", "--since", "garbage"]).await.unwrap_err();
    assert!(err.contains("garbage") && err.contains("RFC 3339") && err.contains("duration"), "{err}");
    // --until takes the same forms: an hour ago, nothing had happened yet.
    assert!(lines(dir, &["audit", "export", "--until", "1h"]).await.is_empty());

    // Paging: newest first, the next token on stderr, then the following page.
    let (first, stderr) = hush(dir, &["audit", "list", "--limit", "1", "--project", &project]).await.unwrap();
    assert_eq!(first.lines().count(), 1);
    let first: serde_json::Value = serde_json::from_str(first.trim()).unwrap();
    assert_eq!(first["eventType"], "create-secret", "newest first");
    let token = stderr.split("--page-token ").nth(1).expect("next page token on stderr").trim().to_owned();
    let (second, _) =
        hush(dir, &["audit", "list", "--limit", "1", "--project", &project, "--page-token", &token]).await.unwrap();
    let second: serde_json::Value = serde_json::from_str(second.trim()).unwrap();
    assert_ne!(second["id"], first["id"]);
    let all = lines(dir, &["audit", "list", "--project", &project]).await;
    assert_eq!(all[0], first);
    assert_eq!(all[1], second);
}

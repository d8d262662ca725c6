//! The CLI's working context, run as a user would against a real server: profiles side by side and `whoami`,
//! `.hush.toml` defaults (`hush init`) under flags and `HUSH_*` variables, environments, imports, members,
//! batch set and delete, one JSON style (`--output json`) and tables, time flags, and refusals that name the
//! mistake (duplicate project names, unknown event types).

mod common;

use common::{
    Backend, TestServer,
    cli::{hush, run_in},
};

/// Logs in to `server` as its admin in `dir`, under `profile` when given.
async fn login(server: &TestServer, dir: &std::path::Path, profile: Option<&str>) {
    let bootstrap = server.data_dir.path().join("bootstrap.json");
    let url = server.url();
    let mut args = vec!["login", "--server", &url, "--from-file", bootstrap.to_str().unwrap()];
    if let Some(profile) = profile {
        args.extend(["--profile", profile]);
    }
    hush(dir, &args).await.unwrap();
}

fn json_lines(stdout: &str) -> Vec<serde_json::Value> {
    stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_live_side_by_side_and_whoami_says_who() {
    let first = TestServer::start(Backend::Sqlite).await;
    let second = TestServer::start(Backend::Sqlite).await;
    let config = tempfile::tempdir().unwrap();
    let dir = config.path();
    login(&first, dir, None).await;
    login(&second, dir, Some("staging")).await;
    hush(dir, &["projects", "create", "only-on-first"]).await.unwrap();
    hush(dir, &["projects", "create", "only-on-second", "--profile", "staging"]).await.unwrap();

    // Each profile talks to its own server with its own token: logging in to one replaced nothing.
    let on_first = hush(dir, &["projects", "list"]).await.unwrap();
    let on_second = hush(dir, &["projects", "list", "--profile", "staging"]).await.unwrap();
    assert!(on_first.contains("only-on-first") && !on_first.contains("only-on-second"), "{on_first}");
    assert!(on_second.contains("only-on-second") && !on_second.contains("only-on-first"), "{on_second}");
    let by_env = run_env(dir, &["projects", "list"], &[("HUSH_PROFILE", "staging")]).await;
    assert_eq!(by_env, on_second, "HUSH_PROFILE picks the profile too");

    // Session files are private.
    use std::os::unix::fs::PermissionsExt;
    for file in [dir.join("session.json"), dir.join("profiles/staging.json")] {
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
    }

    // whoami: the identity behind the token, as text and as the WhoAmIResponse in JSON.
    let me = hush(dir, &["whoami"]).await.unwrap();
    assert!(me.contains("org role\tadmin") && me.contains("profile\tdefault"), "{me}");
    let me: serde_json::Value =
        serde_json::from_str(&hush(dir, &["whoami", "--output", "json", "--profile", "staging"]).await.unwrap())
            .unwrap();
    assert_eq!(me["identity"]["id"], second.bootstrap.identity_id.as_str(), "{me}");
    assert!(me["tokenExpireTime"].as_str().is_some_and(|t| t.ends_with('Z')), "{me}");

    // Logging out of one profile leaves the other logged in; its old token no longer works.
    let staging: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("profiles/staging.json")).unwrap()).unwrap();
    hush(dir, &["logout", "--profile", "staging"]).await.unwrap();
    let gone = hush(dir, &["whoami", "--profile", "staging"]).await.unwrap_err();
    assert!(gone.contains("hush login --profile staging"), "{gone}");
    let token = staging["access_token"].as_str().unwrap();
    let revoked = run_env(dir, &["whoami", "--server", &second.url()], &[("HUSH_TOKEN", token)]).await;
    assert!(revoked.contains("Unauthenticated"), "{revoked}");
    hush(dir, &["whoami"]).await.expect("the default profile is still logged in");

    // A profile name that could escape the config dir is refused.
    let bad = hush(dir, &["whoami", "--profile", "../x"]).await.unwrap_err();
    assert!(bad.contains("--profile"), "{bad}");
}

/// `hush args…` with extra environment variables; stdout on success, else stderr.
async fn run_env(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut command = tokio::process::Command::new(common::cli::HUSH);
    command.args(args).env("HUSH_CONFIG_DIR", dir).current_dir(dir);
    for name in ["HUSH_PROJECT", "HUSH_ENV", "HUSH_PATH", "HUSH_PROFILE", "HUSH_OUTPUT", "HUSH_TOKEN"] {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    let output = command.output().await.unwrap();
    let stream = if output.status.success() { output.stdout } else { output.stderr };
    String::from_utf8(stream).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_sets_defaults_for_the_directory_below_flags_and_variables() {
    let server = TestServer::start(Backend::Sqlite).await;
    let config = tempfile::tempdir().unwrap();
    let dir = config.path();
    login(&server, dir, None).await;
    let project = hush(dir, &["projects", "create", "app"]).await.unwrap().trim().to_owned();
    hush(dir, &["secrets", "set", "WHERE", "dev-root", "--project", "app"]).await.unwrap();
    hush(dir, &["secrets", "set", "WHERE", "prod-api", "--project", "app", "--env", "prod", "--path", "/api"])
        .await
        .unwrap();

    // Without a project anywhere, the error says how to give one.
    let workdir = tempfile::tempdir().unwrap();
    let nested = workdir.path().join("src/deep");
    std::fs::create_dir_all(&nested).unwrap();
    let none = run_in(dir, &nested, &["secrets", "get", "WHERE"]).await;
    assert!(!none.success && none.stderr.contains("hush init"), "{}", none.stderr);

    let init = run_in(dir, workdir.path(), &["init", "--project", "app", "--env", "prod", "--path", "/api"]).await;
    assert!(init.success, "{}", init.stderr);
    let written = std::fs::read_to_string(workdir.path().join(".hush.toml")).unwrap();
    assert!(written.contains(&project), "the project is kept by id: {written}");
    let again = run_in(dir, workdir.path(), &["init", "--project", "app"]).await;
    assert!(!again.success && again.stderr.contains("--force"), "{}", again.stderr);

    // From a subdirectory: the file's project, env and path; flags and HUSH_* variables win over it.
    let got = run_in(dir, &nested, &["secrets", "get", "WHERE"]).await;
    assert_eq!(got.stdout, "prod-api\n", "{}", got.stderr);
    let flagged = run_in(dir, &nested, &["secrets", "get", "WHERE", "--env", "dev", "--path", "/"]).await;
    assert_eq!(flagged.stdout, "dev-root\n", "{}", flagged.stderr);
    let mut command = tokio::process::Command::new(common::cli::HUSH);
    command.args(["secrets", "get", "WHERE"]).env("HUSH_CONFIG_DIR", dir).current_dir(&nested);
    command.env("HUSH_ENV", "dev").env("HUSH_PATH", "/").env_remove("HUSH_PROJECT");
    let output = command.output().await.unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout), "dev-root\n", "{}", String::from_utf8_lossy(&output.stderr));

    // A misspelt key in the file is named, not ignored.
    std::fs::write(workdir.path().join(".hush.toml"), "projet = \"x\"\n").unwrap();
    let typo = run_in(dir, &nested, &["secrets", "get", "WHERE"]).await;
    assert!(!typo.success && typo.stderr.contains("projet"), "{}", typo.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envs_imports_members_and_batches_from_the_cli() {
    let server = TestServer::start(Backend::Sqlite).await;
    let config = tempfile::tempdir().unwrap();
    let dir = config.path();
    login(&server, dir, None).await;
    hush(dir, &["projects", "create", "shop"]).await.unwrap();
    let p = ["--project", "shop"];

    // Duplicate project names are refused.
    let twin = hush(dir, &["projects", "create", "shop"]).await.unwrap_err();
    assert!(twin.contains("AlreadyExists") && twin.contains("shop"), "{twin}");

    // Environments.
    let id = hush(dir, &[&["envs", "create", "qa", "--name", "Quality"][..], &p].concat()).await.unwrap();
    assert!(uuid::Uuid::parse_str(id.trim()).is_ok(), "{id}");
    let listed = hush(dir, &[&["envs", "list"][..], &p].concat()).await.unwrap();
    let slugs: Vec<&str> = listed.lines().map(|l| l.split('\t').next().unwrap()).collect();
    assert_eq!(slugs, ["dev", "staging", "prod", "qa"], "{listed}");
    let table = hush(dir, &[&["envs", "list", "--output", "table"][..], &p].concat()).await.unwrap();
    assert!(table.starts_with("SLUG     NAME         ID\n"), "{table}");
    let refused = hush(dir, &[&["envs", "delete", "qa"][..], &p].concat()).await.unwrap_err();
    assert!(refused.contains("--yes"), "{refused}");
    hush(dir, &[&["envs", "delete", "qa", "--yes"][..], &p].concat()).await.unwrap();
    assert!(!hush(dir, &[&["envs", "list"][..], &p].concat()).await.unwrap().contains("qa"));

    // Batch set (one transaction: a bad key sets nothing) and batch delete.
    let bad = hush(dir, &[&["secrets", "set", "A=1", "bad key=2"][..], &p].concat()).await.unwrap_err();
    assert!(bad.contains("InvalidArgument"), "{bad}");
    assert!(hush(dir, &[&["secrets", "get", "A"][..], &p].concat()).await.is_err(), "nothing of a refused batch");
    hush(dir, &[&["secrets", "set", "A=1", "B=x=y", "C=--z"][..], &p].concat()).await.unwrap();
    let listed = hush(dir, &[&["secrets", "list"][..], &p].concat()).await.unwrap();
    assert_eq!(listed, "A=1\nB='x=y'\nC=--z\n");
    hush(dir, &[&["secrets", "delete", "A", "B"][..], &p].concat()).await.unwrap();
    assert_eq!(hush(dir, &[&["secrets", "list"][..], &p].concat()).await.unwrap(), "C=--z\n");

    // Imports: /app sees /shared's secrets.
    hush(dir, &[&["secrets", "set", "SHARED=s", "--path", "/shared"][..], &p].concat()).await.unwrap();
    hush(dir, &[&["folders", "create", "--path", "/app"][..], &p].concat()).await.unwrap();
    let made = ["imports", "create", "--path", "/app", "--from-env", "dev", "--from-path", "/shared"];
    let import_id = hush(dir, &[&made[..], &p].concat()).await.unwrap().trim().to_owned();
    let listed = hush(dir, &[&["imports", "list", "--path", "/app"][..], &p].concat()).await.unwrap();
    assert_eq!(listed, format!("{import_id}\tdev\t/shared\n"));
    let through = ["secrets", "get", "SHARED", "--path", "/app", "--include-imports"];
    assert_eq!(hush(dir, &[&through[..], &p].concat()).await.unwrap(), "s\n");
    hush(dir, &[&["imports", "delete", &import_id, "--path", "/app"][..], &p].concat()).await.unwrap();
    assert!(hush(dir, &[&through[..], &p].concat()).await.is_err(), "the import is gone");

    // Members: who holds which role, by name.
    hush(dir, &["identities", "create", "deployer"]).await.unwrap();
    hush(dir, &["roles", "assign", "--project", "shop", "--identity", "deployer", "--role", "viewer"]).await.unwrap();
    let members = hush(dir, &[&["members", "list"][..], &p].concat()).await.unwrap();
    let lines: Vec<Vec<&str>> = members.lines().map(|l| l.split('\t').collect()).collect();
    assert!(lines.iter().any(|l| l[0] == "deployer" && l[2] == "viewer"), "{members}");
    let as_json = json_lines(&hush(dir, &[&["members", "list", "--output", "json"][..], &p].concat()).await.unwrap());
    let deployer = as_json.iter().find(|m| m["identityName"] == "deployer").expect("deployer listed");
    assert_eq!((&deployer["roleId"], &deployer["roleName"]), (&"viewer".into(), &"viewer".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_json_style_time_flags_everywhere_and_unknown_event_types_refused() {
    let server = TestServer::start(Backend::Sqlite).await;
    let config = tempfile::tempdir().unwrap();
    let dir = config.path();
    login(&server, dir, None).await;
    let project: serde_json::Value =
        serde_json::from_str(&hush(dir, &["projects", "create", "styled", "--output", "json"]).await.unwrap()).unwrap();
    assert!(project["createTime"].is_string() && project["orgId"].is_string(), "lowerCamelCase: {project}");
    for args in [
        &["projects", "list", "--output", "json"][..],
        &["identities", "list", "--output", "json"],
        &["roles", "list", "--output", "json"],
        &["envs", "list", "--project", "styled", "--output", "json"],
        &["audit", "list", "--output", "json", "--limit", "5"],
    ] {
        let out = hush(dir, args).await.unwrap_or_else(|e| panic!("{args:?}: {e}"));
        for line in json_lines(&out) {
            let object = line.as_object().unwrap();
            assert!(object.keys().all(|k| !k.contains('_')), "{args:?}: no snake_case key in {line}");
        }
    }

    // --since and --until take the same forms (RFC 3339 or a duration ago), in the CLI and the HTTP export.
    let recent = hush(dir, &["audit", "list", "--since", "1h", "--until", "0s", "--event", "create-project"]).await;
    assert_eq!(json_lines(&recent.unwrap()).len(), 1);
    let before = hush(dir, &["audit", "list", "--until", "1h", "--event", "create-project"]).await.unwrap();
    assert_eq!(before, "", "nothing was created an hour ago");
    let token = server.admin_token().await;
    let auth = format!("Bearer {token}");
    let path = "/api/v1/audit-logs/export?since=1h&eventType=create-project";
    let (status, body) = common::http1::exchange(server.addr, "GET", path, &[("authorization", &auth)], "").await;
    assert_eq!((status.as_u16(), body.lines().count()), (200, 1), "{body}");

    // Audit filters take names too; a name or value that matches nothing is an error, never an empty answer.
    let by_name = hush(dir, &["audit", "list", "--project", "styled", "--event", "create-project"]).await.unwrap();
    assert_eq!(json_lines(&by_name).len(), 1, "{by_name}");
    let unknown = hush(dir, &["audit", "list", "--project", "stiled"]).await.unwrap_err();
    assert!(unknown.contains("did you mean styled?"), "{unknown}");
    let backwards = hush(dir, &["audit", "list", "--since", "30m", "--until", "1h"]).await.unwrap_err();
    assert!(backwards.contains("end_time"), "{backwards}");
    for query in ["actorType=bogus", "userAgentType=bogus", "projectId=not-a-uuid"] {
        let path = format!("/api/v1/audit-logs/export?{query}");
        let (status, body) = common::http1::exchange(server.addr, "GET", &path, &[("authorization", &auth)], "").await;
        assert_eq!(status.as_u16(), 400, "{query}: {body}");
    }

    // An event type hush never records is an error naming it, with the near ones.
    let bogus = hush(dir, &["audit", "list", "--event", "create-projet"]).await.unwrap_err();
    assert!(bogus.contains("InvalidArgument") && bogus.contains("'create-projet'"), "{bogus}");
    assert!(bogus.contains("create-project"), "the near type is suggested: {bogus}");
    let path = "/api/v1/audit-logs/export?eventType=bogus";
    let (status, body) = common::http1::exchange(server.addr, "GET", path, &[("authorization", &auth)], "").await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_read_by_head_ends_quietly() {
    let server = TestServer::start(Backend::Sqlite).await;
    let config = tempfile::tempdir().unwrap();
    let dir = config.path();
    login(&server, dir, None).await;
    hush(dir, &["projects", "create", "piped"]).await.unwrap();
    // More than a pipe holds (64 KiB), so the writer meets the closed pipe.
    let pairs: Vec<String> = (0..100).map(|i| format!("K{i:03}={}", "v".repeat(1000))).collect();
    let mut args = vec!["secrets", "set", "--project", "piped"];
    args.extend(pairs.iter().map(String::as_str));
    hush(dir, &args).await.unwrap();
    for output in ["text", "json"] {
        let mut child = tokio::process::Command::new(common::cli::HUSH)
            .args(["secrets", "list", "--project", "piped", "--output", output])
            .env("HUSH_CONFIG_DIR", dir)
            .current_dir(dir)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let finished = child.wait_with_output().await.unwrap();
        let stderr = String::from_utf8_lossy(&finished.stderr);
        assert!(finished.status.success() && stderr.is_empty(), "{output}: {:?} {stderr}", finished.status);
    }
}

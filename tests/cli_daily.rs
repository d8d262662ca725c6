//! The CLI for daily work, run as a user would against a real server: programs started with their secrets
//! (`hush run`), exports other tools read (`hush export`), and values that never pass through the command line.

mod common;

use std::process::Stdio;

use common::{
    Backend, TestServer,
    cli::{HUSH, hush},
};
use tokio::{io::AsyncWriteExt, process::Command};

/// Values that break naive quoting: newlines, quotes, `$`, `=`, `#`, unicode, leading dashes, trailing newline.
const TRICKY: [(&str, &str); 6] = [
    ("MULTI_LINE", "line one\nline \"two\"\n  indented\n"),
    ("QUOTES", "it's a \"test\" with `ticks` and \\backslashes\\"),
    ("SHELLISH", "$HOME ${PATH} $(whoami) = # not a comment"),
    ("UNICODE", "pässwörd ✓ 密码"),
    ("DASHES", "--not-a-flag -x"),
    ("EMPTY", ""),
];

/// A logged-in CLI session on a fresh server, with a project; (server, config dir, project id).
async fn session() -> (TestServer, tempfile::TempDir, String) {
    let server = TestServer::start(Backend::Sqlite).await;
    let config = tempfile::tempdir().unwrap();
    let bootstrap = server.data_dir.path().join("bootstrap.json");
    let login = ["login", "--server", &server.url(), "--from-file", bootstrap.to_str().unwrap()];
    hush(config.path(), &login).await.unwrap();
    let project = hush(config.path(), &["projects", "create", "daily"]).await.unwrap().trim().to_owned();
    (server, config, project)
}

/// `hush args…` with `stdin` written to its standard input; (success, stdout, stderr, exit code).
async fn hush_with_stdin(dir: &std::path::Path, args: &[&str], stdin: &[u8]) -> (bool, Vec<u8>, String, i32) {
    let mut child = Command::new(HUSH)
        .args(args)
        .env("HUSH_CONFIG_DIR", dir)
        .env_remove("HUSH_PROJECT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).await.unwrap();
    drop(input);
    let output = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.success(), output.stdout, stderr, output.status.code().unwrap_or(-1))
}

/// Stores each (key, value) through stdin, so that no value is ever an argument.
async fn store(dir: &std::path::Path, project: &str, secrets: &[(&str, &str)]) {
    for (key, value) in secrets {
        let (ok, _, stderr, _) =
            hush_with_stdin(dir, &["secrets", "set", key, "-", "--project", project], value.as_bytes()).await;
        assert!(ok, "{key}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_from_stdin_and_files_are_stored_byte_exact_and_never_on_the_command_line() {
    let (_server, config, project) = session().await;
    let dir = config.path();
    store(dir, &project, &TRICKY).await;
    for (key, value) in TRICKY {
        let raw = hush(dir, &["secrets", "get", key, "--raw", "--project", &project]).await.unwrap();
        assert_eq!(raw, value, "{key}");
    }
    let file = dir.join("value.txt");
    std::fs::write(&file, "from a file\n\twith a tab\n").unwrap();
    hush(dir, &["secrets", "set", "FROM_FILE", "--value-file", file.to_str().unwrap(), "--project", &project])
        .await
        .unwrap();
    let raw = hush(dir, &["secrets", "get", "FROM_FILE", "--raw", "--project", &project]).await.unwrap();
    assert_eq!(raw, "from a file\n\twith a tab\n");
    // Without --raw a newline follows the value, as before.
    let printed = hush(dir, &["secrets", "get", "DASHES", "--project", &project]).await.unwrap();
    assert_eq!(printed, "--not-a-flag -x\n");

    // While `secrets set KEY -` waits for its value, the process's command line holds no trace of it.
    let mut child = Command::new(HUSH)
        .args(["secrets", "set", "WATCHED", "-", "--project", &project])
        .env("HUSH_CONFIG_DIR", dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", child.id().unwrap())).unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(b"s3cr3t-never-in-ps").await.unwrap();
    drop(input);
    assert!(child.wait().await.unwrap().success());
    assert!(!String::from_utf8_lossy(&cmdline).contains("s3cr3t"), "{cmdline:?}");
    let raw = hush(dir, &["secrets", "get", "WATCHED", "--raw", "--project", &project]).await.unwrap();
    assert_eq!(raw, "s3cr3t-never-in-ps");

    // A value larger than a secret may hold is refused before it is read whole, and nothing is stored.
    let huge = vec![b'x'; 64 * 1024 + 1];
    let (ok, _, stderr, _) = hush_with_stdin(dir, &["secrets", "set", "HUGE", "-", "--project", &project], &huge).await;
    assert!(!ok && stderr.contains("65536 bytes"), "{stderr}");
    assert!(hush(dir, &["secrets", "get", "HUGE", "--project", &project]).await.is_err());
    // No value, no file, and stdin not a terminal: a clear error instead of a hang or an empty secret.
    let (ok, _, stderr, _) = hush_with_stdin(dir, &["secrets", "set", "NOTHING", "--project", &project], b"").await;
    assert!(!ok && stderr.contains("--value-file"), "{stderr}");
    // `secrets list` quotes as dotenv, so a multi-line value stays on its line.
    let listed = hush(dir, &["secrets", "list", "--project", &project]).await.unwrap();
    assert!(listed.contains("MULTI_LINE=\"line one\\nline \\\"two\\\"\\n  indented\\n\"\n"), "{listed}");
}

/// On a terminal (a real pseudo-terminal, made by util-linux `script`), `secrets set KEY` asks for the value and
/// does not echo it: what is typed reaches the server, not the screen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_prompt_on_a_terminal_does_not_echo_the_value() {
    use tokio::io::AsyncReadExt;
    let (_server, config, project) = session().await;
    let dir = config.path();
    let command = format!("{HUSH} secrets set TYPED --project {project}");
    let mut child = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("HUSH_CONFIG_DIR", dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux script");
    let mut screen = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    // Type only once the prompt is up: echo is off from then on (typed earlier, the terminal would echo it).
    let prompt = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        let mut buf = [0u8; 256];
        while !String::from_utf8_lossy(&seen).contains("not shown") {
            let n = screen.read(&mut buf).await.unwrap();
            assert!(n > 0, "the terminal closed before a prompt: {}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&buf[..n]);
        }
    });
    prompt.await.expect("a prompt within 20 s");
    let mut keyboard = child.stdin.take().unwrap();
    keyboard.write_all(b"typed-in-secret\r").await.unwrap();
    let mut rest = Vec::new();
    screen.read_to_end(&mut rest).await.unwrap();
    assert!(child.wait().await.unwrap().success());
    drop(keyboard);
    seen.extend_from_slice(&rest);
    let screen = String::from_utf8_lossy(&seen);
    assert!(!screen.contains("typed-in-secret"), "the value is not echoed: {screen:?}");
    assert!(screen.contains("TYPED is at version 1"), "{screen:?}");
    let raw = hush(dir, &["secrets", "get", "TYPED", "--raw", "--project", &project]).await.unwrap();
    assert_eq!(raw, "typed-in-secret", "the line break is not part of the value");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_starts_the_program_with_the_secrets_and_returns_its_exit_code() {
    let (_server, config, project) = session().await;
    let dir = config.path();
    store(dir, &project, &[("DB_PASSWORD", "pa$$ word\n"), ("API_KEY", "k-1")]).await;
    let printed =
        hush(dir, &["run", "--project", &project, "--", "sh", "-c", r#"printf %s "$DB_PASSWORD""#]).await.unwrap();
    assert_eq!(printed, "pa$$ word\n");
    // The environment is kept, unless --clean-env.
    let script = r#"printf '%s|%s' "$API_KEY" "${HUSH_TEST_MARKER-unset}""#;
    let mut kept = Command::new(HUSH);
    kept.args(["run", "--project", &project, "--", "/bin/sh", "-c", script]).env("HUSH_CONFIG_DIR", dir);
    let output = kept.env("HUSH_TEST_MARKER", "inherited").output().await.unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout), "k-1|inherited");
    let mut clean = Command::new(HUSH);
    clean.args(["run", "--clean-env", "--project", &project, "--", "/bin/sh", "-c", script]);
    let output = clean.env("HUSH_CONFIG_DIR", dir).env("HUSH_TEST_MARKER", "inherited").output().await.unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout), "k-1|unset");

    let (ok, _, _, code) = hush_with_stdin(dir, &["run", "--project", &project, "--", "sh", "-c", "exit 7"], b"").await;
    assert!(!ok && code == 7, "the program's exit code: {code}");
    // A key that cannot be a variable name is named before anything starts.
    store(dir, &project, &[("not.a-name", "x")]).await;
    let refused = hush(dir, &["run", "--project", &project, "--", "sh", "-c", "echo started"]).await.unwrap_err();
    assert!(refused.contains("not.a-name") && !refused.contains("started"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_round_trip_every_value() {
    let (_server, config, project) = session().await;
    let dir = config.path();
    store(dir, &project, &TRICKY).await;

    // `eval "$(hush export --format shell)"` sets every variable exactly.
    let hush_bin = HUSH;
    for (key, value) in TRICKY {
        let script =
            format!(r#"eval "$("{hush_bin}" export --format shell --project {project})" && printf %s "${key}""#);
        let output = Command::new("bash").args(["-c", &script]).env("HUSH_CONFIG_DIR", dir).output().await.unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        assert_eq!(String::from_utf8(output.stdout).unwrap(), value, "{key}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&hush(dir, &["export", "--format", "json", "--project", &project]).await.unwrap())
            .unwrap();
    for (key, value) in TRICKY {
        assert_eq!(json[key], value, "{key}");
    }
    // Every line of dotenv and YAML is one secret, whatever its value holds.
    for format in ["dotenv", "yaml"] {
        let text = hush(dir, &["export", "--format", format, "--project", &project]).await.unwrap();
        assert_eq!(text.lines().count(), TRICKY.len(), "{format}: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_watch_restarts_the_program_when_a_secret_changes() {
    let (_server, config, project) = session().await;
    let dir = config.path();
    store(dir, &project, &[("V", "v1")]).await;
    let seen = dir.join("seen.txt");
    let script = format!(r#"printf '%s\n' "$V" >> '{}'; exec sleep 60"#, seen.display());
    let mut watching = Command::new(HUSH)
        .args(["run", "--watch", "--grace", "2s", "--project", &project, "--", "sh", "-c", &script])
        .env("HUSH_CONFIG_DIR", dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let read = || std::fs::read_to_string(&seen).unwrap_or_default();
    let wait_for = async |expected: &str| {
        let started = std::time::Instant::now();
        while read() != expected {
            assert!(started.elapsed() < std::time::Duration::from_secs(10), "{:?} instead of {expected:?}", read());
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        started.elapsed()
    };
    wait_for("v1\n").await;
    // A change elsewhere in the project (another environment) does not restart it.
    let other = ["secrets", "set", "V", "other", "--project", &project, "--env", "prod"];
    hush(dir, &other).await.unwrap();
    store(dir, &project, &[("V", "v2")]).await;
    let took = wait_for("v1\nv2\n").await;
    assert!(took < std::time::Duration::from_secs(1), "restarted {took:?} after the change");

    // SIGTERM to hush reaches the program; hush exits with the program's status (killed by TERM: 143).
    let pid = rustix::process::Pid::from_raw(watching.id().unwrap() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let status = tokio::time::timeout(std::time::Duration::from_secs(10), watching.wait()).await.unwrap().unwrap();
    assert_eq!(status.code(), Some(143), "{status:?}");
    let mut stderr = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut watching.stderr.take().unwrap(), &mut stderr).await.unwrap();
    assert!(stderr.contains("restarting"), "{stderr}");
    assert_eq!(read(), "v1\nv2\n", "exactly one restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_watch_can_signal_instead_of_restarting() {
    let (_server, config, project) = session().await;
    let dir = config.path();
    store(dir, &project, &[("V", "v1")]).await;
    let seen = dir.join("seen.txt");
    let file = seen.display();
    let script =
        format!(r#"echo "start $V" >> '{file}'; trap 'echo reload >> "{file}"' HUP; while :; do sleep 0.05; done"#);
    let mut watching = Command::new(HUSH)
        .args(["run", "--watch", "--watch-signal", "HUP", "--project", &project, "--", "sh", "-c", &script])
        .env("HUSH_CONFIG_DIR", dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let read = || std::fs::read_to_string(&seen).unwrap_or_default();
    common::receiver::eventually(std::time::Duration::from_secs(10), "the start", || read() == "start v1\n").await;
    store(dir, &project, &[("V", "v2")]).await;
    common::receiver::eventually(std::time::Duration::from_secs(5), "the reload", || read() == "start v1\nreload\n")
        .await;
    // SIGTERM to hush ends the program too (a SIGKILL would leave it running).
    let pid = rustix::process::Pid::from_raw(watching.id().unwrap() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let status = tokio::time::timeout(std::time::Duration::from_secs(10), watching.wait()).await.unwrap().unwrap();
    assert!(!status.success(), "{status:?}");
}

/// `hush serve` as its own process on `listen` with `data`, answering health checks when this returns.
async fn serve(data: &std::path::Path, listen: &str) -> tokio::process::Child {
    let child = Command::new(HUSH)
        .args(["serve", "--data-dir", data.to_str().unwrap(), "--listen", listen])
        .env_remove("HUSH_DATABASE_URL")
        .env_remove("HUSH_ROOT_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("http://{listen}");
    for _ in 0..100 {
        if let Ok(channel) = tonic::transport::Channel::from_shared(url.clone()).unwrap().connect().await {
            let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
            if health.check(tonic_health::pb::HealthCheckRequest::default()).await.is_ok() {
                return child;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("hush serve did not come up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_subscribe_survives_a_server_restart_and_stops_on_a_refusal() {
    use tokio::io::AsyncBufReadExt;
    let data = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let mut server = serve(data.path(), &listen).await;
    let config = tempfile::tempdir().unwrap();
    let dir = config.path();
    let bootstrap = data.path().join("bootstrap.json");
    hush(dir, &["login", "--server", &format!("http://{listen}"), "--from-file", bootstrap.to_str().unwrap()])
        .await
        .unwrap();
    let project = hush(dir, &["projects", "create", "followed"]).await.unwrap().trim().to_owned();
    let mut subscriber = Command::new(HUSH)
        .args(["events", "subscribe", "secret:*", "--project", &project])
        .env("HUSH_CONFIG_DIR", dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut notes = tokio::io::BufReader::new(subscriber.stderr.take().unwrap()).lines();
    let mut events = tokio::io::BufReader::new(subscriber.stdout.take().unwrap()).lines();
    let note = notes.next_line().await.unwrap().unwrap();
    assert!(note.contains("subscribed to project") && note.contains("new events only"), "{note}");
    let set = async |key: &str| hush(dir, &["secrets", "set", key, "v", "--project", &project]).await.unwrap();
    let key_of = |line: String| {
        let event: serde_json::Value = serde_json::from_str(&line).unwrap();
        event["data"]["payload"]["secrets"][0]["secretKey"].as_str().unwrap().to_owned()
    };
    set("BEFORE_RESTART").await;
    assert_eq!(key_of(events.next_line().await.unwrap().unwrap()), "BEFORE_RESTART");

    // The server stops; a change is made as soon as it is back, before the subscriber can have returned.
    let pid = rustix::process::Pid::from_raw(server.id().unwrap() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    server.wait().await.unwrap();
    server = serve(data.path(), &listen).await;
    set("WHILE_AWAY").await;
    set("AFTER_RESTART").await;
    let mut after = Vec::new();
    while after.len() < 2 {
        let line = tokio::time::timeout(std::time::Duration::from_secs(20), events.next_line()).await;
        after.push(key_of(line.expect("events after the restart").unwrap().unwrap()));
    }
    assert_eq!(after, ["WHILE_AWAY", "AFTER_RESTART"], "none lost, none repeated");
    let mut resumed = false;
    while let Ok(Ok(Some(note))) = tokio::time::timeout(std::time::Duration::from_millis(200), notes.next_line()).await
    {
        resumed |= note.contains("subscribed to project") && note.contains("after cursor");
    }
    assert!(resumed, "says it resumed");

    // The project is deleted: a refusal, not a disconnect. It exits non-zero and says why.
    let session: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("session.json")).unwrap()).unwrap();
    let token: tonic::metadata::MetadataValue<_> =
        format!("Bearer {}", session["access_token"].as_str().unwrap()).parse().unwrap();
    let channel = tonic::transport::Channel::from_shared(format!("http://{listen}")).unwrap().connect().await.unwrap();
    let mut projects = hush::pb::projects_service_client::ProjectsServiceClient::with_interceptor(
        channel,
        move |mut request: tonic::Request<()>| {
            request.metadata_mut().insert("authorization", token.clone());
            Ok(request)
        },
    );
    projects.delete_project(hush::pb::DeleteProjectRequest { project_id: project.clone() }).await.unwrap();
    let status = tokio::time::timeout(std::time::Duration::from_secs(10), subscriber.wait()).await.unwrap().unwrap();
    assert!(!status.success(), "{status:?}");
    let mut rest = String::new();
    while let Ok(Some(line)) = notes.next_line().await {
        rest.push_str(&line);
    }
    assert!(rest.contains("NotFound"), "{rest}");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_then_import_round_trips_in_one_batch() {
    let (_server, config, project) = session().await;
    let dir = config.path();
    store(dir, &project, &TRICKY).await;
    let dotenv = hush(dir, &["export", "--format", "dotenv", "--project", &project]).await.unwrap();
    let file = dir.join("exported.env");
    std::fs::write(&file, &dotenv).unwrap();
    let into = ["--project", project.as_str(), "--path", "/copy"];
    let import = |extra: &'static [&'static str]| {
        let mut args = vec!["secrets", "import", file.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.extend_from_slice(&into);
        args
    };
    // Dry run: what would happen, keys only, nothing written.
    let planned = hush(dir, &import(&["--dry-run"])).await.unwrap();
    assert_eq!(planned.lines().filter(|l| l.starts_with("create ")).count(), TRICKY.len(), "{planned}");
    assert!(!planned.contains("line one"), "no value is printed: {planned}");
    let listed = hush(dir, &["secrets", "list", "--project", &project, "--path", "/copy"]).await;
    assert!(listed.is_err() || listed.unwrap().is_empty(), "the dry run wrote nothing");

    hush(dir, &import(&[])).await.unwrap();
    for (key, value) in TRICKY {
        let raw = hush(dir, &["secrets", "get", key, "--raw", "--project", &project, "--path", "/copy"]).await.unwrap();
        assert_eq!(raw, value, "{key}");
    }
    // Again: nothing changes; one edited value is an update.
    let again = hush(dir, &import(&[])).await.unwrap();
    assert_eq!(again.lines().filter(|l| l.starts_with("unchanged ")).count(), TRICKY.len(), "{again}");
    std::fs::write(&file, format!("{dotenv}ADDED=new\n").replace("DASHES='--not-a-flag -x'", "DASHES=changed"))
        .unwrap();
    let changed = hush(dir, &import(&[])).await.unwrap();
    assert!(changed.contains("update DASHES\n") && changed.contains("create ADDED\n"), "{changed}");
    let raw = hush(dir, &["secrets", "get", "DASHES", "--raw", "--project", &project, "--path", "/copy"]).await;
    assert_eq!(raw.unwrap(), "changed");

    // JSON too; a broken file changes nothing and says where.
    let json = dir.join("secrets.json");
    std::fs::write(&json, r#"{"FROM_JSON": "j\nk"}"#).unwrap();
    hush(dir, &["secrets", "import", json.to_str().unwrap(), "--project", &project]).await.unwrap();
    let raw = hush(dir, &["secrets", "get", "FROM_JSON", "--raw", "--project", &project]).await.unwrap();
    assert_eq!(raw, "j\nk");
    std::fs::write(&file, "GOOD=1\nBAD='unclosed\n").unwrap();
    let refused = hush(dir, &import(&[])).await.unwrap_err();
    assert!(refused.contains("line 2") && refused.contains("BAD"), "{refused}");
    let good = hush(dir, &["secrets", "get", "GOOD", "--project", &project, "--path", "/copy"]).await;
    assert!(good.is_err(), "nothing of a refused file is written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_expire_clearly_renew_from_the_environment_and_log_out() {
    let server = TestServer::start(Backend::Sqlite).await;
    let config = tempfile::tempdir().unwrap();
    let dir = config.path();
    // An address without a scheme is plain HTTP, as `hush serve --listen` takes it.
    let bare = server.url().trim_start_matches("http://").to_owned();
    let bootstrap = server.data_dir.path().join("bootstrap.json");
    hush(dir, &["login", "--server", &bare, "--from-file", bootstrap.to_str().unwrap()]).await.unwrap();
    hush(dir, &["projects", "list"]).await.unwrap();

    // An expired session says what to do; with credentials in the environment it logs in again by itself.
    let path = dir.join("session.json");
    let mut session: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let old_token = session["access_token"].as_str().unwrap().to_owned();
    session["expires_at"] = "2020-01-01T00:00:00+00:00".into();
    std::fs::write(&path, session.to_string()).unwrap();
    let expired = hush(dir, &["projects", "list"]).await.unwrap_err();
    assert!(expired.contains("session expired") && expired.contains("hush login"), "{expired}");
    let renewed = Command::new(HUSH)
        .args(["projects", "list"])
        .env("HUSH_CONFIG_DIR", dir)
        .env("HUSH_CLIENT_ID", &server.bootstrap.client_id)
        .env("HUSH_CLIENT_SECRET", &server.bootstrap.client_secret)
        .output()
        .await
        .unwrap();
    assert!(renewed.status.success(), "{}", String::from_utf8_lossy(&renewed.stderr));
    let session: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let token = session["access_token"].as_str().unwrap().to_owned();
    assert_ne!(token, old_token, "a new token was saved");

    // Logout revokes the token on the server and deletes the session.
    hush(dir, &["logout"]).await.unwrap();
    assert!(!path.exists());
    let mut with_old = Command::new(HUSH);
    with_old.args(["projects", "list", "--server", &server.url()]).env("HUSH_TOKEN", &token);
    let output = with_old.env("HUSH_CONFIG_DIR", dir).output().await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("Unauthenticated"), "{stderr}");
    assert!(hush(dir, &["projects", "list"]).await.unwrap_err().contains("hush login"));

    // A server that is not there is said once, with what to check.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut nowhere = Command::new(HUSH);
    nowhere.args(["projects", "list", "--server", &format!("127.0.0.1:{port}")]).env("HUSH_TOKEN", "t");
    let output = nowhere.env("HUSH_CONFIG_DIR", dir).output().await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.matches("tcp connect error").count(), 1, "{stderr}");
    assert!(stderr.contains("Connection refused") && stderr.contains("hush serve"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_generate_for_three_shells() {
    let config = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let script = hush(config.path(), &["completions", shell]).await.unwrap();
        assert!(script.contains("hush") && script.contains("export") && script.len() > 1000, "{shell}");
    }
    let bash = hush(config.path(), &["completions", "bash"]).await.unwrap();
    let file = config.path().join("hush.bash");
    std::fs::write(&file, &bash).unwrap();
    let checked = Command::new("bash").arg("-n").arg(&file).status().await.unwrap();
    assert!(checked.success(), "the bash script parses");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_stand_for_ids_and_near_misses_are_suggested() {
    let (_server, config, project) = session().await;
    let dir = config.path();
    // `session` made the project "daily": its name works wherever its id does.
    hush(dir, &["secrets", "set", "BY_NAME", "v", "--project", "daily"]).await.unwrap();
    assert_eq!(hush(dir, &["secrets", "get", "BY_NAME", "--raw", "--project", &project]).await.unwrap(), "v");
    let near = hush(dir, &["secrets", "list", "--project", "dialy"]).await.unwrap_err();
    assert!(near.contains("no project is named 'dialy'; did you mean daily?"), "{near}");
    // (A name several projects share is refused listing their ids: `names` unit tests.)

    // Roles are given by names too: project, identity and role.
    hush(dir, &["identities", "create", "ci-runner"]).await.unwrap();
    let assign = ["roles", "assign", "--project", "daily", "--identity", "ci-runner", "--role", "viewer"];
    hush(dir, &assign).await.unwrap();
    let unknown = ["roles", "assign", "--project", "daily", "--identity", "ci-runer", "--role", "viewer"];
    let refused = hush(dir, &unknown).await.unwrap_err();
    assert!(refused.contains("did you mean ci-runner?"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folders_versions_rollback_recursive_lists_and_project_deletion() {
    let (_server, config, project) = session().await;
    let dir = config.path();
    let p = ["--project", project.as_str()];
    let with = |args: &[&'static str], extra: &[&str]| -> Vec<String> {
        args.iter()
            .map(|a| a.to_string())
            .chain(extra.iter().map(|a| a.to_string()))
            .chain(p.iter().map(|a| a.to_string()))
            .collect()
    };
    let run = async |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        hush(dir, &args).await
    };
    run(with(&["folders", "create"], &["--path", "/api/v1"])).await.unwrap();
    assert_eq!(run(with(&["folders", "list", "--recursive"], &[])).await.unwrap(), "/api\n/api/v1\n");
    run(with(&["secrets", "set", "ROOT", "r"], &[])).await.unwrap();
    run(with(&["secrets", "set", "DEEP", "one"], &["--path", "/api/v1"])).await.unwrap();
    run(with(&["secrets", "set", "DEEP", "two"], &["--path", "/api/v1"])).await.unwrap();
    let listed = run(with(&["secrets", "list", "--recursive"], &[])).await.unwrap();
    assert_eq!(listed, "# /\nROOT=r\n# /api/v1\nDEEP=two\n");

    let versions = run(with(&["secrets", "versions", "DEEP"], &["--path", "/api/v1"])).await.unwrap();
    let numbers: Vec<&str> = versions.lines().map(|l| l.split('\t').next().unwrap()).collect();
    assert_eq!(numbers, ["2", "1"], "newest first: {versions}");
    assert!(!versions.contains("one") && !versions.contains("two"), "no values: {versions}");
    run(with(&["secrets", "rollback", "DEEP"], &["--to", "1", "--path", "/api/v1"])).await.unwrap();
    let raw = run(with(&["secrets", "get", "DEEP", "--raw"], &["--path", "/api/v1"])).await.unwrap();
    assert_eq!(raw, "one");

    let unconfirmed = run(with(&["folders", "delete"], &["--path", "/api"])).await.unwrap_err();
    assert!(unconfirmed.contains("--yes"), "{unconfirmed}");
    run(with(&["folders", "delete", "--yes"], &["--path", "/api"])).await.unwrap();
    assert_eq!(run(with(&["folders", "list", "--recursive"], &[])).await.unwrap(), "");

    let refused = hush(dir, &["projects", "delete", "daily"]).await.unwrap_err();
    assert!(refused.contains("--yes"), "{refused}");
    hush(dir, &["projects", "delete", "daily", "--yes"]).await.unwrap();
    assert!(!hush(dir, &["projects", "list"]).await.unwrap().contains(&project));
}

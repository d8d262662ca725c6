//! https on the one port: real certificates (rcgen, and `openssl` when installed), real clients (tonic, curl,
//! the `hush` binary), real processes for the start-up rules, self-signed mode and SIGHUP reloads.

mod common;

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use common::{Backend, Bearer, TestServer};
use hush::pb::{
    self, events_service_client::EventsServiceClient, identity_service_client::IdentityServiceClient,
    secrets_service_client::SecretsServiceClient,
};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    process::{Child, Command},
};
use tonic::{
    service::interceptor::InterceptedService,
    transport::{Certificate, Channel, ClientTlsConfig, Identity},
};

backend_tests!(grpc_json_sse_grpc_web_and_ui_work_over_https, client_certificates_are_required_with_a_client_ca);

/// A test certificate authority.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A PEM certificate and its PEM key.
struct Leaf {
    cert: String,
    key: String,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        Self { issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap() }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate for `names` (DNS names or IP addresses) signed by this CA.
    fn issue(&self, names: &[&str]) -> Leaf {
        let params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf { cert: cert.pem(), key: key.serialize_pem() }
    }
}

/// Writes a server certificate and key into `dir` (replacing them atomically, as deploy tools do).
fn install(dir: &Path, leaf: &Leaf) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("server.crt"), dir.join("server.key"));
    for (path, text) in [(&cert, &leaf.cert), (&key, &leaf.key)] {
        let temp = path.with_extension("new");
        std::fs::write(&temp, text).unwrap();
        std::fs::rename(&temp, path).unwrap();
    }
    (cert, key)
}

/// A gRPC channel to `url` trusting `ca_pem`, optionally presenting a client certificate.
async fn https_channel(url: &str, ca_pem: &str, client: Option<&Leaf>) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca_pem));
    if let Some(leaf) = client {
        tls = tls.identity(Identity::from_pem(&leaf.cert, &leaf.key));
    }
    Channel::from_shared(url.to_owned()).unwrap().tls_config(tls)?.connect().await
}

/// Logs in as the bootstrap admin over `channel`.
async fn login(channel: Channel, server: &TestServer) -> Result<String, tonic::Status> {
    let request = pb::LoginRequest {
        client_id: server.bootstrap.client_id.clone(),
        client_secret: server.bootstrap.client_secret.clone(),
    };
    Ok(IdentityServiceClient::new(channel).login(request).await?.into_inner().access_token)
}

/// Runs curl with `args`; None when curl is not installed.
async fn curl(args: &[&str]) -> Option<(bool, String)> {
    let output = Command::new("curl").args(["-sS", "--max-time", "5"]).args(args).output().await.ok()?;
    Some((output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned()))
}

async fn grpc_json_sse_grpc_web_and_ui_work_over_https(backend: Backend) {
    let ca = Ca::new("hush test CA");
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = install(certs.path(), &ca.issue(&["localhost", "127.0.0.1"]));
    let ca_file = certs.path().join("ca.crt");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let ui = tempfile::tempdir().unwrap();
    std::fs::write(ui.path().join("index.html"), "<h1>hush ui over tls</h1>").unwrap();
    let ui_dir = ui.path().to_owned();
    let server = TestServer::start_with(backend, |c| {
        c.tls.tls_cert = Some(cert);
        c.tls.tls_key = Some(key);
        c.ui_dir = Some(ui_dir);
        c.heartbeat_interval = Duration::from_millis(200);
    })
    .await;
    let https = format!("https://{}", server.addr);

    // gRPC (HTTP/2 via ALPN) with the CA, unary and streaming.
    let token = login(https_channel(&https, &ca.pem(), None).await.expect("TLS connect"), &server).await.unwrap();
    let authed = InterceptedService::new(https_channel(&https, &ca.pem(), None).await.unwrap(), Bearer::new(&token));
    // Over https: the channel is TLS.
    let project = common::create_project(authed.clone(), "tls").await;
    let mut events = EventsServiceClient::new(authed.clone())
        .subscribe(pb::SubscribeRequest { project_id: project.clone(), registrations: vec![], resume_after: None })
        .await
        .expect("event stream over https")
        .into_inner();
    let set = pb::CreateSecretRequest {
        project_id: project.clone(),
        environment: "dev".into(),
        secret_path: "/".into(),
        key: "K".into(),
        value: "v".into(),
        ..Default::default()
    };
    SecretsServiceClient::new(authed.clone()).create_secret(set).await.expect("set secret over https");
    assert!(!common::events::next_event(&mut events).await.secrets.is_empty());

    // A client that does not trust the CA is refused by its own TLS check.
    let untrusting = https_channel(&https, &Ca::new("other").pem(), None).await;
    assert!(untrusting.is_err(), "a certificate from an unknown CA must not verify");

    // Cleartext on the TLS port fails promptly, and the server keeps serving.
    let plain = tokio::time::timeout(Duration::from_secs(5), login(server.channel().await, &server)).await;
    assert!(plain.expect("a cleartext gRPC call fails within 5 s, no hang").is_err());
    let mut raw = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    raw.write_all(b"GET /ui/ HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), raw.read_to_end(&mut answer))
        .await
        .expect("the server closes a cleartext HTTP connection within 5 s")
        .ok();
    assert!(!String::from_utf8_lossy(&answer).contains("hush ui"), "nothing is served in cleartext");

    // A client that connects and says nothing does not hold up others' handshakes.
    let _silent = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let quick = tokio::time::timeout(Duration::from_secs(3), https_channel(&https, &ca.pem(), None)).await;
    assert!(quick.expect("TLS handshake while a silent client waits").is_ok());

    let ca_arg = ca_file.to_str().unwrap();
    let login_body = serde_json::json!({
        "clientId": server.bootstrap.client_id, "clientSecret": server.bootstrap.client_secret,
    })
    .to_string();
    let Some((ok, answer)) = curl(&[
        "--cacert",
        ca_arg,
        "-w",
        "\n%{http_version}",
        "-H",
        "content-type: application/json",
        "-d",
        &login_body,
        &format!("{https}/hush.v1.IdentityService/Login"),
    ])
    .await
    else {
        eprintln!("curl not installed: JSON, SSE, grpc-web and /ui/ over https not checked");
        return;
    };
    assert!(ok && answer.contains("accessToken") && answer.ends_with("\n2"), "JSON over HTTP/2: {answer}");
    let auth = format!("authorization: Bearer {token}");
    let url = format!("https://localhost:{}", server.addr.port());
    let (ok, answer) =
        curl(&["--http1.1", "--cacert", ca_arg, "-w", "\n%{http_version}", &format!("{url}/ui/")]).await.unwrap();
    assert!(ok && answer.contains("hush ui over tls") && answer.ends_with("\n1.1"), "/ui/ over HTTP/1.1: {answer}");

    // SSE: the stream stays open (curl stops it after 2 s) and carries heartbeats.
    let sse_body = serde_json::json!({ "projectId": project }).to_string();
    let (_, answer) = curl(&[
        "--http1.1",
        "-N",
        "--cacert",
        ca_arg,
        "--max-time",
        "2",
        "-H",
        &auth,
        "-H",
        "content-type: application/json",
        "-d",
        &sse_body,
        &format!("{url}/api/v1/events/subscribe/project-events"),
    ])
    .await
    .unwrap();
    assert!(answer.contains("heartbeat"), "SSE over https: {answer}");

    // grpc-web over HTTP/1.1: an empty Health/Check request frame.
    let frame = certs.path().join("frame");
    std::fs::write(&frame, [0u8, 0, 0, 0, 0]).unwrap();
    let (ok, answer) = curl(&[
        "--http1.1",
        "--cacert",
        ca_arg,
        "-i",
        "-H",
        "content-type: application/grpc-web+proto",
        "--data-binary",
        &format!("@{}", frame.display()),
        &format!("{url}/grpc.health.v1.Health/Check"),
    ])
    .await
    .unwrap();
    assert!(ok && answer.contains("application/grpc-web") && answer.contains("grpc-status:0"), "grpc-web: {answer}");
}

async fn client_certificates_are_required_with_a_client_ca(backend: Backend) {
    let (server_ca, client_ca) = (Ca::new("server CA"), Ca::new("client CA"));
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = install(certs.path(), &server_ca.issue(&["127.0.0.1"]));
    let client_ca_file = certs.path().join("clients.crt");
    std::fs::write(&client_ca_file, client_ca.pem()).unwrap();
    let server = TestServer::start_with(backend, |c| {
        c.tls.tls_cert = Some(cert);
        c.tls.tls_key = Some(key);
        c.tls.tls_client_ca = Some(client_ca_file);
    })
    .await;
    let https = format!("https://{}", server.addr);
    let attempt = |client: Option<Leaf>| {
        let (https, ca, server) = (https.clone(), server_ca.pem(), &server);
        async move {
            let channel = https_channel(&https, &ca, client.as_ref()).await.map_err(|e| e.to_string())?;
            login(channel, server).await.map_err(|e| e.to_string())
        }
    };

    assert!(attempt(None).await.is_err(), "a client without a certificate is refused");
    let stranger = Ca::new("someone else's CA").issue(&["client"]);
    assert!(attempt(Some(stranger)).await.is_err(), "a certificate from another CA is refused");
    assert!(attempt(Some(client_ca.issue(&["client"]))).await.is_ok(), "a signed client certificate works");
}

/// A self-signed certificate and key made by `openssl req -x509` in `dir` (with `extra` arguments); None when
/// openssl is not installed.
fn openssl_certificate(dir: &Path, name: &str, extra: &[&str]) -> Option<(PathBuf, PathBuf)> {
    let (cert, key) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
    let made = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .args(extra)
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status();
    made.is_ok_and(|s| s.success()).then_some((cert, key))
}

#[tokio::test]
async fn certificates_made_by_openssl_are_served() {
    let dir = tempfile::tempdir().unwrap();
    // The command the README gives: CA:FALSE, because rustls clients (the CLI) refuse a CA as server certificate.
    let Some((cert, key)) = openssl_certificate(dir.path(), "leaf", &["-addext", "basicConstraints=critical,CA:FALSE"])
    else {
        eprintln!("openssl not installed: not checked");
        return;
    };
    let (cert_path, key_path) = (cert.clone(), key);
    let server = TestServer::start_with(Backend::Sqlite, |c| {
        c.tls.tls_cert = Some(cert_path);
        c.tls.tls_key = Some(key_path);
    })
    .await;
    let pem = std::fs::read_to_string(&cert).unwrap();
    let url = format!("https://localhost:{}", server.addr.port());
    let channel = https_channel(&url, &pem, None).await;
    assert!(login(channel.expect("TLS connect"), &server).await.is_ok(), "gRPC over an openssl certificate");
    if let Some((ok, answer)) = curl(&["--cacert", cert.to_str().unwrap(), &format!("{url}/ui/")]).await {
        assert!(ok, "curl --cacert over an openssl certificate: {answer}");
    }
    server.stop().await;

    // openssl's default (CA:TRUE) is served, and the CLI's refusal says how to make a usable one.
    let (ca_cert, ca_key) = openssl_certificate(dir.path(), "ca", &[]).unwrap();
    let ca_cert_path = ca_cert.clone();
    let server = TestServer::start_with(Backend::Sqlite, |c| {
        c.tls.tls_cert = Some(ca_cert_path);
        c.tls.tls_key = Some(ca_key);
    })
    .await;
    let url = format!("https://localhost:{}", server.addr.port());
    if let Some((ok, answer)) = curl(&["--cacert", ca_cert.to_str().unwrap(), &format!("{url}/ui/")]).await {
        assert!(ok, "curl accepts openssl's default certificate: {answer}");
    }
    let config = tempfile::tempdir().unwrap();
    let (id, secret) = (&server.bootstrap.client_id, &server.bootstrap.client_secret);
    let ca_arg = ca_cert.to_str().unwrap();
    let args = ["login", "--server", &url, "--ca-cert", ca_arg, "--client-id", id, "--client-secret", secret];
    let refused = common::cli::hush(config.path(), &args).await.unwrap_err();
    assert!(refused.contains("basicConstraints=critical,CA:FALSE"), "{refused}");
}

/// A `hush serve` process whose JSON log lines arrive on a channel.
struct Process {
    child: Child,
    log: tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>,
}

impl Process {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(common::cli::HUSH)
            .arg("serve")
            .args(args)
            .env_remove("HUSH_ALLOW_PLAINTEXT")
            .envs(env.iter().copied())
            .env("HUSH_LOG_FORMAT", "json")
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let (send, log) = tokio::sync::mpsc::unbounded_channel();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let value = serde_json::from_str(&line).unwrap_or(serde_json::Value::String(line));
                if send.send(value).is_err() {
                    return;
                }
            }
        });
        Self { child, log }
    }

    /// The first log line whose message contains `text`; panics after 20 s.
    async fn wait_for(&mut self, text: &str) -> serde_json::Value {
        let search = async {
            while let Some(line) = self.log.recv().await {
                if line["fields"]["message"].as_str().unwrap_or_default().contains(text) {
                    return line;
                }
            }
            panic!("hush exited before logging '{text}'");
        };
        tokio::time::timeout(Duration::from_secs(20), search).await.unwrap_or_else(|_| panic!("no '{text}' in 20 s"))
    }
}

/// A free port on 127.0.0.1 (bound and released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test]
async fn cleartext_off_loopback_is_refused_unless_allowed() {
    let data = tempfile::tempdir().unwrap();
    let data_arg = data.path().to_str().unwrap();
    for listen in ["0.0.0.0:0", "[::]:0"] {
        let output = Command::new(common::cli::HUSH)
            .args(["serve", "--listen", listen, "--data-dir", data_arg])
            .env_remove("HUSH_ALLOW_PLAINTEXT")
            .output();
        let output = tokio::time::timeout(Duration::from_secs(20), output).await.expect("exits promptly").unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{listen} without TLS must not start");
        assert!(stderr.contains("--allow-plaintext") && stderr.contains("HUSH_ALLOW_PLAINTEXT"), "{stderr}");
    }
    let mut allowed =
        Process::start(&["--listen", "0.0.0.0:0", "--data-dir", data_arg], &[("HUSH_ALLOW_PLAINTEXT", "true")]);
    allowed.wait_for("hush is listening").await;
}

#[tokio::test]
async fn self_signed_certificate_is_written_fingerprinted_and_usable_by_the_cli() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut hush =
        Process::start(&["--listen", &listen, "--data-dir", data.path().to_str().unwrap(), "--tls-self-signed"], &[]);
    let announced = hush.wait_for("self-signed").await;
    hush.wait_for("hush is listening").await;

    let cert = data.path().join(hush::tls::SELF_SIGNED_CERT_FILE);
    let key = data.path().join(hush::tls::SELF_SIGNED_KEY_FILE);
    assert_eq!(announced["fields"]["sha256"].as_str().unwrap(), hush::tls::fingerprint(&cert).unwrap());
    let openssl = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(&cert)
        .output();
    if let Some(output) = openssl.ok().filter(|o| o.status.success()) {
        let printed = String::from_utf8(output.stdout).unwrap();
        assert!(printed.trim().ends_with(announced["fields"]["sha256"].as_str().unwrap()), "{printed}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600, "the key is private");
    }

    let config = tempfile::tempdir().unwrap();
    let bootstrap = data.path().join("bootstrap.json");
    let server = format!("https://localhost:{port}");
    let (cert_arg, bootstrap_arg) = (cert.to_str().unwrap(), bootstrap.to_str().unwrap());
    let refused = common::cli::hush(config.path(), &["login", "--server", &server, "--from-file", bootstrap_arg]).await;
    assert!(refused.unwrap_err().contains("--ca-cert"), "without the CA the CLI says what to pass");
    common::cli::hush(
        config.path(),
        &["login", "--server", &server, "--ca-cert", cert_arg, "--from-file", bootstrap_arg],
    )
    .await
    .expect("login over https with --ca-cert");
    let id =
        common::cli::hush(config.path(), &["projects", "create", "over-tls"]).await.expect("the session keeps the CA");
    let listed = common::cli::hush(config.path(), &["projects", "list"]).await.unwrap();
    assert!(listed.contains(id.trim()), "{listed}");
    let by_ip = format!("https://127.0.0.1:{port}");
    common::cli::hush(config.path(), &["projects", "list", "--server", &by_ip, "--ca-cert", cert_arg])
        .await
        .expect("the certificate also names 127.0.0.1");
}

#[cfg(unix)]
#[tokio::test]
async fn sighup_serves_replaced_certificates_while_open_streams_go_on() {
    let (old_ca, new_ca) = (Ca::new("old CA"), Ca::new("new CA"));
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = install(dir.path(), &old_ca.issue(&["127.0.0.1"]));
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut hush = Process::start(
        &["--listen", &listen, "--data-dir", data.path().to_str().unwrap(), "--heartbeat-interval", "200ms"],
        &[("HUSH_TLS_CERT", cert.to_str().unwrap()), ("HUSH_TLS_KEY", key.to_str().unwrap())],
    );
    hush.wait_for("hush is listening").await;
    let bootstrap: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.path().join("bootstrap.json")).unwrap()).unwrap();
    let https = format!("https://{listen}");

    let old_channel = https_channel(&https, &old_ca.pem(), None).await.unwrap();
    let request = pb::LoginRequest {
        client_id: bootstrap["client_id"].as_str().unwrap().into(),
        client_secret: bootstrap["client_secret"].as_str().unwrap().into(),
    };
    let token = IdentityServiceClient::new(old_channel.clone()).login(request).await.unwrap().into_inner().access_token;
    let old = InterceptedService::new(old_channel, Bearer::new(&token));
    let project = common::create_project(old.clone(), "reload").await;
    let mut open_stream = EventsServiceClient::new(old)
        .subscribe(pb::SubscribeRequest { project_id: project.clone(), registrations: vec![], resume_after: None })
        .await
        .unwrap()
        .into_inner();

    install(dir.path(), &new_ca.issue(&["127.0.0.1"]));
    let pid = rustix::process::Pid::from_raw(hush.child.id().unwrap() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::HUP).unwrap();
    hush.wait_for("TLS certificate reloaded").await;

    assert!(https_channel(&https, &old_ca.pem(), None).await.is_err(), "new connections get the new certificate");
    let new = InterceptedService::new(https_channel(&https, &new_ca.pem(), None).await.unwrap(), Bearer::new(&token));
    let set = pb::CreateSecretRequest {
        project_id: project,
        environment: "dev".into(),
        secret_path: "/".into(),
        key: "AFTER_RELOAD".into(),
        value: "v".into(),
        ..Default::default()
    };
    SecretsServiceClient::new(new).create_secret(set).await.expect("a call on the new certificate");
    let event = common::events::next_event(&mut open_stream).await;
    assert_eq!(event.secrets[0].secret_key, "AFTER_RELOAD", "the stream opened before the reload goes on");

    // A broken replacement keeps the working certificate.
    std::fs::write(&key, "not a key").unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::HUP).unwrap();
    hush.wait_for("TLS reload failed").await;
    assert!(https_channel(&https, &new_ca.pem(), None).await.is_ok(), "the previous certificate stays in use");

    // Without a signal, a change of the files is noticed by polling.
    let polled_ca = Ca::new("polled CA");
    install(dir.path(), &polled_ca.issue(&["127.0.0.1"]));
    let reloaded = hush.wait_for("TLS certificate reloaded").await;
    assert_eq!(reloaded["fields"]["cause"], "file change");
    assert!(https_channel(&https, &polled_ca.pem(), None).await.is_ok(), "the polled certificate is served");
}

//! Audit stream delivery survives crashes and shares work safely: a `hush serve` process killed with SIGKILL
//! mid-delivery resumes after restart, and two instances on one PostgreSQL database never send concurrently
//! and take over from each other when one stops.

mod common;

use std::{collections::HashSet, process::Stdio, time::Duration};

use common::{
    Backend, TestServer,
    receiver::{Receiver, eventually},
};
use hush::pb::{
    self, audit_streams_service_client::AuditStreamsServiceClient, projects_service_client::ProjectsServiceClient,
};
use tokio::process::{Child, Command};

/// Starts `hush serve` on `data` at `port`, with fast retries and a short lease; waits until it serves.
async fn spawn_server(data: &std::path::Path, port: u16) -> (Child, tonic::transport::Channel) {
    spawn_server_logging(data, port, Stdio::null()).await
}

/// Like [`spawn_server`], with debug logs written to `stderr`.
async fn spawn_server_logging(data: &std::path::Path, port: u16, stderr: Stdio) -> (Child, tonic::transport::Channel) {
    let child = Command::new(env!("CARGO_BIN_EXE_hush"))
        .args(["serve", "--data-dir", data.to_str().unwrap(), "--listen", &format!("127.0.0.1:{port}")])
        .env("HUSH_STREAMS_ALLOW_PRIVATE", "true")
        .env("HUSH_STREAM_RETRY_BASE", "100ms")
        .env("HUSH_STREAM_RETRY_CAP", "500ms")
        .env("HUSH_STREAM_LEASE", "1s")
        .env_remove("HUSH_DATABASE_URL")
        .env("HUSH_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if let Ok(channel) = tonic::transport::Channel::from_shared(url.clone()).unwrap().connect().await {
            let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
            if health.check(tonic_health::pb::HealthCheckRequest::default()).await.is_ok() {
                return (child, channel);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("hush serve did not come up");
}

/// A Custom stream in legacy single mode (one request per entry) to `<url>/in`, created without a test event.
fn single_mode_stream(name: &str, url: &str) -> pb::CreateAuditStreamRequest {
    pb::CreateAuditStreamRequest {
        name: name.into(),
        skip_test: true,
        provider: Some(pb::create_audit_stream_request::Provider::Custom(pb::CustomProvider {
            url: format!("{url}/in"),
            headers: Default::default(),
            batch: false,
            ..Default::default()
        })),
        ..Default::default()
    }
}

type Authed = tonic::service::interceptor::InterceptedService<tonic::transport::Channel, common::Bearer>;

async fn login(channel: tonic::transport::Channel, data: &std::path::Path) -> Authed {
    let bootstrap: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("bootstrap.json")).unwrap()).unwrap();
    let mut identity = pb::identity_service_client::IdentityServiceClient::new(channel.clone());
    let login = identity
        .login(pb::LoginRequest {
            client_id: bootstrap["client_id"].as_str().unwrap().into(),
            client_secret: bootstrap["client_secret"].as_str().unwrap().into(),
        })
        .await
        .unwrap()
        .into_inner();
    tonic::service::interceptor::InterceptedService::new(channel, common::Bearer::new(&login.access_token))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_delivery_loses_nothing() {
    let data = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let receiver = Receiver::default();
    // Slow answers keep deliveries in flight when the process dies.
    *receiver.delay.lock().unwrap() = Duration::from_millis(150);
    let (url, _serving) = receiver.start().await;

    let (mut server, channel) = spawn_server(data.path(), port).await;
    let authed = login(channel, data.path()).await;
    let mut streams = AuditStreamsServiceClient::new(authed.clone());
    streams.create_audit_stream(single_mode_stream("crash", &url)).await.unwrap();
    let mut projects = ProjectsServiceClient::new(authed);
    let project = projects
        .create_project(pb::CreateProjectRequest { name: "p".into() })
        .await
        .unwrap()
        .into_inner()
        .project
        .unwrap();
    for _ in 0..40 {
        projects.get_project(pb::GetProjectRequest { project_id: project.id.clone() }).await.unwrap();
    }
    // Single mode, 150 ms per entry: a few are through, most are still queued.
    eventually(Duration::from_secs(10), "some deliveries", || receiver.ids("/in").len() >= 3).await;
    server.start_kill().unwrap();
    server.wait().await.unwrap();
    let before_restart = receiver.ids("/in").len();
    assert!(before_restart < 41, "the kill happened mid-delivery ({before_restart} delivered)");

    *receiver.delay.lock().unwrap() = Duration::from_millis(5);
    let (_restarted, _channel) = spawn_server(data.path(), port).await;
    eventually(Duration::from_secs(30), "every entry after the restart", || {
        receiver.ids("/in").into_iter().collect::<HashSet<_>>().len() >= 41
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_never_send_concurrently_and_take_over() {
    if !common::postgres_configured("two-instance test") {
        return;
    }
    let fast = |c: &mut hush::config::ServeConfig| {
        c.streams_allow_private = true;
        c.stream_retry_base = Duration::from_millis(50);
        c.stream_retry_cap = Duration::from_millis(200);
        c.stream_lease = Duration::from_secs(1);
    };
    let mut a = TestServer::start_with(Backend::Postgres, fast).await;
    let receiver = Receiver::default();
    *receiver.delay.lock().unwrap() = Duration::from_millis(30);
    let (url, _serving) = receiver.start().await;
    let mut streams = AuditStreamsServiceClient::new(a.authed(&a.admin_token().await).await);
    streams.create_audit_stream(single_mode_stream("shared", &url)).await.unwrap();
    let project = a.project("p").await;
    // A delivers first and so holds the lease; then B starts and competes for it.
    eventually(Duration::from_secs(10), "A's first delivery", || !receiver.ids("/in").is_empty()).await;
    let b = a.join(fast).await;
    let mut on_b = ProjectsServiceClient::new(b.authed(&b.admin_token().await).await);
    for _ in 0..30 {
        on_b.get_project(pb::GetProjectRequest { project_id: project.clone() }).await.unwrap();
    }
    eventually(Duration::from_secs(15), "the first 30", || receiver.ids("/in").len() >= 30).await;
    // A goes away without releasing its lease; B takes over once it expires.
    a.halt().await;
    for _ in 0..10 {
        on_b.get_project(pb::GetProjectRequest { project_id: project.clone() }).await.unwrap();
    }
    let expected = receiver.ids("/in").len() + 10;
    eventually(Duration::from_secs(15), "B to deliver after A stopped", || receiver.ids("/in").len() >= expected).await;
    assert_eq!(receiver.max_in_flight(), 1, "one sender at a time");
}

/// PostgreSQL: instances that started with no audit stream (so their reads' audit groups notified nobody)
/// announce their entries again once a stream exists. Reads alternate between the two, so that whichever
/// instance's worker holds the stream, the other one's reads reach it only through their notifications.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stream_created_later_gets_the_other_instances_entries() {
    if !common::postgres_configured("two-instance test") {
        return;
    }
    let local_receivers = |c: &mut hush::config::ServeConfig| c.streams_allow_private = true;
    let a = TestServer::start_with(Backend::Postgres, local_receivers).await;
    let b = a.join(local_receivers).await;
    let project = a.project("p").await;
    let mut on_a = ProjectsServiceClient::new(a.authed(&a.admin_token().await).await);
    let mut on_b = ProjectsServiceClient::new(b.authed(&b.admin_token().await).await);
    on_b.get_project(pb::GetProjectRequest { project_id: project.clone() }).await.unwrap();

    let receiver = Receiver::default();
    let (url, _serving) = receiver.start().await;
    let mut streams = AuditStreamsServiceClient::new(a.authed(&a.admin_token().await).await);
    streams.create_audit_stream(single_mode_stream("later", &url)).await.unwrap();
    let reads = || receiver.entries("/in").iter().filter(|entry| entry["eventType"] == "get-project").count();
    for round in 1..=6 {
        let reader = if round % 2 == 0 { &mut on_a } else { &mut on_b };
        reader.get_project(pb::GetProjectRequest { project_id: project.clone() }).await.unwrap();
        eventually(Duration::from_secs(5), &format!("read {round} delivered"), || reads() >= round).await;
    }
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_appear_in_responses_logs_or_errors() {
    let data = tempfile::tempdir().unwrap();
    let log_path = data.path().join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let receiver = Receiver::default();
    receiver.fail_next(&[common::receiver::Answer::Status(500); 40]);
    let (url, _serving) = receiver.start().await;
    let (mut server, channel) = spawn_server_logging(data.path(), port, Stdio::from(log)).await;
    let authed = login(channel, data.path()).await;
    let mut streams = AuditStreamsServiceClient::new(authed.clone());
    use pb::create_audit_stream_request::Provider as P;
    let secrets = ["cred-header-9f1", "cred-dd-9f2", "cred-splunk-9f3", "cred-cribl-9f4", "cred-azure-9f5"];
    let providers = [
        P::Custom(pb::CustomProvider {
            url: format!("{url}/c"),
            headers: [("authorization".to_owned(), format!("Bearer {}", secrets[0]))].into(),
            batch: true,
            ..Default::default()
        }),
        P::Datadog(pb::DatadogProvider { site: String::new(), api_key: secrets[1].into(), url: format!("{url}/d") }),
        P::Splunk(pb::SplunkProvider { host: format!("{url}/s"), token: secrets[2].into() }),
        P::Cribl(pb::CriblProvider { url: format!("{url}/r"), token: secrets[3].into() }),
        P::Azure(pb::AzureProvider {
            tenant_id: "t".into(),
            client_id: "c".into(),
            client_secret: secrets[4].into(),
            dce_url: format!("{url}/a"),
            dcr_immutable_id: "d".into(),
            table: "T".into(),
            login_url: format!("{url}/login"),
        }),
    ];
    let mut shown = String::new();
    for (i, provider) in providers.into_iter().enumerate() {
        // With the test run first: the receiver fails it, and the error must not echo the credential.
        let request = pb::CreateAuditStreamRequest {
            name: format!("s{i}"),
            skip_test: false,
            provider: Some(provider.clone()),
            ..Default::default()
        };
        if let Err(status) = streams.create_audit_stream(request).await {
            shown.push_str(status.message());
        }
        let request = pb::CreateAuditStreamRequest {
            name: format!("s{i}"),
            skip_test: true,
            provider: Some(provider),
            ..Default::default()
        };
        shown.push_str(&format!("{:?}", streams.create_audit_stream(request).await.unwrap().into_inner()));
    }
    let mut projects = ProjectsServiceClient::new(authed);
    projects.create_project(pb::CreateProjectRequest { name: "noise".into() }).await.unwrap();
    eventually(Duration::from_secs(15), "failed deliveries", || receiver.plan_left() <= 15).await;
    let listed = streams.list_audit_streams(pb::ListAuditStreamsRequest::default()).await.unwrap().into_inner();
    for stream in &listed.audit_streams {
        let status = streams
            .get_audit_stream_status(pb::GetAuditStreamStatusRequest { audit_stream_id: stream.id.clone() })
            .await
            .unwrap()
            .into_inner();
        shown.push_str(&format!("{status:?}"));
    }
    shown.push_str(&format!("{listed:?}"));
    server.start_kill().unwrap();
    server.wait().await.unwrap();
    let logs = std::fs::read_to_string(&log_path).unwrap();
    assert!(logs.contains("audit stream delivery attempt failed"), "the failures were logged");
    for secret in secrets {
        assert!(!shown.contains(secret), "{secret} in an API response or error");
        assert!(!logs.contains(secret), "{secret} in the server log");
    }
}

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
    let child = Command::new(env!("CARGO_BIN_EXE_hush"))
        .args(["serve", "--data-dir", data.to_str().unwrap(), "--listen", &format!("127.0.0.1:{port}")])
        .env("HUSH_STREAMS_ALLOW_PRIVATE", "true")
        .env("HUSH_STREAM_RETRY_BASE", "100ms")
        .env("HUSH_STREAM_RETRY_CAP", "500ms")
        .env("HUSH_STREAM_LEASE", "1s")
        .env_remove("HUSH_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
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
    streams
        .create_audit_stream(pb::CreateAuditStreamRequest {
            name: "crash".into(),
            skip_test: true,
            provider: Some(pb::create_audit_stream_request::Provider::Custom(pb::CustomProvider {
                url: format!("{url}/in"),
                headers: Default::default(),
                batch: false,
            })),
        })
        .await
        .unwrap();
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
    if std::env::var(common::PG_URL_VAR).is_err() {
        eprintln!("{} unset: two-instance test not run", common::PG_URL_VAR);
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
    streams
        .create_audit_stream(pb::CreateAuditStreamRequest {
            name: "shared".into(),
            skip_test: true,
            provider: Some(pb::create_audit_stream_request::Provider::Custom(pb::CustomProvider {
                url: format!("{url}/in"),
                headers: Default::default(),
                batch: false,
            })),
        })
        .await
        .unwrap();
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

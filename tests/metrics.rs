//! `/metrics` as a scraper sees it: requests per RPC with their code, latency histograms, open streams by
//! transport, pool use; on `--metrics-listen` for any peer.

mod common;

use std::{net::SocketAddr, time::Duration};

use common::{
    Backend, TestServer,
    events::{registration, subscribe},
    http1,
};

backend_tests!(requests_and_open_streams_are_counted, metrics_listen_serves_only_metrics);

/// The value of the sample line starting with `series` (name and labels as written).
async fn sample(addr: SocketAddr, series: &str) -> Option<f64> {
    let (status, text) = http1::exchange(addr, "GET", "/metrics", &[], "").await;
    assert_eq!(status, 200, "{text}");
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

async fn requests_and_open_streams_are_counted(backend: Backend) {
    let server = TestServer::start(backend).await;
    let project = server.project("metrics").await;
    let token = server.admin_token().await;
    let mut projects = server.admin_projects().await;
    for _ in 0..3 {
        projects.list_projects(hush::pb::ListProjectsRequest::default()).await.unwrap();
    }
    let missing = hush::pb::GetProjectRequest { project_id: uuid::Uuid::new_v4().to_string() };
    projects.get_project(missing).await.unwrap_err();
    let list = r#"{route="/hush.v1.ProjectsService/ListProjects",transport="grpc",code="ok"}"#;
    assert_eq!(sample(server.addr, &format!("hush_requests_total{list}")).await, Some(3.0));
    let get = r#"{route="/hush.v1.ProjectsService/GetProject",transport="grpc",code="not_found"}"#;
    assert_eq!(sample(server.addr, &format!("hush_requests_total{get}")).await, Some(1.0));
    let histogram =
        r#"hush_request_duration_seconds_count{route="/hush.v1.ProjectsService/ListProjects",transport="grpc"}"#;
    assert_eq!(sample(server.addr, histogram).await, Some(3.0));
    assert!(sample(server.addr, "hush_db_pool_connections_open").await.is_some_and(|open| open >= 1.0));

    let open = r#"hush_streams_open{transport="grpc"}"#;
    let stream = subscribe(&server, &token, &project, vec![registration("*", "", "")], None).await.unwrap();
    assert_eq!(sample(server.addr, open).await, Some(1.0));
    drop(stream);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while sample(server.addr, open).await != Some(0.0) {
        assert!(tokio::time::Instant::now() < deadline, "the stream is still counted open after the client left");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Paths callers make up are one `unmatched` label, not one series each.
    for n in 0..5 {
        http1::exchange(server.addr, "GET", &format!("/made-up-{n}"), &[], "").await;
    }
    let unmatched = r#"hush_requests_total{route="unmatched",transport="http",code="404"}"#;
    assert_eq!(sample(server.addr, unmatched).await, Some(5.0));
}

async fn metrics_listen_serves_only_metrics(backend: Backend) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let server = TestServer::start_with(backend, |config| config.metrics_listen = Some(port)).await;
    // The main port still answers loopback scrapers (and once it answers, the metrics address is bound).
    assert!(sample(server.addr, "hush_event_subscriptions_open").await.is_some());
    assert!(sample(port, "hush_event_subscriptions_open").await.is_some());
    let (status, body) = http1::exchange(port, "GET", "/healthz", &[], "").await;
    assert_eq!(status, 404, "only /metrics on the metrics address: {body}");
}

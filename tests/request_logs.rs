//! What an operator reads on the stderr of the real `hush serve`: one access line per request with route,
//! code and latency; caller mistakes never at ERROR; a server fault at ERROR with the method; request ids
//! accepted or generated and returned; no colour codes when stderr is not a terminal; a reader of stderr that
//! stops reading does not stop the server.

mod common;

use std::time::Duration;

use common::{Backend, http1, serve_binary::ServeProcess};
use hush::pb::{self, identity_service_client::IdentityServiceClient, projects_service_client::ProjectsServiceClient};
use sea_orm::{ConnectionTrait, Database};
use tonic::{Code, Request, transport::Channel};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

backend_tests!(client_errors_are_info_lines_and_a_fault_is_an_error_line);

/// A gRPC request carrying `x-request-id: <id>` (and a bearer token when given).
fn with_id<T>(message: T, id: &str, token: Option<&str>) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert("x-request-id", id.parse().unwrap());
    if let Some(token) = token {
        request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    request
}

/// The access lines of request `id`.
fn access_lines(server: &ServeProcess, id: &str) -> Vec<String> {
    let quoted = format!("request_id=\"{id}\"");
    server.lines().into_iter().filter(|l| l.contains("hush::gateway::access_log") && l.contains(&quoted)).collect()
}

async fn client_errors_are_info_lines_and_a_fault_is_an_error_line(backend: Backend) {
    let server = ServeProcess::start(backend).await;
    let bootstrap = server.bootstrap();
    let channel = Channel::from_shared(server.url()).unwrap().connect().await.unwrap();
    let mut identity = IdentityServiceClient::new(channel.clone());
    let mut projects = ProjectsServiceClient::new(channel.clone());
    let login = pb::LoginRequest { client_id: bootstrap.client_id.clone(), client_secret: bootstrap.client_secret };
    let token = identity.login(with_id(login, "login", None)).await.unwrap().into_inner().access_token;
    projects
        .create_project(with_id(pb::CreateProjectRequest { name: "p".into() }, "setup", Some(&token)))
        .await
        .unwrap();

    // A burst of caller mistakes over gRPC…
    let mut expected = Vec::new();
    for round in 0..5 {
        let wrong = pb::LoginRequest { client_id: bootstrap.client_id.clone(), client_secret: "wrong".into() };
        let id = format!("unauth-{round}");
        assert_eq!(identity.login(with_id(wrong, &id, None)).await.unwrap_err().code(), Code::Unauthenticated);
        expected.push((id, "unauthenticated"));
        let id = format!("invalid-{round}");
        let bad = pb::GetProjectRequest { project_id: "not-an-id".into() };
        assert_eq!(
            projects.get_project(with_id(bad, &id, Some(&token))).await.unwrap_err().code(),
            Code::InvalidArgument
        );
        expected.push((id, "invalid_argument"));
        let id = format!("missing-{round}");
        let missing = pb::GetProjectRequest { project_id: uuid::Uuid::new_v4().to_string() };
        assert_eq!(projects.get_project(with_id(missing, &id, Some(&token))).await.unwrap_err().code(), Code::NotFound);
        expected.push((id, "not_found"));
        let id = format!("token-{round}");
        let list = pb::ListProjectsRequest::default();
        assert_eq!(
            projects.list_projects(with_id(list, &id, Some("forged"))).await.unwrap_err().code(),
            Code::Unauthenticated
        );
        expected.push((id, "unauthenticated"));
        // …and over HTTP.
        for (path, content_type, status) in
            [("/nope", "text/plain", "404"), ("/hush.v1.IdentityService/Login", "text/plain", "415")]
        {
            let id = format!("http-{status}-{round}");
            let headers = [("x-request-id", id.as_str()), ("content-type", content_type)];
            let response = http1::send(server.addr, "POST", path, &headers, "{}").await;
            assert_eq!(response.status().as_str(), status);
            assert_eq!(response.headers()["x-request-id"], id.as_str(), "the request id comes back");
            expected.push((id, status));
        }
    }
    // A request without an id (or with an unusable one) gets a generated one back.
    let headers = [("x-request-id", "bad id with spaces")];
    let generated = http1::send(server.addr, "GET", "/healthz", &headers, "").await.headers()["x-request-id"].clone();
    let generated = generated.to_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&generated).is_ok(), "{generated}");

    tokio::time::sleep(Duration::from_millis(300)).await;
    for (id, code) in &expected {
        let lines = access_lines(&server, id);
        assert_eq!(lines.len(), 1, "one access line for {id}: {lines:#?}");
        let line = &lines[0];
        assert!(line.contains(" INFO "), "{line}");
        assert!(line.contains("route=/") && line.contains("latency_ms="), "{line}");
        let code_field =
            if code.parse::<u16>().is_ok() { format!("status={code}") } else { format!("grpc_code=\"{code}\"") };
        assert!(line.contains(&code_field), "{code_field} in {line}");
    }
    assert_eq!(access_lines(&server, &generated).len(), 1);
    assert!(access_lines(&server, "invalid-0")[0].contains(&format!("caller=\"{}\"", bootstrap.identity_id)));
    let lines = server.lines();
    assert!(!lines.iter().any(|l| l.contains(" ERROR ")), "no ERROR for caller mistakes: {lines:#?}");
    assert!(!lines.iter().any(|l| l.contains('\x1b')), "no colour codes when stderr is a pipe");

    // A server fault: the projects table disappears under the running server.
    let db = Database::connect(&server.database_url).await.unwrap();
    db.execute_unprepared("ALTER TABLE projects RENAME TO projects_gone").await.unwrap();
    let list = pb::ListProjectsRequest::default();
    let fault = projects.list_projects(with_id(list, "fault-1", Some(&token))).await.unwrap_err();
    assert_eq!(fault.code(), Code::Internal, "{fault:?}");
    let line = server
        .wait_for_line(
            |l| l.contains("request_id=\"fault-1\"") && l.contains("hush::gateway::access_log"),
            Duration::from_secs(5),
        )
        .await;
    assert!(line.contains(" ERROR "), "{line}");
    assert!(line.contains("route=/hush.v1.ProjectsService/ListProjects"), "{line}");
    assert!(line.contains("grpc_code=\"internal\""), "{line}");
    server.stop().await;
}

/// Health checks sent by [`a_stalled_log_reader_does_not_stall_requests`]: each logs an access line, and together
/// they are more lines than the pipe (64 KiB, ≈ 250 lines) and the server's log queue (16 384 lines) hold.
const UNREAD_LINES: usize = 20_000;
const CHECKERS: usize = 16;

/// A log collector that stops reading the server's stderr (the pipe stays open, full) used to freeze every
/// request in `write(2)` after ≈ 290 lines. Requests are still answered; the lines that found no room are
/// dropped and counted on `/metrics`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_log_reader_does_not_stall_requests() {
    let server = ServeProcess::start(Backend::Sqlite).await;
    server.stall_stderr();
    let channel = Channel::from_shared(server.url()).unwrap().connect().await.unwrap();
    let checkers = (0..CHECKERS).map(|_| {
        let mut health = HealthClient::new(channel.clone());
        tokio::spawn(async move {
            for _ in 0..UNREAD_LINES / CHECKERS {
                health.check(HealthCheckRequest { service: String::new() }).await.expect("a health check");
            }
        })
    });
    let all = futures_util::future::join_all(checkers);
    let answered = tokio::time::timeout(Duration::from_secs(60), all).await;
    let checkers =
        answered.unwrap_or_else(|_| panic!("{UNREAD_LINES} requests with stderr unread: not answered in 60 s"));
    for checker in checkers {
        checker.expect("every health check is answered");
    }
    let (status, metrics) = http1::exchange(server.addr, "GET", "/metrics", &[], "").await;
    assert_eq!(status, 200);
    let dropped: f64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("hush_log_lines_dropped_total "))
        .expect("the dropped-lines counter")
        .parse()
        .unwrap();
    assert!(dropped > 0.0, "lines that found no room are counted: {dropped}");
}

//! The one-port server: health, reflection, authentication, grpc-web over raw HTTP/1.1, bootstrap.

mod common;

use std::time::Duration;

use common::{Backend, TestServer};
use hush::pb::{self, projects_service_client::ProjectsServiceClient};
use prost::Message;
use tonic::Code;

#[tokio::test]
async fn health_reports_serving() {
    let server = TestServer::start(Backend::Sqlite).await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel().await);
    for service in ["", "hush.v1.SecretsService"] {
        let request = tonic_health::pb::HealthCheckRequest { service: service.into() };
        let status = health.check(request).await.unwrap().into_inner().status;
        assert_eq!(status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32, "{service}");
    }
}

#[tokio::test]
async fn reflection_lists_all_six_hush_services() {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let server = TestServer::start(Backend::Sqlite).await;
    let mut client = ServerReflectionClient::new(server.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = client.server_reflection_info(tokio_stream::iter([request])).await.unwrap().into_inner();
    let response = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection answer: {response:?}");
    };
    let mut hush: Vec<String> =
        list.service.into_iter().map(|s| s.name).filter(|n| n.starts_with("hush.v1.")).collect();
    hush.sort();
    assert_eq!(
        hush,
        [
            "hush.v1.AuditLogsService",
            "hush.v1.AuditStreamsService",
            "hush.v1.EventsService",
            "hush.v1.IdentityService",
            "hush.v1.ProjectsService",
            "hush.v1.SecretsService"
        ]
    );
}

#[tokio::test]
async fn calls_without_a_valid_token_are_unauthenticated() {
    let server = TestServer::start(Backend::Sqlite).await;
    let mut anonymous = ProjectsServiceClient::new(server.channel().await);
    let status = anonymous.list_projects(pb::ListProjectsRequest::default()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let mut forged = ProjectsServiceClient::new(server.authed("hush_at_forged").await);
    assert_eq!(
        forged.list_projects(pb::ListProjectsRequest::default()).await.unwrap_err().code(),
        Code::Unauthenticated
    );

    let wrong_secret = server.login(&server.bootstrap.client_id, "hush_cs_wrong").await.unwrap_err();
    assert_eq!(wrong_secret.code(), Code::Unauthenticated);
    let unknown_id = uuid::Uuid::new_v4().to_string();
    let unknown_client = server.login(&unknown_id, &server.bootstrap.client_secret).await.unwrap_err();
    assert_eq!(unknown_client.message(), wrong_secret.message(), "failures do not reveal which part was wrong");

    let login = server.login(&server.bootstrap.client_id, &server.bootstrap.client_secret).await.unwrap();
    assert_eq!(login.org_id, server.bootstrap.org_id);
    assert_eq!(login.identity_id, server.bootstrap.identity_id);
    let mut authed = ProjectsServiceClient::new(server.authed(&login.access_token).await);
    authed.list_projects(pb::ListProjectsRequest::default()).await.unwrap();
}

#[tokio::test]
async fn expired_tokens_stop_working() {
    let server = TestServer::start_with(Backend::Sqlite, |c| c.token_ttl = Duration::from_secs(1)).await;
    let login = server.login(&server.bootstrap.client_id, &server.bootstrap.client_secret).await.unwrap();
    let expires = login.expires_at.unwrap();
    let now = chrono::Utc::now().timestamp();
    assert!((expires.seconds - now).abs() <= 2, "expiry follows the configured TTL");
    let mut client = ProjectsServiceClient::new(server.authed(&login.access_token).await);
    client.list_projects(pb::ListProjectsRequest::default()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let status = client.list_projects(pb::ListProjectsRequest::default()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
}

/// Splits a grpc-web body into (data frames, trailer text).
fn grpc_web_frames(mut body: &[u8]) -> (Vec<Vec<u8>>, String) {
    let (mut data, mut trailers) = (Vec::new(), String::new());
    while body.len() >= 5 {
        let flag = body[0];
        let len = u32::from_be_bytes(body[1..5].try_into().unwrap()) as usize;
        let payload = &body[5..5 + len];
        if flag & 0x80 != 0 {
            trailers.push_str(&String::from_utf8_lossy(payload));
        } else {
            data.push(payload.to_vec());
        }
        body = &body[5 + len..];
    }
    (data, trailers)
}

/// Sends one grpc-web unary call over a fresh HTTP/1.1 connection.
/// Returns the data frames and the grpc-status, from the headers (trailers-only answers) or the trailer frame.
async fn grpc_web_call(
    server: &TestServer,
    path: &str,
    token: Option<&str>,
    message: &impl Message,
) -> (Vec<Vec<u8>>, String) {
    use http_body_util::{BodyExt, Full};
    let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    let payload = message.encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(&payload);
    let mut request = http::Request::post(path)
        .header("host", server.addr.to_string())
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header("origin", "http://example.test");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = sender.send_request(request.body(Full::new(bytes::Bytes::from(frame))).unwrap()).await.unwrap();
    assert_eq!(response.status(), http::StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/grpc-web+proto");
    let header_status = response.headers().get("grpc-status").map(|v| v.to_str().unwrap().to_owned());
    assert!(response.headers().contains_key("access-control-allow-origin"), "CORS headers for browsers");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let (data, trailers) = grpc_web_frames(&body);
    let trailer_status =
        trailers.lines().find_map(|line| line.trim().strip_prefix("grpc-status:").map(|v| v.trim().to_owned()));
    (data, header_status.or(trailer_status).expect("a grpc-status"))
}

#[tokio::test]
async fn grpc_web_unary_calls_work_over_http1() {
    let server = TestServer::start(Backend::Sqlite).await;
    let token = server.admin_token().await;
    let request = pb::CreateProjectRequest { name: "from-the-browser".into() };
    let (data, grpc_status) =
        grpc_web_call(&server, "/hush.v1.ProjectsService/CreateProject", Some(&token), &request).await;
    assert_eq!(grpc_status, "0");
    let created = pb::CreateProjectResponse::decode(data[0].as_slice()).unwrap();
    assert_eq!(created.project.unwrap().name, "from-the-browser");
    assert_eq!(created.environments.len(), 3);

    let (data, grpc_status) =
        grpc_web_call(&server, "/hush.v1.ProjectsService/ListProjects", None, &pb::ListProjectsRequest::default())
            .await;
    assert!(data.is_empty());
    assert_eq!(grpc_status, (Code::Unauthenticated as i32).to_string());
}

#[tokio::test]
async fn cors_preflight_allows_grpc_web_headers() {
    let server = TestServer::start(Backend::Sqlite).await;
    let client = reqwest_like_preflight(&server).await;
    assert_eq!(client.0, http::StatusCode::OK);
    let allowed = client.1.to_ascii_lowercase();
    assert!(allowed.contains("x-grpc-web") && allowed.contains("authorization"), "{allowed}");
}

async fn reqwest_like_preflight(server: &TestServer) -> (http::StatusCode, String) {
    use http_body_util::Empty;
    let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    let request = http::Request::options("/hush.v1.ProjectsService/ListProjects")
        .header("host", server.addr.to_string())
        .header("origin", "http://example.test")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "x-grpc-web,authorization,content-type")
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let allowed = response
        .headers()
        .get("access-control-allow-headers")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (response.status(), allowed)
}

#[tokio::test]
async fn bootstrap_happens_once_and_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let mut server = TestServer::start(Backend::Sqlite).await;
    let dir = server.data_dir.path().to_path_buf();
    for file in ["bootstrap.json", "root.key"] {
        let mode = std::fs::metadata(dir.join(file)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file} is readable by its owner only");
    }
    let before = std::fs::read(dir.join("bootstrap.json")).unwrap();
    // One server per SQLite file: its writer and its in-memory permission version assume it is the only one.
    let refused = hush::server::Server::prepare(hush::config::ServeConfig::with_data_dir(dir.clone())).await;
    let error = refused.err().expect("a second server on the same SQLite database is refused").to_string();
    assert!(error.contains("another hush server uses this SQLite database"), "{error}");
    server.halt().await;
    // A second start on the same data dir keeps the org and does not write new credentials.
    let again = hush::server::Server::prepare(hush::config::ServeConfig::with_data_dir(dir.clone())).await.unwrap();
    assert!(again.bootstrap_file.is_none());
    assert_eq!(std::fs::read(dir.join("bootstrap.json")).unwrap(), before);
}

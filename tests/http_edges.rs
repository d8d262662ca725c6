//! What curl users and browsers see at the edges of the port: honest HTTP statuses with JSON bodies instead
//! of gRPC answers, while real gRPC callers keep getting gRPC statuses.

mod common;

use common::{Backend, TestServer, http1};
use serde_json::Value;

backend_tests!(
    unknown_paths_are_404_json,
    rpc_paths_name_the_content_type_and_the_method,
    index_names_the_version_in_html_and_json,
    grpc_callers_still_get_grpc_statuses,
);

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| panic!("a JSON body, got {text:?}"))
}

async fn unknown_paths_are_404_json(backend: Backend) {
    let server = TestServer::start(backend).await;
    for (method, path) in [("GET", "/nope"), ("POST", "/nope"), ("GET", "/hush.v1.Nope/Get"), ("GET", "/ui/")] {
        let response = http1::send(server.addr, method, path, &[], "").await;
        assert_eq!(response.status(), 404, "{method} {path}");
        assert_eq!(response.headers()["content-type"], "application/json", "{method} {path}");
        let (_, body) = http1::exchange(server.addr, method, path, &[], "").await;
        assert_eq!(json(&body)["code"], "not_found", "{method} {path}: {body}");
    }
    // The gRPC-only health service, called as JSON, points to the HTTP probes.
    let headers = [("content-type", "application/json")];
    let (status, body) = http1::exchange(server.addr, "POST", "/grpc.health.v1.Health/Check", &headers, "{}").await;
    assert_eq!(status, 404, "{body}");
    assert!(json(&body)["message"].as_str().unwrap().contains("/healthz"), "{body}");
}

async fn rpc_paths_name_the_content_type_and_the_method(backend: Backend) {
    let server = TestServer::start(backend).await;
    let login = "/hush.v1.IdentityService/Login";
    let creds = format!(
        r#"{{"clientId":"{}","clientSecret":"{}"}}"#,
        server.bootstrap.client_id, server.bootstrap.client_secret
    );
    // curl -d sends application/x-www-form-urlencoded; no header at all is the other common mistake.
    for headers in [&[("content-type", "application/x-www-form-urlencoded")][..], &[][..]] {
        let (status, body) = http1::exchange(server.addr, "POST", login, headers, &creds).await;
        assert_eq!(status, 415, "{headers:?}: {body}");
        assert!(json(&body)["message"].as_str().unwrap().contains("Content-Type: application/json"), "{body}");
    }
    let (status, body) = http1::exchange(server.addr, "GET", login, &[], "").await;
    assert_eq!(status, 405, "{body}");
    // With the header, the same call works.
    let (status, body) =
        http1::exchange(server.addr, "POST", login, &[("content-type", "application/json; charset=utf-8")], &creds)
            .await;
    assert_eq!(status, 200, "{body}");
    assert!(json(&body)["accessToken"].is_string(), "{body}");
}

async fn index_names_the_version_in_html_and_json(backend: Backend) {
    let server = TestServer::start(backend).await;
    let version = env!("CARGO_PKG_VERSION");
    let response = http1::send(server.addr, "GET", "/", &[], "").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let (_, page) = http1::exchange(server.addr, "GET", "/", &[], "").await;
    assert!(page.contains(version) && page.contains("--ui-dir") && page.contains("README"), "{page}");

    let (status, body) = http1::exchange(server.addr, "GET", "/", &[("accept", "application/json")], "").await;
    assert_eq!(status, 200, "{body}");
    let body = json(&body);
    assert_eq!(body["version"], version);
    assert_eq!(body["ui"], Value::Null, "no --ui-dir, no /ui/");

    let ui = tempfile::tempdir().unwrap();
    std::fs::write(ui.path().join("index.html"), "<p>web client</p>").unwrap();
    let with_ui = TestServer::start_with(backend, |c| c.ui_dir = Some(ui.path().to_path_buf())).await;
    let (_, body) = http1::exchange(with_ui.addr, "GET", "/", &[("accept", "application/json")], "").await;
    assert_eq!(json(&body)["ui"], "/ui/");
    let (status, page) = http1::exchange(with_ui.addr, "GET", "/ui/", &[], "").await;
    assert_eq!((status.as_u16(), page.as_str()), (200, "<p>web client</p>"));
}

async fn grpc_callers_still_get_grpc_statuses(backend: Backend) {
    let server = TestServer::start(backend).await;
    let channel = server.channel().await;
    let token = format!("Bearer {}", server.admin_token().await);
    let unknown = common::raw::grpc(&channel, &server.url(), "/hush.v1.Nope/Get", Some(&token), vec![0; 5], false)
        .await
        .expect("a gRPC answer")
        .expect("a status");
    assert_eq!(unknown.code(), tonic::Code::Unimplemented, "{unknown:?}");
    let health = common::raw::grpc(&channel, &server.url(), "/grpc.health.v1.Health/Check", None, vec![0; 5], false)
        .await
        .expect("a gRPC answer")
        .expect("a status");
    assert_eq!(health.code(), tonic::Code::Ok, "{health:?}");
    // grpc-web over HTTP/1.1 still reaches the service (and its errors stay gRPC statuses).
    let client = reqwest::Client::new();
    let web =
        common::raw::grpc_web(&client, &server.url(), "/hush.v1.ProjectsService/ListProjects", None, vec![0; 5], false)
            .await
            .expect("a grpc-web answer")
            .expect("a status");
    assert_eq!(web.code(), tonic::Code::Unauthenticated, "{web:?}");
}

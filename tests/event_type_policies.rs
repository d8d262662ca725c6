//! Event types in policies (Vault's `subscribe_event_types`): a `secret-events` policy may list the types it
//! allows. A role allowing only `secret:delete` receives deletes and nothing else, on gRPC, SSE and WebSocket;
//! a subscription that could receive no allowed type is refused before it opens.

mod common;

use std::time::Duration;

use common::{
    Backend, TestServer, create_secret,
    events::{assert_no_event, next_event, registration, subscribe},
    http1::{self, SseReader, field},
    members::{member_with, policy},
};
use futures_util::StreamExt;
use hush::pb;
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest, http::HeaderValue};

backend_tests!(a_role_allowing_only_deletes_receives_only_deletes);

async fn a_role_allowing_only_deletes_receives_only_deletes(backend: Backend) {
    let server = TestServer::start(backend).await;
    let project = server.project("typed").await;
    let mut only_deletes = policy("secret-events", &["subscribe"], &[], "", false);
    only_deletes.conditions.as_mut().unwrap().event_types = vec!["secret:delete".into()];
    let reader = policy("projects", &["read"], &[], "", false);
    let watcher = member_with(&server, &project, "watcher", vec![only_deletes, reader]).await;
    let mut secrets = server.admin_secrets().await;

    // Registered for everything: only the deletes arrive.
    let mut grpc = subscribe(&server, &watcher.token, &project, vec![registration("*", "", "")], None).await.unwrap();
    let auth = format!("Bearer {}", watcher.token);
    let body = format!(r#"{{"projectId": "{project}", "register": [{{"event": "secret:*"}}]}}"#);
    let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
    let sse_path = "/api/v1/events/subscribe/project-events";
    let mut sse = SseReader::new(http1::send(server.addr, "POST", sse_path, &headers, &body).await);
    let ws_url = format!("ws://{}/api/v1/events/subscribe/secret:*?projectId={project}&json=true", server.addr);
    let mut request = ws_url.as_str().into_client_request().unwrap();
    request.headers_mut().insert("authorization", HeaderValue::from_str(&auth).unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();

    create_secret(&mut secrets, &project, "dev", "/", "K", "v").await;
    let update = pb::UpdateSecretRequest {
        project_id: project.clone(),
        environment: "dev".into(),
        secret_path: "/".into(),
        key: "K".into(),
        value: "v2".into(),
        comment: None,
        expected_version: None,
    };
    secrets.update_secret(update).await.unwrap();
    let delete = pb::DeleteSecretRequest {
        project_id: project.clone(),
        environment: "dev".into(),
        secret_path: "/".into(),
        key: "K".into(),
        expected_version: None,
    };
    secrets.delete_secret(delete).await.unwrap();

    let first = next_event(&mut grpc).await;
    assert_eq!(first.r#type, "secret:delete", "the create and the update are filtered out");
    assert_no_event(&mut grpc, Duration::from_millis(300)).await;
    let block = sse.next_data().await;
    let data: serde_json::Value = serde_json::from_str(field(&block, "data").unwrap()).unwrap();
    assert_eq!(data["data"]["eventType"], "secret:delete", "{data}");
    let frame = loop {
        let message = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap().unwrap().unwrap();
        if let Message::Text(text) = message {
            break text;
        }
    };
    let cloud: serde_json::Value = serde_json::from_str(&frame).unwrap();
    assert_eq!(cloud["type"], "secret:delete", "{cloud}");

    // A subscription for creates only could never deliver anything: refused on every transport.
    let refused = subscribe(&server, &watcher.token, &project, vec![registration("secret:create", "", "")], None).await;
    let refused = refused.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    assert!(refused.message().ends_with("for secret:create"), "the refusal names the type: {}", refused.message());
    let body = format!(r#"{{"projectId": "{project}", "register": [{{"event": "secret:create"}}]}}"#);
    let (status, _) = http1::exchange(server.addr, "POST", sse_path, &headers, &body).await;
    assert_eq!(status.as_u16(), 403);
    let ws_url = format!("ws://{}/api/v1/events/subscribe/secret:create?projectId={project}", server.addr);
    let mut request = ws_url.as_str().into_client_request().unwrap();
    request.headers_mut().insert("authorization", HeaderValue::from_str(&auth).unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 403),
        other => panic!("expected 403, got {:?}", other.map(|_| "a socket")),
    }
}

//! The HTTP side of the port: JSON unary calls and SSE subscriptions, as curl users make them.

mod common;

use std::time::Duration;

use common::{
    Backend, TestServer,
    http1::{self, SseReader, field},
};
use serde_json::{Value, json};

backend_tests!(json_unary_calls_create_and_read_a_secret, sse_delivers_resumes_and_frames_cloudevents);

const SSE_PATH: &str = "/api/v1/events/subscribe/project-events";

async fn post_json(server: &TestServer, token: Option<&str>, path: &str, body: &Value) -> (http::StatusCode, Value) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(auth) = &auth {
        headers.push(("authorization", auth.as_str()));
    }
    let (status, text) = http1::exchange(server.addr, "POST", path, &headers, &body.to_string()).await;
    (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON answer: {text}")))
}

async fn json_unary_calls_create_and_read_a_secret(backend: Backend) {
    let server = TestServer::start(backend).await;
    let creds = json!({ "clientId": server.bootstrap.client_id, "clientSecret": server.bootstrap.client_secret });
    let (status, login) = post_json(&server, None, "/hush.v1.IdentityService/Login", &creds).await;
    assert_eq!(status, 200, "{login}");
    let token = login["accessToken"].as_str().unwrap().to_owned();
    let (_, created) =
        post_json(&server, Some(&token), "/hush.v1.ProjectsService/CreateProject", &json!({"name": "json"})).await;
    let project = created["project"]["id"].as_str().unwrap().to_owned();

    // proto field names and JSON names are both accepted.
    let secret = json!({"project_id": project, "environment": "dev", "secretPath": "/api", "key": "K", "value": "v1"});
    let (status, body) = post_json(&server, Some(&token), "/hush.v1.SecretsService/CreateSecret", &secret).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["secret"]["version"], 1);
    assert!(body["secret"].get("value").is_none(), "writes do not echo values");
    let address = json!({"projectId": project, "environment": "dev", "secretPath": "/api", "key": "K"});
    let (status, body) = post_json(&server, Some(&token), "/hush.v1.SecretsService/GetSecret", &address).await;
    assert_eq!((status.as_u16(), body["secret"]["value"].as_str()), (200, Some("v1")));

    // Errors are JSON with the code name, the field named, and a matching HTTP status.
    let (status, body) =
        post_json(&server, Some(&token), "/hush.v1.SecretsService/GetSecret", &json!({"projectId": 5})).await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "invalid_argument");
    assert!(body["message"].as_str().unwrap().contains("projectId"), "{body}");
    // A value of the wrong JSON type is refused without echoing it (a secret sent as a number).
    let numeric = json!({"projectId": project, "environment": "dev", "secretPath": "/api", "key": "PIN", "value": 987654321123_u64});
    let (status, body) = post_json(&server, Some(&token), "/hush.v1.SecretsService/CreateSecret", &numeric).await;
    assert_eq!(status, 400);
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("value") && !message.contains("987654321123"), "{body}");
    let (status, body) = post_json(
        &server,
        Some(&token),
        "/hush.v1.SecretsService/GetSecret",
        &json!({"projectId": project, "nope": 1}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body["message"].as_str().unwrap().contains("nope"), "{body}");
    let bad_path = json!({"projectId": project, "environment": "dev", "secretPath": "/a/../b", "key": "K"});
    let (status, body) = post_json(&server, Some(&token), "/hush.v1.SecretsService/GetSecret", &bad_path).await;
    assert_eq!((status.as_u16(), body["code"].as_str()), (400, Some("invalid_argument")));
    assert!(body["message"].as_str().unwrap().starts_with("secret_path:"), "{body}");
    let missing = json!({"projectId": project, "environment": "dev", "secretPath": "/api", "key": "NOPE"});
    let (status, body) = post_json(&server, Some(&token), "/hush.v1.SecretsService/GetSecret", &missing).await;
    assert_eq!((status.as_u16(), body["code"].as_str()), (404, Some("not_found")));
    let (status, body) = post_json(&server, None, "/hush.v1.SecretsService/GetSecret", &address).await;
    assert_eq!((status.as_u16(), body["code"].as_str()), (401, Some("unauthenticated")));
    let (status, body) = post_json(&server, Some(&token), "/hush.v1.SecretsService/NoSuchRpc", &json!({})).await;
    assert_eq!((status.as_u16(), body["code"].as_str()), (404, Some("not_found")), "an unknown RPC is an unknown path");
    let (status, body) = post_json(&server, Some(&token), "/hush.v1.EventsService/Subscribe", &json!({})).await;
    assert_eq!(status, 400, "streaming RPCs are refused as JSON: {body}");
}

async fn sse(
    server: &TestServer,
    token: &str,
    body: &Value,
    query: &str,
    last_event_id: Option<&str>,
) -> http::Response<hyper::body::Incoming> {
    let auth = format!("Bearer {token}");
    let mut headers = vec![("authorization", auth.as_str()), ("content-type", "application/json")];
    if let Some(id) = last_event_id {
        headers.push(("last-event-id", id));
    }
    http1::send(server.addr, "POST", &format!("{SSE_PATH}{query}"), &headers, &body.to_string()).await
}

async fn sse_delivers_resumes_and_frames_cloudevents(backend: Backend) {
    let server = TestServer::start_with(backend, |c| c.heartbeat_interval = Duration::from_millis(300)).await;
    let project = server.project("sse").await;
    let token = server.admin_token().await;
    let mut secrets = server.admin_secrets().await;
    let body = json!({
        "projectId": project,
        "register": [{"event": "secret:create", "conditions": {"environmentSlug": "dev", "secretPath": "/micro_service1"}}],
    });

    let response = sse(&server, &token, &body, "", None).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let mut stream = SseReader::new(response);
    let heartbeat = tokio::time::timeout(Duration::from_secs(5), stream.next()).await.unwrap().unwrap();
    assert_eq!(heartbeat, vec![(":".to_owned(), "heartbeat".to_owned())], "heartbeats are comments");

    common::create_secret(&mut secrets, &project, "dev", "/other", "IGNORED", "v").await;
    common::create_secret(&mut secrets, &project, "dev", "/micro_service1", "K1", "v").await;
    let block = stream.next_data().await;
    let first_id = field(&block, "id").unwrap().to_owned();
    let data: Value = serde_json::from_str(field(&block, "data").unwrap()).unwrap();
    assert_eq!(
        data,
        json!({"projectType": "secret-manager", "data": {"eventType": "secret:create", "operation": "create-secret",
            "payload": [{"environment": "dev", "secretPath": "/micro_service1", "secretKey": "K1", "version": 1}]}}),
        "the common shape, with the version added"
    );
    drop(stream);

    // Missed while disconnected, then resumed with Last-Event-ID: exactly the missed ones, then live.
    for i in 2..=4 {
        common::create_secret(&mut secrets, &project, "dev", "/micro_service1", &format!("K{i}"), "v").await;
    }
    let mut resumed = SseReader::new(sse(&server, &token, &body, "", Some(&first_id)).await);
    for i in 2..=4 {
        let data: Value = serde_json::from_str(field(&resumed.next_data().await, "data").unwrap()).unwrap();
        assert_eq!(data["data"]["payload"][0]["secretKey"], format!("K{i}"));
    }
    common::create_secret(&mut secrets, &project, "dev", "/micro_service1", "K5", "v").await;
    let data: Value = serde_json::from_str(field(&resumed.next_data().await, "data").unwrap()).unwrap();
    assert_eq!(data["data"]["payload"][0]["secretKey"], "K5", "no duplicate, no gap");

    // CloudEvents frames.
    let mut cloud = SseReader::new(sse(&server, &token, &body, "?format=cloudevents", Some(&first_id)).await);
    let event: Value = serde_json::from_str(field(&cloud.next_data().await, "data").unwrap()).unwrap();
    for key in ["id", "source", "specversion", "type", "time", "data"] {
        assert!(event.get(key).is_some(), "CloudEvents field {key} in {event}");
    }
    assert_eq!(event["specversion"], "1.0");
    assert_eq!(event["type"], "secret:create");
    assert!(chrono::DateTime::parse_from_rfc3339(event["time"].as_str().unwrap()).is_ok());

    // Errors before the stream opens are JSON with the right status.
    let cases = [
        (json!({"projectId": project, "register": [{"event": "secret:nope"}]}), 400, "invalid_argument"),
        (json!({"projectId": 7}), 400, "invalid_argument"),
        (json!({"projectId": uuid::Uuid::new_v4().to_string()}), 404, "not_found"),
    ];
    for (bad, status, code) in cases {
        let (got, text) = http1::exchange(
            server.addr,
            "POST",
            SSE_PATH,
            &[("authorization", &format!("Bearer {token}")), ("content-type", "application/json")],
            &bad.to_string(),
        )
        .await;
        assert_eq!(got.as_u16(), status, "{text}");
        let error: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(error["code"], code);
    }
    let (got, text) = http1::exchange(server.addr, "POST", SSE_PATH, &[], &body.to_string()).await;
    assert_eq!(got, 401, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_subscribers_that_disconnect_are_released() {
    let server = TestServer::start(Backend::Sqlite).await;
    let project = server.project("leak").await;
    let token = server.admin_token().await;
    let body = json!({"projectId": project, "register": [{"event": "secret:*"}]});
    let open = || async {
        let (_, metrics) = http1::exchange(server.addr, "GET", "/metrics", &[], "").await;
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("hush_event_subscriptions_open "))
            .and_then(|v| v.trim().parse::<i64>().ok())
            .expect("the gauge is exported")
    };
    assert_eq!(open().await, 0);
    let mut held = SseReader::new(sse(&server, &token, &body, "", None).await);
    for _ in 0..1000 {
        let response = sse(&server, &token, &body, "", None).await;
        assert_eq!(response.status(), 200);
        drop(response);
    }
    // Released asynchronously: wait for the count to settle on the one stream still held.
    let mut count = open().await;
    for _ in 0..50 {
        if count == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        count = open().await;
    }
    assert_eq!(count, 1, "1 000 disconnected subscriptions released, the held one kept");
    let mut secrets = server.admin_secrets().await;
    common::create_secret(&mut secrets, &project, "dev", "/", "STILL_ALIVE", "v").await;
    assert!(field(&held.next_data().await, "data").unwrap().contains("STILL_ALIVE"));
}

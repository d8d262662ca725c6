//! Event subscriptions over WebSocket (`GET /api/v1/events/subscribe/{eventType}`), with a real WebSocket
//! client: binary SubscribeResponse frames by default, CloudEvents JSON with `json=true`, the token as a header
//! or as a browser's subprotocol, refusals as HTTP errors before the upgrade, resume, and a close with a reason
//! within a second of a revocation.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, TestServer, create_secret};
use futures_util::StreamExt;
use hush::pb;
use prost::Message as _;
use tokio_tungstenite::{
    connect_async,
    tungstenite::{Message, client::IntoClientRequest, http::HeaderValue},
};

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

backend_tests!(websocket_subscriptions);

fn url(server: &TestServer, event_type: &str, query: &str) -> String {
    format!("ws://{}/api/v1/events/subscribe/{event_type}?{query}", server.addr)
}

async fn open(url: &str, header: Option<(&str, &str)>) -> Result<Socket, tokio_tungstenite::tungstenite::Error> {
    let mut request = url.into_client_request().unwrap();
    if let Some((name, value)) = header {
        let name = tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap();
        request.headers_mut().insert(name, HeaderValue::from_str(value).unwrap());
    }
    connect_async(request).await.map(|(socket, _)| socket)
}

/// The next data frame (pings answered by the library), within 5 s.
async fn next_frame(socket: &mut Socket) -> Message {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = tokio::time::timeout(left, socket.next()).await.expect("a frame within 5 s");
        match message.expect("open").expect("healthy") {
            Message::Ping(_) | Message::Pong(_) => {}
            other => return other,
        }
    }
}

fn event_of(frame: Message) -> pb::Event {
    let Message::Binary(bytes) = frame else { panic!("a binary frame, got {frame:?}") };
    match pb::SubscribeResponse::decode(bytes).unwrap().message {
        Some(pb::subscribe_response::Message::Event(event)) => event,
        other => panic!("an event, got {other:?}"),
    }
}

async fn websocket_subscriptions(backend: Backend) {
    let server = TestServer::start(backend).await;
    let project = server.project("ws").await;
    let token = server.admin_token().await;
    let bearer = format!("Bearer {token}");
    let mut secrets = server.admin_secrets().await;

    // Binary protobuf frames, one event per frame, with versions.
    let query = format!("projectId={project}&environment=dev&secretPath=/api/**");
    let mut binary = open(&url(&server, "secret:*", &query), Some(("authorization", &bearer))).await.unwrap();
    // CloudEvents JSON text frames, the token as a browser sends it.
    let protocols = format!("hush.bearer, hush.bearer.{token}");
    let json_url = url(&server, "secret:update", &format!("projectId={project}&json=true"));
    let mut request = json_url.as_str().into_client_request().unwrap();
    request.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_str(&protocols).unwrap());
    let (mut json, response) = connect_async(request).await.unwrap();
    let chosen = response.headers().get("sec-websocket-protocol").unwrap().to_str().unwrap();
    assert_eq!(chosen, "hush.bearer", "the token is never echoed");

    create_secret(&mut secrets, &project, "dev", "/api/v1", "K", "never-in-a-frame").await;
    create_secret(&mut secrets, &project, "dev", "/other", "NOT_HERE", "v").await;
    let created = event_of(next_frame(&mut binary).await);
    assert_eq!((created.r#type.as_str(), created.secrets[0].secret_key.as_str()), ("secret:create", "K"));
    assert_eq!(created.secrets[0].version, Some(1));
    let update = pb::UpdateSecretRequest {
        project_id: project.clone(),
        environment: "dev".into(),
        secret_path: "/api/v1".into(),
        key: "K".into(),
        value: "never-in-a-frame-2".into(),
        comment: None,
        expected_version: None,
    };
    secrets.update_secret(update).await.unwrap();
    let updated = event_of(next_frame(&mut binary).await);
    assert_eq!((updated.r#type.as_str(), updated.secrets[0].previous_version), ("secret:update", Some(1)));
    let Message::Text(text) = next_frame(&mut json).await else { panic!("a text frame") };
    assert!(!text.contains("never-in-a-frame"), "names, never values");
    let cloud: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!((cloud["specversion"].as_str(), cloud["type"].as_str()), (Some("1.0"), Some("secret:update")));
    assert_eq!(cloud["data"]["payload"]["secrets"][0]["version"], 2);

    // Open sockets are counted by transport.
    let (_, metrics) = common::http1::exchange(server.addr, "GET", "/metrics", &[], "").await;
    assert!(metrics.contains("hush_streams_open{transport=\"websocket\"} 2"), "two sockets are open");

    // Resume after the create, with the same filter: the update again (the change in /other is not in it).
    let resumed_url = url(&server, "*", &format!("{query}&resumeAfter={}", created.cursor));
    let mut resumed = open(&resumed_url, Some(("authorization", &bearer))).await.unwrap();
    assert_eq!(event_of(next_frame(&mut resumed).await).cursor, updated.cursor);

    // Refusals are HTTP answers before the upgrade.
    let refused = |status: u16| {
        move |result: Result<Socket, tokio_tungstenite::tungstenite::Error>| match result {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), status),
            other => panic!("expected HTTP {status}, got {:?}", other.map(|_| "a socket")),
        }
    };
    refused(401)(open(&url(&server, "*", &format!("projectId={project}")), None).await);
    refused(400)(
        open(&url(&server, "secret:bogus", &format!("projectId={project}")), Some(("authorization", &bearer))).await,
    );
    let missing = uuid::Uuid::now_v7();
    refused(404)(open(&url(&server, "*", &format!("projectId={missing}")), Some(("authorization", &bearer))).await);

    // Revoking the token closes the socket with a reason within a second.
    let mut identities = pb::identity_service_client::IdentityServiceClient::new(server.authed(&token).await);
    let revoked_at = Instant::now();
    identities.revoke_token(pb::RevokeTokenRequest { access_token: String::new() }).await.unwrap();
    let close = loop {
        match next_frame(&mut binary).await {
            Message::Close(frame) => break frame.expect("a close frame with a code"),
            Message::Binary(_) => {}
            other => panic!("{other:?}"),
        }
    };
    assert!(revoked_at.elapsed() < Duration::from_secs(1), "closed within a second: {:?}", revoked_at.elapsed());
    assert_eq!(u16::from(close.code), 4401, "{close:?}");
    assert!(!close.reason.is_empty());
    let _ = binary.close(None).await;
}

/// The per-identity cap holds for WebSockets as for every transport: beyond it the upgrade is refused with 429,
/// and a closed socket frees its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_subscriptions_count_against_the_caps() {
    let server = TestServer::start_with(Backend::Sqlite, |config| config.max_streams_per_identity = 2).await;
    let project = server.project("capped").await;
    let bearer = format!("Bearer {}", server.admin_token().await);
    let target = url(&server, "*", &format!("projectId={project}"));
    let first = open(&target, Some(("authorization", &bearer))).await.unwrap();
    let _second = open(&target, Some(("authorization", &bearer))).await.unwrap();
    match open(&target, Some(("authorization", &bearer))).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 429),
        other => panic!("expected HTTP 429, got {:?}", other.map(|_| "a socket")),
    }
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(5);
    while open(&target, Some(("authorization", &bearer))).await.is_err() {
        assert!(Instant::now() < deadline, "a closed socket frees its place");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A client that floods pings and never reads the pongs is disconnected once what waits for it passes the
/// write buffer's cap, instead of the server buffering pongs without bound (it once grew by ~3 GB per socket).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start(Backend::Sqlite).await;
    let project = server.project("flood").await;
    let token = server.admin_token().await;
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let upgrade = format!(
        "GET /api/v1/events/subscribe/*?projectId={project} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Authorization: Bearer {token}\r\n\r\n",
        server.addr
    );
    stream.write_all(upgrade.as_bytes()).await.unwrap();
    let mut head = vec![0u8; 1024];
    let n = stream.read(&mut head).await.unwrap();
    assert!(String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head[..n]));
    // Masked pings with 125-byte payloads; the answers are never read. 256 MiB would be ~500 MiB of pongs.
    let mut ping = vec![0x89, 0x80 | 125, 1, 2, 3, 4];
    ping.extend(std::iter::repeat_n(0u8, 125));
    let chunk: Vec<u8> = ping.iter().copied().cycle().take(ping.len() * 512).collect();
    let mut sent = 0usize;
    let cut_off = tokio::time::timeout(Duration::from_secs(60), async {
        while sent < 256 << 20 {
            if stream.write_all(&chunk).await.is_err() {
                return true;
            }
            sent += chunk.len();
        }
        false
    })
    .await;
    assert_eq!(cut_off, Ok(true), "the server kept reading after {sent} bytes of pings");
    assert!(sent < 64 << 20, "cut off only after {sent} bytes");
}

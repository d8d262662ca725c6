//! Subscription and policy globs are bounded: the 4 000-segment glob that froze the server is refused on every
//! route, and the costliest glob the limits allow keeps the server responsive under 100 subscriptions.

mod common;

use std::time::{Duration, Instant};

use common::{
    Backend, TestServer,
    events::{registration, subscribe},
    http1,
    members::{assign, identity_admin, new_member, policy},
};
use hush::pb;
use tonic::Code;

backend_tests!(the_freezing_glob_is_refused_everywhere, the_costliest_allowed_glob_keeps_health_fast);

const SSE_PATH: &str = "/api/v1/events/subscribe/project-events";

fn freezing_glob() -> String {
    format!("/{}/zz", vec!["**"; 4000].join("/"))
}

/// Issue item 1: a viewer's 4 000-`**` glob, over gRPC and over SSE with `Last-Event-ID: 0`.
async fn the_freezing_glob_is_refused_everywhere(backend: Backend) {
    let server = TestServer::start(backend).await;
    let project = server.project("globs").await;
    let viewer = new_member(&server, "viewer", "").await;
    assign(&server, &project, &viewer.id, "viewer").await;

    let refused = subscribe(&server, &viewer.token, &project, vec![registration("*", "", &freezing_glob())], None)
        .await
        .expect_err("the glob is refused before the stream starts");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(
        refused.message().contains("conditions.secret_path") && refused.message().contains("at most 512"),
        "{refused:?}"
    );
    assert!(refused.message().len() < 300, "the glob is not echoed whole: {} bytes", refused.message().len());

    let body = serde_json::json!({
        "projectId": project,
        "register": [{"event": "*", "conditions": {"secretPath": freezing_glob()}}],
    });
    let auth = format!("Bearer {}", viewer.token);
    let headers = [("authorization", auth.as_str()), ("content-type", "application/json"), ("last-event-id", "0")];
    let started = Instant::now();
    let (status, text) = http1::exchange(server.addr, "POST", SSE_PATH, &headers, &body.to_string()).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("secret_path"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(1), "refused at once, not after matching");

    // Role policies take the same globs and the same limits; the field is named once.
    let request = pb::CreateRoleRequest {
        name: "frozen".into(),
        description: String::new(),
        policies: vec![policy("secrets", &["read"], &[], &freezing_glob(), false)],
    };
    let refused = identity_admin(&server).await.create_role(request).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(refused.message().matches("policies[0].conditions.secret_path").count(), 1, "{}", refused.message());
}

/// The worst glob within the limits (4 `**`, segments of 64 bytes that backtrack on every character) on 100
/// live subscriptions, while events flow at folders 20 levels deep: health answers within 100 ms throughout.
async fn the_costliest_allowed_glob_keeps_health_fast(backend: Backend) {
    let server = TestServer::start(backend).await;
    let project = server.project("globs").await;
    let token = server.admin_token().await;
    let segment = format!("*{}b", "a".repeat(62));
    let worst = format!("/**/{segment}/**/{segment}/**/{segment}/**/{segment}");
    let mut streams = Vec::new();
    for _ in 0..100 {
        let registrations = vec![registration("*", "", &worst)];
        streams.push(subscribe(&server, &token, &project, registrations, None).await.expect("within the limits"));
    }

    let deep = format!("/{}", vec!["a".repeat(64); 20].join("/"));
    let writer = {
        let mut secrets = server.admin_secrets().await;
        let project = project.clone();
        tokio::spawn(async move {
            for i in 0..30 {
                common::create_secret(&mut secrets, &project, "dev", &deep, &format!("K{i}"), "v").await;
            }
        })
    };
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel().await);
    let mut slowest = Duration::ZERO;
    while !writer.is_finished() {
        let started = Instant::now();
        health.check(tonic_health::pb::HealthCheckRequest::default()).await.expect("health answers");
        slowest = slowest.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    writer.await.expect("writes succeed");
    assert!(slowest < Duration::from_millis(100), "health took {slowest:?} while events were matched");
    drop(streams);
}

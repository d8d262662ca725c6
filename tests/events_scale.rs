//! Event streams at scale: caps per identity and per connection (gRPC and SSE), subscriptions that could never
//! deliver anything refused at once, permission changes re-checking only the streams they concern, and a
//! stream that fell behind catching up in order.

mod common;

use std::time::{Duration, Instant};

use common::{
    Backend, TestServer, create_secret,
    events::{flood_batch, keys, next_event, registration, subscribe, triple},
    http1,
    members::{assign, create_role, member_with, policy},
    metric,
};
use hush::pb::{self, events_service_client::EventsServiceClient};
use serde_json::json;
use tonic::Code;

backend_tests!(
    a_permission_change_rechecks_only_the_streams_it_concerns,
    a_stream_that_fell_behind_catches_up_in_order
);

const SSE_PATH: &str = "/api/v1/events/subscribe/project-events";

fn request(project: &str, registrations: Vec<pb::Registration>) -> pb::SubscribeRequest {
    pb::SubscribeRequest { project_id: project.into(), registrations, resume_after: None }
}

/// Status of an SSE subscription as `token`.
async fn sse_status(server: &TestServer, token: &str, project: &str) -> (u16, String) {
    let auth = format!("Bearer {token}");
    let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
    let body = json!({ "projectId": project }).to_string();
    let response = http1::send(server.addr, "POST", SSE_PATH, &headers, &body).await;
    let status = response.status().as_u16();
    if status == 200 {
        return (status, String::new());
    }
    use http_body_util::BodyExt;
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_capped_per_identity_and_per_connection() {
    let server = TestServer::start_with(Backend::Sqlite, |c| {
        c.max_streams_per_identity = 3;
        c.max_streams_per_connection = 2;
    })
    .await;
    let project = server.project("caps").await;
    let token = server.admin_token().await;

    // Per connection: two streams on one channel, the third refused; a new connection is fine.
    let mut shared = EventsServiceClient::new(server.authed(&token).await);
    let first = shared.subscribe(request(&project, vec![])).await.unwrap().into_inner();
    let second = shared.subscribe(request(&project, vec![])).await.unwrap().into_inner();
    let refused = shared.subscribe(request(&project, vec![])).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("HUSH_MAX_STREAMS_PER_CONNECTION=2"), "{}", refused.message());
    let third = subscribe(&server, &token, &project, vec![], None).await.unwrap();

    // Per identity: the fourth of this identity is refused on gRPC and SSE alike, whatever the connection.
    let refused = subscribe(&server, &token, &project, vec![], None).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert!(refused.message().contains("HUSH_MAX_STREAMS_PER_IDENTITY=3"), "{}", refused.message());
    let (status, body) = sse_status(&server, &token, &project).await;
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("HUSH_MAX_STREAMS_PER_IDENTITY=3"), "{body}");

    // Another identity has places of its own.
    let other =
        member_with(&server, &project, "other", vec![policy("secret-events", &["subscribe"], &[], "", false)]).await;
    let mut others = Vec::new();
    for _ in 0..3 {
        others.push(subscribe(&server, &other.token, &project, vec![], None).await.unwrap());
    }

    // Closing a stream gives its place back.
    drop(first);
    let reopened = async {
        loop {
            match subscribe(&server, &token, &project, vec![], None).await {
                Ok(stream) => return stream,
                Err(status) if status.code() == Code::ResourceExhausted => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(status) => panic!("{status:?}"),
            }
        }
    };
    let _reopened = tokio::time::timeout(Duration::from_secs(5), reopened).await.expect("the place is released");
    assert_eq!(metric(&server, "hush_event_subscriptions_open").await, 6);
    drop((second, third, others));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribing_where_nothing_may_be_seen_is_refused_at_once() {
    let server = TestServer::start(Backend::Sqlite).await;
    let project = server.project("scope").await;
    let dev_api = policy("secret-events", &["subscribe"], &["dev"], "/api/**", false);
    let no_keys = policy("secret-events", &["subscribe"], &["dev"], "/api/keys/**", true);
    let member = member_with(&server, &project, "dev-api", vec![dev_api, no_keys]).await;
    let cases = [
        (registration("*", "prod", ""), false),
        (registration("*", "dev", "/web/**"), false),
        (registration("*", "", "/web"), false),
        (registration("*", "dev", "/"), false),
        (registration("*", "dev", "/a*/x/**"), true),
        (registration("*", "dev", "/b*/x/**"), false),
        // Allowed, but a deny rule covers all of it.
        (registration("*", "dev", "/api/keys/**"), false),
        (registration("*", "dev", "/api/keys"), false),
        (registration("*", "dev", ""), true),
        (registration("*", "", "/api/v1/*"), true),
        (registration("secret:update", "dev", "/api/**"), true),
    ];
    for (registration, allowed) in cases {
        let what = format!("{registration:?}");
        let outcome = subscribe(&server, &member.token, &project, vec![registration], None).await;
        match outcome {
            Ok(_) => assert!(allowed, "{what} was accepted though nothing there may be seen"),
            Err(status) => {
                assert!(!allowed, "{what}: {status:?}");
                assert_eq!(status.code(), Code::PermissionDenied, "{what}");
                assert!(status.message().contains("secret-events:subscribe"), "{}", status.message());
            }
        }
    }
    // One registration that may see something is enough.
    let mixed = vec![registration("*", "prod", ""), registration("*", "dev", "/api/x")];
    subscribe(&server, &member.token, &project, mixed, None).await.unwrap();
}

async fn a_permission_change_rechecks_only_the_streams_it_concerns(backend: Backend) {
    let server = TestServer::start(backend).await;
    let project = server.project("rechecks").await;
    let events = policy("secret-events", &["subscribe"], &[], "", false);
    let mut bystanders = Vec::new();
    let mut streams = Vec::new();
    for i in 0..5 {
        let member = member_with(&server, &project, &format!("bystander-{i}"), vec![events.clone()]).await;
        for _ in 0..4 {
            streams.push(subscribe(&server, &member.token, &project, vec![], None).await.unwrap());
        }
        bystanders.push(member);
    }
    let target = member_with(&server, &project, "target", vec![events.clone()]).await;
    let mut watched = subscribe(&server, &target.token, &project, vec![], None).await.unwrap();
    let before = metric(&server, "hush_event_access_rechecks_total").await;

    // The target's role narrows to prod: its stream is re-checked (once), the 20 others are not.
    let prod_only =
        create_role(&server, "prod-only", vec![policy("secret-events", &["subscribe"], &["prod"], "", false)]).await;
    assign(&server, &project, &target.id, &prod_only).await;
    let mut secrets = server.admin_secrets().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while metric(&server, "hush_event_access_rechecks_total").await == before {
        assert!(Instant::now() < deadline, "the target's stream is re-checked");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    create_secret(&mut secrets, &project, "dev", "/", "DEV", "v").await;
    create_secret(&mut secrets, &project, "prod", "/", "PROD", "v").await;
    assert_eq!(keys(&next_event(&mut watched).await), vec![triple("prod", "/", "PROD")], "narrowed to prod");
    // Bystanders still receive everything, without having been re-read.
    assert_eq!(keys(&next_event(&mut streams[0]).await), vec![triple("dev", "/", "DEV")]);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(metric(&server, "hush_event_access_rechecks_total").await, before + 1, "only the target's stream");

    // A change for everyone (an environment deleted) re-checks every stream, once per token and project.
    let mut projects = server.admin_projects().await;
    projects
        .create_environment(pb::CreateEnvironmentRequest {
            project_id: project.clone(),
            name: "scratch".into(),
            slug: "scratch".into(),
        })
        .await
        .unwrap();
    projects
        .delete_environment(pb::DeleteEnvironmentRequest { project_id: project.clone(), environment: "scratch".into() })
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while metric(&server, "hush_event_access_rechecks_total").await < before + 1 + 6 {
        assert!(Instant::now() < deadline, "every token is re-checked");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(metric(&server, "hush_event_access_rechecks_total").await, before + 1 + 6, "six tokens, 21 streams");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_of_a_deleted_project_end() {
    let server = TestServer::start(Backend::Sqlite).await;
    let project = server.project("doomed").await;
    // The org admin: its grants do not depend on the project, its stream must end all the same.
    let token = server.admin_token().await;
    let mut stream = subscribe(&server, &token, &project, vec![], None).await.unwrap();
    let mut projects = server.admin_projects().await;
    projects.delete_project(pb::DeleteProjectRequest { project_id: project.clone() }).await.unwrap();
    let end = loop {
        match tokio::time::timeout(Duration::from_secs(2), stream.message()).await.expect("the stream ends") {
            Err(status) => break status,
            Ok(Some(_)) => {}
            Ok(None) => panic!("stream closed without a status"),
        }
    };
    assert_eq!(end.code(), Code::NotFound, "{end:?}");
    assert_eq!(metric(&server, "hush_event_subscriptions_open").await, 0, "its place is free");
}

async fn a_stream_that_fell_behind_catches_up_in_order(backend: Backend) {
    let server = TestServer::start(backend).await;
    let project = server.project("behind").await;
    let token = server.admin_token().await;
    let mut secrets = server.admin_secrets().await;
    // Not read while 60 large events are written: its HTTP/2 window and its queue fill up.
    let mut behind = subscribe(&server, &token, &project, vec![], None).await.unwrap();
    for n in 0..60 {
        secrets.batch_create_secrets(flood_batch(&project, n)).await.unwrap();
    }
    create_secret(&mut secrets, &project, "dev", "/", "LAST", "v").await;
    let mut cursors = Vec::new();
    for n in 0..60 {
        let event = next_event(&mut behind).await;
        assert_eq!(event.secrets.len(), 50);
        assert_eq!(event.secrets[0].secret_path, format!("/flood/{n}"), "in order, none skipped");
        cursors.push(event.cursor.parse::<i64>().unwrap());
    }
    assert!(cursors.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(keys(&next_event(&mut behind).await), vec![triple("dev", "/", "LAST")]);
    // Then live again, without duplicates.
    create_secret(&mut secrets, &project, "dev", "/", "LIVE", "v").await;
    assert_eq!(keys(&next_event(&mut behind).await), vec![triple("dev", "/", "LIVE")]);
}

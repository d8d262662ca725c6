//! Helpers for tests of event subscriptions over gRPC.

use std::time::{Duration, Instant};

use hush::pb::{self, events_service_client::EventsServiceClient, subscribe_response::Message};
use tonic::Streaming;

use super::TestServer;

/// How long a test waits for an event that must come.
pub const WAIT: Duration = Duration::from_secs(5);

pub fn registration(event_type: &str, env: &str, path: &str) -> pb::Registration {
    pb::Registration {
        event_type: event_type.into(),
        conditions: Some(pb::EventConditions { environment_slug: env.into(), secret_path: path.into() }),
    }
}

pub async fn subscribe(
    server: &TestServer,
    token: &str,
    project: &str,
    registrations: Vec<pb::Registration>,
    resume_after: Option<String>,
) -> Result<Streaming<pb::SubscribeResponse>, tonic::Status> {
    let mut client = EventsServiceClient::new(server.authed(token).await);
    let request = pb::SubscribeRequest { project_id: project.into(), registrations, resume_after };
    client.subscribe(request).await.map(tonic::Response::into_inner)
}

/// The next event, skipping heartbeats; panics after `WAIT`.
pub async fn next_event(stream: &mut Streaming<pb::SubscribeResponse>) -> pb::Event {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = tokio::time::timeout(left, stream.message()).await.expect("an event within 5 s");
        match message.expect("stream healthy").expect("stream open").message {
            Some(Message::Event(event)) => return event,
            Some(Message::Heartbeat(_)) => {}
            other => panic!("unexpected message {other:?}"),
        }
    }
}

/// Asserts that no event arrives within `quiet`.
pub async fn assert_no_event(stream: &mut Streaming<pb::SubscribeResponse>, quiet: Duration) {
    let deadline = Instant::now() + quiet;
    while let Ok(message) =
        tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), stream.message()).await
    {
        if let Some(Message::Event(event)) = message.expect("stream healthy").expect("stream open").message {
            panic!("unexpected event {event:?}");
        }
    }
}

/// 50 long-named secrets created in `/flood/{n}` as one batch: one large event (≈3 KiB), so a few dozen of them
/// fill a stream's HTTP/2 window and queue.
pub fn flood_batch(project: &str, n: usize) -> pb::BatchCreateSecretsRequest {
    pb::BatchCreateSecretsRequest {
        project_id: project.into(),
        environment: "dev".into(),
        secret_path: format!("/flood/{n}"),
        secrets: (0..50)
            .map(|i| pb::SecretInput {
                key: format!("KEY_WITH_A_LONGISH_NAME_{i}"),
                value: "v".into(),
                comment: String::new(),
            })
            .collect(),
    }
}

pub fn keys(event: &pb::Event) -> Vec<(String, String, String)> {
    event.secrets.iter().map(|s| (s.environment.clone(), s.secret_path.clone(), s.secret_key.clone())).collect()
}

pub fn triple(env: &str, path: &str, key: &str) -> (String, String, String) {
    (env.into(), path.into(), key.into())
}

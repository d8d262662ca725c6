//! Log in, read a secret, and follow a project's secret events, resuming after the last cursor when the
//! connection drops — the three steps of `clients/README.md`, with the `hush` crate's generated client.
//!
//! ```sh
//! HUSH_CLIENT_ID=… HUSH_CLIENT_SECRET=… cargo run --example subscribe -- http://127.0.0.1:8080 PROJECT_ID [KEY] [EVENTS]
//! ```
//! `KEY` (optional) is read from `dev:/` first; with `EVENTS` it exits after that many events (as CI runs it).

use std::time::Duration;

use hush::pb::{
    self, events_service_client::EventsServiceClient, identity_service_client::IdentityServiceClient,
    secrets_service_client::SecretsServiceClient, subscribe_response::Message,
};
use tonic::{Request, metadata::MetadataValue, transport::Channel};

/// A request carrying the access token.
fn authed<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    let value: MetadataValue<_> = format!("Bearer {token}").parse().expect("a token is a header value");
    request.metadata_mut().insert("authorization", value);
    request
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(server), Some(project_id)) = (args.next(), args.next()) else {
        return Err("usage: subscribe SERVER PROJECT_ID [KEY] [EVENTS]".into());
    };
    let key = args.next().filter(|k| !k.is_empty());
    let mut left: Option<u64> = args.next().map(|n| n.parse()).transpose()?;
    let channel = Channel::from_shared(server)?.connect().await?;

    // 1. Log in with a machine identity.
    let login = pb::LoginRequest {
        client_id: std::env::var("HUSH_CLIENT_ID")?,
        client_secret: std::env::var("HUSH_CLIENT_SECRET")?,
    };
    let token = IdentityServiceClient::new(channel.clone()).login(login).await?.into_inner().access_token;

    // 2. Read a secret.
    if let Some(key) = key {
        let request = pb::GetSecretRequest {
            project_id: project_id.clone(),
            environment: "dev".into(),
            secret_path: "/".into(),
            key: key.clone(),
            ..Default::default()
        };
        let secret = SecretsServiceClient::new(channel.clone()).get_secret(authed(&token, request)).await?.into_inner();
        let version = secret.secret.map_or(0, |s| s.version);
        println!("{key} is at version {version}"); // the value itself is the program's to use, not to print
    }

    // 3. Subscribe, resuming after the last event seen whenever the stream ends.
    let mut events = EventsServiceClient::new(channel);
    let mut resume_after: Option<String> = None;
    loop {
        let request = pb::SubscribeRequest {
            project_id: project_id.clone(),
            registrations: vec![pb::Registration { event_type: "secret:*".into(), conditions: None }],
            resume_after: resume_after.clone(),
        };
        let mut stream = match events.subscribe(authed(&token, request)).await {
            Ok(response) => response.into_inner(),
            Err(status) if status.code() == tonic::Code::Unavailable => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(status) => return Err(status.into()),
        };
        eprintln!("subscribed to {project_id} (after cursor {})", resume_after.as_deref().unwrap_or("-"));
        while let Ok(Some(response)) = stream.message().await {
            match response.message {
                Some(Message::Event(event)) => {
                    for secret in &event.secrets {
                        let version = secret.version.map_or("deleted".to_owned(), |v| format!("v{v}"));
                        let (env, path, key) = (&secret.environment, &secret.secret_path, &secret.secret_key);
                        println!("{} {env}:{path} {key} {version}", event.r#type);
                    }
                    resume_after = Some(event.cursor);
                    if let Some(n) = left.as_mut() {
                        *n -= 1;
                        if *n == 0 {
                            return Ok(());
                        }
                    }
                }
                Some(Message::Lagged(lagged)) => resume_after = Some(lagged.resume_after),
                _ => {}
            }
        }
        // The stream ended (server restart, lag): subscribe again after the last cursor.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

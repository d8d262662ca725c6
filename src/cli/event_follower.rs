//! Following a subscription across disconnects: when the stream ends or breaks in a way worth retrying (the
//! server restarted, the network dropped), it subscribes again from the last event seen, with backoff, so no
//! event is lost or repeated. Refusals (permission, project gone, bad arguments) end it with their reason.

use std::time::Duration;

use super::{client, commands::Target, commands::rpc};
use crate::pb::{self, events_service_client::EventsServiceClient, subscribe_response::Message};

/// Longest pause between two attempts to subscribe again.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// First pause before subscribing again.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

type Stream = tonic::Streaming<pb::SubscribeResponse>;

/// What a follower yields.
pub enum Followed {
    Event(Box<pb::Event>),
    /// Subscribed again after a disconnect (anything may have changed meanwhile; resuming replays events).
    Resumed,
}

pub struct Follower {
    target: Target,
    /// The subscription, its `resume_after` moved to the last event seen.
    request: pb::SubscribeRequest,
    stream: Stream,
}

/// Whether a failed call is worth retrying: the server or the network went away, not the caller's rights.
fn transient(status: &tonic::Status) -> bool {
    use tonic::Code::*;
    matches!(status.code(), Unavailable | Unknown | Internal | Aborted | Cancelled)
}

impl Follower {
    /// Subscribes; a refusal here is the caller's error (nothing was ever received).
    pub async fn start(target: Target, request: pb::SubscribeRequest) -> anyhow::Result<Self> {
        let mut client = EventsServiceClient::new(client::authed(&target).await?);
        let stream = client.subscribe(request.clone()).await.map_err(rpc)?.into_inner();
        let follower = Self { target, request, stream };
        follower.announce();
        Ok(follower)
    }

    fn announce(&self) {
        let from = match &self.request.resume_after {
            Some(cursor) => format!("after cursor {cursor}"),
            None => "new events only".to_owned(),
        };
        eprintln!("hush: subscribed to project {} ({from})", self.request.project_id);
    }

    /// The next event, or `Resumed` after a reconnect; Err with the reason when it cannot go on.
    pub async fn next(&mut self) -> Result<Followed, String> {
        loop {
            match self.stream.message().await {
                Ok(Some(pb::SubscribeResponse { message: Some(Message::Event(event)) })) => {
                    self.request.resume_after = Some(event.cursor.clone());
                    return Ok(Followed::Event(Box::new(event)));
                }
                Ok(Some(pb::SubscribeResponse { message: Some(Message::Lagged(lagged)) })) => {
                    eprintln!("hush: the stream fell behind ({}); resuming", lagged.reason);
                    self.request.resume_after = Some(lagged.resume_after);
                }
                Ok(Some(_)) => continue,
                Ok(None) => eprintln!("hush: the server ended the stream; resuming"),
                Err(status) if transient(&status) => {
                    eprintln!("hush: connection lost ({}); resuming", status.message())
                }
                Err(status) => return Err(rpc(status).to_string()),
            }
            self.resubscribe().await?;
            return Ok(Followed::Resumed);
        }
    }

    /// Subscribes again from the last cursor, with backoff while the server is away.
    async fn resubscribe(&mut self) -> Result<(), String> {
        let mut backoff = FIRST_BACKOFF;
        loop {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            // Connecting fails while the server is down: retried like an unavailable answer.
            let Ok(channel) = client::authed(&self.target).await else { continue };
            let mut client = EventsServiceClient::new(channel);
            match client.subscribe(self.request.clone()).await {
                Ok(response) => {
                    self.stream = response.into_inner();
                    self.announce();
                    return Ok(());
                }
                Err(status) if transient(&status) => {}
                Err(status) => return Err(rpc(status).to_string()),
            }
        }
    }
}

//! `hush.v1.EventsService`: Subscribe as a server stream over the domain subscription.

use tokio_stream::{StreamExt, wrappers::ReceiverStream};
use tonic::{Request, Response, Status};

use super::{auth::principal, convert::timestamp};
use crate::{
    events::{self, EventHub, SubscriptionItem},
    pb,
    pb::events_service_server::EventsService,
};

/// The EventsService handlers.
pub struct EventsApi {
    hub: EventHub,
}

impl EventsApi {
    /// Handlers over this instance's event hub.
    pub fn new(hub: EventHub) -> Self {
        Self { hub }
    }
}

impl From<events::Event> for pb::Event {
    fn from(e: events::Event) -> Self {
        Self {
            cursor: e.cursor(),
            id: e.id,
            r#type: e.event_type.as_str().to_owned(),
            project_id: e.project_id,
            time: timestamp(e.time),
            secrets: e
                .payload
                .secrets
                .into_iter()
                .map(|s| pb::SecretRef {
                    environment: s.environment,
                    secret_path: s.secret_path,
                    secret_key: s.secret_key,
                })
                .collect(),
            import_mutation: e
                .payload
                .import_mutation
                .map(|m| pb::ImportMutation { environment: m.environment, secret_path: m.secret_path }),
            actor: Some(pb::Actor {
                r#type: match e.actor.kind.as_str() {
                    "identity" => pb::ActorType::Identity,
                    "platform" => pb::ActorType::Platform,
                    _ => pb::ActorType::Unspecified,
                } as i32,
                identity_id: e.actor.id,
                name: e.actor.name,
            }),
        }
    }
}

impl From<SubscriptionItem> for pb::SubscribeResponse {
    fn from(item: SubscriptionItem) -> Self {
        use pb::subscribe_response::Message;
        let message = match item {
            SubscriptionItem::Event(event) => Message::Event(event.into()),
            SubscriptionItem::Heartbeat(time) => Message::Heartbeat(pb::Heartbeat { time: timestamp(time) }),
            SubscriptionItem::Lagged { resume_after, reason } => Message::Lagged(pb::Lagged { resume_after, reason }),
        };
        Self { message: Some(message) }
    }
}

impl From<pb::SubscribeRequest> for events::SubscribeRequest {
    fn from(r: pb::SubscribeRequest) -> Self {
        Self {
            project_id: r.project_id,
            registrations: r
                .registrations
                .into_iter()
                .map(|reg| {
                    let conditions = reg.conditions.unwrap_or_default();
                    (reg.event_type, conditions.environment_slug, conditions.secret_path)
                })
                .collect(),
            resume_after: r.resume_after,
        }
    }
}

#[tonic::async_trait]
impl EventsService for EventsApi {
    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<tonic::codegen::BoxStream<pb::SubscribeResponse>>, Status> {
        let caller = principal(&request)?;
        let subscription = self.hub.subscribe(caller, request.into_inner().into()).await?;
        let stream = ReceiverStream::new(subscription).map(|item| item.map(Into::into).map_err(Status::from));
        Ok(Response::new(Box::pin(stream)))
    }
}

//! One subscription: validation before the stream opens, then a task that replays from a cursor, follows the
//! live broadcast without gap or duplicate, filters every event by registrations and current permissions,
//! sends heartbeats, and ends the stream when the caller's access goes away.
//!
//! Each subscription owns a small bounded queue to its client. A client that stops reading blocks only its
//! own task; the broadcast then overflows for that task alone, and it catches up from the outbox (events are
//! stored) when the client reads again. Writers and other subscribers never wait.

use std::sync::{Arc, atomic::Ordering};

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use tokio::sync::{broadcast::error::RecvError, mpsc};

use super::{Event, EventHub, EventsError, Payload, Registration, outbox, registration};
use serde_json::json;

use crate::{
    audit::{self, Entry},
    identity::{
        self, Grants, Principal, access,
        policy::{Action, Resource, Subject},
    },
    store::entities::project,
};

/// Messages queued per subscription before its task waits for the client.
const SUBSCRIPTION_BUFFER: usize = 64;
/// Outbox rows read per replay query.
const REPLAY_BATCH: u64 = 500;

/// What a client asks for.
#[derive(Debug, Clone, Default)]
pub struct SubscribeRequest {
    pub project_id: String,
    /// `(event type pattern, environment slug, path glob)`; empty strings mean "any".
    pub registrations: Vec<(String, String, String)>,
    /// Resume after this cursor: replay what followed it, then go live.
    pub resume_after: Option<String>,
}

/// What a subscription sends.
#[derive(Debug, Clone)]
pub enum SubscriptionItem {
    /// An event, its payload narrowed to what the caller registered for and may see.
    Event(Event),
    /// Nothing happened for a heartbeat interval.
    Heartbeat(DateTime<Utc>),
    /// The subscription cannot continue without losing events; resume from `resume_after` (when still
    /// within retention) or subscribe afresh. The stream ends after this.
    Lagged { resume_after: String, reason: String },
}

/// The stream a subscription feeds; an `Err` is the last item.
pub type Subscription = mpsc::Receiver<Result<SubscriptionItem, EventsError>>;

fn parse_cursor(text: &str) -> Result<i64, EventsError> {
    text.parse::<i64>().ok().filter(|c| *c >= 0).ok_or_else(|| EventsError::InvalidArgument {
        field: "resume_after".into(),
        reason: format!("'{text}' is not a cursor (cursors are the `cursor` field of events)"),
    })
}

impl EventHub {
    /// Validates a subscription and starts it. Errors here happen before the stream opens.
    pub async fn subscribe(&self, caller: Principal, request: SubscribeRequest) -> Result<Subscription, EventsError> {
        crate::secrets::validate::id("project_id", &request.project_id)?;
        let db = self.store.conn();
        let not_found = || EventsError::NotFound(format!("project '{}'", request.project_id));
        let project = project::Entity::find_by_id(&request.project_id)
            .filter(project::Column::OrgId.eq(&caller.org_id))
            .one(db)
            .await?
            .ok_or_else(not_found)?;
        let grants = access::cached_project_grants(db, &caller, &project.id).await?;
        // A project the caller is not a member of answers like an unknown id.
        if !crate::secrets::sees_project(&grants) {
            return Err(not_found());
        }
        grants.require_anywhere(Subject::SecretEvents, Action::Subscribe)?;
        let registrations = registration::parse_all(
            request.registrations.iter().map(|(t, e, p)| (t.as_str(), e.as_str(), p.as_str())),
        )?;

        let registered: Vec<_> = request
            .registrations
            .iter()
            .map(|(t, e, p)| json!({ "eventType": t, "environment": e, "secretPath": p }))
            .collect();
        let entry = json!({ "registrations": registered, "resumeAfter": request.resume_after });
        audit::record_read(&self.store, &caller, Entry::project("subscribe-events", &project.id, entry)).await?;

        // Listen before deciding where the replay ends, so nothing committed in between is missed.
        let live = self.live.subscribe();
        let last = match &request.resume_after {
            Some(cursor) => {
                let cursor = parse_cursor(cursor)?;
                let pruned = outbox::pruned_through(db).await?;
                if cursor < pruned {
                    return Err(EventsError::FailedPrecondition(format!(
                        "cursor {cursor} is older than the event retention ({}s): events up to {pruned} were pruned; \
                         subscribe without resume_after",
                        self.settings.retention.as_secs()
                    )));
                }
                Some(cursor)
            }
            None => None,
        };
        // Without a cursor the stream starts now: anything at or below the current head happened before.
        let last = match last {
            Some(cursor) => Pending::Replay(cursor),
            None => Pending::Live(outbox::head(db).await?),
        };
        let (out, stream) = mpsc::channel(SUBSCRIPTION_BUFFER);
        let task = Task { hub: self.clone(), caller, project_id: project.id, registrations, grants, out };
        self.open.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(task.run(live, last));
        Ok(stream)
    }
}

/// Where a new subscription starts.
enum Pending {
    /// Replay everything after this cursor first.
    Replay(i64),
    /// Go live; skip anything at or below this cursor.
    Live(i64),
}

struct Task {
    hub: EventHub,
    caller: Principal,
    project_id: String,
    registrations: Vec<Registration>,
    grants: Grants,
    out: mpsc::Sender<Result<SubscriptionItem, EventsError>>,
}

/// Why a subscription task stopped early.
enum Stop {
    /// The client went away or the server is shutting down.
    Gone,
}

impl Task {
    async fn run(mut self, mut live: tokio::sync::broadcast::Receiver<Arc<Event>>, start: Pending) {
        let open = self.hub.open.clone();
        let _ = self.follow(&mut live, start).await;
        open.fetch_sub(1, Ordering::Relaxed);
    }

    async fn follow(
        &mut self,
        live: &mut tokio::sync::broadcast::Receiver<Arc<Event>>,
        start: Pending,
    ) -> Result<(), Stop> {
        let mut last = match start {
            Pending::Replay(cursor) => self.replay(cursor).await?,
            Pending::Live(head) => head,
        };
        let heartbeat_every = self.hub.settings.heartbeat;
        let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat_every, heartbeat_every);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut authz = self.hub.authz.clone();
        let expiry = (self.caller.token_expires_at - Utc::now()).to_std().unwrap_or_default();
        let expires = tokio::time::sleep(expiry);
        tokio::pin!(expires);
        let shutdown = self.hub.shutdown.clone();
        loop {
            tokio::select! {
                () = self.out.closed() => return Err(Stop::Gone),
                () = shutdown.cancelled() => return Err(Stop::Gone),
                received = live.recv() => match received {
                    Ok(event) if event.seq <= last => {}
                    Ok(event) => {
                        last = event.seq;
                        if self.deliver(&event).await? {
                            heartbeat.reset();
                        }
                    }
                    Err(RecvError::Lagged(_)) => {
                        // Fell behind the broadcast: listen afresh, then fill the hole from the outbox.
                        *live = self.hub.live.subscribe();
                        last = self.replay(last).await?;
                    }
                    Err(RecvError::Closed) => return Err(Stop::Gone),
                },
                _ = heartbeat.tick() => self.send(Ok(SubscriptionItem::Heartbeat(Utc::now()))).await?,
                changed = authz.changed() => {
                    if changed.is_err() {
                        return Err(Stop::Gone);
                    }
                    self.recheck_access().await?;
                }
                () = &mut expires => {
                    self.send(Err(EventsError::Unauthenticated("access token expired"))).await?;
                    return Err(Stop::Gone);
                }
            }
        }
    }

    /// Sends outbox events after `cursor` of this project; returns the last cursor read.
    async fn replay(&mut self, mut cursor: i64) -> Result<i64, Stop> {
        loop {
            let db = self.hub.store.conn();
            let pruned = match outbox::pruned_through(db).await {
                Ok(pruned) => pruned,
                Err(error) => return self.fail(error.into()).await,
            };
            if cursor < pruned {
                let reason = format!("events after cursor {cursor} were pruned before they could be delivered");
                self.send(Ok(SubscriptionItem::Lagged { resume_after: pruned.to_string(), reason })).await?;
                return Err(Stop::Gone);
            }
            let events = match outbox::after(db, cursor, Some(&self.project_id), REPLAY_BATCH).await {
                Ok(events) => events,
                Err(error) => return self.fail(error.into()).await,
            };
            let done = (events.len() as u64) < REPLAY_BATCH;
            for event in events {
                cursor = event.seq;
                self.deliver(&event).await?;
            }
            if done {
                return Ok(cursor);
            }
        }
    }

    /// Sends the part of `event` the caller registered for and may see; returns whether anything was sent.
    async fn deliver(&mut self, event: &Event) -> Result<bool, Stop> {
        if event.project_id != self.project_id {
            return Ok(false);
        }
        let visible = |env: &str, path: &str| {
            registration::wanted(&self.registrations, event, env, path)
                && self.grants.can(Subject::SecretEvents, Action::Subscribe, Resource::at(env, path))
        };
        let narrowed = match &event.payload.import_mutation {
            Some(m) => visible(&m.environment, &m.secret_path).then(|| event.clone()),
            None => {
                let secrets: Vec<_> =
                    event.payload.secrets.iter().filter(|s| visible(&s.environment, &s.secret_path)).cloned().collect();
                (!secrets.is_empty())
                    .then(|| Event { payload: Payload { secrets, import_mutation: None }, ..event.clone() })
            }
        };
        match narrowed {
            Some(event) => {
                self.send(Ok(SubscriptionItem::Event(event))).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Permissions may have changed: end the stream if the caller lost its token or its right to subscribe,
    /// otherwise filter by the new grants from now on.
    async fn recheck_access(&mut self) -> Result<(), Stop> {
        if let Err(error) = identity::revalidate(&self.hub.store, &self.caller).await {
            let error = match error {
                identity::IdentityError::Db(db) => EventsError::Db(db),
                _ => EventsError::Unauthenticated("access token was revoked or its identity deleted"),
            };
            return self.fail(error).await;
        }
        let grants = match access::project_grants(self.hub.store.conn(), &self.caller, &self.project_id).await {
            Ok(grants) => grants,
            Err(error) => return self.fail(error.into()).await,
        };
        if let Err(denied) = grants.require_anywhere(Subject::SecretEvents, Action::Subscribe) {
            return self.fail(denied.into()).await;
        }
        self.grants = grants;
        Ok(())
    }

    async fn send(&self, item: Result<SubscriptionItem, EventsError>) -> Result<(), Stop> {
        self.out.send(item).await.map_err(|_| Stop::Gone)
    }

    /// Sends a final error and stops.
    async fn fail<T>(&self, error: EventsError) -> Result<T, Stop> {
        self.send(Err(error)).await?;
        Err(Stop::Gone)
    }
}

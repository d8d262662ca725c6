//! Opening a subscription (validation, permission, caps, audit, where it starts) and the catch-up that sends
//! what a subscription missed from the outbox. Live delivery, heartbeats and access re-checks are shared by
//! every subscription (see `subscribers` and `hub`).

use std::{
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;
use tokio::sync::mpsc;

use super::{
    Delivery, EventHub, EventsError, Registration, outbox, registration,
    subscribers::{Item, Listed, NewSubscriber, Subscriber},
};
use crate::{
    audit::{self, Entry},
    identity::{
        Grants, Principal, access,
        policy::{Action, Subject},
    },
    store::entities::project,
};

/// Messages queued per subscription before it catches up from the outbox instead. The queue takes memory
/// as it fills (in blocks of 32 messages), so an idle stream holds one small block whatever this is.
const SUBSCRIPTION_BUFFER: usize = 64;
/// Outbox rows read per replay query.
const REPLAY_BATCH: u64 = 500;
/// How long the final error of an ended subscription may wait for room in its queue.
const FINAL_SEND: Duration = Duration::from_secs(10);

/// What a client asks for.
#[derive(Debug, Clone, Default)]
pub struct SubscribeRequest {
    pub project_id: String,
    /// `(event type pattern, environment slug, path glob)`; empty strings mean "any".
    pub registrations: Vec<(String, String, String)>,
    /// Resume after this cursor: replay what followed it, then go live.
    pub resume_after: Option<String>,
    /// The client connection it arrived on, for the per-connection cap.
    pub connection: Option<SocketAddr>,
}

/// What a subscription sends.
#[derive(Debug, Clone)]
pub enum SubscriptionItem {
    /// An event, its payload narrowed to what the caller registered for and may see (shared between the
    /// subscriptions that see the same).
    Event(Arc<Delivery>),
    /// Nothing happened for a heartbeat interval.
    Heartbeat(DateTime<Utc>),
    /// The subscription cannot continue without losing events; resume from `resume_after` (when still
    /// within retention) or subscribe afresh. The stream ends after this.
    Lagged { resume_after: String, reason: String },
}

/// The stream of one subscription; an `Err` is the last item. Dropping it ends the subscription.
pub struct Subscription {
    items: mpsc::Receiver<Item>,
    _listed: Listed,
}

impl tokio_stream::Stream for Subscription {
    type Item = Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        self.items.poll_recv(cx)
    }
}

fn parse_cursor(text: &str) -> Result<i64, EventsError> {
    text.parse::<i64>().ok().filter(|c| *c >= 0).ok_or_else(|| EventsError::InvalidArgument {
        field: "resume_after".into(),
        reason: format!("'{text}' is not a cursor (cursors are the `cursor` field of events)"),
    })
}

/// Fails unless some registration covers a place where the caller could be allowed to subscribe: a
/// subscription that could never deliver anything is refused instead of staying silent forever.
pub(super) fn require_some_scope(grants: &Grants, registrations: &[Registration]) -> Result<(), EventsError> {
    let mut denied = None;
    for r in registrations {
        match grants.require_within(
            Subject::SecretEvents,
            Action::Subscribe,
            r.environment.as_deref(),
            r.secret_path.as_ref(),
            r.pattern.exact_type(),
        ) {
            Ok(()) => return Ok(()),
            Err(error) => denied = denied.or(Some(error)),
        }
    }
    Err(denied.map_or_else(
        || EventsError::InvalidArgument { field: "registrations".into(), reason: "none given".into() },
        EventsError::PermissionDenied,
    ))
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
        // The grants below are current at the version the caller's token was checked at (its memo's, or an
        // older one); without a memo they are read now, after this version.
        let grants_version = match &caller.memo {
            Some(memo) => memo.version(),
            None => self.store.permission_version().await?,
        };
        let grants = access::cached_project_grants(db, &caller, &project.id).await?;
        // A project the caller is not a member of answers like an unknown id.
        if !crate::secrets::sees_project(&grants) {
            return Err(not_found());
        }
        grants.require_anywhere(Subject::SecretEvents, Action::Subscribe)?;
        let registrations = registration::parse_all(
            request.registrations.iter().map(|(t, e, p)| (t.as_str(), e.as_str(), p.as_str())),
        )?;
        require_some_scope(&grants, &registrations)?;
        let start = match &request.resume_after {
            Some(cursor) => Some(parse_cursor(cursor)?),
            None => None,
        };

        let (out, items) = mpsc::channel(SUBSCRIPTION_BUFFER);
        let new = NewSubscriber {
            caller: caller.clone(),
            project_id: project.id.clone(),
            registrations,
            grants,
            grants_version,
            connection: request.connection,
        };
        // Registered (and so collecting what it misses) before deciding where it starts, so nothing
        // committed in between is lost.
        let subscriber = self.registry.register(new, out, self.settings.limits)?;
        let listed = self.registry.listing(&subscriber);
        // A permission change committed after the grants above were read, which the watcher took in before
        // this stream was registered, would never reach it: now that it is registered, look once more.
        let version = self.store.permission_version().await?;
        if self.store.permissions_changed_between(&caller.identity_id, grants_version, version).await? {
            self.recheck(vec![subscriber.clone()], version).await;
        }

        let registered: Vec<_> = request
            .registrations
            .iter()
            .map(|(t, e, p)| json!({ "eventType": t, "environment": e, "secretPath": p }))
            .collect();
        let entry = json!({ "registrations": registered, "resumeAfter": request.resume_after });
        audit::record_read(&self.store, &caller, Entry::project("subscribe-events", &project.id, entry)).await?;

        match start {
            Some(cursor) => {
                let pruned = outbox::pruned_through(db).await?;
                if cursor < pruned {
                    return Err(EventsError::FailedPrecondition(format!(
                        "cursor {cursor} is older than the event retention ({}s): events up to {pruned} were pruned; \
                         subscribe without resume_after",
                        self.settings.retention.as_secs()
                    )));
                }
                // A cursor beyond the newest event would silently skip everything up to it. (Pruning may have
                // emptied the outbox: the pruned cursors existed.)
                let newest = self.store.outbox_head().await?.max(pruned);
                if cursor > newest {
                    return Err(EventsError::InvalidArgument {
                        field: "resume_after".into(),
                        reason: format!("cursor {cursor} is beyond the newest event ({newest})"),
                    });
                }
                subscriber.state().last = cursor;
                self.catch_up(subscriber);
            }
            None => {
                // The stream starts now: anything committed at or below the current head happened before (also
                // what the tailer has not handed out yet); anything handed out since registering and above the
                // head was noted as missed and is read back below.
                let head = self.store.outbox_head().await?;
                let mut state = subscriber.state();
                state.last = head;
                if state.missed > head {
                    drop(state);
                    self.catch_up(subscriber);
                } else {
                    state.catching_up = false;
                }
            }
        }
        Ok(Subscription { items, _listed: listed })
    }

    /// Sends what `subscriber` missed from the outbox, at its client's pace, then hands it back to the
    /// dispatcher.
    pub(super) fn catch_up(&self, subscriber: Arc<Subscriber>) {
        let hub = self.clone();
        self.runtime.spawn(async move {
            tokio::select! {
                // Its stream ends with the server's: the sweeper drops the subscription, this its last sender.
                () = hub.shutdown.cancelled() => {}
                replayed = hub.replay(&subscriber) => {
                    if let Err(error) = replayed {
                        hub.end(&subscriber, error);
                    }
                }
            }
        });
    }

    async fn replay(&self, subscriber: &Subscriber) -> Result<(), EventsError> {
        let db = self.store.conn();
        loop {
            let from = subscriber.state().last;
            let pruned = outbox::pruned_through(db).await?;
            if from < pruned {
                let reason = format!("events after cursor {from} were pruned before they could be delivered");
                let lagged = SubscriptionItem::Lagged { resume_after: pruned.to_string(), reason };
                let _ = subscriber.out.send(Ok(lagged)).await;
                self.registry.remove(subscriber);
                subscriber.state().ended = true;
                return Ok(());
            }
            let head = self.store.outbox_head().await?;
            let events = outbox::after(db, from, head, Some(&subscriber.project_id), REPLAY_BATCH).await?;
            let done = (events.len() as u64) < REPLAY_BATCH;
            for event in events {
                let event = Arc::new(Delivery::new(event));
                let visible = {
                    let state = subscriber.state();
                    if state.ended {
                        return Ok(());
                    }
                    subscriber.narrow(&event, &state.grants)
                };
                if let Some(visible) = visible
                    && subscriber.out.send(Ok(SubscriptionItem::Event(visible))).await.is_err()
                {
                    return Ok(()); // the client went away
                }
                let mut state = subscriber.state();
                state.last = state.last.max(event.seq);
                state.last_sent = std::time::Instant::now();
            }
            if done {
                let mut state = subscriber.state();
                // The dispatcher passed over events committed while this ran: read again.
                if state.missed > state.last {
                    continue;
                }
                state.catching_up = false;
                return Ok(());
            }
        }
    }

    /// Ends a subscription with `error` as its last item.
    pub(super) fn end(&self, subscriber: &Arc<Subscriber>, error: EventsError) {
        {
            let mut state = subscriber.state();
            if state.ended {
                return;
            }
            state.ended = true;
        }
        self.registry.remove(subscriber);
        let subscriber = subscriber.clone();
        // The stream ends when the last sender is gone: after this send, or when its client is gone.
        self.runtime.spawn(async move {
            let _ = tokio::time::timeout(FINAL_SEND, subscriber.out.send(Err(error))).await;
        });
    }
}

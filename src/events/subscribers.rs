//! The live subscriptions of this instance, grouped by project, and the one place events reach them.
//!
//! The tailer hands each committed event to [`Registry::dispatch`] once. It visits only the subscriptions of
//! the event's project, narrows the event to what each may see (sharing it, not copying it, when nothing is
//! filtered out; once for all the subscriptions with the same grants and registrations, typically one
//! service's streams, when something is: see [`Narrowed`]) and puts it on that subscription's bounded queue
//! without waiting. A subscription that keeps up has no task of its own: an idle stream is a queue and its
//! state. One whose queue is full (its client stopped reading) switches to catching up: a task of its own
//! reads what it missed from the outbox, where events are stored, at the client's pace, then hands the
//! subscription back to the dispatcher. So a slow client lags only itself, and costs the dispatcher nothing
//! while it lags.
//!
//! Each project's subscriptions are kept in the order of their client connections ([`Place`]), so that the
//! dispatcher offers an event to one connection's streams one after the other: each client connection gets its
//! share of the event in one burst instead of a few frames at a time over the whole dispatch, and reads it in
//! fewer, larger reads (about half the 10 000-subscriber latency, docs/BENCHMARKS.md).
//!
//! Open subscriptions are capped per identity and per connection ([`StreamLimits`]).

use std::{
    collections::{BTreeMap, HashMap},
    net::SocketAddr,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use tokio::sync::mpsc::{self, error::TrySendError};

use super::{Delivery, Event, EventsError, Payload, Registration, SubscriptionItem, registration};
use crate::identity::{
    Grants, Principal,
    policy::{Action, Resource, Subject},
};

/// Where a subscription sits among its project's: by client connection, then in the order they opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Place {
    connection: Option<SocketAddr>,
    id: u64,
}

/// What a subscription's queue carries; an `Err` is the last item.
pub(super) type Item = Result<SubscriptionItem, EventsError>;

/// Distinct (grants, registrations) pairs whose narrowing of one event is remembered while it is dispatched:
/// enough for the services of a project, and a bound on the search each subscription makes.
const NARROWINGS_KEPT: usize = 8;

/// Subscriptions visited by the dispatcher between two yields to the runtime, so that fanning an event out to
/// many thousands of streams never holds a worker thread for long (unary calls wait behind it otherwise).
const DISPATCH_CHUNK: usize = 256;

/// Limits on open subscriptions.
#[derive(Debug, Clone, Copy)]
pub struct StreamLimits {
    /// Open subscriptions of one identity on this instance.
    pub per_identity: usize,
    /// Open subscriptions on one client connection.
    pub per_connection: usize,
}

/// One open subscription, as the dispatcher sees it.
pub(super) struct Subscriber {
    id: u64,
    pub caller: Principal,
    pub project_id: String,
    /// Shared by every open subscription with the same registrations (see [`Counts::registrations`]), so that
    /// the dispatcher tells them apart by address.
    pub registrations: Arc<[Registration]>,
    connection: Option<SocketAddr>,
    pub out: mpsc::Sender<Item>,
    state: Mutex<State>,
}

/// What changes while a subscription is open.
pub(super) struct State {
    /// The highest cursor handled (sent or filtered out).
    pub last: i64,
    /// A task of its own sends what the subscription missed; the dispatcher leaves it alone meanwhile.
    pub catching_up: bool,
    /// The highest cursor the dispatcher passed over while the subscription was catching up.
    pub missed: i64,
    /// What the caller may see, re-read when its permissions change.
    pub grants: Grants,
    /// The permission version `grants` are known to be current at (or an older one).
    pub grants_version: i64,
    /// When something was last queued, for heartbeats.
    pub last_sent: Instant,
    /// Ended (access lost, token expired): nothing more is queued.
    pub ended: bool,
}

/// What [`Subscriber::offer`] left to do.
pub(super) enum Offered {
    /// Queued, filtered out, or not this subscription's business.
    Done,
    /// The queue is full: the subscription must catch up from the outbox.
    MustCatchUp,
}

impl Subscriber {
    /// The state, locked. Held only for short, non-blocking work.
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues the part of `event` this subscription registered for and may see, without waiting; `narrowed`
    /// holds the decisions made for other subscriptions of this event, `now` is when its dispatch began (one
    /// clock reading for all of them: it only paces heartbeats).
    pub fn offer<'a>(&'a self, event: &Arc<Delivery>, narrowed: &mut Narrowed<'a>, now: Instant) -> Offered {
        let mut state = self.state();
        if state.ended || event.seq <= state.last {
            return Offered::Done;
        }
        if state.catching_up {
            state.missed = state.missed.max(event.seq);
            return Offered::Done;
        }
        let Some(visible) = narrowed.narrow(self, event, &state.grants) else {
            state.last = event.seq;
            return Offered::Done;
        };
        match self.out.try_send(Ok(SubscriptionItem::Event(visible))) {
            Ok(()) => {
                state.last = event.seq;
                state.last_sent = now;
                Offered::Done
            }
            Err(TrySendError::Full(_)) => {
                state.catching_up = true;
                state.missed = event.seq;
                Offered::MustCatchUp
            }
            Err(TrySendError::Closed(_)) => {
                state.ended = true;
                Offered::Done
            }
        }
    }

    /// The part of `event` the caller registered for and may see with `grants`; the event itself when that is
    /// all of it.
    pub fn narrow(&self, event: &Arc<Delivery>, grants: &Grants) -> Option<Arc<Delivery>> {
        if event.project_id != self.project_id {
            return None;
        }
        let visible = |env: &str, path: &str| {
            registration::wanted(&self.registrations, event, env, path)
                && grants.can(
                    Subject::SecretEvents,
                    Action::Subscribe,
                    Resource::event(event.event_type.as_str(), env, path),
                )
        };
        if let Some(folder) = &event.payload.import_mutation {
            return visible(&folder.environment, &folder.secret_path).then(|| event.clone());
        }
        let shown = event.payload.secrets.iter().filter(|s| visible(&s.environment, &s.secret_path)).count();
        match shown {
            0 => None,
            n if n == event.payload.secrets.len() => Some(event.clone()),
            _ => {
                let secrets =
                    event.payload.secrets.iter().filter(|s| visible(&s.environment, &s.secret_path)).cloned().collect();
                let payload = Payload { operation: event.payload.operation.clone(), secrets, import_mutation: None };
                let narrowed = Event { payload, ..Event::clone(event) };
                Some(Arc::new(Delivery::new(narrowed)))
            }
        }
    }

    /// Its key among its project's subscriptions in the registry.
    pub fn place(&self) -> Place {
        Place { connection: self.connection, id: self.id }
    }
}

/// What the subscriptions that already saw an event were given of it, by grants and registrations: another
/// subscription with the same registrations and a clone of the same grants gets the same answer without
/// evaluating policies again, and shares the narrowed event and its encodings. Both are compared by address
/// (grants are cloned from one read, registrations shared through the registry), not by content: comparing
/// registrations by content was about 4% of the server's samples fanning an event out to 10 000 streams.
#[derive(Default)]
pub(super) struct Narrowed<'a> {
    kept: Vec<Decision<'a>>,
}

/// What subscriptions with these grants and registrations are given of the event.
struct Decision<'a> {
    grants: Grants,
    registrations: &'a Arc<[Registration]>,
    visible: Option<Arc<Delivery>>,
}

impl<'a> Narrowed<'a> {
    /// [`Subscriber::narrow`], or the answer given to a subscription that would get the same.
    fn narrow(&mut self, subscriber: &'a Subscriber, event: &Arc<Delivery>, grants: &Grants) -> Option<Arc<Delivery>> {
        let registrations = &subscriber.registrations;
        let known = self.kept.iter().find(|d| d.grants.same_as(grants) && Arc::ptr_eq(d.registrations, registrations));
        if let Some(decision) = known {
            return decision.visible.clone();
        }
        let visible = subscriber.narrow(event, grants);
        if self.kept.len() < NARROWINGS_KEPT {
            self.kept.push(Decision { grants: grants.clone(), registrations, visible: visible.clone() });
        }
        visible
    }
}

/// Counts behind the caps, and the registrations of open subscriptions.
#[derive(Default)]
struct Counts {
    identities: HashMap<String, usize>,
    connections: HashMap<SocketAddr, usize>,
    /// Each distinct set of registrations once, with the open subscriptions sharing it: services that
    /// subscribe alike share one, so comparing two is comparing addresses. Bounded by the open subscriptions.
    registrations: HashMap<Arc<[Registration]>, usize>,
}

/// Every open subscription of this instance, by project.
#[derive(Default)]
pub(super) struct Registry {
    projects: Mutex<HashMap<String, BTreeMap<Place, Arc<Subscriber>>>>,
    counts: Mutex<Counts>,
    next_id: AtomicU64,
}

/// A new subscription's fixed parts.
pub(super) struct NewSubscriber {
    pub caller: Principal,
    pub project_id: String,
    pub registrations: Vec<Registration>,
    pub grants: Grants,
    /// See [`State::grants_version`].
    pub grants_version: i64,
    pub connection: Option<SocketAddr>,
}

/// The shared copy of `registrations`, counted once more.
fn share(shared: &mut HashMap<Arc<[Registration]>, usize>, registrations: Vec<Registration>) -> Arc<[Registration]> {
    if let Some(known) = shared.get_key_value(registrations.as_slice()).map(|(known, _)| known.clone()) {
        *shared.get_mut(&known).expect("found above") += 1;
        return known;
    }
    let registrations: Arc<[Registration]> = registrations.into();
    shared.insert(registrations.clone(), 1);
    registrations
}

fn decrement<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, usize>, key: &K) {
    if let Some(count) = counts.get_mut(key) {
        *count -= 1;
        if *count == 0 {
            counts.remove(key);
        }
    }
}

impl Registry {
    fn projects(&self) -> MutexGuard<'_, HashMap<String, BTreeMap<Place, Arc<Subscriber>>>> {
        self.projects.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn counts(&self) -> MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds a subscription that starts out catching up (its starting point is not known yet), unless a cap
    /// is reached.
    pub fn register(
        &self,
        new: NewSubscriber,
        out: mpsc::Sender<Item>,
        limits: StreamLimits,
    ) -> Result<Arc<Subscriber>, EventsError> {
        let registrations = {
            let mut counts = self.counts();
            let identity = counts.identities.get(&new.caller.identity_id).copied().unwrap_or(0);
            if identity >= limits.per_identity {
                return Err(EventsError::ResourceExhausted(format!(
                    "this identity has {identity} open event subscriptions on this server, the most allowed \
                     (HUSH_MAX_STREAMS_PER_IDENTITY={}); close one first",
                    limits.per_identity
                )));
            }
            if let Some(connection) = new.connection {
                let open = counts.connections.get(&connection).copied().unwrap_or(0);
                if open >= limits.per_connection {
                    return Err(EventsError::ResourceExhausted(format!(
                        "this connection has {open} open event subscriptions, the most allowed \
                         (HUSH_MAX_STREAMS_PER_CONNECTION={}); open another connection",
                        limits.per_connection
                    )));
                }
                *counts.connections.entry(connection).or_default() += 1;
            }
            *counts.identities.entry(new.caller.identity_id.clone()).or_default() += 1;
            share(&mut counts.registrations, new.registrations)
        };
        let subscriber = Arc::new(Subscriber {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            caller: new.caller,
            project_id: new.project_id,
            registrations,
            connection: new.connection,
            out,
            state: Mutex::new(State {
                last: 0,
                catching_up: true,
                missed: 0,
                grants: new.grants,
                grants_version: new.grants_version,
                last_sent: Instant::now(),
                ended: false,
            }),
        });
        self.projects()
            .entry(subscriber.project_id.clone())
            .or_default()
            .insert(subscriber.place(), subscriber.clone());
        Ok(subscriber)
    }

    /// Removes a subscription (again is a no-op) and releases its place under the caps.
    pub fn remove(&self, subscriber: &Subscriber) {
        self.remove_at(&subscriber.project_id, subscriber.place());
    }

    fn remove_at(&self, project_id: &str, place: Place) {
        let removed = {
            let mut projects = self.projects();
            let Some(subscribers) = projects.get_mut(project_id) else { return };
            let removed = subscribers.remove(&place);
            if subscribers.is_empty() {
                projects.remove(project_id);
            }
            removed
        };
        if let Some(subscriber) = removed {
            let mut counts = self.counts();
            decrement(&mut counts.identities, &subscriber.caller.identity_id);
            decrement(&mut counts.registrations, &subscriber.registrations);
            if let Some(connection) = &subscriber.connection {
                decrement(&mut counts.connections, connection);
            }
        }
    }

    /// A handle that removes the subscription when dropped (held by its stream).
    pub fn listing(self: &Arc<Self>, subscriber: &Subscriber) -> Listed {
        Listed { registry: self.clone(), project_id: subscriber.project_id.clone(), place: subscriber.place() }
    }

    /// The open subscriptions of one project, one connection's after another.
    fn of_project(&self, project_id: &str) -> Vec<Arc<Subscriber>> {
        self.projects().get(project_id).map(|s| s.values().cloned().collect()).unwrap_or_default()
    }

    /// Every open subscription.
    pub fn all(&self) -> Vec<Arc<Subscriber>> {
        self.projects().values().flat_map(|s| s.values().cloned()).collect()
    }

    /// Open subscriptions.
    pub fn open(&self) -> usize {
        self.projects().values().map(BTreeMap::len).sum()
    }

    /// Offers `event` to its project's subscriptions; returns those that must catch up.
    pub async fn dispatch(&self, event: &Arc<Delivery>) -> Vec<Arc<Subscriber>> {
        let subscribers = self.of_project(&event.project_id);
        let mut lagging = Vec::new();
        let (mut narrowed, now) = (Narrowed::default(), Instant::now());
        for chunk in subscribers.chunks(DISPATCH_CHUNK) {
            for subscriber in chunk {
                if let Offered::MustCatchUp = subscriber.offer(event, &mut narrowed, now) {
                    lagging.push(subscriber.clone());
                }
            }
            if subscribers.len() > DISPATCH_CHUNK {
                tokio::task::yield_now().await;
            }
        }
        lagging
    }
}

/// Keeps a subscription registered while its stream exists.
pub(super) struct Listed {
    registry: Arc<Registry>,
    project_id: String,
    place: Place,
}

impl Drop for Listed {
    fn drop(&mut self) {
        self.registry.remove_at(&self.project_id, self.place);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Actor, EventType, SecretRef};

    fn caller() -> Principal {
        Principal {
            identity_id: "identity".into(),
            org_id: "org".into(),
            name: "service".into(),
            token_id: "token".into(),
            token_expires_at: chrono::Utc::now() + chrono::Duration::hours(1),
            meta: Default::default(),
            memo: None,
            unconfirmed: false,
        }
    }

    /// A live subscription to project `p` for `environment`'s events, with `grants`.
    fn subscribe(registry: &Registry, grants: &Grants, environment: &str) -> (Arc<Subscriber>, mpsc::Receiver<Item>) {
        subscribe_on(registry, grants, environment, None)
    }

    /// [`subscribe`] on client `connection`.
    fn subscribe_on(
        registry: &Registry,
        grants: &Grants,
        environment: &str,
        connection: Option<SocketAddr>,
    ) -> (Arc<Subscriber>, mpsc::Receiver<Item>) {
        let (out, items) = mpsc::channel(8);
        let registrations = vec![Registration::parse(0, "secret:*", environment, "").unwrap()];
        let new = NewSubscriber {
            caller: caller(),
            project_id: "p".into(),
            registrations,
            grants: grants.clone(),
            grants_version: 0,
            connection,
        };
        let limits = StreamLimits { per_identity: 100, per_connection: 10 };
        let subscriber = registry.register(new, out, limits).unwrap();
        subscriber.state().catching_up = false;
        (subscriber, items)
    }

    fn received(items: &mut mpsc::Receiver<Item>) -> Arc<Delivery> {
        match items.try_recv() {
            Ok(Ok(SubscriptionItem::Event(delivery))) => delivery,
            other => panic!("expected an event, got {other:?}"),
        }
    }

    fn secret(environment: &str) -> SecretRef {
        SecretRef {
            environment: environment.into(),
            secret_path: "/".into(),
            secret_key: "K".into(),
            version: Some(1),
            previous_version: None,
        }
    }

    /// Subscriptions with the same registrations and clones of the same grants share the narrowed event;
    /// others are narrowed for themselves, and get what they registered for and may see.
    #[test]
    fn a_narrowed_event_is_shared_by_the_subscriptions_that_see_the_same() {
        let registry = Registry::default();
        let grants = Grants::new(crate::identity::policy::built_in_role("admin").unwrap());
        let (first, mut first_items) = subscribe(&registry, &grants, "dev");
        let (second, mut second_items) = subscribe(&registry, &grants, "dev");
        let (other, mut other_items) = subscribe(&registry, &grants, "prod");
        let (no_access, mut no_access_items) = subscribe(&registry, &Grants::default(), "dev");
        let event = Event {
            seq: 1,
            id: "e".into(),
            project_id: "p".into(),
            event_type: EventType::Update,
            time: chrono::Utc::now(),
            payload: Payload {
                operation: "batch-update-secrets".into(),
                secrets: vec![secret("dev"), secret("prod")],
                import_mutation: None,
            },
            actor: Actor { kind: "identity".into(), id: "identity".into(), name: "service".into() },
        };
        // In this order, so that the last ones find decisions made for the first.
        let (event, mut narrowed) = (Arc::new(Delivery::new(event)), Narrowed::default());
        for subscriber in [&first, &second, &other, &no_access] {
            assert!(matches!(subscriber.offer(&event, &mut narrowed, Instant::now()), Offered::Done));
        }

        let (first, second) = (received(&mut first_items), received(&mut second_items));
        assert_eq!(first.payload.secrets, vec![secret("dev")]);
        assert!(Arc::ptr_eq(&first, &second), "one narrowed event for both");
        assert_eq!(received(&mut other_items).payload.secrets, vec![secret("prod")]);
        assert!(no_access_items.try_recv().is_err(), "the same registrations without the grants see nothing");
    }

    /// Subscriptions opened on interleaved connections are offered an event one connection's after another.
    #[test]
    fn a_projects_subscriptions_are_visited_by_connection() {
        let registry = Registry::default();
        let connections: Vec<SocketAddr> =
            ["127.0.0.1:4003", "127.0.0.1:4001", "[::1]:4002"].iter().map(|address| address.parse().unwrap()).collect();
        // Held so that the subscriptions stay open.
        let mut open = Vec::new();
        for _ in 0..4 {
            for connection in &connections {
                open.push(subscribe_on(&registry, &Grants::default(), "dev", Some(*connection)));
            }
        }

        let visited: Vec<Place> = registry.of_project("p").iter().map(|s| s.place()).collect();
        let mut grouped = visited.clone();
        grouped.sort();
        assert_eq!(visited, grouped, "by connection, then in the order they opened");
        let mut runs = visited.iter().map(|place| place.connection).collect::<Vec<_>>();
        runs.dedup();
        assert_eq!(runs.len(), connections.len(), "each connection's subscriptions are visited together");
    }

    /// Subscriptions registered alike share one copy of their registrations, which goes when the last of them
    /// closes: the registry holds no registrations of closed subscriptions.
    #[test]
    fn equal_registrations_are_shared_while_a_subscription_holds_them() {
        let registry = Registry::default();
        let grants = Grants::default();
        let (first, _first_items) = subscribe(&registry, &grants, "dev");
        let (second, _second_items) = subscribe(&registry, &grants, "dev");
        let (other, _other_items) = subscribe(&registry, &grants, "prod");
        assert!(Arc::ptr_eq(&first.registrations, &second.registrations));
        assert!(!Arc::ptr_eq(&first.registrations, &other.registrations));
        assert_eq!(registry.counts().registrations.len(), 2);

        registry.remove(&first);
        registry.remove(&first);
        assert_eq!(registry.counts().registrations.len(), 2, "the second subscription still holds them");
        let (third, _third_items) = subscribe(&registry, &grants, "dev");
        assert!(Arc::ptr_eq(&second.registrations, &third.registrations));

        for subscriber in [&second, &third, &other] {
            registry.remove(subscriber);
        }
        assert!(registry.counts().registrations.is_empty());
    }
}

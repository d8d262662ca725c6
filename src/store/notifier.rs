//! Tells the other instances that outbox or audit rows were committed (PostgreSQL `NOTIFY`), after the commit.
//!
//! A `NOTIFY` inside the writing transaction would put every write in one line: PostgreSQL holds a global lock
//! from a notifying transaction's pre-commit to its end, flush to disk included, so no two of them can commit
//! together. Instead a commit raises a flag here, and one task sends what was raised since its last send, in a
//! statement of its own (a burst of commits costs one notification per channel).
//!
//! PostgreSQL also delivers a notification to the session of the instance that sent it. That instance woke its
//! own readers at the commit already, so each notification carries its sender's id, and listeners pass over
//! their own (see [`Notifier::sent_here`]): otherwise every write made its instance read the outbox twice.

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicU8, Ordering},
};

use sea_orm::{ConnectionTrait, DatabaseConnection};
use tokio::sync::mpsc;

use super::{AUDIT_NOTIFY_CHANNEL, NOTIFY_CHANNEL};

const EVENTS: u8 = 1;
const AUDIT: u8 = 2;

/// The raising side, held by every clone of the store.
#[derive(Clone)]
pub(super) struct Notifier {
    raised: Arc<AtomicU8>,
    wake: mpsc::Sender<()>,
    /// This instance's id, the payload of its notifications.
    instance: Arc<str>,
    /// Whether some audit stream exists, whose workers (on any instance) follow the audit log: without one, a
    /// read's audit group notifies nobody (a statement per group saved). Until known, it is assumed.
    audit_followed: Arc<AtomicBool>,
}

impl Notifier {
    /// Starts the task that sends the notifications on `conn`; it ends when the last notifier is dropped.
    pub(super) fn start(conn: DatabaseConnection) -> Self {
        let raised = Arc::new(AtomicU8::new(0));
        let instance: Arc<str> = uuid::Uuid::new_v4().to_string().into();
        let payload = instance.clone();
        // One wake-up waiting is enough: the task reads every flag raised before it runs.
        let (wake, mut woken) = mpsc::channel(1);
        let flags = raised.clone();
        tokio::spawn(async move {
            while woken.recv().await.is_some() {
                let raised = flags.swap(0, Ordering::SeqCst);
                let channels = [(EVENTS, NOTIFY_CHANNEL), (AUDIT, AUDIT_NOTIFY_CHANNEL)];
                let notify: Vec<String> = channels
                    .iter()
                    .filter(|(flag, _)| raised & flag != 0)
                    .map(|(_, channel)| format!("pg_notify('{channel}', '{payload}')"))
                    .collect();
                if notify.is_empty() {
                    continue;
                }
                if let Err(error) = conn.execute_unprepared(&format!("SELECT {}", notify.join(", "))).await {
                    // The other instances find the rows on their next poll.
                    tracing::warn!(%error, "could not notify the other instances of committed rows");
                }
            }
        });
        Self { raised, wake, instance, audit_followed: Arc::new(AtomicBool::new(true)) }
    }

    /// Records whether some audit stream exists (see `audit_followed`). When one appears, the others are
    /// told at once: an entry committed here before this instance learned of it was not announced.
    pub(super) fn follow_audit(&self, followed: bool) {
        let before = self.audit_followed.swap(followed, Ordering::SeqCst);
        if followed && !before {
            self.send(AUDIT);
        }
    }

    /// Whether a notification with `payload` was sent by this instance.
    pub(super) fn sent_here(&self, payload: &str) -> bool {
        payload == &*self.instance
    }

    /// Notes that a commit appended events and/or audit entries, and wakes the task.
    pub(super) fn raise(&self, events: bool, audit: bool) {
        let audit = audit && self.audit_followed.load(Ordering::SeqCst);
        self.send(if events { EVENTS } else { 0 } | if audit { AUDIT } else { 0 });
    }

    fn send(&self, flags: u8) {
        if flags != 0 {
            self.raised.fetch_or(flags, Ordering::SeqCst);
            // Full: a wake-up is pending already and will see these flags.
            let _ = self.wake.try_send(());
        }
    }
}

//! Fairness between event streams and unary calls: the work of event streams runs on a runtime of its own.
//!
//! Tokio's run queues are first in, first out. Fanning one event out to 10 000 streams wakes 10 000 stream
//! tasks; a unary call arriving then waited behind all of them, at every step of its way (each database
//! statement is a wake-up), so a writer next to many busy streams saw its latency grow with the number of
//! streams (about 100 ms per CreateSecret next to 10 000 streams, benches/load.rs). Now the request tasks of
//! event streams (gRPC and grpc-web `Subscribe` over HTTP/2) and the event hub's own tasks run on the
//! streams runtime: unary calls keep their own run queues, and the operating system shares the cores between
//! the two runtimes' threads (a thread that wakes for a unary call is scheduled promptly, not after the
//! streams' backlog).
//!
//! hyper calls the connection's service for a new HTTP/2 request and spawns the request's task right after,
//! on the same thread; [`FairExecutor`] spawns that task where the service said it belongs
//! ([`route_next_request`]).

use std::{cell::Cell, future::Future, sync::OnceLock};

use tokio::runtime::{Handle, Runtime};

thread_local! {
    /// Whether the request whose task hyper spawns next on this thread is an event stream.
    static NEXT_IS_EVENT_STREAM: Cell<bool> = const { Cell::new(false) };
}

/// The runtime event streams run on, with half the cores' threads (at least one); made once per process.
pub fn streams_runtime() -> &'static Handle {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            let cores = std::thread::available_parallelism().map_or(2, usize::from);
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads((cores / 2).max(1))
                .thread_name("hush-streams")
                .enable_all()
                .build()
                .expect("the streams runtime starts")
        })
        .handle()
}

/// Says whether the request hyper is about to spawn a task for is an event stream (see the module note).
pub fn route_next_request(event_stream: bool) {
    NEXT_IS_EVENT_STREAM.set(event_stream);
}

/// hyper's executor: request tasks of event streams on the streams runtime, everything else where it was
/// spawned from.
#[derive(Debug, Clone, Copy, Default)]
pub struct FairExecutor;

impl<F> hyper::rt::Executor<F> for FairExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        if NEXT_IS_EVENT_STREAM.replace(false) {
            streams_runtime().spawn(future);
        } else {
            tokio::spawn(future);
        }
    }
}

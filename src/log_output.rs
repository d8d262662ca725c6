//! Where the server's logs go: stderr, written by a thread of its own.
//!
//! Every request logs a line (the access log). Written by the request's own thread, a reader of stderr that
//! stopped reading (a stalled log collector behind a pipe, a terminal paused with Ctrl-S) blocked each request
//! in `write(2)` once the pipe was full, and the whole server froze. Lines now queue for one writer thread,
//! which writes whatever queued meanwhile in one go. The queue holds at most [`QUEUED_LINES`]: beyond that new
//! lines are dropped and counted (`hush_log_lines_dropped_total` on `/metrics`), so a stalled reader costs
//! neither requests nor unbounded memory. The audit log, not this one, is the record of who did what.

use std::{io::BufWriter, sync::OnceLock};

use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};

/// Lines that may wait for the writer thread (a few MiB at the access log's ≈ 250 bytes a line).
const QUEUED_LINES: usize = 16_384;

/// Counts the lines dropped because the queue was full.
static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// Structured logs on stderr; `HUSH_LOG` (or `RUST_LOG`) filters, `HUSH_LOG_FORMAT=json` for JSON lines.
/// Colours only when stderr is a terminal: escape codes in a log file or a collector are noise. Lines still
/// queued are written when the returned guard is dropped: hold it until the server has stopped.
pub fn init() -> WorkerGuard {
    let stderr = std::io::stderr();
    let ansi = std::io::IsTerminal::is_terminal(&stderr);
    let (writer, guard) =
        NonBlockingBuilder::default().lossy(true).buffered_lines_limit(QUEUED_LINES).finish(BufWriter::new(stderr));
    let _ = DROPPED.set(writer.error_counter());
    let filter = tracing_subscriber::EnvFilter::try_from_env("HUSH_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).with_ansi(ansi);
    if std::env::var("HUSH_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
    guard
}

/// Log lines dropped since start because the writer thread could not keep up (stderr was not read).
pub fn dropped_lines() -> u64 {
    DROPPED.get().map_or(0, |counter| counter.dropped_lines() as u64)
}

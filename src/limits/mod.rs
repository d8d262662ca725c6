//! Limits on what one caller can hold: message sizes, slow or idle connections, the number of connections
//! and of unary requests in flight, and how long a unary request may take. Each limit has a flag and an
//! environment variable (see the README, "Running in production"); the defaults suit a server with a few
//! hundred callers.
//!
//! - `connections`: the accept loop (connection cap, HTTP/1 header timeout, HTTP/2 keep-alive and streams,
//!   idle connections closed).
//! - `body_deadline`: a request body must arrive whole within a time limit.
//! - `lingering_close`: a connection closed under a client still sending reads what it sends, for a bounded
//!   time and number of bytes, so that the client gets the answer rather than a reset.
//! - `shed`: load shedding beyond the in-flight limit, and the deadline of unary RPCs.
//! - `detach`: every handler runs to completion, so a cancelled request never leaves a transaction half-done.
//! - `fairness`: event streams run on a runtime of their own, so fan-out never queues unary calls behind it.
//! - `open_files`: the open-files limit is raised so that connections, not the default limit, bound a node.

mod body_deadline;
pub mod connections;
mod detach;
pub mod fairness;
mod lingering_close;
pub mod open_files;
pub mod shed;

use std::time::Duration;

use crate::config::parse_duration;

/// Largest gRPC message accepted or sent, and largest JSON / grpc-web request body: gRPC's usual limit.
/// The largest answer hush builds (a page of secrets) stays below it.
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
/// What `Retry-After` tells a caller refused by load shedding, in seconds.
pub const RETRY_AFTER_SECS: u64 = 1;

/// The tunable limits of `hush serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct LimitSettings {
    /// Most connections open at once; beyond it new connections are closed at once.
    #[arg(long, env = "HUSH_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,
    /// Most unary requests (gRPC, grpc-web, JSON) handled at once; beyond it callers get
    /// RESOURCE_EXHAUSTED (HTTP 503) with `Retry-After` instead of waiting in a queue.
    #[arg(long, env = "HUSH_MAX_IN_FLIGHT", default_value_t = 256)]
    pub max_in_flight: usize,
    /// Longest a unary request may take, body upload included; event streams are exempt.
    #[arg(long, env = "HUSH_UNARY_DEADLINE", default_value = "30s", value_parser = parse_duration)]
    pub unary_deadline: Duration,
    /// Longest an HTTP/1 client may take to send the headers of a request.
    #[arg(long, env = "HUSH_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,
    /// Longest a client may take to send a whole request body.
    #[arg(long, env = "HUSH_BODY_READ_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub body_read_timeout: Duration,
    /// A connection without any open request for this long is closed.
    #[arg(long, env = "HUSH_IDLE_TIMEOUT", default_value = "2m", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// HTTP/2 connections are pinged this often to find dead peers.
    #[arg(long, env = "HUSH_HTTP2_KEEPALIVE_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub http2_keepalive_interval: Duration,
    /// An HTTP/2 connection whose ping is not answered within this is closed.
    #[arg(long, env = "HUSH_HTTP2_KEEPALIVE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub http2_keepalive_timeout: Duration,
    /// Most concurrent requests and streams on one HTTP/2 connection.
    #[arg(long, env = "HUSH_MAX_CONCURRENT_STREAMS", default_value_t = 256)]
    pub max_concurrent_streams: u32,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            max_in_flight: 256,
            unary_deadline: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
            http2_keepalive_interval: Duration::from_secs(30),
            http2_keepalive_timeout: Duration::from_secs(10),
            max_concurrent_streams: 256,
        }
    }
}

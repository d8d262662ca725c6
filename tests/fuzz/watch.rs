//! Watching the server while it is fuzzed: health check latency and the process's resident memory.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// Time between two health checks.
const HEALTH_EVERY: Duration = Duration::from_millis(20);

/// What was seen while watching.
#[derive(Default)]
pub struct Watch {
    pub health_checks: AtomicU64,
    pub failed_checks: AtomicU64,
    /// Checks slower than the latency given to [`spawn`].
    pub slow_checks: AtomicU64,
    pub max_health_micros: AtomicU64,
    pub max_rss_kib: AtomicU64,
}

/// Resident memory of this process (the server runs in it), in KiB.
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Checks health and samples memory until `stop` is cancelled.
pub fn spawn(
    channel: Channel,
    latency: Duration,
    stop: CancellationToken,
) -> (Arc<Watch>, tokio::task::JoinHandle<()>) {
    let watch = Arc::new(Watch::default());
    let seen = watch.clone();
    let task = tokio::spawn(async move {
        let mut health = HealthClient::new(channel);
        while !stop.is_cancelled() {
            let started = Instant::now();
            let answer = tokio::time::timeout(
                Duration::from_secs(5),
                health.check(HealthCheckRequest { service: String::new() }),
            )
            .await;
            let took = started.elapsed();
            let micros = took.as_micros() as u64;
            if took > latency {
                seen.slow_checks.fetch_add(1, Ordering::Relaxed);
            }
            seen.health_checks.fetch_add(1, Ordering::Relaxed);
            if !matches!(answer, Ok(Ok(_))) {
                seen.failed_checks.fetch_add(1, Ordering::Relaxed);
            }
            seen.max_health_micros.fetch_max(micros, Ordering::Relaxed);
            seen.max_rss_kib.fetch_max(rss_kib(), Ordering::Relaxed);
            tokio::time::sleep(HEALTH_EVERY).await;
        }
    });
    (watch, task)
}

//! Fuzzing a live server (SQLite and PostgreSQL): thousands of generated malformed inputs over JSON, gRPC,
//! grpc-web and the SSE route must each be answered as the caller's fault, while the server does not panic,
//! answers health checks within 100 ms and keeps its memory bounded.
//!
//! `HUSH_FUZZ_SEED` (default 11) and `HUSH_FUZZ_CASES` (default 10 000) choose the run; a failure names the
//! case index, so `HUSH_FUZZ_SEED=<seed>` replays it exactly.

#[path = "../common/mod.rs"]
mod common;
mod mutations;
mod send;
mod templates;
mod watch;

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use common::{Backend, TestServer};
use hush::pb;
use rand::{SeedableRng, rngs::StdRng};
use tokio_util::sync::CancellationToken;

backend_tests!(malformed_inputs_are_the_callers_fault);

const DEFAULT_SEED: u64 = 11;
const DEFAULT_CASES: usize = 10_000;
/// Inputs in flight at once.
const WORKERS: usize = 8;
/// Slowest acceptable health check while the server is fuzzed, for 99 % of the checks; CI machines are shared,
/// so a rare slower one (never over [`MAX_HEALTH_STALL`]) is scheduling, not the server.
const HEALTH_LATENCY: Duration = Duration::from_millis(100);
/// Slowest acceptable health check, every one.
const MAX_HEALTH_STALL: Duration = Duration::from_secs(1);
/// Most the process's resident memory may grow during a run.
const MAX_RSS_GROWTH_KIB: u64 = 512 * 1024;
/// Failures quoted in the assertion message.
const QUOTED_FAILURES: usize = 5;

/// Panics on the runtime's worker threads, where the server's tasks run: a panic is a failure even when tokio
/// catches it. (A failed assertion of a test body panics on the test's own thread and is not counted.)
static PANICS: AtomicUsize = AtomicUsize::new(0);

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn count_panics() {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().name() == Some("tokio-rt-worker") {
                PANICS.fetch_add(1, Ordering::Relaxed);
            }
            previous(info);
        }));
    });
}

async fn malformed_inputs_are_the_callers_fault(backend: Backend) {
    count_panics();
    let seed = env_or("HUSH_FUZZ_SEED", DEFAULT_SEED);
    let cases = env_or("HUSH_FUZZ_CASES", DEFAULT_CASES);
    let server = TestServer::start(backend).await;
    let admin_token = server.admin_token().await;
    let project_id = server.project("fuzzed").await;
    // Requests naming an identity name this one, not the admin whose token the run uses.
    let mut identities = pb::identity_service_client::IdentityServiceClient::new(server.authed(&admin_token).await);
    let victim = pb::CreateIdentityRequest { name: "fuzzed".into(), org_role: String::new() };
    let identity_id = identities.create_identity(victim).await.unwrap().into_inner().identity.unwrap().id;
    let targets = Arc::new(templates::Targets { project_id, identity_id });
    let target = send::Target {
        base: server.url(),
        // A fresh connection per input: the server closes a connection after refusing an oversized body, and a
        // pooled client would then fail its next request on it (a client artefact, not an answer).
        http1: reqwest::Client::builder().http1_only().pool_max_idle_per_host(0).build().expect("client"),
        grpc: server.channel().await,
        admin_token,
    };
    let methods = Arc::new(templates::methods());

    let rss_before = watch::rss_kib();
    let stop = CancellationToken::new();
    let (seen, watcher) = watch::spawn(server.channel().await, HEALTH_LATENCY, stop.clone());
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let failed = Arc::new(AtomicUsize::new(0));
    // How the inputs were answered, to show the run reaches past the first check.
    let answers = Arc::new(Mutex::new(BTreeMap::<String, usize>::new()));
    let started = Instant::now();
    let workers: Vec<_> = (0..WORKERS)
        .map(|worker| {
            let (target, methods, targets) = (target.clone(), methods.clone(), targets.clone());
            let (failures, failed, answers) = (failures.clone(), failed.clone(), answers.clone());
            tokio::spawn(async move {
                for index in (worker..cases).step_by(WORKERS) {
                    let mut rng = StdRng::seed_from_u64(seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                    let case = mutations::case(&mut rng, &methods, &targets);
                    let judged = target.judge(&case).await;
                    if let Ok(answer) = &judged {
                        *answers.lock().unwrap().entry(answer.clone()).or_default() += 1;
                    }
                    if let Err(answer) = judged {
                        failed.fetch_add(1, Ordering::Relaxed);
                        let mut quoted = failures.lock().unwrap();
                        if quoted.len() < QUOTED_FAILURES {
                            quoted.push(format!("case {index}: {}\n  answer: {answer}", case.describe()));
                        }
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("worker");
    }
    let elapsed = started.elapsed();
    stop.cancel();
    watcher.await.expect("watcher");

    // The server still serves an ordinary request after the run.
    let mut projects =
        pb::projects_service_client::ProjectsServiceClient::new(server.authed(&target.admin_token).await);
    projects.list_projects(pb::ListProjectsRequest::default()).await.expect("the server still answers");

    let max_health = Duration::from_micros(seen.max_health_micros.load(Ordering::Relaxed));
    let rss_growth = seen.max_rss_kib.load(Ordering::Relaxed).saturating_sub(rss_before);
    eprintln!(
        "fuzz {backend:?}: seed {seed}, {cases} cases in {elapsed:.1?}; {} health checks, {} over {HEALTH_LATENCY:?}, \
         slowest {max_health:?}; RSS {rss_before} KiB before, +{rss_growth} KiB at most; answers {:?}",
        seen.health_checks.load(Ordering::Relaxed),
        seen.slow_checks.load(Ordering::Relaxed),
        answers.lock().unwrap(),
    );
    let failed = failed.load(Ordering::Relaxed);
    assert!(
        failed == 0,
        "{failed} of {cases} inputs (seed {seed}) were answered as the server's fault; the first:\n{}",
        failures.lock().unwrap().join("\n")
    );
    assert_eq!(PANICS.load(Ordering::Relaxed), 0, "the server panicked (see the output above)");
    assert_eq!(seen.failed_checks.load(Ordering::Relaxed), 0, "health checks failed during the run");
    let (checks, slow) = (seen.health_checks.load(Ordering::Relaxed), seen.slow_checks.load(Ordering::Relaxed));
    assert!(slow * 100 <= checks, "{slow} of {checks} health checks took over {HEALTH_LATENCY:?}");
    assert!(max_health < MAX_HEALTH_STALL, "a health check took {max_health:?} during the run");
    assert!(rss_growth < MAX_RSS_GROWTH_KIB, "resident memory grew by {rss_growth} KiB during the run");
    server.stop().await;
}

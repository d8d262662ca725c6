//! Audit stream delivery (not a test): a release `hush serve` (SQLite) and an in-process HTTP receiver.
//! Each run measures, on fresh servers:
//! - **latency**: one client makes `--rate` audited actions a second (GetProject, each waiting for its answer)
//!   for `--seconds`; latency is the receiver's arrival time of an action's entry minus the time the action
//!   was sent;
//! - **idle**: after that, with the stream caught up, the statements the server sends the database over
//!   `--idle-seconds` (all, and those that write);
//! - **throughput**: a backlog of `--entries` audit entries seeded into a fresh server's database, then
//!   backfilled; events/s is the backlog divided by the time from the backfill call to the receiver holding
//!   every entry.
//!
//! Method and results: `docs/BENCHMARKS.md`.
//!
//! ```sh
//! cargo bench --bench streams -- [--entries 100000] [--rate 100] [--seconds 10] [--idle-seconds 60] [--runs 3]
//! ```

use std::{
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, ensure};
use axum::{Router, body::Bytes, extract::State, routing::post};
use clap::Parser;
use hush::{
    pb::{
        self, audit_streams_service_client::AuditStreamsServiceClient, identity_service_client::IdentityServiceClient,
        projects_service_client::ProjectsServiceClient,
    },
    store::entities::audit_log,
};
use sea_orm::{Database, EntityTrait, Set};
use tokio::process::{Child, Command};
use tonic::{service::interceptor::InterceptedService, transport::Channel};

/// Rows per insert while seeding the backlog.
const SEED_BATCH: usize = 1000;
/// How long one phase may take before the run is called failed.
const PHASE_LIMIT: Duration = Duration::from_secs(300);

#[derive(Parser)]
struct Args {
    /// Audit entries in the backlog of the throughput phase.
    #[arg(long, default_value_t = 100_000)]
    entries: usize,
    /// Audited actions per second in the latency phase.
    #[arg(long, default_value_t = 100)]
    rate: u32,
    /// Length of the latency phase.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Length of the idle window.
    #[arg(long, default_value_t = 60)]
    idle_seconds: u64,
    /// Measured runs (each on fresh servers and databases).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Ignored: `cargo bench` passes it.
    #[arg(long, hide = true)]
    bench: bool,
}

/// What the receiver got: how many entries, and when each `get-project` entry arrived (in arrival order).
#[derive(Default)]
struct Arrivals {
    entries: usize,
    actions: Vec<Instant>,
}

/// The part of an entry the receiver looks at.
#[derive(serde::Deserialize)]
struct Entry<'a> {
    #[serde(rename = "eventType", borrow)]
    event_type: &'a str,
}

/// Records a batch (a JSON array).
async fn receive(State(arrivals): State<Arc<Mutex<Arrivals>>>, body: Bytes) -> &'static str {
    let now = Instant::now();
    let batch: Vec<Entry> = serde_json::from_slice(&body).unwrap_or_default();
    let mut arrivals = arrivals.lock().unwrap();
    arrivals.entries += batch.len();
    let actions = batch.iter().filter(|e| e.event_type == "get-project").count();
    arrivals.actions.extend(std::iter::repeat_n(now, actions));
    "ok"
}

async fn start_receiver() -> Result<(String, Arc<Mutex<Arrivals>>, tokio::task::JoinHandle<()>)> {
    let arrivals = Arc::new(Mutex::new(Arrivals::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/in", listener.local_addr()?);
    let app = Router::new().route("/in", post(receive)).with_state(arrivals.clone());
    let serving = tokio::spawn(async move {
        axum::serve(listener, app).await.ok();
    });
    Ok((url, arrivals, serving))
}

/// Adds the bearer token to every request.
#[derive(Clone)]
struct Bearer(tonic::metadata::MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> tonic::Result<tonic::Request<()>> {
        request.metadata_mut().insert("authorization", self.0.clone());
        Ok(request)
    }
}

type Authed = InterceptedService<Channel, Bearer>;

/// A `hush serve` with its data dir, a client channel carrying the bootstrap admin's token, and its org.
struct Server {
    process: Child,
    data: tempfile::TempDir,
    port: u16,
    channel: Authed,
    org_id: String,
}

impl Server {
    async fn start() -> Result<Self> {
        let data = tempfile::tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let process = Command::new(env!("CARGO_BIN_EXE_hush"))
            .args(["serve", "--data-dir", data.path().to_str().context("utf-8 path")?])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("HUSH_STREAMS_ALLOW_PRIVATE", "true")
            .env_remove("HUSH_DATABASE_URL")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let channel = wait_serving(&format!("http://127.0.0.1:{port}")).await?;
        let bootstrap: serde_json::Value = serde_json::from_slice(&std::fs::read(data.path().join("bootstrap.json"))?)?;
        let org_id = bootstrap["org_id"].as_str().context("org_id")?.to_owned();
        let login = IdentityServiceClient::new(channel.clone())
            .login(pb::LoginRequest {
                client_id: bootstrap["client_id"].as_str().context("client_id")?.into(),
                client_secret: bootstrap["client_secret"].as_str().context("client_secret")?.into(),
            })
            .await?
            .into_inner();
        let token = Bearer(format!("Bearer {}", login.access_token).parse()?);
        Ok(Self { process, data, port, channel: InterceptedService::new(channel, token), org_id })
    }

    async fn create_stream(&self, url: &str) -> Result<String> {
        let provider = pb::create_audit_stream_request::Provider::Custom(pb::CustomProvider {
            url: url.into(),
            batch: true,
            ..Default::default()
        });
        let request = pb::CreateAuditStreamRequest {
            name: "bench".into(),
            skip_test: true,
            provider: Some(provider),
            ..Default::default()
        };
        let created = AuditStreamsServiceClient::new(self.channel.clone()).create_audit_stream(request).await?;
        Ok(created.into_inner().audit_stream.context("stream")?.id)
    }

    /// `hush_db_statements_total` and `hush_db_write_statements_total` from `/metrics`.
    async fn statements(&self) -> Result<(f64, f64)> {
        let text = reqwest::get(format!("http://127.0.0.1:{}/metrics", self.port)).await?.text().await?;
        let value = |name: &str| -> Result<f64> {
            let line = text.lines().find(|l| l.starts_with(name)).with_context(|| format!("{name} in /metrics"))?;
            Ok(line.rsplit(' ').next().context("value")?.parse()?)
        };
        Ok((value("hush_db_statements_total")?, value("hush_db_write_statements_total")?))
    }
}

async fn wait_serving(url: &str) -> Result<Channel> {
    for _ in 0..200 {
        if let Ok(channel) = Channel::from_shared(url.to_owned())?.connect().await {
            let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
            if health.check(tonic_health::pb::HealthCheckRequest::default()).await.is_ok() {
                return Ok(channel);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("hush serve did not come up")
}

/// Waits until `done` holds.
async fn wait_for(what: &str, mut done: impl FnMut() -> bool) -> Result<()> {
    let start = Instant::now();
    while !done() {
        ensure!(start.elapsed() < PHASE_LIMIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// One run's figures.
struct Figures {
    /// Action → receiver latencies, sorted.
    latencies: Vec<Duration>,
    /// Statements and writes in the idle window, per minute.
    idle_statements: f64,
    idle_writes: f64,
    events_per_second: f64,
}

/// Latency and idle phases on one server.
async fn latency_and_idle(args: &Args) -> Result<(Vec<Duration>, f64, f64)> {
    let (url, arrivals, receiver) = start_receiver().await?;
    let mut server = Server::start().await?;
    let project = ProjectsServiceClient::new(server.channel.clone())
        .create_project(pb::CreateProjectRequest { name: "bench".into() })
        .await?
        .into_inner()
        .project
        .context("project")?
        .id;
    server.create_stream(&url).await?;
    let mut projects = ProjectsServiceClient::new(server.channel.clone());
    let actions = (u64::from(args.rate) * args.seconds) as usize;
    let mut sent = Vec::with_capacity(actions);
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / args.rate);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for _ in 0..actions {
        ticks.tick().await;
        sent.push(Instant::now());
        projects.get_project(pb::GetProjectRequest { project_id: project.clone() }).await?;
    }
    wait_for("every action's entry", || arrivals.lock().unwrap().actions.len() >= actions).await?;
    let arrived = arrivals.lock().unwrap().actions.clone();
    // One client, each action answered before the next is sent: entries arrive in the order sent.
    let mut latencies: Vec<Duration> = sent.iter().zip(&arrived).map(|(sent, arrived)| *arrived - *sent).collect();
    latencies.sort();

    // Idle: the stream is caught up; nothing is sent to the server during the window.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (statements, writes) = server.statements().await?;
    tokio::time::sleep(Duration::from_secs(args.idle_seconds)).await;
    let (statements_after, writes_after) = server.statements().await?;
    // The first scrape's own reads of the streams' state (two, made after it read the counter) are left out.
    let per_minute = 60.0 / args.idle_seconds as f64;
    let idle_statements = (statements_after - statements - 2.0) * per_minute;
    let idle_writes = (writes_after - writes) * per_minute;
    server.process.kill().await.ok();
    receiver.abort();
    Ok((latencies, idle_statements, idle_writes))
}

/// Throughput phase on a fresh server: backfill of a seeded backlog.
async fn throughput(entries: usize) -> Result<f64> {
    let (url, arrivals, receiver) = start_receiver().await?;
    let mut server = Server::start().await?;
    // Seed first: a new stream starts at the log's head, and the backfill of the seeded range then measures
    // delivery alone (no RPC traffic competing for the database).
    seed(server.data.path(), &server.org_id, entries).await?;
    let stream = server.create_stream(&url).await?;
    // The stream delivers the entry of its own creation first.
    wait_for("the creation entry", || arrivals.lock().unwrap().entries >= 1).await?;
    let before = arrivals.lock().unwrap().entries;
    let start = Instant::now();
    let since = prost_types::Timestamp { seconds: chrono::Utc::now().timestamp() - 3600, nanos: 0 };
    let queued = AuditStreamsServiceClient::new(server.channel.clone())
        .backfill_audit_stream(pb::BackfillAuditStreamRequest {
            audit_stream_id: stream,
            start_time: Some(since),
            end_time: None,
        })
        .await?
        .into_inner()
        .queued_events as usize;
    ensure!(queued >= entries, "backfill queued {queued} of {entries}");
    wait_for("the backlog", || arrivals.lock().unwrap().entries >= before + entries).await?;
    let elapsed = start.elapsed();
    server.process.kill().await.ok();
    receiver.abort();
    Ok(entries as f64 / elapsed.as_secs_f64())
}

/// Inserts `entries` audit entries of `org_id` straight into the server's SQLite database.
async fn seed(data: &std::path::Path, org_id: &str, entries: usize) -> Result<()> {
    let db = Database::connect(format!("sqlite://{}?mode=rw", data.join("hush.db").display())).await?;
    let now = chrono::Utc::now();
    for batch in 0..entries.div_ceil(SEED_BATCH) {
        let rows = (0..SEED_BATCH.min(entries - batch * SEED_BATCH)).map(|i| audit_log::ActiveModel {
            id: Set(uuid::Uuid::now_v7().to_string()),
            actor_type: Set("identity".into()),
            actor_id: Set("bench".into()),
            actor_name: Set("bench".into()),
            ip_address: Set("127.0.0.1".into()),
            user_agent: Set("bench".into()),
            user_agent_type: Set("other".into()),
            event_type: Set("get-secret".into()),
            event_metadata: Set(serde_json::json!({ "secretKey": format!("KEY_{batch}_{i}"), "secretPath": "/bench" })),
            org_id: Set(org_id.to_owned()),
            project_id: Set(None),
            created_at: Set(now),
            expires_at: Set(now + chrono::Duration::days(90)),
            ..Default::default()
        });
        audit_log::Entity::insert_many(rows).exec(&db).await?;
    }
    db.close().await?;
    Ok(())
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Median and (min–max) of one figure over the runs.
fn summary(values: impl Iterator<Item = f64>, digits: usize) -> String {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    let (min, median, max) = (values[0], values[values.len() / 2], values[values.len() - 1]);
    format!("{median:.digits$} ({min:.digits$}–{max:.digits$})")
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let mut runs = Vec::new();
    for run in 1..=args.runs {
        let (latencies, idle_statements, idle_writes) = latency_and_idle(&args).await?;
        let events_per_second = throughput(args.entries).await?;
        let figures = Figures { latencies, idle_statements, idle_writes, events_per_second };
        println!(
            "run {run}: latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} actions); idle: {:.0} statements, {:.0} \
             writes per minute; backfill {:.0} events/s ({} entries)",
            ms(percentile(&figures.latencies, 0.50)),
            ms(percentile(&figures.latencies, 0.99)),
            ms(*figures.latencies.last().context("samples")?),
            figures.latencies.len(),
            figures.idle_statements,
            figures.idle_writes,
            figures.events_per_second,
            args.entries,
        );
        runs.push(figures);
    }
    let latency = |p: f64| summary(runs.iter().map(|r| ms(percentile(&r.latencies, p))), 1);
    println!("\nMedian of {} runs (min–max):\n", runs.len());
    println!("| figure | goal | measured |\n|---|---|---:|");
    println!("| action → receiver latency p50, {} actions/s (ms) | < 50 | {} |", args.rate, latency(0.50));
    println!("| action → receiver latency p99 (ms) | < 200 | {} |", latency(0.99));
    println!(
        "| action → receiver latency max (ms) | | {} |",
        summary(runs.iter().map(|r| ms(*r.latencies.last().unwrap())), 1)
    );
    println!(
        "| backfill throughput, one stream, batch mode (events/s) | ≥ 50 000 | {} |",
        summary(runs.iter().map(|r| r.events_per_second), 0)
    );
    println!("| idle: database writes per minute | 0 | {} |", summary(runs.iter().map(|r| r.idle_writes), 0));
    println!(
        "| idle: database statements per minute (all) | | {} |",
        summary(runs.iter().map(|r| r.idle_statements), 0)
    );
    Ok(())
}

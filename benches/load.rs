//! Load benchmark (not a test): starts the real `hush` binary built by `cargo bench`, then measures
//!
//! - event fan-out: write→receive latency over N Subscribe streams and the server's memory per idle
//!   subscriber;
//! - idle streams (`--idle`): how fast N streams open and what each costs the server while idle;
//! - secret throughput: CreateSecret, UpdateSecret and GetSecret from 16 concurrent clients;
//!
//! on SQLite and on PostgreSQL, and prints a Markdown table per backend. Method and results:
//! `docs/BENCHMARKS.md`.
//!
//! ```sh
//! cargo bench --bench load -- [--backend sqlite|postgres|both] [--subscribers 1,100,1000,10000] [--idle 50000]
//!     [--ops 2000]
//! ```
//!
//! `HUSH_BENCH_BIN=/path/to/hush` benchmarks that binary instead (another build, side by side).
//!
//! PostgreSQL runs create a fresh database on the server named by `HUSH_BENCH_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) and drop it afterwards.

use std::{
    fmt::Write as _,
    net::TcpListener,
    path::{Path, PathBuf},
    process::Stdio,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use clap::{Parser, ValueEnum};
use hush::pb::{
    self, events_service_client::EventsServiceClient, identity_service_client::IdentityServiceClient,
    projects_service_client::ProjectsServiceClient, secrets_service_client::SecretsServiceClient,
    subscribe_response::Message,
};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};
use tokio::{
    process::{Child, Command},
    sync::{Semaphore, mpsc},
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;
use tonic::{
    metadata::{Ascii, MetadataValue},
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Channel, Endpoint},
};
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

/// Subscribe streams multiplexed on one HTTP/2 connection: real clients share connections, but no single
/// connection should carry an unusual number of streams.
const STREAMS_PER_CONNECTION: usize = 100;
/// Subscribe calls in flight at once while opening: each one checks a token and a project in the database, so
/// an unbounded burst of 10 000 would measure the connection pool's queue instead of the streams.
const OPEN_CONCURRENCY: usize = 64;
/// Writes whose fan-out is measured.
const MEASURED_WRITES: usize = 100;
/// Unmeasured writes, `--write-interval-ms` apart, between the idle reading and the measured writes. The first
/// writes after the idle pause are slower (the first reached the last of 1 000 subscribers after ≈ 20 ms
/// where the others took 5–9 ms); with 1 000 (write, subscriber) pairs per write, that one write alone would
/// be the p99 of the run, so the figure would describe the pause rather than the steady stream of writes.
const REWARM_WRITES: usize = 3;
/// Wait after every subscriber received the warm-up event before reading RSS, so that buffers of the opening
/// burst have been released and the reading reflects idle streams.
const IDLE_SETTLE: Duration = Duration::from_secs(1);
/// How long opening all streams (and delivering the warm-up event to all of them) may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(300);
/// How long subscribers may take after the last write to receive every event; later ones count as missing.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the server may take to migrate its database and answer health checks.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Pause between health checks while the server starts.
const STARTUP_POLL: Duration = Duration::from_millis(50);
/// The server's counter of database statements (`/metrics`).
const STATEMENTS_METRIC: &str = "hush_db_statements_total";
/// Open streams allowed per identity on the benchmarked server: every subscriber is the same identity.
const STREAMS_PER_IDENTITY: &str = "1000000";
/// Concurrent clients of the throughput phases, each on a connection of its own.
const THROUGHPUT_CLIENTS: usize = 16;
/// Clock ticks per second of `/proc/<pid>/stat` CPU times (USER_HZ, 100 on every Linux build in use).
const USER_HZ: f64 = 100.0;
/// A `hush` binary to benchmark instead of the one `cargo bench` built.
const BINARY_VAR: &str = "HUSH_BENCH_BIN";
/// PostgreSQL server to create benchmark databases on.
const PG_URL_VAR: &str = "HUSH_BENCH_DATABASE_URL";
const PG_DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
/// How long to wait for PostgreSQL before calling it unreachable.
const PG_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Where the benchmark writes its secrets.
const ENVIRONMENT: &str = "dev";
const FANOUT_PATH: &str = "/fanout";
const THROUGHPUT_PATH: &str = "/load";
/// A value of the size of a typical API token.
const VALUE: &str = "bench-value-0123456789abcdef0123";
/// Index of the write that proves every stream is open; measured writes are numbered from 1.
const WARMUP_INDEX: usize = 0;
/// Key prefix of fan-out writes; the write's index follows it.
const FANOUT_KEY_PREFIX: &str = "LAT_";

#[derive(Debug, Parser)]
#[command(about = "hush load benchmark: event fan-out and secret throughput")]
struct Args {
    /// Database backend(s) to benchmark.
    #[arg(long, value_enum, default_value = "both")]
    backend: BackendChoice,
    /// Subscriber counts of the fan-out runs.
    #[arg(long, value_delimiter = ',', default_value = "1,100,1000,10000")]
    subscribers: Vec<usize>,
    /// Subscriber counts of the idle runs (open, one event, memory; no measured writes).
    #[arg(long, value_delimiter = ',')]
    idle: Vec<usize>,
    /// Writes, and then reads, of the throughput run.
    #[arg(long, default_value_t = 2000)]
    ops: usize,
    /// Pause between the fan-out's measured writes. The default, 20 ms, lets one write's fan-out end before
    /// the next starts up to a few thousand subscribers; beyond, fan-outs overlap and the latency measured
    /// includes the queue of events behind each other (at 10 000 subscribers: 500 000 deliveries a second).
    #[arg(long, default_value_t = 20)]
    write_interval_ms: u64,
    /// Passed by `cargo bench` to every benchmark binary; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BackendChoice {
    Sqlite,
    Postgres,
    Both,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

impl BackendChoice {
    fn backends(self) -> Vec<Backend> {
        match self {
            Self::Sqlite => vec![Backend::Sqlite],
            Self::Postgres => vec![Backend::Postgres],
            Self::Both => vec![Backend::Sqlite, Backend::Postgres],
        }
    }
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "SQLite",
            Self::Postgres => "PostgreSQL",
        }
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // The whole chain on one line, without the backtrace anyhow adds under RUST_BACKTRACE.
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<()> {
    // Every connection of the benchmark is a file descriptor of this process too.
    hush::limits::open_files::raise_to_hard_limit();
    ensure!(
        args.ops >= 2 * THROUGHPUT_CLIENTS,
        "--ops must be at least {} (every client creates, updates and reads)",
        2 * THROUGHPUT_CLIENTS
    );
    ensure!(args.subscribers.iter().chain(&args.idle).all(|&n| n > 0), "subscriber counts must be positive");
    let backends = args.backend.backends();
    if backends.contains(&Backend::Postgres) {
        // Fail before spending minutes on SQLite when the second half cannot run.
        PgDatabase::check_reachable().await?;
    }
    for backend in backends {
        let report = bench_backend(backend, &args).await?;
        println!("{report}");
    }
    Ok(())
}

/// Runs every fan-out size and the throughput phases on `backend`, each on a fresh server and database so
/// that one run's allocations and rows do not flatter or burden the next.
async fn bench_backend(backend: Backend, args: &Args) -> Result<String> {
    let load_before = load_average()?;
    let interval = Duration::from_millis(args.write_interval_ms);
    let fanouts =
        on_fresh_servers(backend, &args.subscribers, "fan-out to", async |server, n| fanout(server, n, interval).await)
            .await?;
    let idle = on_fresh_servers(backend, &args.idle, "idle streams:", idle_streams).await?;
    eprintln!("[{}] throughput, {} clients, {} ops", backend.name(), THROUGHPUT_CLIENTS, args.ops);
    let server = ServerProcess::start(backend).await?;
    let phases = throughput(&server, args.ops).await;
    server.stop().await?;
    let phases = phases.with_context(|| format!("{} throughput", backend.name()))?;
    let load_after = load_average()?;
    Ok(render(backend, &fanouts, &idle, &phases, &load_before, &load_after))
}

/// Runs `measure` once per subscriber count, each on a fresh server.
async fn on_fresh_servers<T>(
    backend: Backend,
    counts: &[usize],
    what: &str,
    measure: impl AsyncFn(&ServerProcess, usize) -> Result<T>,
) -> Result<Vec<T>> {
    let mut results = Vec::with_capacity(counts.len());
    for &subscribers in counts {
        eprintln!("[{}] {what} {subscribers} subscribers", backend.name());
        let server = ServerProcess::start(backend).await?;
        let result = measure(&server, subscribers).await;
        server.stop().await?;
        results.push(result.with_context(|| format!("{} {what} {subscribers} subscribers", backend.name()))?);
    }
    Ok(results)
}

// ---------------------------------------------------------------------------------------------------------
// Server process

/// A `hush serve` child process on a temporary data dir (and, for PostgreSQL, a fresh database).
struct ServerProcess {
    child: Child,
    pid: u32,
    url: String,
    dir: tempfile::TempDir,
    database: Option<PgDatabase>,
}

impl ServerProcess {
    async fn start(backend: Backend) -> Result<Self> {
        let dir = tempfile::tempdir().context("temp dir")?;
        let database = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(PgDatabase::create().await?),
        };
        let listen = format!("127.0.0.1:{}", free_port()?);
        let log = std::fs::File::create(dir.path().join("server.log")).context("server log file")?;
        // Another build can be measured with this benchmark (side by side with the current one).
        let binary = std::env::var_os(BINARY_VAR).unwrap_or_else(|| env!("CARGO_BIN_EXE_hush").into());
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--listen")
            .arg(&listen)
            // The caller's own HUSH_* settings must not redirect the benchmark to another database or key.
            .env_remove("HUSH_DATABASE_URL")
            .env_remove("HUSH_ROOT_KEY")
            .env("HUSH_MAX_STREAMS_PER_IDENTITY", STREAMS_PER_IDENTITY)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        if let Some(database) = &database {
            command.env("HUSH_DATABASE_URL", &database.url);
        }
        let child = match command.spawn() {
            Ok(child) => child,
            Err(error) => {
                if let Some(database) = database {
                    database.drop_database().await?;
                }
                return Err(error).context("spawning the hush binary");
            }
        };
        let pid = child.id().context("server pid")?;
        let mut server = Self { child, pid, url: format!("http://{listen}"), dir, database };
        match server.wait_healthy().await {
            Ok(()) => Ok(server),
            Err(error) => {
                server.stop().await.ok();
                Err(error)
            }
        }
    }

    /// A counter of the server's `/metrics`, over a connection of its own (a kept-alive HTTP/1 connection
    /// would be closed by the server's header timeout between two distant reads).
    async fn metric(&self, name: &str) -> Result<f64> {
        HttpClient::connect(self.address(), "").await?.metric(name).await
    }

    /// `host:port` of the server.
    fn address(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    /// Polls grpc.health.v1 until the server answers SERVING; fails early if the process exits.
    async fn wait_healthy(&mut self) -> Result<()> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("hush serve exited with {status} during startup:\n{}", self.log_tail());
            }
            if self.healthy().await {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("hush serve not healthy after {STARTUP_TIMEOUT:?}:\n{}", self.log_tail());
            }
            tokio::time::sleep(STARTUP_POLL).await;
        }
    }

    async fn healthy(&self) -> bool {
        let Ok(channel) = connect(&self.url).await else { return false };
        let check = HealthClient::new(channel).check(HealthCheckRequest { service: String::new() }).await;
        check.is_ok_and(|r| r.into_inner().status == ServingStatus::Serving as i32)
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    fn bootstrap_file(&self) -> PathBuf {
        self.dir.path().join("data").join("bootstrap.json")
    }

    /// Kills the server (its state is thrown away, so no graceful drain is needed) and drops its database.
    async fn stop(mut self) -> Result<()> {
        self.child.start_kill().ok();
        self.child.wait().await.ok();
        if let Some(database) = self.database.take() {
            database.drop_database().await?;
        }
        Ok(())
    }
}

/// A port that was free a moment ago; the server binds it right after.
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding a probe port")?;
    Ok(listener.local_addr()?.port())
}

/// A database of its own on the PostgreSQL server named by `HUSH_BENCH_DATABASE_URL`.
struct PgDatabase {
    server_url: String,
    name: String,
    url: String,
}

impl PgDatabase {
    fn server_url() -> String {
        std::env::var(PG_URL_VAR).unwrap_or_else(|_| PG_DEFAULT_URL.to_owned())
    }

    async fn admin(server_url: &str) -> Result<DatabaseConnection> {
        let mut options = ConnectOptions::new(server_url.to_owned());
        options.connect_timeout(PG_CONNECT_TIMEOUT).max_connections(1).sqlx_logging(false);
        Database::connect(options).await.with_context(|| {
            format!("PostgreSQL is unreachable at {server_url}: start it or set {PG_URL_VAR} to a server where this user may CREATE DATABASE")
        })
    }

    async fn check_reachable() -> Result<()> {
        let admin = Self::admin(&Self::server_url()).await?;
        admin.execute_unprepared("SELECT 1").await.context("PostgreSQL answers queries")?;
        admin.close().await.ok();
        Ok(())
    }

    async fn create() -> Result<Self> {
        let server_url = Self::server_url();
        let name = format!("hush_bench_{}", uuid::Uuid::new_v4().simple());
        let admin = Self::admin(&server_url).await?;
        admin.execute_unprepared(&format!("CREATE DATABASE \"{name}\"")).await.context("CREATE DATABASE")?;
        admin.close().await.ok();
        let url = with_database(&server_url, &name);
        Ok(Self { server_url, name, url })
    }

    async fn drop_database(self) -> Result<()> {
        let admin = Self::admin(&self.server_url).await?;
        let drop = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        admin.execute_unprepared(&drop).await.with_context(|| format!("dropping database {}", self.name))?;
        admin.close().await.ok();
        Ok(())
    }
}

/// Replaces the database name in a PostgreSQL URL, keeping its query string.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
    match query {
        Some(q) => format!("{server}/{database}?{q}"),
        None => format!("{server}/{database}"),
    }
}

// ---------------------------------------------------------------------------------------------------------
// Clients

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
struct Bearer(MetadataValue<Ascii>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        request.metadata_mut().insert("authorization", self.0.clone());
        Ok(request)
    }
}

type Authed = InterceptedService<Channel, Bearer>;
type Secrets = SecretsServiceClient<Authed>;

/// A new HTTP/2 connection.
async fn connect(url: &str) -> Result<Channel> {
    Ok(Endpoint::from_shared(url.to_owned())?.connect().await?)
}

/// The admin's token and a fresh project on a running server.
struct Session {
    url: String,
    token: String,
    project: String,
}

#[derive(serde::Deserialize)]
struct Bootstrap {
    client_id: String,
    client_secret: String,
}

impl Session {
    async fn open(server: &ServerProcess) -> Result<Self> {
        let file = server.bootstrap_file();
        let bootstrap: Bootstrap = serde_json::from_slice(&std::fs::read(&file).context("reading bootstrap.json")?)?;
        let login = pb::LoginRequest { client_id: bootstrap.client_id, client_secret: bootstrap.client_secret };
        let mut identity = IdentityServiceClient::new(connect(&server.url).await?);
        let token = identity.login(login).await.context("Login")?.into_inner().access_token;
        let mut session = Self { url: server.url.clone(), token, project: String::new() };
        let mut projects = ProjectsServiceClient::new(session.authed().await?);
        let created = projects.create_project(pb::CreateProjectRequest { name: "bench".into() }).await?;
        session.project = created.into_inner().project.context("CreateProject answered no project")?.id;
        Ok(session)
    }

    /// A new connection carrying the admin's token.
    async fn authed(&self) -> Result<Authed> {
        let bearer = Bearer(format!("Bearer {}", self.token).parse()?);
        Ok(InterceptedService::new(connect(&self.url).await?, bearer))
    }

    async fn secrets(&self) -> Result<Secrets> {
        Ok(SecretsServiceClient::new(self.authed().await?))
    }

    async fn create(&self, client: &mut Secrets, path: &str, key: &str) -> Result<()> {
        let request = pb::CreateSecretRequest {
            project_id: self.project.clone(),
            environment: ENVIRONMENT.into(),
            secret_path: path.into(),
            key: key.into(),
            value: VALUE.into(),
            comment: String::new(),
        };
        client.create_secret(request).await.with_context(|| format!("CreateSecret {path}/{key}"))?;
        Ok(())
    }

    async fn update(&self, client: &mut Secrets, path: &str, key: &str) -> Result<()> {
        let request = pb::UpdateSecretRequest {
            project_id: self.project.clone(),
            environment: ENVIRONMENT.into(),
            secret_path: path.into(),
            key: key.into(),
            value: format!("{VALUE}-updated"),
            comment: None,
            expected_version: None,
        };
        client.update_secret(request).await.with_context(|| format!("UpdateSecret {path}/{key}"))?;
        Ok(())
    }

    async fn read(&self, client: &mut Secrets, path: &str, key: &str) -> Result<()> {
        let request = pb::GetSecretRequest {
            project_id: self.project.clone(),
            environment: ENVIRONMENT.into(),
            secret_path: path.into(),
            key: key.into(),
            include_imports: false,
            version: 0,
        };
        client.get_secret(request).await.with_context(|| format!("GetSecret {path}/{key}"))?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------------------
// Fan-out

/// What one fan-out run measured.
struct FanoutResult {
    subscribers: usize,
    /// Pause between measured writes.
    write_interval: Duration,
    connections: usize,
    open_time: Duration,
    rss_before_kib: u64,
    rss_idle_kib: u64,
    latency: Option<Summary>,
    received: usize,
    expected: usize,
    write_rpc: Option<Summary>,
    /// Database statements of the server per measured write, its event's fan-out included.
    statements_per_write: f64,
    /// During the measured writes and until every event was received.
    cpu: CpuUse,
}

/// When a subscriber received the event of a write: (write index, receive time).
type Receipt = (usize, Instant);

/// What subscriber tasks report to the coordinator.
enum Signal {
    Opened,
    Warm,
    /// Received every measured event; its stream stays open until the others have theirs.
    Done,
    Failed(String),
}

/// Open subscriber tasks.
struct Subscribers {
    tasks: Vec<JoinHandle<Vec<Receipt>>>,
    signals: mpsc::UnboundedReceiver<Signal>,
    stop: CancellationToken,
    connections: usize,
}

/// Streams opened and warmed up, before anything is measured on them.
struct Opened {
    session: Session,
    writer: Secrets,
    streams: Subscribers,
    open_time: Duration,
    rss_before_kib: u64,
    rss_idle_kib: u64,
}

/// Opens `subscribers` streams, checks that each receives an event, and reads the server's memory before and
/// once they are idle.
async fn open_streams(server: &ServerProcess, subscribers: usize) -> Result<Opened> {
    let session = Session::open(server).await?;
    let mut writer = session.secrets().await?;
    // The first write initialises what every later write shares (the project's data key, statement caches),
    // so the RSS baseline below is not charged to the subscribers.
    session.create(&mut writer, FANOUT_PATH, "PRIME").await?;
    let rss_before_kib = rss_kib(server.pid)?;

    let opening = Instant::now();
    let mut streams = open_subscribers(&session, subscribers).await?;
    streams.wait_for(|s| matches!(s, Signal::Opened), subscribers).await.context("opening streams")?;
    let open_time = opening.elapsed();
    // A stream is registered with the server's event hub when Subscribe answers, but only an event proves
    // the whole path works for every stream.
    session.create(&mut writer, FANOUT_PATH, &fanout_key(WARMUP_INDEX)).await?;
    streams.wait_for(|s| matches!(s, Signal::Warm), subscribers).await.context("delivering the warm-up event")?;
    tokio::time::sleep(IDLE_SETTLE).await;
    let rss_idle_kib = rss_kib(server.pid)?;
    Ok(Opened { session, writer, streams, open_time, rss_before_kib, rss_idle_kib })
}

/// What one idle run measured.
struct IdleResult {
    subscribers: usize,
    connections: usize,
    open_time: Duration,
    rss_before_kib: u64,
    rss_idle_kib: u64,
}

async fn idle_streams(server: &ServerProcess, subscribers: usize) -> Result<IdleResult> {
    let Opened { streams, open_time, rss_before_kib, rss_idle_kib, .. } = open_streams(server, subscribers).await?;
    streams.stop.cancel();
    Ok(IdleResult { subscribers, connections: streams.connections, open_time, rss_before_kib, rss_idle_kib })
}

async fn fanout(server: &ServerProcess, subscribers: usize, interval: Duration) -> Result<FanoutResult> {
    let Opened { session, mut writer, mut streams, open_time, rss_before_kib, rss_idle_kib } =
        open_streams(server, subscribers).await?;
    let statements_before = server.metric(STATEMENTS_METRIC).await?;
    let cpu = CpuMeter::start(server.pid)?;
    let (write_times, write_rpc) = measured_writes(&session, &mut writer, interval).await?;
    let receipts = streams.collect().await?;
    let cpu = cpu.stop()?;
    let statements = server.metric(STATEMENTS_METRIC).await? - statements_before;

    let received = receipts.len();
    let latencies = receipts.into_iter().map(|(index, at)| at.saturating_duration_since(write_times[index - 1]));
    Ok(FanoutResult {
        subscribers,
        write_interval: interval,
        connections: streams.connections,
        open_time,
        rss_before_kib,
        rss_idle_kib,
        latency: Summary::of(latencies.collect()),
        received,
        expected: subscribers * MEASURED_WRITES,
        write_rpc: Summary::of(write_rpc),
        statements_per_write: statements / MEASURED_WRITES as f64,
        cpu,
    })
}

fn fanout_key(index: usize) -> String {
    format!("{FANOUT_KEY_PREFIX}{index:04}")
}

fn fanout_index(event: &pb::Event) -> Option<usize> {
    event.secrets.first()?.secret_key.strip_prefix(FANOUT_KEY_PREFIX)?.parse().ok()
}

/// Makes `REWARM_WRITES` and then `MEASURED_WRITES` writes, all `interval` apart; returns when each measured
/// one started, and each one's RPC latency.
async fn measured_writes(
    session: &Session,
    writer: &mut Secrets,
    interval: Duration,
) -> Result<(Vec<Instant>, Vec<Duration>)> {
    let mut tick = tokio::time::interval(interval);
    // A slow write delays the next one instead of causing a burst that would pile fan-outs on each other.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for index in 1..=REWARM_WRITES {
        tick.tick().await;
        session.create(writer, FANOUT_PATH, &format!("REWARM_{index}")).await?;
    }
    let mut started = Vec::with_capacity(MEASURED_WRITES);
    let mut rpc = Vec::with_capacity(MEASURED_WRITES);
    for index in 1..=MEASURED_WRITES {
        tick.tick().await;
        let at = Instant::now();
        started.push(at);
        session.create(writer, FANOUT_PATH, &fanout_key(index)).await?;
        rpc.push(at.elapsed());
    }
    Ok((started, rpc))
}

/// Spawns one task per subscriber, `STREAMS_PER_CONNECTION` of them per connection.
async fn open_subscribers(session: &Session, count: usize) -> Result<Subscribers> {
    let connections = count.div_ceil(STREAMS_PER_CONNECTION);
    let mut clients = Vec::with_capacity(connections);
    for _ in 0..connections {
        clients.push(EventsServiceClient::new(session.authed().await?));
    }
    let gate = Arc::new(Semaphore::new(OPEN_CONCURRENCY));
    let (signal, signals) = mpsc::unbounded_channel();
    let stop = CancellationToken::new();
    let request = pb::SubscribeRequest {
        project_id: session.project.clone(),
        registrations: vec![pb::Registration { event_type: "secret:*".into(), conditions: None }],
        resume_after: None,
    };
    let tasks = (0..count)
        .map(|i| {
            let client = clients[i / STREAMS_PER_CONNECTION].clone();
            tokio::spawn(subscriber(client, request.clone(), gate.clone(), signal.clone(), stop.clone()))
        })
        .collect();
    Ok(Subscribers { tasks, signals, stop, connections })
}

/// One subscriber: opens its stream, reports the warm-up event, then records when each measured event
/// arrives until it has them all or is stopped.
async fn subscriber(
    mut client: EventsServiceClient<Authed>,
    request: pb::SubscribeRequest,
    gate: Arc<Semaphore>,
    signal: mpsc::UnboundedSender<Signal>,
    stop: CancellationToken,
) -> Vec<Receipt> {
    let opened = {
        let _permit = gate.acquire().await;
        client.subscribe(request).await
    };
    let mut stream = match opened {
        Ok(response) => response.into_inner(),
        Err(status) => {
            let _ = signal.send(Signal::Failed(format!("Subscribe: {status}")));
            return Vec::new();
        }
    };
    let _ = signal.send(Signal::Opened);
    let mut receipts = Vec::with_capacity(MEASURED_WRITES);
    while receipts.len() < MEASURED_WRITES {
        let message = tokio::select! {
            () = stop.cancelled() => break,
            message = stream.message() => message,
        };
        // Taken first, so that the bookkeeping below is not part of the latency.
        let received = Instant::now();
        let event = match message {
            Ok(Some(pb::SubscribeResponse { message: Some(Message::Event(event)) })) => event,
            Ok(Some(_)) => continue, // heartbeats
            Ok(None) => {
                let _ = signal.send(Signal::Failed("stream ended".into()));
                break;
            }
            Err(status) => {
                let _ = signal.send(Signal::Failed(format!("stream failed: {status}")));
                break;
            }
        };
        match fanout_index(&event) {
            Some(WARMUP_INDEX) => {
                let _ = signal.send(Signal::Warm);
            }
            Some(index) => receipts.push((index, received)),
            None => {}
        }
    }
    if receipts.len() == MEASURED_WRITES {
        // Closing the stream now would put its teardown beside the others' last deliveries.
        let _ = signal.send(Signal::Done);
        stop.cancelled().await;
    }
    receipts
}

impl Subscribers {
    /// Waits until `count` subscribers sent a signal `wanted`; fails on the first subscriber failure.
    async fn wait_for(&mut self, wanted: impl Fn(&Signal) -> bool, count: usize) -> Result<()> {
        let deadline = tokio::time::Instant::now() + OPEN_TIMEOUT;
        let mut seen = 0;
        while seen < count {
            let signal = tokio::time::timeout_at(deadline, self.signals.recv())
                .await
                .map_err(|_| anyhow::anyhow!("only {seen} of {count} subscribers after {OPEN_TIMEOUT:?}"))?
                .context("subscriber tasks ended")?;
            match signal {
                Signal::Failed(reason) => bail!("a subscriber failed: {reason}"),
                signal if wanted(&signal) => seen += 1,
                _ => {}
            }
        }
        Ok(())
    }

    /// Waits for every subscriber's receipts, stopping the stragglers after `DRAIN_TIMEOUT`.
    /// Waits until every subscriber has every measured event (or failed, or `DRAIN_TIMEOUT` passed), then
    /// closes the streams and gathers the receipts.
    async fn collect(&mut self) -> Result<Vec<Receipt>> {
        let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
        let mut finished = 0;
        while finished < self.tasks.len() {
            match tokio::time::timeout_at(deadline, self.signals.recv()).await {
                Ok(Some(Signal::Done | Signal::Failed(_))) => finished += 1,
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        self.stop.cancel();
        let mut receipts = Vec::with_capacity(self.tasks.len() * MEASURED_WRITES);
        for task in self.tasks.drain(..) {
            receipts.extend(task.await.context("subscriber task panicked")?);
        }
        Ok(receipts)
    }
}

// ---------------------------------------------------------------------------------------------------------
// Throughput

/// One throughput phase: a kind of request made `requests` times by all clients together.
struct Phase {
    name: &'static str,
    requests: usize,
    wall: Duration,
    latencies: Vec<Duration>,
    cpu: CpuUse,
    /// Database statements the server ran during the phase (`hush_db_statements_total`), background work
    /// such as audit groups included.
    statements: f64,
}

impl Phase {
    /// `parts`, run one after another, as one phase called `name`.
    fn sum(name: &'static str, parts: &[&Phase]) -> Phase {
        Phase {
            name,
            requests: parts.iter().map(|p| p.requests).sum(),
            wall: parts.iter().map(|p| p.wall).sum(),
            latencies: parts.iter().flat_map(|p| p.latencies.iter().copied()).collect(),
            cpu: parts.iter().fold(CpuUse::default(), |total, p| total.plus(&p.cpu)),
            statements: parts.iter().map(|p| p.statements).sum(),
        }
    }
}

/// Slices that each read phase and its ceiling are cut into and run in turn (ceiling, read, ceiling, …): on a
/// machine whose speed drifts within a run (a virtual machine's host is shared), both see the same drift, and
/// their ratio keeps only what the server does differently.
const SIDE_BY_SIDE_SLICES: usize = 5;

#[derive(Debug, Clone, Copy)]
enum Op {
    Create,
    Update,
    Read,
    /// `grpc.health.v1.Health/Check`: the cheapest gRPC request the server answers.
    HealthCheck,
    /// GetSecret as JSON: `POST /hush.v1.SecretsService/GetSecret` over HTTP/1.1.
    JsonRead,
    /// `GET /healthz` over HTTP/1.1: the cheapest HTTP request the server answers.
    Healthz,
}

/// The throughput phases; each read is measured next to its ceiling (the cheapest request over the same
/// transport) in the same run.
struct Throughput {
    create: Phase,
    update: Phase,
    writes: Phase,
    grpc_ceiling: Phase,
    grpc_read: Phase,
    json_ceiling: Phase,
    json_read: Phase,
    /// Mean time of one small append made durable (`fdatasync`) in the server's data directory.
    flush: Duration,
}

impl Throughput {
    /// Every phase: the writes (their total last), then each ceiling before its read (run in turns of slices).
    fn phases(&self) -> [&Phase; 7] {
        [
            &self.create,
            &self.update,
            &self.writes,
            &self.grpc_ceiling,
            &self.grpc_read,
            &self.json_ceiling,
            &self.json_read,
        ]
    }
}

async fn throughput(server: &ServerProcess, ops: usize) -> Result<Throughput> {
    let flush = flush_time(server.dir.path().to_owned()).await?;
    let load = LoadClients::connect(server).await?;
    // Half the writes create keys and half update them, so both write paths are measured on distinct keys.
    let creates = ops / 2;
    let create = load.run("CreateSecret", Op::Create, creates, creates).await?;
    let update = load.run("UpdateSecret", Op::Update, ops - creates, creates).await?;
    let writes = Phase::sum("writes (create + update)", &[&create, &update]);
    // Reads are cheap: ten times as many, so each phase lasts long enough to measure.
    let reads = ops * 10;
    let grpc = [("grpc.health.v1.Health/Check", Op::HealthCheck), ("GetSecret (gRPC)", Op::Read)];
    let [grpc_ceiling, grpc_read] = load.side_by_side(grpc, reads, creates).await?;
    let json = [("GET /healthz", Op::Healthz), ("GetSecret (JSON)", Op::JsonRead)];
    let [json_ceiling, json_read] = load.side_by_side(json, reads, creates).await?;
    Ok(Throughput { create, update, writes, grpc_ceiling, grpc_read, json_ceiling, json_read, flush })
}

/// Appends made durable by the flush probe.
const FLUSH_PROBES: u32 = 200;

/// The mean time of appending a small record to a file in `dir` and making it durable (`fdatasync`), the
/// least that a durable read or write waits for: by Little's law, clients that each wait for their answer
/// cannot get more than `clients ÷ this` durable answers a second, however the server groups them.
async fn flush_time(dir: PathBuf) -> Result<Duration> {
    tokio::task::spawn_blocking(move || {
        use std::io::Write as _;
        let path = dir.join("flush-probe");
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&path).context("flush probe file")?;
        let record = [b'x'; 512];
        let started = Instant::now();
        for _ in 0..FLUSH_PROBES {
            file.write_all(&record).context("flush probe write")?;
            file.sync_data().context("flush probe fdatasync")?;
        }
        let mean = started.elapsed() / FLUSH_PROBES;
        std::fs::remove_file(&path).context("removing the flush probe file")?;
        Ok(mean)
    })
    .await
    .context("flush probe task")?
}

/// One load client: a gRPC connection of its own (secrets and health share it).
#[derive(Clone)]
struct LoadClient {
    secrets: Secrets,
    health: HealthClient<Authed>,
}

/// The concurrent clients of the throughput phases.
struct LoadClients {
    session: Arc<Session>,
    clients: Vec<LoadClient>,
    server_pid: u32,
    /// `host:port` of the server, for the HTTP/1.1 phases.
    address: String,
}

impl LoadClients {
    async fn connect(server: &ServerProcess) -> Result<Self> {
        let session = Arc::new(Session::open(server).await?);
        let mut clients = Vec::with_capacity(THROUGHPUT_CLIENTS);
        for client in 0..THROUGHPUT_CLIENTS {
            let authed = session.authed().await?;
            let mut secrets = SecretsServiceClient::new(authed.clone());
            // Untimed first call per connection: authentication and HTTP/2 setup paths are warm for the phases.
            session.create(&mut secrets, THROUGHPUT_PATH, &format!("WARM_{client}")).await?;
            clients.push(LoadClient { secrets, health: HealthClient::new(authed) });
        }
        let address = server.address().to_owned();
        Ok(Self { session, clients, server_pid: server.pid, address })
    }

    /// Splits `requests` round-robin over the clients, which run concurrently, each waiting for its previous
    /// answer before the next request; request `i` touches key `i % keys`.
    async fn run(&self, name: &'static str, op: Op, requests: usize, keys: usize) -> Result<Phase> {
        // HTTP/1.1 connections are opened before the clock starts, like the gRPC ones.
        let mut http = Vec::new();
        if matches!(op, Op::JsonRead | Op::Healthz) {
            for _ in 0..THROUGHPUT_CLIENTS {
                http.push(Some(HttpClient::connect(&self.address, &self.session.token).await?));
            }
        } else {
            http.resize_with(THROUGHPUT_CLIENTS, || None);
        }
        let statements_before = self.statements().await?;
        let cpu = CpuMeter::start(self.server_pid)?;
        let started = Instant::now();
        let tasks: Vec<JoinHandle<Result<Vec<Duration>>>> = self
            .clients
            .iter()
            .zip(http)
            .enumerate()
            .map(|(first, (client, http))| {
                let indices = (first..requests).step_by(THROUGHPUT_CLIENTS);
                tokio::spawn(one_client(self.session.clone(), client.clone(), http, op, indices, keys))
            })
            .collect();
        let mut latencies = Vec::with_capacity(requests);
        for task in tasks {
            latencies.extend(task.await.context("client task panicked")??);
        }
        let (wall, cpu) = (started.elapsed(), cpu.stop()?);
        let statements = self.statements().await? - statements_before;
        Ok(Phase { name, requests, wall, latencies, cpu, statements })
    }

    /// Each of `phases` made `requests` times, in [`SIDE_BY_SIDE_SLICES`] turns each.
    async fn side_by_side(&self, phases: [(&'static str, Op); 2], requests: usize, keys: usize) -> Result<[Phase; 2]> {
        let mut slices: [Vec<Phase>; 2] = Default::default();
        for slice in 0..SIDE_BY_SIDE_SLICES {
            let share = requests / SIDE_BY_SIDE_SLICES + usize::from(slice < requests % SIDE_BY_SIDE_SLICES);
            for ((name, op), done) in phases.iter().zip(&mut slices) {
                done.push(self.run(name, *op, share, keys).await?);
            }
        }
        Ok(slices.map(|done| Phase::sum(done[0].name, &done.iter().collect::<Vec<_>>())))
    }

    /// The server's statement count so far.
    async fn statements(&self) -> Result<f64> {
        HttpClient::connect(&self.address, "").await?.metric(STATEMENTS_METRIC).await
    }
}

/// Makes one client's share of a phase's requests in sequence; returns each request's latency.
async fn one_client(
    session: Arc<Session>,
    mut client: LoadClient,
    mut http: Option<HttpClient>,
    op: Op,
    indices: impl Iterator<Item = usize>,
    keys: usize,
) -> Result<Vec<Duration>> {
    let mut latencies = Vec::new();
    for i in indices {
        let key = format!("K{:06}", i % keys);
        let at = Instant::now();
        match (op, http.as_mut()) {
            (Op::Create, _) => session.create(&mut client.secrets, THROUGHPUT_PATH, &key).await?,
            (Op::Update, _) => session.update(&mut client.secrets, THROUGHPUT_PATH, &key).await?,
            (Op::Read, _) => session.read(&mut client.secrets, THROUGHPUT_PATH, &key).await?,
            (Op::HealthCheck, _) => {
                let status = client.health.check(HealthCheckRequest { service: String::new() }).await?;
                ensure!(status.into_inner().status() == ServingStatus::Serving, "health check: not serving");
            }
            (Op::JsonRead, Some(http)) => http.get_secret(&session.project, THROUGHPUT_PATH, &key).await?,
            (Op::Healthz, Some(http)) => http.healthz().await?,
            (Op::JsonRead | Op::Healthz, None) => bail!("HTTP phase without an HTTP connection"),
        }
        latencies.push(at.elapsed());
    }
    Ok(latencies)
}

/// One keep-alive HTTP/1.1 connection (the JSON gateway and `/healthz`).
struct HttpClient {
    sender: hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>,
    authorization: String,
    host: String,
}

impl HttpClient {
    async fn connect(address: &str, token: &str) -> Result<Self> {
        let stream = tokio::net::TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(Self { sender, authorization: format!("Bearer {token}"), host: address.to_owned() })
    }

    async fn send(&mut self, request: http::request::Builder, body: Vec<u8>) -> Result<bytes::Bytes> {
        let request =
            request.header(http::header::HOST, &self.host).body(http_body_util::Full::new(bytes::Bytes::from(body)))?;
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        // Read the whole body, as a client would, before the next request on the connection.
        let body = http_body_util::BodyExt::collect(response.into_body()).await?.to_bytes();
        ensure!(status.is_success(), "HTTP {status}: {}", String::from_utf8_lossy(&body));
        Ok(body)
    }

    async fn get_secret(&mut self, project: &str, path: &str, key: &str) -> Result<()> {
        let body =
            serde_json::json!({ "projectId": project, "environment": ENVIRONMENT, "secretPath": path, "key": key });
        let request = http::Request::post("/hush.v1.SecretsService/GetSecret")
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::AUTHORIZATION, &self.authorization);
        self.send(request, serde_json::to_vec(&body)?).await.with_context(|| format!("JSON GetSecret {path}/{key}"))?;
        Ok(())
    }

    async fn healthz(&mut self) -> Result<()> {
        self.send(http::Request::get("/healthz"), Vec::new()).await.context("GET /healthz")?;
        Ok(())
    }

    /// A counter of the server's `/metrics` (served to loopback peers).
    async fn metric(&mut self, name: &str) -> Result<f64> {
        let body = self.send(http::Request::get("/metrics"), Vec::new()).await.context("GET /metrics")?;
        let text = String::from_utf8_lossy(&body);
        let line = text
            .lines()
            .find(|line| line.split(' ').next() == Some(name))
            .with_context(|| format!("{name} in /metrics"))?;
        line.rsplit(' ').next().unwrap_or_default().parse().with_context(|| format!("{name} value"))
    }
}

// ---------------------------------------------------------------------------------------------------------
// Measurements

/// Percentiles of a set of samples.
struct Summary {
    p50: Duration,
    p99: Duration,
    max: Duration,
}

impl Summary {
    /// Nearest-rank percentiles over the sorted samples; `None` when there are none.
    fn of(mut samples: Vec<Duration>) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let rank = |p: f64| {
            let rank = (p / 100.0 * samples.len() as f64).ceil() as usize;
            samples[rank.clamp(1, samples.len()) - 1]
        };
        Some(Self { p50: rank(50.0), p99: rank(99.0), max: samples[samples.len() - 1] })
    }
}

/// Resident set size of a process, from `/proc/<pid>/status`.
fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).context("reading /proc/<pid>/status")?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).context("no VmRSS line")?;
    line.split_whitespace().nth(1).context("empty VmRSS line")?.parse().context("VmRSS value")
}

/// User + system CPU time of all threads of a process (`self` or a pid), from `/proc/<pid>/stat`.
fn cpu_seconds(process: &str) -> Result<f64> {
    let stat = std::fs::read_to_string(Path::new("/proc").join(process).join("stat")).context("reading stat")?;
    // The command name may contain spaces; fields are counted from after its closing parenthesis, where
    // field 3 (state) comes first, so utime (14) and stime (15) are the 12th and 13th.
    let fields: Vec<&str> = stat.rsplit_once(')').context("malformed stat")?.1.split_whitespace().collect();
    let ticks = |i: usize| -> Result<f64> { Ok(fields.get(i).context("short stat")?.parse::<f64>()?) };
    Ok((ticks(11)? + ticks(12)?) / USER_HZ)
}

/// CPU time used by the server and by this process over a wall-clock interval.
#[derive(Default)]
struct CpuUse {
    server_seconds: f64,
    bench_seconds: f64,
    wall_seconds: f64,
}

impl CpuUse {
    /// Server CPU in % of one core (200% = both cores of the benchmark machine).
    fn server_percent(&self) -> f64 {
        100.0 * self.server_seconds / self.wall_seconds
    }

    /// This process's (the clients') CPU in % of one core.
    fn bench_percent(&self) -> f64 {
        100.0 * self.bench_seconds / self.wall_seconds
    }

    /// Two consecutive intervals as one.
    fn plus(&self, other: &CpuUse) -> CpuUse {
        CpuUse {
            server_seconds: self.server_seconds + other.server_seconds,
            bench_seconds: self.bench_seconds + other.bench_seconds,
            wall_seconds: self.wall_seconds + other.wall_seconds,
        }
    }
}

/// Measures `CpuUse` from `start` to `stop`: the machine has two cores shared by the server and the
/// clients, so this shows which side a result is limited by.
struct CpuMeter {
    server_pid: String,
    server_start: f64,
    bench_start: f64,
    started: Instant,
}

impl CpuMeter {
    fn start(server_pid: u32) -> Result<Self> {
        let server_pid = server_pid.to_string();
        let server_start = cpu_seconds(&server_pid)?;
        Ok(Self { server_start, bench_start: cpu_seconds("self")?, started: Instant::now(), server_pid })
    }

    fn stop(self) -> Result<CpuUse> {
        Ok(CpuUse {
            server_seconds: cpu_seconds(&self.server_pid)? - self.server_start,
            bench_seconds: cpu_seconds("self")? - self.bench_start,
            wall_seconds: self.started.elapsed().as_secs_f64(),
        })
    }
}

/// The 1, 5 and 15 minute load averages.
fn load_average() -> Result<String> {
    let loadavg = std::fs::read_to_string("/proc/loadavg").context("reading /proc/loadavg")?;
    Ok(loadavg.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

// ---------------------------------------------------------------------------------------------------------
// Report

fn ms(duration: Duration) -> String {
    format!("{:.2}", duration.as_secs_f64() * 1e3)
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

fn percentiles(summary: &Option<Summary>) -> [String; 3] {
    match summary {
        Some(s) => [ms(s.p50), ms(s.p99), ms(s.max)],
        None => ["–".into(), "–".into(), "–".into()],
    }
}

fn render(
    backend: Backend,
    fanouts: &[FanoutResult],
    idle: &[IdleResult],
    phases: &Throughput,
    load_before: &str,
    load_after: &str,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "\n## {}\n", backend.name());
    let _ = writeln!(out, "Load average (1/5/15 min) before: {load_before}; after: {load_after}.\n");
    if !fanouts.is_empty() {
        render_fanouts(&mut out, fanouts);
    }
    if !idle.is_empty() {
        render_idle(&mut out, idle);
    }
    render_goals(&mut out, phases);
    render_phases(&mut out, &phases.phases());
    out
}

/// The figures of the throughput goal (docs/BENCHMARKS.md), each from this run.
fn render_goals(out: &mut String, t: &Throughput) {
    let rate = |phase: &Phase| phase.requests as f64 / phase.wall.as_secs_f64();
    let [_, grpc_p99, _] = percentiles(&Summary::of(t.grpc_read.latencies.clone()));
    let _ = writeln!(out, "Goal figures (this run):\n");
    let _ = writeln!(out, "| figure | value |\n|---|---:|");
    let _ = writeln!(out, "| GetSecret over gRPC (ops/s, p99 ms) | {:.0}, {grpc_p99} |", rate(&t.grpc_read));
    let _ = writeln!(out, "| GetSecret over JSON (ops/s) | {:.0} |", rate(&t.json_read));
    let _ = writeln!(out, "| writes, CreateSecret + UpdateSecret (ops/s) | {:.0} |", rate(&t.writes));
    let ratio = |name: &str, read: &Phase, ceiling: &Phase, end: &str| {
        format!(
            "| ceiling ratio {name} | {:.2} ({:.0} ÷ {:.0}) |\n{end}",
            rate(read) / rate(ceiling),
            rate(read),
            rate(ceiling)
        )
    };
    out.push_str(&ratio("gRPC: GetSecret ÷ Health/Check", &t.grpc_read, &t.grpc_ceiling, ""));
    out.push_str(&ratio("JSON: GetSecret ÷ GET /healthz", &t.json_read, &t.json_ceiling, ""));
    let _ = writeln!(
        out,
        "| durable-answer bound: {THROUGHPUT_CLIENTS} clients ÷ mean append + fdatasync in the data dir ({:.3} ms) | \
         {:.0}/s |\n",
        t.flush.as_secs_f64() * 1000.0,
        THROUGHPUT_CLIENTS as f64 / t.flush.as_secs_f64()
    );
}

fn render_fanouts(out: &mut String, fanouts: &[FanoutResult]) {
    let interval = fanouts.first().map_or(Duration::ZERO, |f| f.write_interval);
    let _ = writeln!(
        out,
        "Event fan-out: {MEASURED_WRITES} CreateSecret writes {} ms apart; latency = write RPC start → event \
         received, over every (write, subscriber) pair. CPU in % of one core during the writes and drain.\n",
        interval.as_millis()
    );
    let _ = writeln!(
        out,
        "| subscribers | connections | open all (ms) | Subscribe/s | server RSS before → idle (MiB) \
         | RSS per idle subscriber (KiB) | events received | latency p50 (ms) | p99 (ms) | max (ms) \
         | write RPC p50 / p99 (ms) | statements per write | server CPU | bench CPU |"
    );
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for f in fanouts {
        let per_subscriber = (f.rss_idle_kib as f64 - f.rss_before_kib as f64) / f.subscribers as f64;
        let [p50, p99, max] = percentiles(&f.latency);
        let [write_p50, write_p99, _] = percentiles(&f.write_rpc);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.0} | {} → {} | {per_subscriber:.1} | {}/{} | {p50} | {p99} | {max} \
             | {write_p50} / {write_p99} | {:.1} | {:.0}% | {:.0}% |",
            f.subscribers,
            f.connections,
            ms(f.open_time),
            f.subscribers as f64 / f.open_time.as_secs_f64(),
            mib(f.rss_before_kib),
            mib(f.rss_idle_kib),
            f.received,
            f.expected,
            f.statements_per_write,
            f.cpu.server_percent(),
            f.cpu.bench_percent(),
        );
    }
    let _ = writeln!(out);
}

fn render_idle(out: &mut String, runs: &[IdleResult]) {
    let _ = writeln!(out, "Idle streams: opened, one event delivered to each, then {IDLE_SETTLE:?} idle.\n");
    let _ = writeln!(
        out,
        "| subscribers | connections | open all (ms) | Subscribe/s | server RSS before → idle (MiB) \
         | RSS per idle subscriber (KiB) |"
    );
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|");
    for run in runs {
        let per_subscriber = (run.rss_idle_kib as f64 - run.rss_before_kib as f64) / run.subscribers as f64;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.0} | {} → {} | {per_subscriber:.1} |",
            run.subscribers,
            run.connections,
            ms(run.open_time),
            run.subscribers as f64 / run.open_time.as_secs_f64(),
            mib(run.rss_before_kib),
            mib(run.rss_idle_kib),
        );
    }
    let _ = writeln!(out);
}

fn render_phases(out: &mut String, phases: &[&Phase]) {
    let _ = writeln!(
        out,
        "Throughput: {THROUGHPUT_CLIENTS} concurrent clients, one connection each; CPU in % of one core.\n"
    );
    let _ = writeln!(
        out,
        "| operation | requests | wall (s) | ops/s | p50 (ms) | p99 (ms) | max (ms) | server CPU | bench CPU | statements per request |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for phase in phases {
        let [p50, p99, max] = percentiles(&Summary::of(phase.latencies.clone()));
        let wall = phase.wall.as_secs_f64();
        let _ = writeln!(
            out,
            "| {} | {} | {wall:.2} | {:.0} | {p50} | {p99} | {max} | {:.0}% | {:.0}% | {:.2} |",
            phase.name,
            phase.requests,
            phase.requests as f64 / wall,
            phase.cpu.server_percent(),
            phase.cpu.bench_percent(),
            phase.statements / phase.requests as f64,
        );
    }
}

//! Audit stream delivery throughput (not a test): a release `hush serve` delivers a seeded backlog of audit
//! entries to a local receiver in batch mode; events/s is the backlog divided by the time from the stream's
//! creation to the receiver holding every entry. Method and results: `docs/BENCHMARKS.md`.
//!
//! ```sh
//! cargo bench --bench streams -- [--entries 100000] [--runs 3]
//! ```

use std::{
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, ensure};
use axum::{Router, body::Bytes, extract::State, routing::post};
use clap::Parser;
use hush::{
    pb::{
        self, audit_streams_service_client::AuditStreamsServiceClient, identity_service_client::IdentityServiceClient,
    },
    store::entities::audit_log,
};
use sea_orm::{Database, EntityTrait, Set};
use tokio::process::Command;

/// Rows per insert while seeding the backlog.
const SEED_BATCH: usize = 1000;
/// How long one run may take before it is called failed.
const RUN_LIMIT: Duration = Duration::from_secs(300);

#[derive(Parser)]
struct Args {
    /// Audit entries in the backlog.
    #[arg(long, default_value_t = 100_000)]
    entries: usize,
    /// Measured runs (each on a fresh server and database).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Ignored: `cargo bench` passes it.
    #[arg(long, hide = true)]
    bench: bool,
}

/// Counts the entries a receiver got (batch mode: one JSON array per request).
async fn receive(State(count): State<Arc<AtomicUsize>>, body: Bytes) -> &'static str {
    let batch: Vec<serde_json::Value> = serde_json::from_slice(&body).unwrap_or_default();
    count.fetch_add(batch.len(), Ordering::Relaxed);
    "ok"
}

async fn run_once(entries: usize) -> Result<(Duration, usize)> {
    let received = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let receiver_url = format!("http://{}/in", listener.local_addr()?);
    let app = Router::new().route("/in", post(receive)).with_state(received.clone());
    let receiver = tokio::spawn(async move { axum::serve(listener, app).await });

    let data = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_hush"))
        .args([
            "serve",
            "--data-dir",
            data.path().to_str().context("utf-8 path")?,
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
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
    let token: tonic::metadata::MetadataValue<_> = format!("Bearer {}", login.access_token).parse()?;
    let mut streams = AuditStreamsServiceClient::with_interceptor(channel, move |mut r: tonic::Request<()>| {
        r.metadata_mut().insert("authorization", token.clone());
        Ok(r)
    });

    // Seed first: a new stream starts at the log's head, and the backfill of the seeded range then measures
    // delivery alone (no RPC traffic competing for the database).
    seed(data.path(), &org_id, entries).await?;
    let created = streams
        .create_audit_stream(pb::CreateAuditStreamRequest {
            name: "bench".into(),
            skip_test: true,
            provider: Some(pb::create_audit_stream_request::Provider::Custom(pb::CustomProvider {
                url: receiver_url,
                headers: Default::default(),
                batch: true,
                ..Default::default()
            })),
            ..Default::default()
        })
        .await?
        .into_inner()
        .audit_stream
        .context("stream")?;
    let start = Instant::now();
    let since = prost_types::Timestamp { seconds: chrono::Utc::now().timestamp() - 3600, nanos: 0 };
    let queued = streams
        .backfill_audit_stream(pb::BackfillAuditStreamRequest {
            audit_stream_id: created.id,
            start_time: Some(since),
            end_time: None,
        })
        .await?
        .into_inner()
        .queued_events as usize;
    ensure!(queued >= entries, "backfill queued {queued} of {entries}");
    while received.load(Ordering::Relaxed) < entries {
        ensure!(start.elapsed() < RUN_LIMIT, "only {} of {entries} delivered", received.load(Ordering::Relaxed));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = start.elapsed();
    server.kill().await.ok();
    receiver.abort();
    Ok((elapsed, received.load(Ordering::Relaxed)))
}

async fn wait_serving(url: &str) -> Result<tonic::transport::Channel> {
    for _ in 0..200 {
        if let Ok(channel) = tonic::transport::Channel::from_shared(url.to_owned())?.connect().await {
            let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
            if health.check(tonic_health::pb::HealthCheckRequest::default()).await.is_ok() {
                return Ok(channel);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("hush serve did not come up")
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

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let mut rates = Vec::new();
    for run in 1..=args.runs {
        let (elapsed, delivered) = run_once(args.entries).await?;
        let rate = delivered as f64 / elapsed.as_secs_f64();
        println!("run {run}: {delivered} entries in {:.2} s = {rate:.0} events/s", elapsed.as_secs_f64());
        rates.push(rate);
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "\n| entries | runs | events/s min | median | max |\n|---:|---:|---:|---:|---:|\n| {} | {} | {:.0} | {:.0} | {:.0} |",
        args.entries,
        args.runs,
        rates[0],
        rates[rates.len() / 2],
        rates[rates.len() - 1]
    );
    Ok(())
}

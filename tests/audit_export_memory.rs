//! Exporting a large audit log streams it in constant memory: 100 000 entries through `ExportAuditLogs` of a
//! real `hush serve` process, whose peak RSS (VmHWM) is read before and after.

use std::{process::Stdio, time::Duration};

use hush::{
    pb::{self, audit_logs_service_client::AuditLogsServiceClient, identity_service_client::IdentityServiceClient},
    store::entities::audit_log,
};
use sea_orm::{Database, EntityTrait, Set};
use tokio::process::Command;

const ENTRIES: usize = 100_000;
/// Rows per insert statement while seeding.
const SEED_BATCH: usize = 1000;
/// Growth of the server's peak RSS allowed while exporting: far below what holding 100 000 entries would take.
const MAX_PEAK_GROWTH_KB: u64 = 48 * 1024;

fn peak_rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exporting_100k_entries_streams_in_constant_memory() {
    let data = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_hush"))
        .args(["serve", "--data-dir", data.path().to_str().unwrap(), "--listen", &format!("127.0.0.1:{port}")])
        .env_remove("HUSH_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let mut channel = None;
    for _ in 0..100 {
        if let Ok(c) = tonic::transport::Channel::from_shared(url.clone()).unwrap().connect().await {
            let mut health = tonic_health::pb::health_client::HealthClient::new(c.clone());
            if health.check(tonic_health::pb::HealthCheckRequest::default()).await.is_ok() {
                channel = Some(c);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let channel = channel.expect("server serving");
    let bootstrap: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.path().join("bootstrap.json")).unwrap()).unwrap();
    let org_id = bootstrap["org_id"].as_str().unwrap().to_owned();

    // Seed the log directly: the point is the export, not 100 000 RPCs.
    let db = Database::connect(format!("sqlite://{}?mode=rw", data.path().join("hush.db").display())).await.unwrap();
    let now = chrono::Utc::now();
    for batch in 0..ENTRIES / SEED_BATCH {
        let rows = (0..SEED_BATCH).map(|i| audit_log::ActiveModel {
            id: Set(uuid::Uuid::now_v7().to_string()),
            actor_type: Set("identity".into()),
            actor_id: Set("seed".into()),
            actor_name: Set("seed".into()),
            ip_address: Set("127.0.0.1".into()),
            user_agent: Set("seed".into()),
            user_agent_type: Set("other".into()),
            event_type: Set("get-secret".into()),
            event_metadata: Set(
                serde_json::json!({ "secretKey": format!("KEY_{batch}_{i}"), "secretPath": "/seeded/path" }),
            ),
            org_id: Set(org_id.clone()),
            project_id: Set(None),
            created_at: Set(now),
            expires_at: Set(now + chrono::Duration::days(90)),
            ..Default::default()
        });
        audit_log::Entity::insert_many(rows).exec(&db).await.unwrap();
    }
    db.close().await.unwrap();

    let login = IdentityServiceClient::new(channel.clone())
        .login(pb::LoginRequest {
            client_id: bootstrap["client_id"].as_str().unwrap().into(),
            client_secret: bootstrap["client_secret"].as_str().unwrap().into(),
        })
        .await
        .unwrap()
        .into_inner();
    let token: tonic::metadata::MetadataValue<_> = format!("Bearer {}", login.access_token).parse().unwrap();
    let mut client = AuditLogsServiceClient::with_interceptor(channel, move |mut r: tonic::Request<()>| {
        r.metadata_mut().insert("authorization", token.clone());
        Ok(r)
    });
    let pid = server.id().unwrap();
    let before = peak_rss_kb(pid);
    let filter = pb::AuditLogFilter { event_types: vec!["get-secret".into()], ..Default::default() };
    let mut stream =
        client.export_audit_logs(pb::ExportAuditLogsRequest { filter: Some(filter) }).await.unwrap().into_inner();
    let mut exported = 0;
    let mut chunks = 0;
    while let Some(chunk) = stream.message().await.unwrap() {
        exported += chunk.audit_logs.len();
        chunks += 1;
    }
    let after = peak_rss_kb(pid);
    eprintln!("exported {exported} entries in {chunks} chunks; server peak RSS {before} kB before, {after} kB after");
    assert_eq!(exported, ENTRIES);
    assert!(
        after.saturating_sub(before) < MAX_PEAK_GROWTH_KB,
        "peak RSS grew by {} kB while exporting",
        after.saturating_sub(before)
    );
    server.kill().await.ok();
}

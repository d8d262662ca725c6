//! A database made by hush 0.1.0 (`tests/fixtures/v0_1_0`, made by its `make.sh` with the 0.1.0 binary) is
//! upgraded by this build and reads back: every secret value and old version decrypts, imports resolve,
//! identities log in with their 0.1.0 credentials and their roles still apply, events resume from a cursor a
//! 0.1.0 subscriber printed, audit entries are queryable, and the audit stream goes on from its cursor.

mod common;

use std::{collections::BTreeMap, time::Duration};

use common::{
    Backend, Bootstrap, ScratchDatabase, TestServer, all_entries,
    events::{next_event, registration, subscribe},
    get_secret, list_secrets,
    receiver::{Receiver, eventually},
};
use hush::pb::{
    self, audit_logs_service_client::AuditLogsServiceClient, audit_streams_service_client::AuditStreamsServiceClient,
    identity_service_client::IdentityServiceClient, projects_service_client::ProjectsServiceClient,
    secrets_service_client::SecretsServiceClient,
};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};

backend_tests!(a_0_1_0_database_upgrades_and_reads_back);

/// Several instances starting at once on one 0.1.0 PostgreSQL database: each waits for the one upgrading it,
/// then finds nothing to do; none fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_starting_together_upgrade_once() {
    if !common::postgres_configured("this test") {
        return;
    }
    let scratch = load(Backend::Postgres).await;
    let mut starts = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let url = scratch.url.clone();
        starts.spawn(async move { hush::store::Store::connect(&url).await.map(drop) });
    }
    for started in starts.join_all().await {
        started.expect("every instance starts");
    }
    let raw = Database::connect(&scratch.url).await.unwrap();
    let recorded = rows(&raw, "SELECT version FROM seaql_migrations").await;
    let recorded: Vec<String> = recorded.iter().map(|r| r.try_get("", "version").unwrap()).collect();
    assert!(!recorded.iter().any(|v| v == "m0001_foundation"), "{recorded:?}");
    assert_eq!(recorded.iter().filter(|v| *v == "m0001_schema_0_1_0").count(), 1, "{recorded:?}");
}

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/v0_1_0");

/// Long enough that the fixture's events are never pruned as too old.
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

#[derive(serde::Deserialize)]
struct Login {
    client_id: String,
    client_secret: String,
}

/// `credentials.json`: what make.sh kept of the logins it made.
#[derive(serde::Deserialize)]
struct Credentials {
    admin: Bootstrap,
    #[serde(rename = "ci-runner")]
    ci_runner: Login,
    auditor: Login,
}

/// What the fixture's own database says, read before the new code touches it.
struct Before {
    /// Every audit entry: (seq, id).
    audit: Vec<(i64, String)>,
    /// The audit stream's delivery cursor: the entries up to it were delivered.
    stream_cursor: i64,
}

fn fixture_file(backend: Backend, name: &str) -> String {
    let dir = if backend == Backend::Sqlite { "sqlite" } else { "postgres" };
    std::fs::read_to_string(format!("{FIXTURE}/{dir}/{name}")).unwrap_or_else(|e| panic!("{dir}/{name}: {e}"))
}

/// A fresh database holding the fixture: a copy of the SQLite file, or the PostgreSQL dump loaded.
async fn load(backend: Backend) -> ScratchDatabase {
    let scratch = ScratchDatabase::new(backend).await;
    match backend {
        Backend::Sqlite => {
            std::fs::copy(format!("{FIXTURE}/sqlite/hush.db"), scratch.dir.path().join("hush.db")).expect("copy");
        }
        Backend::Postgres => {
            let db = Database::connect(&scratch.url).await.expect("connect");
            db.execute_unprepared(&fixture_file(backend, "dump.sql")).await.expect("the dump loads");
            db.close().await.ok();
        }
    }
    scratch
}

async fn rows(db: &DatabaseConnection, sql: &str) -> Vec<sea_orm::QueryResult> {
    db.query_all_raw(Statement::from_string(db.get_database_backend(), sql.to_owned())).await.expect(sql)
}

async fn before(db: &DatabaseConnection) -> Before {
    let audit = rows(db, "SELECT seq, id FROM audit_logs").await;
    let cursor = rows(db, r#"SELECT "cursor" FROM audit_stream_states"#).await;
    assert_eq!(cursor.len(), 1, "the fixture has one audit stream");
    Before {
        audit: audit.iter().map(|r| (r.try_get("", "seq").unwrap(), r.try_get("", "id").unwrap())).collect(),
        stream_cursor: cursor[0].try_get("", "cursor").unwrap(),
    }
}

async fn a_0_1_0_database_upgrades_and_reads_back(backend: Backend) {
    let scratch = load(backend).await;
    let credentials: Credentials = serde_json::from_str(&fixture_file(backend, "credentials.json")).unwrap();
    let raw = Database::connect(&scratch.url).await.unwrap();
    let before = before(&raw).await;
    let root_key = std::fs::read_to_string(format!("{FIXTURE}/root.key")).unwrap();
    let server = TestServer::open(backend, &scratch.url, root_key.trim(), credentials.admin.clone(), |config| {
        config.event_retention = FOREVER;
        config.streams_allow_private = true;
        // The stream's old destination is gone: its first attempts fail until it is pointed at a new one.
        config.stream_retry_base = Duration::from_secs(3);
        config.stream_retry_cap = Duration::from_secs(3);
    })
    .await;
    let recorded: Vec<String> = rows(&raw, "SELECT version FROM seaql_migrations")
        .await
        .iter()
        .map(|r| r.try_get("", "version").unwrap())
        .collect();
    assert!(recorded.contains(&"m0001_schema_0_1_0".to_owned()), "{recorded:?}");
    assert!(!recorded.iter().any(|v| v == "m0001_foundation"), "the development records are gone: {recorded:?}");

    let admin = server.admin_token().await;
    let receiver = stream_goes_on(&server, &admin).await;
    let projects = project_ids(&server, &admin).await;
    let (payments, search) = (&projects["payments"], &projects["search"]);
    secrets_decrypt(&server, &admin, payments, search).await;
    roles_still_apply(&server, &credentials, payments, search).await;
    events_resume(&server, &admin, backend, payments).await;

    let entries = all_entries(&server, &admin, pb::AuditLogFilter::default()).await;
    let ids: std::collections::BTreeSet<&str> = entries.iter().map(|e| e.id.as_str()).collect();
    let missing: Vec<_> = before.audit.iter().filter(|(_, id)| !ids.contains(id.as_str())).collect();
    assert!(missing.is_empty(), "every 0.1.0 audit entry is queryable; missing: {missing:?}");
    let rollback = entries.iter().find(|e| e.event_type == "rollback-secret").expect("the rollback's entry");
    assert_eq!(rollback.project_id, *payments);

    // The stream delivers what followed its cursor, and nothing it had delivered before.
    let delivered_by_0_1_0: Vec<String> = fixture_file(backend, "delivered-ids.txt").lines().map(Into::into).collect();
    let seq_of: BTreeMap<&str, i64> = before.audit.iter().map(|(seq, id)| (id.as_str(), *seq)).collect();
    assert!(!delivered_by_0_1_0.is_empty());
    assert!(delivered_by_0_1_0.iter().all(|id| seq_of[id.as_str()] <= before.stream_cursor), "fixture is consistent");
    let pending: Vec<&str> =
        before.audit.iter().filter(|(seq, _)| *seq > before.stream_cursor).map(|(_, id)| id.as_str()).collect();
    assert!(!pending.is_empty(), "the fixture's stream has entries left to deliver");
    eventually(Duration::from_secs(30), "the pending 0.1.0 entries delivered", || {
        let got = receiver.ids("/audit");
        pending.iter().all(|id| got.iter().any(|g| g == id))
    })
    .await;
    let got = receiver.ids("/audit");
    let resent: Vec<_> =
        got.iter().filter(|id| seq_of.get(id.as_str()).is_some_and(|s| *s <= before.stream_cursor)).collect();
    assert!(resent.is_empty(), "entries delivered by 0.1.0 are not sent again: {resent:?}");
    eventually(Duration::from_secs(30), "entries written after the upgrade delivered", || {
        receiver.ids("/audit").iter().any(|id| !seq_of.contains_key(id.as_str()))
    })
    .await;
    let request = &receiver.received()[0];
    assert_eq!(request.headers["authorization"], "Bearer upgraded", "the new credential is used");
}

/// Points the fixture's audit stream at a fresh receiver through the API, keeping its cursor.
async fn stream_goes_on(server: &TestServer, token: &str) -> Receiver {
    let receiver = Receiver::default();
    let (url, _serving) = receiver.start().await;
    let mut streams = AuditStreamsServiceClient::new(server.authed(token).await);
    let listed = streams.list_audit_streams(pb::ListAuditStreamsRequest::default()).await.unwrap().into_inner();
    let [stream] = listed.audit_streams.as_slice() else { panic!("one stream: {listed:?}") };
    assert_eq!(stream.name, "fixture-receiver");
    let custom = pb::CustomProvider {
        url: format!("{url}/audit"),
        headers: [("Authorization".to_owned(), "Bearer upgraded".to_owned())].into(),
        batch: true,
        ..Default::default()
    };
    let update = pb::UpdateAuditStreamRequest {
        audit_stream_id: stream.id.clone(),
        provider: Some(pb::update_audit_stream_request::Provider::Custom(custom)),
        ..Default::default()
    };
    streams.update_audit_stream(update).await.expect("the stream is pointed at the new receiver");
    receiver
}

async fn project_ids(server: &TestServer, token: &str) -> BTreeMap<String, String> {
    let mut projects = ProjectsServiceClient::new(server.authed(token).await);
    let listed = projects.list_projects(pb::ListProjectsRequest::default()).await.unwrap().into_inner().projects;
    listed.into_iter().map(|p| (p.name, p.id)).collect()
}

/// Every version of a secret, oldest first.
async fn versions(
    secrets: &mut SecretsServiceClient<common::Authed>,
    project: &str,
    env: &str,
    path: &str,
    key: &str,
) -> Vec<String> {
    let request = pb::ListSecretVersionsRequest {
        project_id: project.into(),
        environment: env.into(),
        secret_path: path.into(),
        key: key.into(),
    };
    let listed = secrets.list_secret_versions(request).await.unwrap_or_else(|e| panic!("{env}:{path} {key}: {e}"));
    let mut versions = listed.into_inner().versions;
    versions.sort_by_key(|v| v.version);
    assert!(versions.iter().enumerate().all(|(i, v)| v.version as usize == i + 1), "versions 1..n: {versions:?}");
    versions.into_iter().map(|v| v.value).collect()
}

async fn secrets_decrypt(server: &TestServer, token: &str, payments: &str, search: &str) {
    let mut secrets = SecretsServiceClient::new(server.authed(token).await);
    let db_password = ["first", "second", "third, with ünïcode ✓", "first", "after the receiver left"];
    assert_eq!(versions(&mut secrets, payments, "dev", "/api", "DB_PASSWORD").await, db_password);
    assert_eq!(versions(&mut secrets, payments, "dev", "/api", "API_URL").await, ["https://api.example.com"]);
    let signing_key = "-----BEGIN KEY-----\nline two\n-----END KEY-----";
    assert_eq!(versions(&mut secrets, payments, "dev", "/api/keys", "SIGNING_KEY").await, [signing_key]);
    assert_eq!(versions(&mut secrets, payments, "staging", "/shared", "REGION").await, ["eu-west-1", "eu-central-1"]);
    let staging_url = ["https://staging.example.com"];
    assert_eq!(versions(&mut secrets, payments, "staging", "/shared", "API_URL").await, staging_url);
    assert_eq!(versions(&mut secrets, payments, "qa", "/", "QA_ONLY").await, ["qa value"]);
    assert_eq!(versions(&mut secrets, search, "prod", "/", "INDEX_KEY").await, ["search secret"]);
    let current = get_secret(&mut secrets, payments, "dev", "/api", "DB_PASSWORD").await.unwrap();
    assert_eq!((current.version, current.value.as_str()), (5, "after the receiver left"));
    let deleted = get_secret(&mut secrets, payments, "dev", "/api", "TEMP").await.unwrap_err();
    assert_eq!(deleted.code(), tonic::Code::NotFound, "the deleted secret stays deleted");
    // Local keys win over imported ones.
    let resolved = list_secrets(&mut secrets, payments, "dev", "/api", true).await.unwrap();
    let resolved: BTreeMap<_, _> = resolved.into_iter().collect();
    let expected = [
        ("API_URL", "https://api.example.com"),
        ("DB_PASSWORD", "after the receiver left"),
        ("REGION", "eu-central-1"),
    ];
    assert_eq!(resolved, expected.map(|(k, v)| (k.to_owned(), v.to_owned())).into());
}

async fn roles_still_apply(server: &TestServer, credentials: &Credentials, payments: &str, search: &str) {
    let ci = &credentials.ci_runner;
    let ci_token = server.login(&ci.client_id, &ci.client_secret).await.expect("ci-runner logs in").access_token;
    let mut as_ci = SecretsServiceClient::new(server.authed(&ci_token).await);
    let read = get_secret(&mut as_ci, payments, "dev", "/api", "DB_PASSWORD").await.expect("api-reader reads /api");
    assert_eq!(read.value, "after the receiver left");
    let denied = get_secret(&mut as_ci, payments, "dev", "/api/keys", "SIGNING_KEY").await.unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied, "the deny rule holds: {denied:?}");
    let visible = list_secrets(&mut as_ci, payments, "dev", "/api", true).await.unwrap();
    let keys: Vec<_> = visible.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["API_URL", "DB_PASSWORD"], "imports from staging, which ci-runner may not read, stay hidden");

    let auditor = &credentials.auditor;
    let token = server.login(&auditor.client_id, &auditor.client_secret).await.expect("auditor logs in").access_token;
    let mut audit = AuditLogsServiceClient::new(server.authed(&token).await);
    let filter = pb::AuditLogFilter { event_types: vec!["rollback-secret".into()], ..Default::default() };
    let request = pb::ListAuditLogsRequest { filter: Some(filter), ..Default::default() };
    let listed = audit.list_audit_logs(request).await.expect("log-reader reads audit logs").into_inner();
    assert_eq!(listed.audit_logs.len(), 1);
    let mut identities = IdentityServiceClient::new(server.authed(&token).await);
    let create = pb::CreateIdentityRequest { name: "intruder".into(), ..Default::default() };
    let refused = identities.create_identity(create).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "log-reader creates no identities");
    let mut as_auditor = SecretsServiceClient::new(server.authed(&token).await);
    let viewed = get_secret(&mut as_auditor, search, "prod", "/", "INDEX_KEY").await.expect("viewer of search");
    assert_eq!(viewed.value, "search secret");
}

/// A cursor printed by the 0.1.0 subscriber replays what followed it, then new events follow.
async fn events_resume(server: &TestServer, token: &str, backend: Backend, payments: &str) {
    let printed: Vec<serde_json::Value> =
        fixture_file(backend, "events.jsonl").lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(printed.len() >= 5, "the subscriber printed the fixture's events: {printed:?}");
    let resume = printed[1]["subject"].as_str().unwrap().to_owned();
    let registrations = vec![registration("secret:*", "", "")];
    let mut stream = subscribe(server, token, payments, registrations, Some(resume)).await.expect("resumes");
    for expected in &printed[2..] {
        let event = next_event(&mut stream).await;
        assert_eq!(event.id, expected["id"].as_str().unwrap(), "replayed in order");
    }
    let mut secrets = SecretsServiceClient::new(server.authed(token).await);
    common::create_secret(&mut secrets, payments, "dev", "/api", "AFTER_UPGRADE", "new").await;
    let event = next_event(&mut stream).await;
    assert_eq!((event.r#type.as_str(), event.secrets[0].secret_key.as_str()), ("secret:create", "AFTER_UPGRADE"));
    // dev:/api imported staging:/shared before the upgrade (which marks staging imported from): a change there
    // still tells it.
    common::create_secret(&mut secrets, payments, "staging", "/shared", "AFTER_UPGRADE", "new").await;
    assert_eq!(next_event(&mut stream).await.r#type, "secret:create");
    let mutation = next_event(&mut stream).await;
    assert_eq!(mutation.r#type, "secret:import-mutation", "{mutation:?}");
    let folder = mutation.import_mutation.unwrap();
    assert_eq!((folder.environment.as_str(), folder.secret_path.as_str()), ("dev", "/api"));
}

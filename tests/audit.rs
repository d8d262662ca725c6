//! Audit logs: an entry for every action with the right actor, project, client and metadata (never a value),
//! filters, stable pagination under concurrent inserts, export and retention.

mod common;

use std::{collections::HashSet, time::Duration};

use common::{Backend, TestServer, all_entries, create_secret, get_secret, http1};
use hush::pb::{
    self, audit_logs_service_client::AuditLogsServiceClient, identity_service_client::IdentityServiceClient,
    projects_service_client::ProjectsServiceClient,
};
use tonic::Code;

backend_tests!(
    every_action_is_recorded_without_values,
    filters_and_pages_are_stable_under_concurrent_inserts,
    a_read_is_audited_before_its_answer_arrives
);

/// A value that must never show up in the audit log.
const VALUE: &str = "audit-scan-marker-4b1e7d";

fn metadata(entry: &pb::AuditLog, key: &str) -> Option<String> {
    use prost_types::value::Kind;
    let value = entry.event_metadata.as_ref()?.fields.get(key)?;
    match value.kind.as_ref()? {
        Kind::StringValue(s) => Some(s.clone()),
        Kind::NumberValue(n) => Some(n.to_string()),
        Kind::BoolValue(b) => Some(b.to_string()),
        _ => None,
    }
}

async fn every_action_is_recorded_without_values(backend: Backend) {
    let server = TestServer::start(backend).await;
    let bad = server.login(&server.bootstrap.client_id, "hush_cs_wrong").await.unwrap_err();
    assert_eq!(bad.code(), Code::Unauthenticated);
    let token = server.admin_token().await;
    let project = server.project("audited").await;
    let mut secrets = server.admin_secrets().await;
    let mut projects = ProjectsServiceClient::new(server.authed(&token).await);
    let mut identities = IdentityServiceClient::new(server.authed(&token).await);

    create_secret(&mut secrets, &project, "dev", "/api", "DB_PASSWORD", VALUE).await;
    get_secret(&mut secrets, &project, "dev", "/api", "DB_PASSWORD").await.unwrap();
    let update = pb::UpdateSecretRequest {
        project_id: project.clone(),
        environment: "dev".into(),
        secret_path: "/api".into(),
        key: "DB_PASSWORD".into(),
        value: format!("{VALUE}-2"),
        comment: None,
        expected_version: None,
    };
    secrets.update_secret(update).await.unwrap();
    common::list_secrets(&mut secrets, &project, "dev", "/api", false).await.unwrap();
    projects.get_project(pb::GetProjectRequest { project_id: project.clone() }).await.unwrap();
    projects.list_projects(pb::ListProjectsRequest::default()).await.unwrap();
    identities
        .create_identity(pb::CreateIdentityRequest { name: "robot".into(), org_role: String::new() })
        .await
        .unwrap();
    // A JSON call from curl and a read through it.
    let auth = format!("Bearer {token}");
    let body = serde_json::json!({"projectId": project, "environment": "prod", "secretPath": "/", "key": "FROM_CURL", "value": VALUE});
    let (status, _) = http1::exchange(
        server.addr,
        "POST",
        "/hush.v1.SecretsService/CreateSecret",
        &[("authorization", &auth), ("content-type", "application/json"), ("user-agent", "curl/8.5.0")],
        &body.to_string(),
    )
    .await;
    assert_eq!(status, 200);
    let delete = pb::DeleteSecretRequest {
        project_id: project.clone(),
        environment: "prod".into(),
        secret_path: "/".into(),
        key: "FROM_CURL".into(),
        expected_version: None,
    };
    secrets.delete_secret(delete).await.unwrap();

    let entries = all_entries(&server, &token, pb::AuditLogFilter::default()).await;
    let types: HashSet<&str> = entries.iter().map(|e| e.event_type.as_str()).collect();
    for expected in [
        "login-identity",
        "create-project",
        "get-project",
        "get-projects",
        "create-secret",
        "get-secret",
        "update-secret",
        "get-secrets",
        "delete-secret",
        "create-identity",
    ] {
        assert!(types.contains(expected), "no {expected} entry in {types:?}");
    }

    let failed = entries
        .iter()
        .find(|e| e.event_type == "login-identity" && metadata(e, "success").as_deref() == Some("false"))
        .expect("the failed login is recorded");
    assert_eq!(failed.actor.as_ref().unwrap().r#type, pb::ActorType::UnknownUser as i32);
    assert_eq!(failed.org_id, server.bootstrap.org_id);

    let created = entries
        .iter()
        .find(|e| e.event_type == "create-secret" && metadata(e, "secretKey").as_deref() == Some("DB_PASSWORD"))
        .unwrap();
    let actor = created.actor.as_ref().unwrap();
    assert_eq!(
        (actor.r#type, actor.identity_id.as_str()),
        (pb::ActorType::Identity as i32, server.bootstrap.identity_id.as_str())
    );
    assert_eq!(created.project_id, project);
    assert_eq!(created.org_id, server.bootstrap.org_id);
    assert_eq!(created.user_agent_type, "grpc-other", "tonic clients are grpc-other: {}", created.user_agent);
    assert_eq!(created.ip_address, "127.0.0.1");
    assert_eq!(metadata(created, "environment").as_deref(), Some("dev"));
    assert_eq!(metadata(created, "secretPath").as_deref(), Some("/api"));
    assert_eq!(metadata(created, "secretVersion").as_deref(), Some("1"));
    assert!(created.expire_time.unwrap().seconds > created.create_time.unwrap().seconds + 89 * 86_400);

    let from_curl = entries
        .iter()
        .find(|e| e.event_type == "create-secret" && metadata(e, "secretKey").as_deref() == Some("FROM_CURL"))
        .unwrap();
    assert_eq!(from_curl.user_agent_type, "curl");
    let org_level = entries.iter().find(|e| e.event_type == "create-identity").unwrap();
    assert!(org_level.project_id.is_empty(), "org-level actions have no project");

    let everything = format!("{entries:?}");
    assert!(!everything.contains(VALUE), "a secret value leaked into the audit log");
}

async fn filters_and_pages_are_stable_under_concurrent_inserts(backend: Backend) {
    let server = TestServer::start(backend).await;
    let token = server.admin_token().await;
    let project = server.project("paging").await;
    let other = server.project("other").await;
    let mut projects = ProjectsServiceClient::new(server.authed(&token).await);
    for _ in 0..40 {
        projects.get_project(pb::GetProjectRequest { project_id: project.clone() }).await.unwrap();
    }
    projects.get_project(pb::GetProjectRequest { project_id: other.clone() }).await.unwrap();
    let started = chrono::Utc::now();

    // Page through get-project entries of one project while more are being written.
    let writer = {
        let mut projects = ProjectsServiceClient::new(server.authed(&token).await);
        let project = project.clone();
        tokio::spawn(async move {
            for _ in 0..40 {
                projects.get_project(pb::GetProjectRequest { project_id: project.clone() }).await.unwrap();
            }
        })
    };
    let filter = pb::AuditLogFilter {
        event_types: vec!["get-project".into()],
        project_id: project.clone(),
        ..Default::default()
    };
    let mut client = AuditLogsServiceClient::new(server.authed(&token).await);
    let mut seen = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_audit_logs(pb::ListAuditLogsRequest { filter: Some(filter.clone()), page_size: 7, page_token })
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.audit_logs.into_iter().map(|e| (e.id, e.create_time.unwrap())));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
        tokio::task::yield_now().await;
    }
    writer.await.unwrap();
    let ids: HashSet<&String> = seen.iter().map(|(id, _)| id).collect();
    assert_eq!(ids.len(), seen.len(), "no entry twice across pages");
    let start = (started.timestamp(), started.timestamp_subsec_nanos() as i32);
    let before = seen.iter().filter(|(_, t)| (t.seconds, t.nanos) < start).count();
    assert_eq!(before, 40, "every entry written before listing began is on some page");
    assert!(seen.windows(2).all(|w| (w[0].1.seconds, w[0].1.nanos) >= (w[1].1.seconds, w[1].1.nanos)), "newest first");

    // The other filters.
    let all =
        all_entries(&server, &token, pb::AuditLogFilter { project_id: other.clone(), ..Default::default() }).await;
    assert!(all.iter().all(|e| e.project_id == other) && all.iter().any(|e| e.event_type == "get-project"));
    let by_actor = all_entries(
        &server,
        &token,
        pb::AuditLogFilter { actor_id: server.bootstrap.identity_id.clone(), ..Default::default() },
    )
    .await;
    assert!(
        !by_actor.is_empty()
            && by_actor.iter().all(|e| e.actor.as_ref().unwrap().identity_id == server.bootstrap.identity_id)
    );
    let _ = server.login("nobody", "nothing").await;
    let identities_only = all_entries(
        &server,
        &token,
        pb::AuditLogFilter {
            actor_type: pb::ActorType::Identity as i32,
            event_types: vec!["login-identity".into()],
            ..Default::default()
        },
    )
    .await;
    assert!(!identities_only.is_empty());
    assert!(identities_only.iter().all(|e| e.actor.as_ref().unwrap().r#type == pb::ActorType::Identity as i32));
    let by_agent =
        all_entries(&server, &token, pb::AuditLogFilter { user_agent_type: "curl".into(), ..Default::default() }).await;
    assert!(by_agent.is_empty(), "nothing was done with curl");
    let future = prost_types::Timestamp { seconds: chrono::Utc::now().timestamp() + 3600, nanos: 0 };
    let none =
        all_entries(&server, &token, pb::AuditLogFilter { start_time: Some(future), ..Default::default() }).await;
    assert!(none.is_empty(), "nothing happened in the future");
    let until_start = prost_types::Timestamp { seconds: started.timestamp() - 3600, nanos: 0 };
    let nothing =
        all_entries(&server, &token, pb::AuditLogFilter { end_time: Some(until_start), ..Default::default() }).await;
    assert!(nothing.is_empty());

    // Reading the audit log needs the org permission.
    let member_token = common::members::new_member(&server, "no-audit", "member").await.token;
    let mut member = AuditLogsServiceClient::new(server.authed(&member_token).await);
    let denied = member.list_audit_logs(pb::ListAuditLogsRequest::default()).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_entries_are_pruned() {
    let server = TestServer::start_with(Backend::Sqlite, |c| c.audit_retention = Duration::from_millis(800)).await;
    let token = server.admin_token().await;
    let project = server.project("short-lived").await;
    let mut projects = ProjectsServiceClient::new(server.authed(&token).await);
    projects.get_project(pb::GetProjectRequest { project_id: project }).await.unwrap();
    let db = server.raw_db().await;
    let count = || async {
        use sea_orm::{ConnectionTrait, Statement};
        let row = db
            .query_one_raw(Statement::from_string(db.get_database_backend(), "SELECT COUNT(*) AS n FROM audit_logs"))
            .await
            .unwrap()
            .unwrap();
        row.try_get::<i64>("", "n").unwrap()
    };
    assert!(count().await >= 3);
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(count().await, 0, "every entry expired and was pruned");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ndjson_export_over_http() {
    let server = TestServer::start(Backend::Sqlite).await;
    let token = server.admin_token().await;
    let project = server.project("ndjson").await;
    let auth = format!("Bearer {token}");
    let path = format!("/api/v1/audit-logs/export?eventType=create-project&projectId={project}");
    let (status, body) = http1::exchange(server.addr, "GET", &path, &[("authorization", &auth)], "").await;
    assert_eq!(status, 200, "{body}");
    let lines: Vec<serde_json::Value> = body.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["eventType"], "create-project");
    assert_eq!(lines[0]["actor"], "identity");
    assert_eq!(lines[0]["actorMetadata"]["identityId"], server.bootstrap.identity_id);
    let (status, body) = http1::exchange(
        server.addr,
        "GET",
        "/api/v1/audit-logs/export?since=yesterday",
        &[("authorization", &auth)],
        "",
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = http1::exchange(server.addr, "GET", "/api/v1/audit-logs/export", &[], "").await;
    assert_eq!(status, 401);
}

/// Reads in the burst of [`a_read_is_audited_before_its_answer_arrives`], and how many run at once.
const READS: usize = 1_000;
const READERS: usize = 64;

/// Reads' entries are committed in groups, but each read's entry is durable before its answer leaves: a test
/// that looks in the database right after each of 1 000 concurrent reads finds that read's entry every time.
async fn a_read_is_audited_before_its_answer_arrives(backend: Backend) {
    use sea_orm::{ConnectionTrait, Statement};
    let server = TestServer::start(backend).await;
    let project = server.project("reads").await;
    let mut secrets = server.admin_secrets().await;
    let keys: Vec<String> = (0..READS).map(|i| format!("READ_{i:04}")).collect();
    let inputs =
        keys.iter().map(|key| pb::SecretInput { key: key.clone(), value: VALUE.into(), comment: String::new() });
    let request = pb::BatchCreateSecretsRequest {
        project_id: project.clone(),
        environment: "dev".into(),
        secret_path: "/".into(),
        secrets: inputs.collect(),
    };
    secrets.batch_create_secrets(request).await.expect("batch create");
    let db = std::sync::Arc::new(server.raw_db().await);
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(READERS));
    let reads = keys.into_iter().map(|key| {
        let (mut secrets, project, db, slots) = (secrets.clone(), project.clone(), db.clone(), slots.clone());
        tokio::spawn(async move {
            let _slot = slots.acquire().await.expect("open semaphore");
            get_secret(&mut secrets, &project, "dev", "/", &key).await.expect("read");
            // Keys are unique, so this matches this read's entry and nothing else.
            let sql = format!(
                "SELECT COUNT(*) AS n FROM audit_logs WHERE event_type = 'get-secret' \
                 AND CAST(event_metadata AS TEXT) LIKE '%\"{key}\"%'"
            );
            let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap();
            let count: i64 = row.expect("a count").try_get("", "n").unwrap();
            assert_eq!(count, 1, "the entry of the read of {key} is stored when its answer arrives");
        })
    });
    for read in reads.collect::<Vec<_>>() {
        read.await.expect("reader");
    }
}

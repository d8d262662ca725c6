//! Audit limits (issue 11 items 10, 12): denied requests are recorded with what was attempted, at most 10 per
//! identity and minute; oversized fields are capped; behind a trusted proxy the client IP is the rightmost
//! `X-Forwarded-For` entry that is not a proxy.

mod common;

use common::{Backend, TestServer, all_entries};
use hush::{
    audit::caps,
    pb::{self, audit_logs_service_client::AuditLogsServiceClient, identity_service_client::IdentityServiceClient},
};
use sea_orm::{ConnectionTrait, Statement};
use tonic::Code;

backend_tests!(denials_are_recorded_and_rate_capped, fields_are_capped_and_the_forwarded_client_is_rightmost);

async fn entries(server: &TestServer, token: &str, event_type: &str) -> Vec<pb::AuditLog> {
    let filter = pb::AuditLogFilter { event_types: vec![event_type.into()], ..Default::default() };
    all_entries(server, token, filter).await
}

fn text(entry: &pb::AuditLog, key: &str) -> String {
    match entry.event_metadata.as_ref().and_then(|m| m.fields.get(key)).and_then(|v| v.kind.clone()) {
        Some(prost_types::value::Kind::StringValue(s)) => s,
        other => panic!("{key}: {other:?}"),
    }
}

/// A member identity (no org permissions) and its token.
async fn member(server: &TestServer, admin_token: &str, name: &str) -> (String, String) {
    let mut admin = IdentityServiceClient::new(server.authed(admin_token).await);
    let request = pb::CreateIdentityRequest { name: name.into(), org_role: "member".into() };
    let identity = admin.create_identity(request).await.unwrap().into_inner().identity.unwrap();
    let request = pb::CreateClientSecretRequest { identity_id: identity.id.clone(), ..Default::default() };
    let secret = admin.create_client_secret(request).await.unwrap().into_inner();
    (identity.id, server.login(&secret.client_id, &secret.client_secret).await.unwrap().access_token)
}

async fn denials_are_recorded_and_rate_capped(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin_token().await;

    // 15 PERMISSION_DENIED calls: the first 10 are recorded with the attempted method, permission and target.
    let (snoop_id, snoop_token) = member(&server, &admin, "snoop").await;
    let mut snoop = AuditLogsServiceClient::new(server.authed(&snoop_token).await);
    for _ in 0..15 {
        let denied = snoop.list_audit_logs(pb::ListAuditLogsRequest::default()).await.unwrap_err();
        assert_eq!(denied.code(), Code::PermissionDenied);
    }
    let denied = entries(&server, &admin, "permission-denied").await;
    let of_snoop: Vec<_> = denied.iter().filter(|e| e.actor.as_ref().unwrap().identity_id == snoop_id).collect();
    assert_eq!(of_snoop.len(), 10, "capped at 10 per identity and minute: {of_snoop:#?}");
    assert_eq!(text(of_snoop[0], "method"), "/hush.v1.AuditLogsService/ListAuditLogs");
    assert_eq!(text(of_snoop[0], "permission"), "audit-logs:read");

    // A revoked token of a known identity is recorded as token-rejected; an unknown token is not recorded.
    let (quitter_id, quitter_token) = member(&server, &admin, "quitter").await;
    let mut quitter = IdentityServiceClient::new(server.authed(&quitter_token).await);
    quitter.revoke_token(pb::RevokeTokenRequest::default()).await.unwrap();
    for _ in 0..3 {
        let status = quitter.list_identities(pb::ListIdentitiesRequest::default()).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
    }
    let mut stranger = IdentityServiceClient::new(server.authed("hush_at_made-up").await);
    stranger.list_identities(pb::ListIdentitiesRequest::default()).await.unwrap_err();
    let rejected = entries(&server, &admin, "token-rejected").await;
    assert_eq!(rejected.len(), 3, "{rejected:#?}");
    assert!(rejected.iter().all(|e| e.actor.as_ref().unwrap().identity_id == quitter_id));
    assert_eq!(text(&rejected[0], "method"), "/hush.v1.IdentityService/ListIdentities");
}

async fn fields_are_capped_and_the_forwarded_client_is_rightmost(backend: Backend) {
    let server = TestServer::start_with(backend, |c| c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()]).await;
    let mut client = IdentityServiceClient::new(server.channel().await);
    // The client forges the leftmost entry; the trusted proxy (127.0.0.1) appended the address it saw.
    let mut request = tonic::Request::new(pb::LoginRequest {
        client_id: server.bootstrap.client_id.clone(),
        client_secret: server.bootstrap.client_secret.clone(),
    });
    request.metadata_mut().insert("x-forwarded-for", "10.9.8.7, 203.0.113.42".parse().unwrap());
    request.metadata_mut().insert("user-agent", "u".repeat(8000).parse().unwrap());
    let token = client.login(request).await.unwrap().into_inner().access_token;

    let logins = entries(&server, &token, "login-identity").await;
    let login = logins.last().unwrap();
    assert_eq!(login.ip_address, "203.0.113.42");
    assert!(login.user_agent.len() <= caps::MAX_USER_AGENT_BYTES, "{}", login.user_agent.len());

    // No stored entry exceeds the entry cap.
    let db = server.raw_db().await;
    let sql =
        "SELECT id, actor_id, actor_name, ip_address, user_agent, CAST(event_metadata AS TEXT) AS m FROM audit_logs";
    for row in db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap() {
        let size: usize = ["id", "actor_id", "actor_name", "ip_address", "user_agent", "m"]
            .iter()
            .map(|c| row.try_get::<String>("", c).unwrap().len())
            .sum();
        assert!(size <= caps::MAX_ENTRY_BYTES, "{size}");
    }
}

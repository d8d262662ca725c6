//! The no-escalation rule end to end: nobody hands out (an org role, a project role, a role definition, a
//! credential) permissions it does not hold, and token revocation reaches every token it should.

mod common;

use common::{
    Authed, Backend, TestServer,
    members::{Member, assign, create_role, identity_admin, new_member, policy},
};
use hush::pb::{self, identity_service_client::IdentityServiceClient};
use tonic::Code;

backend_tests!(
    identity_managers_cannot_become_org_admin,
    org_roles_are_capped_by_the_callers_own,
    project_editors_cannot_promote_themselves,
    role_definitions_are_capped_by_the_callers_own,
    revoking_a_client_secret_revokes_its_tokens,
    revoke_identity_tokens_ends_every_session,
    identity_names_are_unique_and_org_roles_listed,
);

async fn as_member(server: &TestServer, member: &Member) -> IdentityServiceClient<Authed> {
    IdentityServiceClient::new(server.authed(&member.token).await)
}

/// A member whose org role is a custom role holding `policies`.
async fn org_member(server: &TestServer, name: &str, policies: Vec<pb::Policy>) -> Member {
    let role = create_role(server, &format!("{name}-org-role"), policies).await;
    new_member(server, name, &role).await
}

fn secret_request(identity_id: &str) -> pb::CreateClientSecretRequest {
    pb::CreateClientSecretRequest {
        identity_id: identity_id.into(),
        description: String::new(),
        ttl: None,
        max_uses: 0,
    }
}

fn assert_denied<T: std::fmt::Debug>(result: Result<T, tonic::Status>, what: &str) -> String {
    let status = result.expect_err(what);
    assert_eq!(status.code(), Code::PermissionDenied, "{what}: {status:?}");
    status.message().to_owned()
}

/// Issue item 2: `identities:[edit]` minted a client secret for the bootstrap admin and logged in as it;
/// `identities:[create,edit]` created an org admin.
async fn identity_managers_cannot_become_org_admin(backend: Backend) {
    let server = TestServer::start(backend).await;
    let manager =
        org_member(&server, "manager", vec![policy("identities", &["read", "create", "edit"], &[], "", false)]).await;
    let mut client = as_member(&server, &manager).await;
    let admin_id = server.bootstrap.identity_id.clone();

    let message = assert_denied(client.create_client_secret(secret_request(&admin_id)).await, "secret for the admin");
    assert!(message.contains("identity 'bootstrap-admin'"), "the refusal names the target: {message}");
    let message = assert_denied(
        client.create_identity(pb::CreateIdentityRequest { name: "root2".into(), org_role: "admin".into() }).await,
        "create an org admin",
    );
    assert!(message.contains("org role 'admin'"), "{message}");
    let revoke = pb::RevokeIdentityTokensRequest { identity_id: admin_id.clone() };
    assert_denied(client.revoke_identity_tokens(revoke).await, "revoke the admin's tokens");

    // What the manager holds it may hand out: an identity with no role, and credentials for it.
    let plain = client
        .create_identity(pb::CreateIdentityRequest { name: "worker".into(), org_role: String::new() })
        .await
        .unwrap()
        .into_inner()
        .identity
        .unwrap();
    let secret = client.create_client_secret(secret_request(&plain.id)).await.unwrap().into_inner();
    server.login(&secret.client_id, &secret.client_secret).await.expect("the new worker logs in");
    // A project member the manager is not part of holds more than the manager does.
    let project = server.project("guarded").await;
    assign(&server, &project, &plain.id, "viewer").await;
    let message = assert_denied(client.create_client_secret(secret_request(&plain.id)).await, "secret for a viewer");
    assert!(message.contains("secrets:read") && message.contains("identity 'worker'"), "{message}");
}

async fn org_roles_are_capped_by_the_callers_own(backend: Backend) {
    let server = TestServer::start(backend).await;
    let manager = org_member(
        &server,
        "manager",
        vec![
            policy("identities", &["read", "create"], &[], "", false),
            policy("audit-logs", &["read"], &[], "", false),
        ],
    )
    .await;
    let auditor = create_role(&server, "auditor", vec![policy("audit-logs", &["read"], &[], "", false)]).await;
    let streamer = create_role(&server, "streamer", vec![policy("audit-streams", &["edit"], &[], "", false)]).await;
    let mut client = as_member(&server, &manager).await;
    let create = |name: &str, role: &str| pb::CreateIdentityRequest { name: name.into(), org_role: role.into() };
    let made = client.create_identity(create("auditor-bot", &auditor)).await.unwrap().into_inner().identity.unwrap();
    assert_eq!(made.org_role, auditor);
    let message = assert_denied(client.create_identity(create("streamer-bot", &streamer)).await, "wider org role");
    assert!(message.contains("audit-streams:edit"), "{message}");
    assert_denied(client.create_identity(create("member-bot", "member")).await, "built-in member");
    // The admin may give any org role.
    identity_admin(&server).await.create_identity(create("streamer-bot", &streamer)).await.unwrap();
}

/// Issue item 5: with `projects:edit`, a `dev:/api/**` reader made itself project admin.
async fn project_editors_cannot_promote_themselves(backend: Backend) {
    let server = TestServer::start(backend).await;
    let project = server.project("apps").await;
    let editor_role = create_role(
        &server,
        "api-reader-editor",
        vec![
            policy("secrets", &["read"], &["dev"], "/api/**", false),
            policy("projects", &["read", "edit"], &[], "", false),
        ],
    )
    .await;
    let narrow =
        create_role(&server, "db-reader", vec![policy("secrets", &["read"], &["dev"], "/api/db/**", false)]).await;
    let editor = new_member(&server, "editor", "").await;
    assign(&server, &project, &editor.id, &editor_role).await;
    let other = new_member(&server, "other", "").await;
    let mut client = as_member(&server, &editor).await;
    let set = |identity: &str, role: &str| pb::SetProjectRoleRequest {
        project_id: project.clone(),
        identity_id: identity.into(),
        role_id: role.into(),
    };

    let message = assert_denied(client.set_project_role(set(&editor.id, "admin")).await, "self-promotion");
    assert!(message.contains("role 'admin'"), "{message}");
    assert_denied(client.set_project_role(set(&other.id, "viewer")).await, "viewer reads everywhere");
    client.set_project_role(set(&other.id, &narrow)).await.expect("a narrower role may be given");
    // A member holding more than the editor can be neither changed nor removed by it.
    assign(&server, &project, &other.id, "member").await;
    assert_denied(client.set_project_role(set(&other.id, &narrow)).await, "demoting a wider member");
    assert_denied(client.set_project_role(set(&other.id, "")).await, "removing a wider member");
    // A project the editor is not a member of looks like one that does not exist.
    let elsewhere = server.project("elsewhere").await;
    let request =
        pb::SetProjectRoleRequest { project_id: elsewhere, identity_id: editor.id.clone(), role_id: "admin".into() };
    let hidden = client.set_project_role(request).await.unwrap_err();
    let missing = pb::SetProjectRoleRequest {
        project_id: uuid::Uuid::new_v4().to_string(),
        identity_id: editor.id.clone(),
        role_id: "admin".into(),
    };
    let absent = client.set_project_role(missing).await.unwrap_err();
    assert_eq!((hidden.code(), absent.code()), (Code::NotFound, Code::NotFound));
}

async fn role_definitions_are_capped_by_the_callers_own(backend: Backend) {
    let server = TestServer::start(backend).await;
    let project = server.project("apps").await;
    let designer =
        org_member(&server, "designer", vec![policy("roles", &["read", "create", "edit"], &[], "", false)]).await;
    let mut client = as_member(&server, &designer).await;
    let role = |name: &str, policies: Vec<pb::Policy>| pb::CreateRoleRequest {
        name: name.into(),
        description: String::new(),
        policies,
    };
    let message = assert_denied(
        client.create_role(role("streams", vec![policy("audit-streams", &["read"], &[], "", false)])).await,
        "org-level rights the designer lacks",
    );
    assert!(message.contains("audit-streams:read"), "{message}");
    // Project-level rights are not in force until assigned; assigning is checked then.
    let reader = vec![policy("secrets", &["read"], &["dev"], "", false)];
    let created = client.create_role(role("dev-reader", reader)).await.unwrap().into_inner().role.unwrap();
    let holder = new_member(&server, "holder", "").await;
    assign(&server, &project, &holder.id, &created.id).await;
    // Now in force in a project where the designer holds nothing: widening it is refused.
    let wider = pb::UpdateRoleRequest {
        role_id: created.id.clone(),
        name: "dev-reader".into(),
        description: String::new(),
        policies: vec![policy("secrets", &["read", "edit"], &[], "", false)],
    };
    assert_denied(client.update_role(wider).await, "widening an assigned role");
}

async fn revoking_a_client_secret_revokes_its_tokens(backend: Backend) {
    let server = TestServer::start(backend).await;
    let worker = new_member(&server, "worker", "viewer").await;
    let mut admin = identity_admin(&server).await;
    let second = admin.create_client_secret(secret_request(&worker.id)).await.unwrap().into_inner();
    let tokens = [
        server.login(&second.client_id, &second.client_secret).await.unwrap().access_token,
        server.login(&second.client_id, &second.client_secret).await.unwrap().access_token,
    ];
    let request =
        pb::RevokeClientSecretRequest { identity_id: worker.id.clone(), client_secret_id: second.info.unwrap().id };
    admin.revoke_client_secret(request).await.unwrap();
    for token in &tokens {
        assert!(!accepted(&server, token).await, "a token of the revoked secret still works");
    }
    assert!(server.login(&second.client_id, &second.client_secret).await.is_err());
    // The token minted by the identity's other secret keeps working.
    assert!(accepted(&server, &worker.token).await, "the other secret's token was revoked too");
}

async fn as_token(server: &TestServer, token: &str) -> IdentityServiceClient<Authed> {
    IdentityServiceClient::new(server.authed(token).await)
}

/// Whether the server still accepts `token` (a refusal for lack of permission still means it does).
async fn accepted(server: &TestServer, token: &str) -> bool {
    match as_token(server, token).await.list_roles(pb::ListRolesRequest::default()).await {
        Ok(_) => true,
        Err(status) => status.code() != Code::Unauthenticated,
    }
}

async fn revoke_identity_tokens_ends_every_session(backend: Backend) {
    let server = TestServer::start(backend).await;
    let worker = new_member(&server, "worker", "viewer").await;
    let again = server.login(&worker.client_id, &worker.client_secret).await.unwrap().access_token;
    let bystander = new_member(&server, "bystander", "viewer").await;
    let mut own = as_member(&server, &worker).await;
    let request = pb::RevokeIdentityTokensRequest { identity_id: worker.id.clone() };
    let revoked = own.revoke_identity_tokens(request).await.expect("an identity may end its own sessions");
    assert_eq!(revoked.into_inner().revoked_count, 2);
    for token in [&worker.token, &again] {
        assert!(!accepted(&server, token).await, "a session survived");
    }
    assert!(accepted(&server, &bystander.token).await, "another identity's session ended");
    // The client secret still works: a fresh login succeeds.
    let fresh = server.login(&worker.client_id, &worker.client_secret).await.unwrap().access_token;
    assert!(accepted(&server, &fresh).await);
    // Another identity's tokens need identities:edit.
    let request = pb::RevokeIdentityTokensRequest { identity_id: bystander.id.clone() };
    assert_denied(as_token(&server, &fresh).await.revoke_identity_tokens(request).await, "without identities:edit");
}

async fn identity_names_are_unique_and_org_roles_listed(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut admin = identity_admin(&server).await;
    let create = |name: &str, role: &str| pb::CreateIdentityRequest { name: name.into(), org_role: role.into() };
    admin.create_identity(create("ci", "viewer")).await.unwrap();
    let status = admin.create_identity(create("ci", "")).await.unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
    admin.create_identity(create("plain", "")).await.unwrap();
    let listed = admin
        .list_identities(pb::ListIdentitiesRequest { page_size: 0, page_token: String::new() })
        .await
        .unwrap()
        .into_inner()
        .identities;
    let role_of = |name: &str| listed.iter().find(|i| i.name == name).map(|i| i.org_role.clone());
    assert_eq!(role_of("ci").as_deref(), Some("viewer"));
    assert_eq!(role_of("plain").as_deref(), Some(""));
    let admins: Vec<&str> = listed.iter().filter(|i| i.org_role == "admin").map(|i| i.id.as_str()).collect();
    assert_eq!(admins, [server.bootstrap.identity_id.as_str()]);
}

//! Least privilege end to end through gRPC: roles with conditions, deny rules, membership, revocation.

mod common;

use common::{
    Backend, TestServer, create_secret, get_secret, list_secrets,
    members::{assign, create_role, identity_admin, new_member, policy},
};
use hush::pb::{
    self, identity_service_client::IdentityServiceClient, projects_service_client::ProjectsServiceClient,
    secrets_service_client::SecretsServiceClient,
};
use sea_orm::{ConnectionTrait, Statement};
use tonic::Code;

backend_tests!(
    scoped_viewer_reads_only_its_environment_and_paths,
    revoking_tokens_secrets_and_identities_takes_effect_on_the_next_call,
    role_changes_apply_immediately_and_bump_the_version,
    reads_apply_changes_made_on_another_instance_at_once,
    writes_apply_changes_made_on_another_instance_at_once,
    org_level_subjects_need_an_org_role,
);

fn update(project: &str, env: &str, path: &str, key: &str) -> pb::UpdateSecretRequest {
    pb::UpdateSecretRequest {
        project_id: project.into(),
        environment: env.into(),
        secret_path: path.into(),
        key: key.into(),
        value: "changed".into(),
        comment: None,
        expected_version: None,
    }
}

async fn scoped_viewer_reads_only_its_environment_and_paths(backend: Backend) {
    let server = TestServer::start(backend).await;
    let project = server.project("least-privilege").await;
    let mut admin = server.admin_secrets().await;
    for env in ["dev", "prod"] {
        create_secret(&mut admin, &project, env, "/api", "X", &format!("{env}-api-x")).await;
        create_secret(&mut admin, &project, env, "/api/keys", "Y", "y").await;
        create_secret(&mut admin, &project, env, "/web", "Z", "z").await;
        create_secret(&mut admin, &project, env, "/", "ROOT", "r").await;
    }
    let role = create_role(
        &server,
        "dev-api-viewer",
        vec![
            policy("secrets", &["read"], &["dev"], "/api/**", false),
            policy("secrets", &["read"], &["dev"], "/api/keys", true),
        ],
    )
    .await;
    let viewer = new_member(&server, "viewer", "").await;
    assign(&server, &project, &viewer.id, &role).await;
    let mut secrets = SecretsServiceClient::new(server.authed(&viewer.token).await);

    assert_eq!(get_secret(&mut secrets, &project, "dev", "/api", "X").await.unwrap().value, "dev-api-x");
    // An environment it may do nothing in is missing to it (tests/hidden_not_found.rs).
    let hidden = get_secret(&mut secrets, &project, "prod", "/api", "X").await.unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound, "{}", hidden.message());
    let denied = get_secret(&mut secrets, &project, "dev", "/web", "Z").await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert!(denied.message().contains("secrets:read") && denied.message().contains("dev:/web"), "{}", denied.message());
    let denied = get_secret(&mut secrets, &project, "dev", "/api/keys", "Y").await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "the deny rule beats the /api/** allow");
    assert_eq!(
        get_secret(&mut secrets, &project, "dev", "/web", "Z").await.unwrap_err().code(),
        Code::PermissionDenied
    );

    let write = secrets.update_secret(update(&project, "dev", "/api", "X")).await.unwrap_err();
    assert_eq!(write.code(), Code::PermissionDenied);
    assert!(write.message().contains("secrets:edit"), "{}", write.message());
    let create = pb::CreateSecretRequest {
        project_id: project.clone(),
        environment: "dev".into(),
        secret_path: "/api".into(),
        key: "NEW".into(),
        value: "v".into(),
        comment: String::new(),
    };
    assert_eq!(secrets.create_secret(create).await.unwrap_err().code(), Code::PermissionDenied);
    let delete = pb::DeleteSecretRequest {
        project_id: project.clone(),
        environment: "dev".into(),
        secret_path: "/api".into(),
        key: "X".into(),
        expected_version: None,
    };
    assert_eq!(secrets.delete_secret(delete).await.unwrap_err().code(), Code::PermissionDenied);

    // Listing `/` recursively shows only what the policy allows.
    let listed = secrets
        .list_secrets(pb::ListSecretsRequest {
            project_id: project.clone(),
            environment: "dev".into(),
            secret_path: "/".into(),
            include_imports: false,
            recursive: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .secrets;
    let seen: Vec<(String, String)> = listed.into_iter().map(|s| (s.secret_path, s.key)).collect();
    assert_eq!(seen, vec![("/api".to_owned(), "X".to_owned())]);
    assert!(list_secrets(&mut secrets, &project, "dev", "/", false).await.unwrap().is_empty());
    let prod_list = list_secrets(&mut secrets, &project, "prod", "/api", false).await.unwrap_err();
    assert_eq!(prod_list.code(), Code::NotFound, "an environment it can do nothing in is missing to it");

    // Imports do not widen access: a dev folder importing prod shows the viewer nothing from prod.
    admin
        .create_secret_import(pb::CreateSecretImportRequest {
            project_id: project.clone(),
            environment: "dev".into(),
            secret_path: "/api".into(),
            import_environment: "prod".into(),
            import_path: "/web".into(),
        })
        .await
        .unwrap();
    let with_imports = list_secrets(&mut secrets, &project, "dev", "/api", true).await.unwrap();
    assert_eq!(with_imports, vec![("X".to_owned(), "dev-api-x".to_owned())]);

    // A project the viewer is not a member of does not exist for it.
    let other = server.project("other").await;
    create_secret(&mut admin, &other, "dev", "/api", "X", "other").await;
    assert_eq!(get_secret(&mut secrets, &other, "dev", "/api", "X").await.unwrap_err().code(), Code::NotFound);
    let mut projects = ProjectsServiceClient::new(server.authed(&viewer.token).await);
    let visible = projects.list_projects(pb::ListProjectsRequest::default()).await.unwrap().into_inner().projects;
    assert_eq!(visible.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(), vec![project.as_str()]);
}

async fn revoking_tokens_secrets_and_identities_takes_effect_on_the_next_call(backend: Backend) {
    let server = TestServer::start(backend).await;
    let project = server.project("revocation").await;
    let member = new_member(&server, "worker", "").await;
    assign(&server, &project, &member.id, "viewer").await;
    let mut projects = ProjectsServiceClient::new(server.authed(&member.token).await);
    let get = pb::GetProjectRequest { project_id: project.clone() };
    projects.get_project(get.clone()).await.unwrap();

    // Revoking its own token.
    let mut own = IdentityServiceClient::new(server.authed(&member.token).await);
    own.revoke_token(pb::RevokeTokenRequest { access_token: String::new() }).await.unwrap();
    assert_eq!(projects.get_project(get.clone()).await.unwrap_err().code(), Code::Unauthenticated);

    // Revoking the client secret stops new logins; a token issued before keeps working until revoked.
    let token = server.login(&member.client_id, &member.client_secret).await.unwrap().access_token;
    let mut admin = identity_admin(&server).await;
    let secrets = admin
        .create_client_secret(pb::CreateClientSecretRequest {
            identity_id: member.id.clone(),
            description: "second".into(),
            ttl: None,
            max_uses: 1,
        })
        .await
        .unwrap()
        .into_inner();
    server.login(&secrets.client_id, &secrets.client_secret).await.unwrap();
    let used_up = server.login(&secrets.client_id, &secrets.client_secret).await.unwrap_err();
    assert_eq!(used_up.code(), Code::Unauthenticated, "max_uses = 1 allows one login");
    admin
        .revoke_client_secret(pb::RevokeClientSecretRequest {
            identity_id: member.id.clone(),
            client_secret_id: secrets.info.unwrap().id,
        })
        .await
        .unwrap();

    let mut projects = ProjectsServiceClient::new(server.authed(&token).await);
    projects.get_project(get.clone()).await.unwrap();
    // Deleting the identity ends every token it has.
    admin.delete_identity(pb::DeleteIdentityRequest { identity_id: member.id.clone() }).await.unwrap();
    assert_eq!(projects.get_project(get).await.unwrap_err().code(), Code::Unauthenticated);
    assert_eq!(server.login(&member.client_id, &member.client_secret).await.unwrap_err().code(), Code::Unauthenticated);
}

async fn authz_version(server: &TestServer) -> i64 {
    let db = server.raw_db().await;
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT version FROM authz_version WHERE id = 1",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get("", "version").unwrap()
}

async fn role_changes_apply_immediately_and_bump_the_version(backend: Backend) {
    let server = TestServer::start(backend).await;
    let project = server.project("live-roles").await;
    let mut admin_secrets = server.admin_secrets().await;
    create_secret(&mut admin_secrets, &project, "prod", "/", "K", "v").await;
    let role = create_role(&server, "dev-reader", vec![policy("secrets", &["read"], &["dev"], "", false)]).await;
    let member = new_member(&server, "reader", "").await;
    let before = authz_version(&server).await;
    assign(&server, &project, &member.id, &role).await;
    assert!(authz_version(&server).await > before, "a membership change bumps the version");
    let mut secrets = SecretsServiceClient::new(server.authed(&member.token).await);
    // An environment it may do nothing in is missing to it.
    assert_eq!(get_secret(&mut secrets, &project, "prod", "/", "K").await.unwrap_err().code(), Code::NotFound);

    let mut admin = identity_admin(&server).await;
    let before = authz_version(&server).await;
    admin
        .update_role(pb::UpdateRoleRequest {
            role_id: role.clone(),
            name: "dev-and-prod-reader".into(),
            description: String::new(),
            policies: vec![policy("secrets", &["read"], &["dev", "prod"], "", false)],
        })
        .await
        .unwrap();
    assert!(authz_version(&server).await > before, "a role edit bumps the version");
    assert_eq!(
        get_secret(&mut secrets, &project, "prod", "/", "K").await.unwrap().value,
        "v",
        "same token, new rights"
    );

    // Bad policies are rejected naming the field, and the stored role is unchanged.
    let bad = admin
        .update_role(pb::UpdateRoleRequest {
            role_id: role.clone(),
            name: "broken".into(),
            description: String::new(),
            policies: vec![policy("secrets", &["read"], &[], "/api/../etc", false)],
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().starts_with("policies[0].conditions.secret_path"), "{}", bad.message());
    let never_matches = admin
        .update_role(pb::UpdateRoleRequest {
            role_id: role.clone(),
            name: "broken".into(),
            description: String::new(),
            policies: vec![policy("secrets", &["read"], &["dev", "PROD"], "", false)],
        })
        .await
        .unwrap_err();
    assert!(never_matches.message().starts_with("policies[0].conditions.environments: 'PROD'"), "{never_matches:?}");
    let other = create_role(&server, "other-role", vec![policy("secrets", &["read"], &[], "", false)]).await;
    let clash = admin
        .update_role(pb::UpdateRoleRequest {
            role_id: other.clone(),
            name: "dev-and-prod-reader".into(),
            description: String::new(),
            policies: vec![policy("secrets", &["read"], &[], "", false)],
        })
        .await
        .unwrap_err();
    assert_eq!(clash.code(), Code::AlreadyExists, "renaming onto a taken name: {}", clash.message());
    admin.delete_role(pb::DeleteRoleRequest { role_id: other }).await.unwrap();
    let roles = admin.list_roles(pb::ListRolesRequest::default()).await.unwrap().into_inner().roles;
    let names: Vec<&str> = roles.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, vec!["admin", "member", "viewer", "dev-and-prod-reader"]);
    assert!(roles[..3].iter().all(|r| r.built_in));

    // Deleting the role removes the membership that used it: the project is gone for the former member.
    admin.delete_role(pb::DeleteRoleRequest { role_id: role.clone() }).await.unwrap();
    assert_eq!(get_secret(&mut secrets, &project, "prod", "/", "K").await.unwrap_err().code(), Code::NotFound);
    let builtin = admin.delete_role(pb::DeleteRoleRequest { role_id: "admin".into() }).await.unwrap_err();
    assert_eq!(builtin.code(), Code::FailedPrecondition);
}

/// Reads of cached callers (on PostgreSQL resolved without reading the permission version first) still apply a
/// change made through another instance on their very next call, and audit the read once.
async fn reads_apply_changes_made_on_another_instance_at_once(backend: Backend) {
    let reader_side = TestServer::start(backend).await;
    // SQLite has one instance: there the changes go through the same one.
    let admin_side = match backend {
        Backend::Postgres => Some(reader_side.join(|_| {}).await),
        Backend::Sqlite => None,
    };
    let admin_side = admin_side.as_ref().unwrap_or(&reader_side);
    let project = reader_side.project("far-changes").await;
    let mut admin_secrets = reader_side.admin_secrets().await;
    create_secret(&mut admin_secrets, &project, "dev", "/", "K", "dev-value").await;
    create_secret(&mut admin_secrets, &project, "prod", "/", "K", "prod-value").await;
    let role = create_role(&reader_side, "dev-only", vec![policy("secrets", &["read"], &["dev"], "", false)]).await;
    let member = new_member(&reader_side, "far-reader", "").await;
    assign(&reader_side, &project, &member.id, &role).await;
    let mut reader = SecretsServiceClient::new(reader_side.authed(&member.token).await);
    for _ in 0..3 {
        assert_eq!(get_secret(&mut reader, &project, "dev", "/", "K").await.unwrap().value, "dev-value");
    }
    assert_eq!(get_secret(&mut reader, &project, "prod", "/", "K").await.unwrap_err().code(), Code::NotFound);

    let mut admin = identity_admin(admin_side).await;
    let edit = |environments: &[&str]| pb::UpdateRoleRequest {
        role_id: role.clone(),
        name: format!("readers-{}", environments.len()),
        description: String::new(),
        policies: vec![policy("secrets", &["read"], environments, "", false)],
    };
    admin.update_role(edit(&["dev", "prod"])).await.unwrap();
    let audited_before = entries(&reader_side, "get-secret").await;
    assert_eq!(get_secret(&mut reader, &project, "prod", "/", "K").await.unwrap().value, "prod-value", "widened");
    assert_eq!(entries(&reader_side, "get-secret").await, audited_before + 1, "one read, one audit entry");

    admin.update_role(edit(&["prod"])).await.unwrap();
    assert_eq!(
        get_secret(&mut reader, &project, "dev", "/", "K").await.unwrap_err().code(),
        Code::NotFound,
        "narrowed"
    );
    assert_eq!(get_secret(&mut reader, &project, "prod", "/", "K").await.unwrap().value, "prod-value");

    let revoke = pb::RevokeIdentityTokensRequest { identity_id: member.id.clone() };
    admin.revoke_identity_tokens(revoke).await.unwrap();
    let revoked = get_secret(&mut reader, &project, "prod", "/", "K").await.unwrap_err();
    assert_eq!(revoked.code(), Code::Unauthenticated, "revoked on the other instance: {revoked:?}");
}

/// Writes of cached callers (on PostgreSQL resolved without reading the permission version first: the
/// statement that locks the environment reads it) still apply a change made through another instance on their
/// very next call, and audit the write once.
async fn writes_apply_changes_made_on_another_instance_at_once(backend: Backend) {
    let writer_side = TestServer::start(backend).await;
    let admin_side = match backend {
        Backend::Postgres => Some(writer_side.join(|_| {}).await),
        Backend::Sqlite => None,
    };
    let admin_side = admin_side.as_ref().unwrap_or(&writer_side);
    let project = writer_side.project("far-writes").await;
    let writes = |environments: &[&str]| vec![policy("secrets", &["read", "create", "edit"], environments, "", false)];
    let role = create_role(&writer_side, "dev-writer", writes(&["dev"])).await;
    let member = new_member(&writer_side, "far-writer", "").await;
    assign(&writer_side, &project, &member.id, &role).await;
    let mut writer = SecretsServiceClient::new(writer_side.authed(&member.token).await);
    for key in ["A", "B", "C"] {
        create_secret(&mut writer, &project, "dev", "/", key, "v").await;
    }
    let create = |env: &str, key: &str| pb::CreateSecretRequest {
        project_id: project.clone(),
        environment: env.into(),
        secret_path: "/".into(),
        key: key.into(),
        value: "v".into(),
        comment: String::new(),
    };
    assert_eq!(writer.create_secret(create("prod", "P")).await.unwrap_err().code(), Code::NotFound);

    let mut admin = identity_admin(admin_side).await;
    let edit = |environments: &[&str]| pb::UpdateRoleRequest {
        role_id: role.clone(),
        name: format!("writers-{}", environments.len()),
        description: String::new(),
        policies: writes(environments),
    };
    admin.update_role(edit(&["dev", "prod"])).await.unwrap();
    let audited_before = entries(&writer_side, "create-secret").await;
    writer.create_secret(create("prod", "P")).await.expect("widened on the other instance");
    assert_eq!(entries(&writer_side, "create-secret").await, audited_before + 1, "one write, one audit entry");

    admin.update_role(edit(&["prod"])).await.unwrap();
    let delete = pb::DeleteSecretRequest {
        project_id: project.clone(),
        environment: "dev".into(),
        secret_path: "/".into(),
        key: "B".into(),
        expected_version: None,
    };
    let gone = writer.delete_secret(delete).await.unwrap_err();
    assert_eq!(gone.code(), Code::NotFound, "narrowed on the other instance, for a delete too: {gone:?}");
    let narrowed = writer.update_secret(update(&project, "dev", "/", "A")).await.unwrap_err();
    assert_eq!(narrowed.code(), Code::NotFound, "narrowed on the other instance: {narrowed:?}");
    writer.update_secret(update(&project, "prod", "/", "P")).await.unwrap();

    let revoke = pb::RevokeIdentityTokensRequest { identity_id: member.id.clone() };
    admin.revoke_identity_tokens(revoke).await.unwrap();
    // A malformed request is told it is revoked, not what is wrong with it.
    let malformed = writer.create_secret(create("prod", "not a key!")).await.unwrap_err();
    assert_eq!(malformed.code(), Code::Unauthenticated, "revoked on the other instance: {malformed:?}");
    let revoked = writer.update_secret(update(&project, "prod", "/", "P")).await.unwrap_err();
    assert_eq!(revoked.code(), Code::Unauthenticated, "{revoked:?}");
    let mut admin_secrets = writer_side.admin_secrets().await;
    let kept = get_secret(&mut admin_secrets, &project, "prod", "/", "P").await.unwrap();
    assert_eq!((kept.value.as_str(), kept.version), ("changed", 2), "the refused writes changed nothing");
    assert!(get_secret(&mut admin_secrets, &project, "dev", "/", "A").await.unwrap().version == 1);
}

/// The audit entries of `event_type` stored so far.
async fn entries(server: &TestServer, event_type: &str) -> i64 {
    let db = server.raw_db().await;
    let sql = format!("SELECT COUNT(*) AS n FROM audit_logs WHERE event_type = '{event_type}'");
    let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap().unwrap();
    row.try_get("", "n").unwrap()
}

async fn org_level_subjects_need_an_org_role(backend: Backend) {
    let server = TestServer::start(backend).await;
    let nobody = new_member(&server, "nobody", "").await;
    let member = new_member(&server, "org-member", "member").await;

    let mut as_nobody = IdentityServiceClient::new(server.authed(&nobody.token).await);
    let denied = as_nobody.list_identities(pb::ListIdentitiesRequest::default()).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert!(denied.message().contains("identities:read"), "{}", denied.message());
    let mut nobody_projects = ProjectsServiceClient::new(server.authed(&nobody.token).await);
    let create = pb::CreateProjectRequest { name: "mine".into() };
    assert_eq!(nobody_projects.create_project(create.clone()).await.unwrap_err().code(), Code::PermissionDenied);

    // An org member may create projects and administers the ones it creates, but not other identities.
    let mut member_projects = ProjectsServiceClient::new(server.authed(&member.token).await);
    let created = member_projects.create_project(create).await.unwrap().into_inner().project.unwrap();
    let mut member_secrets = SecretsServiceClient::new(server.authed(&member.token).await);
    create_secret(&mut member_secrets, &created.id, "prod", "/", "MINE", "v").await;
    let mut as_member = IdentityServiceClient::new(server.authed(&member.token).await);
    let denied = as_member
        .create_identity(pb::CreateIdentityRequest { name: "sneaky".into(), org_role: "admin".into() })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    // The admin's project is not the member's: to it, the project does not exist.
    let admin_project = server.project("admins").await;
    let get = pb::GetProjectRequest { project_id: admin_project };
    assert_eq!(member_projects.get_project(get).await.unwrap_err().code(), Code::NotFound);
}

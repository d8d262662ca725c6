//! Recursive deletes (folder, environment, project) check the caller's permission on every member they
//! touch, deny rules and path conditions included, and delete nothing when one is refused.

mod common;

use common::{
    Authed, Backend, TestServer, create_secret, get_secret,
    members::{member_with, policy},
};
use hush::pb::{self, projects_service_client::ProjectsServiceClient, secrets_service_client::SecretsServiceClient};
use tonic::Code;

backend_tests!(
    a_deny_rule_inside_the_subtree_refuses_the_whole_delete,
    a_direct_children_grant_cannot_delete_a_deeper_subtree,
    an_import_owned_outside_the_callers_reach_refuses_the_delete,
    environment_and_project_deletes_check_every_member,
    an_admin_deletes_a_whole_subtree,
);

const ALL: &[&str] = &["read", "create", "edit", "delete"];

async fn delete_folder(
    client: &mut SecretsServiceClient<Authed>,
    project: &str,
    path: &str,
) -> Result<i64, tonic::Status> {
    let request = pb::DeleteFolderRequest { project_id: project.into(), environment: "dev".into(), path: path.into() };
    client.delete_folder(request).await.map(|r| r.into_inner().deleted_secrets)
}

async fn folders(client: &mut SecretsServiceClient<Authed>, project: &str) -> Vec<String> {
    let request = pb::ListFoldersRequest {
        project_id: project.into(),
        environment: "dev".into(),
        secret_path: "/".into(),
        recursive: true,
    };
    client.list_folders(request).await.unwrap().into_inner().folders.into_iter().map(|f| f.path).collect()
}

fn refused(status: &tonic::Status, what: &str, at: &str) {
    assert_eq!(status.code(), Code::PermissionDenied, "{}", status.message());
    assert!(status.message().contains(what) && status.message().contains(at), "names the member: {}", status.message());
}

async fn a_deny_rule_inside_the_subtree_refuses_the_whole_delete(backend: Backend) {
    let server = TestServer::start(backend).await;
    let project = server.project("subtree").await;
    let mut admin = server.admin_secrets().await;
    create_secret(&mut admin, &project, "dev", "/api", "K1", "v1").await;
    create_secret(&mut admin, &project, "dev", "/api/keys", "K2", "v2").await;
    let member = member_with(
        &server,
        &project,
        "api-writer",
        vec![
            policy("secrets", ALL, &["dev"], "/api/**", false),
            policy("secret-folders", ALL, &["dev"], "/api/**", false),
            policy("secrets", ALL, &["dev"], "/api/keys/**", true),
        ],
    )
    .await;
    let mut secrets = member.secrets(&server).await;

    let one = pb::DeleteSecretRequest {
        project_id: project.clone(),
        environment: "dev".into(),
        secret_path: "/api/keys".into(),
        key: "K2".into(),
        expected_version: None,
    };
    refused(&secrets.delete_secret(one).await.unwrap_err(), "secrets:delete", "dev:/api/keys");
    refused(&delete_folder(&mut secrets, &project, "/api").await.unwrap_err(), "secrets:delete", "dev:/api/keys");

    assert_eq!(get_secret(&mut admin, &project, "dev", "/api/keys", "K2").await.unwrap().value, "v2");
    assert_eq!(get_secret(&mut admin, &project, "dev", "/api", "K1").await.unwrap().value, "v1");
    assert_eq!(folders(&mut admin, &project).await, ["/api", "/api/keys"]);

    // What it may delete member by member, it may delete as a subtree.
    create_secret(&mut secrets, &project, "dev", "/api/tmp/deep", "T", "t").await;
    assert_eq!(delete_folder(&mut secrets, &project, "/api/tmp").await.unwrap(), 1);
    assert_eq!(folders(&mut admin, &project).await, ["/api", "/api/keys"]);
}

async fn a_direct_children_grant_cannot_delete_a_deeper_subtree(backend: Backend) {
    let server = TestServer::start(backend).await;
    let project = server.project("svc").await;
    let mut admin = server.admin_secrets().await;
    create_secret(&mut admin, &project, "dev", "/svc/a", "A", "a").await;
    create_secret(&mut admin, &project, "dev", "/svc/a/b/c", "C", "c").await;
    let member = member_with(
        &server,
        &project,
        "svc-children",
        vec![
            policy("secrets", ALL, &["dev"], "/svc/*", false),
            policy("secret-folders", ALL, &["dev"], "/svc/*", false),
        ],
    )
    .await;
    let mut secrets = member.secrets(&server).await;

    refused(
        &delete_folder(&mut secrets, &project, "/svc/a").await.unwrap_err(),
        "secret-folders:delete",
        "dev:/svc/a/b",
    );
    refused(
        &delete_folder(&mut secrets, &project, "/svc/a/b/c").await.unwrap_err(),
        "secret-folders:delete",
        "dev:/svc/a/b/c",
    );
    assert_eq!(get_secret(&mut admin, &project, "dev", "/svc/a/b/c", "C").await.unwrap().value, "c");
    assert_eq!(get_secret(&mut admin, &project, "dev", "/svc/a", "A").await.unwrap().value, "a");
    assert_eq!(folders(&mut admin, &project).await, ["/svc", "/svc/a", "/svc/a/b", "/svc/a/b/c"]);
}

async fn an_import_owned_outside_the_callers_reach_refuses_the_delete(backend: Backend) {
    let server = TestServer::start(backend).await;
    let project = server.project("imports").await;
    let mut admin = server.admin_secrets().await;
    create_secret(&mut admin, &project, "dev", "/team", "K", "v").await;
    create_secret(&mut admin, &project, "prod", "/other", "O", "o").await;
    // prod:/other imports dev:/team: deleting /team would remove an import of a folder the team cannot touch.
    let import = pb::CreateSecretImportRequest {
        project_id: project.clone(),
        environment: "prod".into(),
        secret_path: "/other".into(),
        import_environment: "dev".into(),
        import_path: "/team".into(),
    };
    admin.create_secret_import(import).await.unwrap();
    let member = member_with(
        &server,
        &project,
        "team",
        vec![
            policy("secrets", ALL, &["dev"], "/team/**", false),
            policy("secret-folders", ALL, &["dev"], "/team/**", false),
            policy("secret-imports", ALL, &["dev"], "/team/**", false),
        ],
    )
    .await;
    let mut secrets = member.secrets(&server).await;
    refused(&delete_folder(&mut secrets, &project, "/team").await.unwrap_err(), "secret-imports:delete", "prod:/other");
    assert_eq!(get_secret(&mut admin, &project, "dev", "/team", "K").await.unwrap().value, "v");
    let imports = pb::ListSecretImportsRequest {
        project_id: project.clone(),
        environment: "prod".into(),
        secret_path: "/other".into(),
    };
    assert_eq!(admin.list_secret_imports(imports).await.unwrap().into_inner().secret_imports.len(), 1);
}

async fn environment_and_project_deletes_check_every_member(backend: Backend) {
    let server = TestServer::start(backend).await;
    let project = server.project("envs").await;
    let mut admin = server.admin_secrets().await;
    create_secret(&mut admin, &project, "dev", "/open", "O", "o").await;
    create_secret(&mut admin, &project, "dev", "/locked", "L", "l").await;
    let member = member_with(
        &server,
        &project,
        "almost-admin",
        vec![
            policy("projects", &["read", "edit", "delete"], &[], "", false),
            policy("secrets", ALL, &[], "", false),
            policy("secret-folders", ALL, &[], "", false),
            policy("secret-imports", ALL, &[], "", false),
            policy("secrets", &["delete"], &["dev"], "/locked/**", true),
        ],
    )
    .await;
    let mut projects = member.projects(&server).await;
    let env = pb::DeleteEnvironmentRequest { project_id: project.clone(), environment: "dev".into() };
    refused(&projects.delete_environment(env).await.unwrap_err(), "secrets:delete", "dev:/locked");
    let whole = pb::DeleteProjectRequest { project_id: project.clone() };
    refused(&projects.delete_project(whole.clone()).await.unwrap_err(), "secrets:delete", "dev:/locked");
    assert_eq!(get_secret(&mut admin, &project, "dev", "/locked", "L").await.unwrap().value, "l");
    assert_eq!(get_secret(&mut admin, &project, "dev", "/open", "O").await.unwrap().value, "o");

    // An environment without the locked folder goes.
    create_secret(&mut admin, &project, "staging", "/open", "S", "s").await;
    let staging = pb::DeleteEnvironmentRequest { project_id: project.clone(), environment: "staging".into() };
    assert_eq!(projects.delete_environment(staging).await.unwrap().into_inner().deleted_secrets, 1);

    // The admin holds every permission and deletes it all.
    let mut admin_projects: ProjectsServiceClient<Authed> = server.admin_projects().await;
    admin_projects.delete_project(whole).await.unwrap();
    assert_eq!(get_secret(&mut admin, &project, "dev", "/locked", "L").await.unwrap_err().code(), Code::NotFound);
}

async fn an_admin_deletes_a_whole_subtree(backend: Backend) {
    let server = TestServer::start(backend).await;
    let project = server.project("admin").await;
    let mut admin = server.admin_secrets().await;
    create_secret(&mut admin, &project, "dev", "/api", "K1", "v1").await;
    create_secret(&mut admin, &project, "dev", "/api/keys", "K2", "v2").await;
    create_secret(&mut admin, &project, "dev", "/api/keys/deep/er", "K3", "v3").await;
    // Look-alikes that are not below /api: a sibling sharing the prefix, other case, `_` in the name.
    create_secret(&mut admin, &project, "dev", "/apix", "X", "x").await;
    create_secret(&mut admin, &project, "dev", "/API", "U", "u").await;
    create_secret(&mut admin, &project, "dev", "/ap_", "W", "w").await;
    assert_eq!(delete_folder(&mut admin, &project, "/api").await.unwrap(), 3);
    assert_eq!(get_secret(&mut admin, &project, "dev", "/api/keys", "K2").await.unwrap_err().code(), Code::NotFound);
    let mut left = folders(&mut admin, &project).await;
    left.sort();
    assert_eq!(left, ["/API", "/ap_", "/apix"]);
    for (path, key) in [("/apix", "X"), ("/API", "U"), ("/ap_", "W")] {
        assert!(get_secret(&mut admin, &project, "dev", path, key).await.is_ok(), "{path} survives");
    }
}

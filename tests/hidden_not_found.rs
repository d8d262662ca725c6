//! Where the caller may not read, something that exists answers exactly like something missing: projects it
//! is not a member of, environments it can do nothing in, folders it may not read.

mod common;

use common::{
    Authed, Backend, TestServer, create_secret,
    members::{member_with, new_member, policy},
};
use hush::pb::{
    self, events_service_client::EventsServiceClient, identity_service_client::IdentityServiceClient,
    secrets_service_client::SecretsServiceClient,
};
use tonic::{Code, Status};

backend_tests!(
    a_project_the_caller_is_not_a_member_of_looks_missing,
    an_environment_the_caller_can_do_nothing_in_looks_missing,
    a_folder_the_caller_may_not_read_looks_missing,
    an_import_the_caller_may_not_see_looks_missing,
);

/// Both answers are NOT_FOUND and say the same thing once the name asked about is blanked out.
fn same_answer(
    existing: Result<impl std::fmt::Debug, Status>,
    missing: Result<impl std::fmt::Debug, Status>,
    names: (&str, &str),
) {
    let (existing, missing) = (existing.unwrap_err(), missing.unwrap_err());
    assert_eq!(existing.code(), Code::NotFound, "existing: {}", existing.message());
    assert_eq!(missing.code(), Code::NotFound, "missing: {}", missing.message());
    assert_eq!(existing.message().replace(names.0, "<name>"), missing.message().replace(names.1, "<name>"));
}

fn list(project: &str, env: &str, path: &str, recursive: bool) -> pb::ListSecretsRequest {
    pb::ListSecretsRequest {
        project_id: project.into(),
        environment: env.into(),
        secret_path: path.into(),
        recursive,
        ..Default::default()
    }
}

fn get(project: &str, env: &str, path: &str) -> pb::GetSecretRequest {
    pb::GetSecretRequest {
        project_id: project.into(),
        environment: env.into(),
        secret_path: path.into(),
        key: "K".into(),
        ..Default::default()
    }
}

fn subscribe(project: &str) -> pb::SubscribeRequest {
    pb::SubscribeRequest { project_id: project.into(), registrations: Vec::new(), resume_after: None }
}

async fn a_project_the_caller_is_not_a_member_of_looks_missing(backend: Backend) {
    let server = TestServer::start(backend).await;
    let real = server.project("theirs").await;
    let mut admin = server.admin_secrets().await;
    create_secret(&mut admin, &real, "dev", "/", "K", "v").await;
    let random = uuid::Uuid::now_v7().to_string();
    let outsider = new_member(&server, "outsider", "").await;
    let mut projects = outsider.projects(&server).await;
    let mut secrets = outsider.secrets(&server).await;
    let mut events = EventsServiceClient::new(server.authed(&outsider.token).await);
    let names = (real.as_str(), random.as_str());

    let project = |id: &str| pb::GetProjectRequest { project_id: id.into() };
    same_answer(projects.get_project(project(&real)).await, projects.get_project(project(&random)).await, names);
    let envs = |id: &str| pb::ListEnvironmentsRequest { project_id: id.into() };
    same_answer(projects.list_environments(envs(&real)).await, projects.list_environments(envs(&random)).await, names);
    let delete = |id: &str| pb::DeleteProjectRequest { project_id: id.into() };
    same_answer(projects.delete_project(delete(&real)).await, projects.delete_project(delete(&random)).await, names);
    same_answer(
        secrets.get_secret(get(&real, "dev", "/")).await,
        secrets.get_secret(get(&random, "dev", "/")).await,
        names,
    );
    same_answer(
        secrets.list_secrets(list(&real, "dev", "/", true)).await,
        secrets.list_secrets(list(&random, "dev", "/", true)).await,
        names,
    );
    same_answer(
        events.subscribe(subscribe(&real)).await.map(|_| ()),
        events.subscribe(subscribe(&random)).await.map(|_| ()),
        names,
    );
    let mut identities = IdentityServiceClient::new(server.authed(&outsider.token).await);
    let members = |id: &str| pb::ListProjectMembersRequest { project_id: id.into(), ..Default::default() };
    same_answer(
        identities.list_project_members(members(&real)).await,
        identities.list_project_members(members(&random)).await,
        names,
    );
    // A member whose role grants no projects:read is refused the member list; one that does sees it, by name.
    let reader = member_with(&server, &real, "reader", vec![policy("secrets", &["read"], &[], "", false)]).await;
    let mut as_reader = IdentityServiceClient::new(server.authed(&reader.token).await);
    let denied = as_reader.list_project_members(members(&real)).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    let viewer = member_with(&server, &real, "viewer-ish", vec![policy("projects", &["read"], &[], "", false)]).await;
    let mut as_viewer = IdentityServiceClient::new(server.authed(&viewer.token).await);
    let listed = as_viewer.list_project_members(members(&real)).await.unwrap().into_inner().members;
    let names: Vec<&str> = listed.iter().map(|m| m.identity_name.as_str()).collect();
    assert_eq!(names, ["reader", "viewer-ish"], "oldest first; the org admin is not a member");
    assert_eq!(listed[0].role_name, "reader-role", "a custom role is named");
    // The project is intact, and a member still sees it.
    assert!(server.admin_projects().await.get_project(project(&real)).await.is_ok());
}

async fn an_environment_the_caller_can_do_nothing_in_looks_missing(backend: Backend) {
    let server = TestServer::start(backend).await;
    let project = server.project("envs").await;
    let mut admin = server.admin_secrets().await;
    create_secret(&mut admin, &project, "staging", "/api", "K", "v").await;
    let dev_only =
        member_with(&server, &project, "dev-only", vec![policy("secrets", &["read"], &["dev"], "/api/**", false)])
            .await;
    let mut secrets = dev_only.secrets(&server).await;
    let names = ("'staging'", "'qa'");
    same_answer(
        secrets.get_secret(get(&project, "staging", "/api")).await,
        secrets.get_secret(get(&project, "qa", "/api")).await,
        names,
    );
    same_answer(
        secrets.list_secrets(list(&project, "staging", "/api", false)).await,
        secrets.list_secrets(list(&project, "qa", "/api", false)).await,
        names,
    );
    let create = |env: &str| pb::CreateSecretRequest {
        project_id: project.clone(),
        environment: env.into(),
        secret_path: "/api".into(),
        key: "NEW".into(),
        value: "v".into(),
        comment: String::new(),
    };
    same_answer(secrets.create_secret(create("staging")).await, secrets.create_secret(create("qa")).await, names);
    // Where it may read, it reads (an empty folder of dev), and the dev folder it may not read is refused by
    // permission like any write it lacks.
    create_secret(&mut admin, &project, "dev", "/api", "K", "dev").await;
    assert_eq!(
        secrets.get_secret(get(&project, "dev", "/api")).await.unwrap().into_inner().secret.unwrap().value,
        "dev"
    );

    // Whoever may read the project lists its environments, so to it a missing one is simply missing.
    let viewer = member_with(&server, &project, "viewer", vec![policy("projects", &["read"], &[], "", false)]).await;
    let mut as_viewer = viewer.secrets(&server).await;
    assert_eq!(as_viewer.get_secret(get(&project, "qa", "/api")).await.unwrap_err().code(), Code::NotFound);
    assert_eq!(
        as_viewer.get_secret(get(&project, "staging", "/api")).await.unwrap_err().code(),
        Code::PermissionDenied
    );
}

async fn a_folder_the_caller_may_not_read_looks_missing(backend: Backend) {
    let server = TestServer::start(backend).await;
    let project = server.project("folders").await;
    let mut admin = server.admin_secrets().await;
    create_secret(&mut admin, &project, "dev", "/api", "A", "a").await;
    create_secret(&mut admin, &project, "dev", "/web", "W", "w").await;
    let reader = member_with(
        &server,
        &project,
        "api-reader",
        vec![
            policy("secrets", &["read"], &["dev"], "/api/**", false),
            policy("secret-folders", &["read"], &["dev"], "/api/**", false),
        ],
    )
    .await;
    let mut secrets: SecretsServiceClient<Authed> = reader.secrets(&server).await;
    let names = ("/web", "/nope");
    for recursive in [false, true] {
        same_answer(
            secrets.list_secrets(list(&project, "dev", "/web", recursive)).await,
            secrets.list_secrets(list(&project, "dev", "/nope", recursive)).await,
            names,
        );
        let folders = |path: &str| pb::ListFoldersRequest {
            project_id: project.clone(),
            environment: "dev".into(),
            secret_path: path.into(),
            recursive,
        };
        same_answer(secrets.list_folders(folders("/web")).await, secrets.list_folders(folders("/nope")).await, names);
    }
    // Its own folder lists; a missing folder inside its reach is missing; the root lists what it may read.
    let own = secrets.list_secrets(list(&project, "dev", "/api", false)).await.unwrap().into_inner().secrets;
    assert_eq!(own.iter().map(|s| s.key.as_str()).collect::<Vec<_>>(), ["A"]);
    assert_eq!(secrets.list_secrets(list(&project, "dev", "/api/x", false)).await.unwrap_err().code(), Code::NotFound);
    let root = secrets.list_secrets(list(&project, "dev", "/", true)).await.unwrap().into_inner().secrets;
    assert_eq!(root.iter().map(|s| s.key.as_str()).collect::<Vec<_>>(), ["A"]);
}

async fn an_import_the_caller_may_not_see_looks_missing(backend: Backend) {
    let server = TestServer::start(backend).await;
    let project = server.project("imports").await;
    let mut admin = server.admin_secrets().await;
    for (env, path) in [("prod", "/billing"), ("prod", "/api"), ("staging", "/"), ("dev", "/api"), ("dev", "/web")] {
        create_secret(&mut admin, &project, env, path, "K", "v").await;
    }
    create_secret(&mut admin, &project, "dev", "/api/shared", "S", "v").await;
    let import = |env: &str, path: &str, from_env: &str, from_path: &str| pb::CreateSecretImportRequest {
        project_id: project.clone(),
        environment: env.into(),
        secret_path: path.into(),
        import_environment: from_env.into(),
        import_path: from_path.into(),
    };
    let mut create =
        async |request| admin.create_secret_import(request).await.unwrap().into_inner().secret_import.unwrap().id;
    let in_prod = create(import("prod", "/billing", "staging", "/")).await;
    let in_web = create(import("dev", "/web", "dev", "/api")).await;
    let from_prod = create(import("dev", "/api", "prod", "/api")).await;
    let from_shared = create(import("dev", "/api", "dev", "/api/shared")).await;
    let all = [
        policy("secrets", &["read"], &["dev"], "/api/**", false),
        policy("secret-imports", &["read", "create", "edit", "delete"], &["dev"], "/api/**", false),
    ];
    let scoped = member_with(&server, &project, "api-imports", all.to_vec()).await;
    let mut secrets = scoped.secrets(&server).await;
    let random = uuid::Uuid::now_v7().to_string();
    let delete = |id: &str| pb::DeleteSecretImportRequest { project_id: project.clone(), secret_import_id: id.into() };
    // In an environment it cannot see, and in a folder of its environment it may not touch: like a missing id,
    // with nothing in the message naming the environment or the folder.
    for hidden in [&in_prod, &in_web] {
        same_answer(
            secrets.delete_secret_import(delete(hidden)).await,
            secrets.delete_secret_import(delete(&random)).await,
            (hidden.as_str(), random.as_str()),
        );
    }
    // Its own folder lists the import it may know the source of, and not the one from prod.
    let listed = |imports: Vec<pb::SecretImport>| imports.into_iter().map(|i| i.id).collect::<Vec<_>>();
    let list = pb::ListSecretImportsRequest {
        project_id: project.clone(),
        environment: "dev".into(),
        secret_path: "/api".into(),
    };
    let theirs = listed(secrets.list_secret_imports(list.clone()).await.unwrap().into_inner().secret_imports);
    assert_eq!(theirs, std::slice::from_ref(&from_shared));
    let everything = listed(admin.list_secret_imports(list).await.unwrap().into_inner().secret_imports);
    assert_eq!(everything, [from_prod, from_shared.clone()]);
    // Where it may delete imports, it does; the hidden ones are still there.
    secrets.delete_secret_import(delete(&from_shared)).await.unwrap();
    admin.delete_secret_import(delete(&in_prod)).await.unwrap();
    admin.delete_secret_import(delete(&in_web)).await.unwrap();
}

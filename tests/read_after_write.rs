//! A read never answers with less than the last acknowledged write, whatever kind of write it was: the server
//! may answer reads of hot secrets from memory (SQLite), so each kind of change is made right after the secret
//! was read (and so remembered) and the next read must show it. Concurrent readers on other connections see
//! every acknowledged update at once.

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use common::{Authed, Backend, TestServer, create_secret, get_secret};
use hush::pb::{self, projects_service_client::ProjectsServiceClient, secrets_service_client::SecretsServiceClient};
use tokio::task::JoinSet;
use tonic::Code;

backend_tests!(every_kind_of_write_is_seen_by_the_next_read, readers_never_see_less_than_an_acknowledged_update,);

const PATH: &str = "/raw";

fn input(key: &str, value: &str) -> pb::SecretInput {
    pb::SecretInput { key: key.into(), value: value.into(), comment: String::new() }
}

/// UpdateSecret of `key` in dev at [`PATH`].
fn update(project: &str, key: &str, value: &str, expected_version: Option<u32>) -> pb::UpdateSecretRequest {
    pb::UpdateSecretRequest {
        project_id: project.into(),
        environment: "dev".into(),
        secret_path: PATH.into(),
        key: key.into(),
        value: value.into(),
        comment: None,
        expected_version,
    }
}

/// The value and version a read answers, or its code.
async fn read(
    client: &mut SecretsServiceClient<Authed>,
    project: &str,
    env: &str,
    key: &str,
) -> Result<(String, u32), Code> {
    get_secret(client, project, env, PATH, key).await.map(|s| (s.value, s.version)).map_err(|status| status.code())
}

async fn every_kind_of_write_is_seen_by_the_next_read(backend: Backend) {
    let server = TestServer::start(backend).await;
    let project = server.project("raw").await;
    let token = server.admin_token().await;
    let channel = server.authed(&token).await;
    let mut secrets = SecretsServiceClient::new(channel.clone());
    let mut projects = ProjectsServiceClient::new(channel);
    for key in ["A", "B", "C", "D"] {
        create_secret(&mut secrets, &project, "dev", PATH, key, "one").await;
    }
    let remembered = |expected: (&str, u32)| (expected.0.to_owned(), expected.1);

    // UpdateSecret.
    assert_eq!(read(&mut secrets, &project, "dev", "A").await, Ok(remembered(("one", 1))));
    secrets.update_secret(update(&project, "A", "two", None)).await.expect("update");
    assert_eq!(read(&mut secrets, &project, "dev", "A").await, Ok(remembered(("two", 2))));

    // BatchUpdateSecrets.
    let batch = pb::BatchUpdateSecretsRequest {
        project_id: project.clone(),
        environment: "dev".into(),
        secret_path: PATH.into(),
        secrets: vec![input("A", "three"), input("B", "two")],
        ..Default::default()
    };
    secrets.batch_update_secrets(batch).await.expect("batch update");
    assert_eq!(read(&mut secrets, &project, "dev", "A").await, Ok(remembered(("three", 3))));
    assert_eq!(read(&mut secrets, &project, "dev", "B").await, Ok(remembered(("two", 2))));

    // RollbackSecret.
    let rollback = pb::RollbackSecretRequest {
        project_id: project.clone(),
        environment: "dev".into(),
        secret_path: PATH.into(),
        key: "A".into(),
        version: 1,
        expected_version: None,
    };
    secrets.rollback_secret(rollback).await.expect("rollback");
    assert_eq!(read(&mut secrets, &project, "dev", "A").await, Ok(remembered(("one", 4))));

    // DeleteSecret, then a new secret of the same name starts again at version 1.
    let delete = pb::DeleteSecretRequest {
        project_id: project.clone(),
        environment: "dev".into(),
        secret_path: PATH.into(),
        key: "A".into(),
        expected_version: None,
    };
    secrets.delete_secret(delete).await.expect("delete");
    assert_eq!(read(&mut secrets, &project, "dev", "A").await, Err(Code::NotFound));
    create_secret(&mut secrets, &project, "dev", PATH, "A", "again").await;
    assert_eq!(read(&mut secrets, &project, "dev", "A").await, Ok(remembered(("again", 1))));

    // BatchDeleteSecrets.
    assert!(read(&mut secrets, &project, "dev", "C").await.is_ok());
    let batch_delete = pb::BatchDeleteSecretsRequest {
        project_id: project.clone(),
        environment: "dev".into(),
        secret_path: PATH.into(),
        keys: vec!["C".into()],
        ..Default::default()
    };
    secrets.batch_delete_secrets(batch_delete).await.expect("batch delete");
    assert_eq!(read(&mut secrets, &project, "dev", "C").await, Err(Code::NotFound));

    // DeleteFolder (recursive).
    assert!(read(&mut secrets, &project, "dev", "D").await.is_ok());
    let folder = pb::DeleteFolderRequest { project_id: project.clone(), environment: "dev".into(), path: PATH.into() };
    secrets.delete_folder(folder).await.expect("delete folder");
    assert_eq!(read(&mut secrets, &project, "dev", "D").await, Err(Code::NotFound));

    // DeleteEnvironment, and an environment of the same slug created again is empty.
    let env = pb::CreateEnvironmentRequest { project_id: project.clone(), slug: "stage".into(), ..Default::default() };
    projects.create_environment(env.clone()).await.expect("create environment");
    create_secret(&mut secrets, &project, "stage", PATH, "E", "staged").await;
    assert!(read(&mut secrets, &project, "stage", "E").await.is_ok());
    let delete_env = pb::DeleteEnvironmentRequest { project_id: project.clone(), environment: "stage".into() };
    projects.delete_environment(delete_env).await.expect("delete environment");
    projects.create_environment(env).await.expect("create environment again");
    assert_eq!(read(&mut secrets, &project, "stage", "E").await, Err(Code::NotFound));

    // DeleteProject.
    create_secret(&mut secrets, &project, "dev", PATH, "F", "last").await;
    assert!(read(&mut secrets, &project, "dev", "F").await.is_ok());
    projects.delete_project(pb::DeleteProjectRequest { project_id: project.clone() }).await.expect("delete project");
    assert_eq!(read(&mut secrets, &project, "dev", "F").await, Err(Code::NotFound));
}

const READERS: usize = 8;
const UPDATES: u32 = 200;

async fn readers_never_see_less_than_an_acknowledged_update(backend: Backend) {
    let server = TestServer::start(backend).await;
    let project = server.project("raw").await;
    let token = server.admin_token().await;
    let mut writer = SecretsServiceClient::new(server.authed(&token).await);
    create_secret(&mut writer, &project, "dev", PATH, "HOT", "v1").await;
    // The highest version whose update was acknowledged; readers load it before they send their read.
    let acknowledged = Arc::new(AtomicU32::new(1));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut readers = JoinSet::new();
    for _ in 0..READERS {
        let mut client = SecretsServiceClient::new(server.authed(&token).await);
        let (project, acknowledged) = (project.clone(), acknowledged.clone());
        readers.spawn(async move {
            let mut reads = 0u32;
            loop {
                let floor = acknowledged.load(Ordering::SeqCst);
                let (value, version) = read(&mut client, &project, "dev", "HOT").await.expect("read");
                assert!(version >= floor, "read version {version} after version {floor} was acknowledged");
                assert_eq!(value, format!("v{version}"), "the value belongs to the version read");
                reads += 1;
                if floor >= UPDATES || Instant::now() > deadline {
                    return reads;
                }
            }
        });
    }
    for version in 2..=UPDATES {
        let value = format!("v{version}");
        writer.update_secret(update(&project, "HOT", &value, Some(version - 1))).await.expect("update");
        acknowledged.store(version, Ordering::SeqCst);
    }
    let reads: u32 = readers.join_all().await.into_iter().sum();
    assert!(reads >= UPDATES, "readers made {reads} reads alongside {UPDATES} updates: too few to show anything");
}

//! Bad input gets INVALID_ARGUMENT or NOT_FOUND naming the field, and nothing stored is lost.

mod common;

use common::{Backend, TestServer, create_secret, get_secret};
use hush::pb;
use tonic::{Code, Status};
use tonic_types::StatusExt;

backend_tests!(bad_input_is_rejected_naming_the_field, unknown_project_or_environment_is_not_found);

fn create(project: &str, env: &str, path: &str, key: &str, value: &str) -> pb::CreateSecretRequest {
    pb::CreateSecretRequest {
        project_id: project.into(),
        environment: env.into(),
        secret_path: path.into(),
        key: key.into(),
        value: value.into(),
        comment: String::new(),
    }
}

/// Asserts an INVALID_ARGUMENT whose message and BadRequest detail name `field`.
fn assert_invalid(status: Status, field: &str) {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().starts_with(&format!("{field}: ")), "message names {field}: {}", status.message());
    let details = status.get_error_details();
    let violations = details.bad_request().expect("BadRequest detail").field_violations.clone();
    assert_eq!(violations[0].field, field);
}

async fn bad_input_is_rejected_naming_the_field(backend: Backend) {
    let server = TestServer::start(backend).await;
    let project = server.project("validation").await;
    let mut secrets = server.admin_secrets().await;
    create_secret(&mut secrets, &project, "dev", "/a", "KEEP", "kept").await;

    for path in ["/a/../b", "relative", "/a//b", "/a/./b", "/sp ace"] {
        let status = secrets.create_secret(create(&project, "dev", path, "K", "v")).await.unwrap_err();
        assert_invalid(status, "secret_path");
    }
    let too_deep = "/d".repeat(21);
    assert_invalid(
        secrets.create_secret(create(&project, "dev", &too_deep, "K", "v")).await.unwrap_err(),
        "secret_path",
    );
    for key in ["", "has space", "semi;colon", &"k".repeat(257)] {
        assert_invalid(secrets.create_secret(create(&project, "dev", "/", key, "v")).await.unwrap_err(), "key");
    }
    let huge = "x".repeat(64 * 1024 + 1);
    let status = secrets.create_secret(create(&project, "dev", "/", "BIG", &huge)).await.unwrap_err();
    assert_invalid(status.clone(), "value");
    assert!(status.message().contains("65536"), "the limit is stated: {}", status.message());
    // Exactly at the limit is fine.
    secrets.create_secret(create(&project, "dev", "/", "BIG", &"x".repeat(64 * 1024))).await.unwrap();

    let status = secrets
        .update_secret(pb::UpdateSecretRequest {
            project_id: project.clone(),
            environment: "dev".into(),
            secret_path: "/a".into(),
            key: "KEEP".into(),
            value: huge.clone(),
            comment: None,
            expected_version: None,
        })
        .await
        .unwrap_err();
    assert_invalid(status, "value");
    let folder =
        pb::CreateFolderRequest { project_id: project.clone(), environment: "dev".into(), path: "/x/../y".into() };
    assert_invalid(secrets.create_folder(folder).await.unwrap_err(), "path");
    let get = pb::GetSecretRequest {
        project_id: "not-a-uuid".into(),
        environment: "dev".into(),
        secret_path: "/".into(),
        key: "K".into(),
        include_imports: false,
        version: 0,
    };
    assert_invalid(secrets.get_secret(get).await.unwrap_err(), "project_id");
    let mut projects = server.admin_projects().await;
    let env =
        pb::CreateEnvironmentRequest { project_id: project.clone(), slug: "Has Caps".into(), name: String::new() };
    assert_invalid(projects.create_environment(env).await.unwrap_err(), "slug");
    assert_invalid(projects.create_project(pb::CreateProjectRequest { name: " ".into() }).await.unwrap_err(), "name");
    // A name that is a UUID would be taken for another project's id; one that reorders text would disguise itself.
    for name in [project.clone(), "pay\u{202e}stnemyap".to_owned()] {
        assert_invalid(projects.create_project(pb::CreateProjectRequest { name }).await.unwrap_err(), "name");
    }

    // Nothing stored was lost by any of the rejected calls.
    let kept = get_secret(&mut secrets, &project, "dev", "/a", "KEEP").await.unwrap();
    assert_eq!((kept.value.as_str(), kept.version), ("kept", 1));
}

async fn unknown_project_or_environment_is_not_found(backend: Backend) {
    let server = TestServer::start(backend).await;
    let project = server.project("lookup").await;
    let mut secrets = server.admin_secrets().await;
    let unknown_project = uuid::Uuid::new_v4().to_string();
    let status = secrets.create_secret(create(&unknown_project, "dev", "/", "K", "v")).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(status.message().contains(&unknown_project), "{}", status.message());
    let status = secrets.create_secret(create(&project, "qa", "/", "K", "v")).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(status.message().contains("environment 'qa'"), "{}", status.message());
    let status = get_secret(&mut secrets, &project, "dev", "/", "MISSING").await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(status.message().contains("MISSING"), "{}", status.message());
    let list = pb::ListSecretsRequest {
        project_id: project.clone(),
        environment: "dev".into(),
        secret_path: "/no/such/folder".into(),
        include_imports: false,
        recursive: false,
        ..Default::default()
    };
    assert_eq!(secrets.list_secrets(list).await.unwrap_err().code(), Code::NotFound);
}

//! Bad input gets INVALID_ARGUMENT or NOT_FOUND naming the field, and nothing stored is lost.

mod common;

use common::{
    Backend, TestServer, create_secret, get_secret,
    members::{create_role, identity_admin},
};
use hush::pb;
use tonic::{Code, Status};
use tonic_types::StatusExt;

backend_tests!(
    bad_input_is_rejected_naming_the_field,
    unknown_project_or_environment_is_not_found,
    a_client_secret_ttl_past_the_limit_is_refused_before_anything_is_stored,
    roles_and_audit_streams_page_like_every_list,
);

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

async fn a_client_secret_ttl_past_the_limit_is_refused_before_anything_is_stored(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut admin = identity_admin(&server).await;
    let identity = server.bootstrap.identity_id.clone();
    let request = |seconds: i64| pb::CreateClientSecretRequest {
        identity_id: identity.clone(),
        description: String::new(),
        ttl: Some(prost_types::Duration { seconds, nanos: 0 }),
        max_uses: 0,
    };
    const YEAR: i64 = 365 * 24 * 3600;
    // The largest protobuf duration (an expiry past year 9999, which no answer could carry) and one second
    // past the documented 100 years.
    for seconds in [315_576_000_000, 100 * YEAR + 1] {
        let status = admin.create_client_secret(request(seconds)).await.unwrap_err();
        assert_invalid(status, "ttl");
    }
    let token = server.admin_token().await;
    let created = |server| async move {
        let filter = pb::AuditLogFilter { event_types: vec!["create-client-secret".into()], ..Default::default() };
        common::all_entries(server, &token, filter).await.len()
    };
    assert_eq!(created(&server).await, 0, "nothing was stored");
    let made = admin.create_client_secret(request(100 * YEAR)).await.unwrap().into_inner();
    let expires = made.info.unwrap().expire_time.unwrap().seconds;
    let now = chrono::Utc::now().timestamp();
    assert!((expires - now - 100 * YEAR).abs() < 60, "expires in 100 years: {expires}");
    let login = server.login(&made.client_id, &made.client_secret).await;
    assert!(login.is_ok(), "the secret works: {login:?}");
}

async fn roles_and_audit_streams_page_like_every_list(backend: Backend) {
    let server = TestServer::start_with(backend, |c| c.streams_allow_private = true).await;
    let mut identities = identity_admin(&server).await;
    let mut streams = pb::audit_streams_service_client::AuditStreamsServiceClient::new(
        server.authed(&server.admin_token().await).await,
    );
    let mut custom = Vec::new();
    for i in 0..3 {
        custom.push(create_role(&server, &format!("role-{i}"), Vec::new()).await);
        let stream = pb::CreateAuditStreamRequest {
            name: format!("stream-{i}"),
            skip_test: true,
            provider: Some(pb::create_audit_stream_request::Provider::Custom(pb::CustomProvider {
                url: "http://127.0.0.1:9/in".into(),
                ..Default::default()
            })),
            ..Default::default()
        };
        streams.create_audit_stream(stream).await.unwrap();
    }
    for bad in [(-5, ""), (1, "garbage")] {
        let field = if bad.0 < 0 { "page_size" } else { "page_token" };
        let roles = pb::ListRolesRequest { page_size: bad.0, page_token: bad.1.into() };
        assert_invalid(identities.list_roles(roles).await.unwrap_err(), field);
        let listed = pb::ListAuditStreamsRequest { page_size: bad.0, page_token: bad.1.into() };
        assert_invalid(streams.list_audit_streams(listed).await.unwrap_err(), field);
    }
    // One role per page: the built-in ones, then the custom ones oldest first, each once.
    let (mut roles, mut token) = (Vec::new(), String::new());
    loop {
        let request = pb::ListRolesRequest { page_size: 1, page_token: token };
        let page = identities.list_roles(request).await.unwrap().into_inner();
        assert!(page.roles.len() <= 1, "a page of {}", page.roles.len());
        roles.extend(page.roles.into_iter().map(|r| r.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(roles, ["admin", "member", "viewer"].iter().map(|s| s.to_string()).chain(custom).collect::<Vec<_>>());
    // Two streams per page.
    let (mut names, mut token, mut pages) = (Vec::new(), String::new(), 0);
    loop {
        let request = pb::ListAuditStreamsRequest { page_size: 2, page_token: token };
        let page = streams.list_audit_streams(request).await.unwrap().into_inner();
        pages += 1;
        names.extend(page.audit_streams.into_iter().map(|s| s.name));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!((names, pages), (vec!["stream-0".to_owned(), "stream-1".into(), "stream-2".into()], 2));
}

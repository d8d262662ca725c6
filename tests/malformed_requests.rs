//! Input that is the caller's fault is answered INVALID_ARGUMENT over every transport, never INTERNAL:
//! malformed protobuf, invalid UTF-8, truncated frames, control characters in text fields (PostgreSQL cannot
//! store a NUL); error answers are bounded in size; and concurrent creates of one name answer ALREADY_EXISTS.

mod common;

use common::{Backend, TestServer, http1, raw};
use hush::pb::{
    self, identity_service_client::IdentityServiceClient, projects_service_client::ProjectsServiceClient,
    secrets_service_client::SecretsServiceClient,
};
use tonic::Code;

backend_tests!(
    malformed_protobuf_is_invalid_argument,
    control_characters_in_text_fields_are_refused_naming_the_field,
    error_answers_are_bounded,
    concurrent_creates_of_one_name_answer_already_exists,
    a_message_announced_larger_than_the_limit_is_refused_at_once,
);

const CREATE_PROJECT: &str = "/hush.v1.ProjectsService/CreateProject";

async fn malformed_protobuf_is_invalid_argument(backend: Backend) {
    let server = TestServer::start(backend).await;
    let auth = format!("Bearer {}", server.admin_token().await);
    let channel = server.channel().await;
    // CreateProjectRequest.name (field 1, length-delimited) holding bytes that are not UTF-8.
    let not_utf8 = raw::frame(&[0x0A, 2, 0xC3, 0x28]);
    let mut truncated = raw::frame(b"\x0A\x05abcde");
    truncated.truncate(8);
    let mut compressed = raw::frame(b"\x0A\x01a");
    compressed[0] = 1;
    let wrong_wire_type = raw::frame(&[0x0B, 0x01]);
    let mut trailer_frame = raw::frame(b"\x0A\x01a");
    trailer_frame[0] = 0x80;
    let cases = [
        ("invalid UTF-8", not_utf8.clone()),
        ("a truncated frame", truncated),
        ("a compressed frame", compressed),
        ("a trailer frame", trailer_frame),
        // Read as a frame header, "hell" would announce 1.7 GB: it is refused as no frame, not as too large.
        ("no frame at all", b"hello".to_vec()),
        ("an invalid wire type", wrong_wire_type),
        ("no message", Vec::new()),
        ("two messages", [raw::frame(b"\x0A\x01a"), raw::frame(b"\x0A\x01b")].concat()),
    ];
    for (what, body) in cases {
        let status = raw::grpc(&channel, &server.url(), CREATE_PROJECT, Some(&auth), body.clone(), false)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"))
            .expect("unary answers carry a status");
        assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
        assert!(status.message().starts_with("request body: "), "{what}: {}", status.message());
        // The health check is open to anyone: its callers' mistakes must not be server faults either.
        let status = raw::grpc(&channel, &server.url(), "/grpc.health.v1.Health/Check", None, body, false)
            .await
            .unwrap_or_else(|e| panic!("health check, {what}: {e}"))
            .expect("unary answers carry a status");
        assert_eq!(status.code(), Code::InvalidArgument, "health check, {what}: {status:?}");
    }

    // The same over grpc-web, where browsers send it.
    let client = reqwest::Client::new();
    let status = raw::grpc_web(&client, &server.url(), CREATE_PROJECT, Some(&auth), not_utf8, false)
        .await
        .expect("an answer")
        .expect("unary answers carry a status");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    // grpc-web-text whose body is not base64, or stops inside a base64 group: the caller's bytes, not a
    // connection that went away.
    for (what, body) in [("not base64", &b"!!!not base64!!!"[..]), ("a cut base64 group", b"AAAAAAVaQQ")] {
        let text = "application/grpc-web-text";
        let status = raw::grpc_web_as(&client, &server.url(), CREATE_PROJECT, Some(&auth), text, body.to_vec(), false)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"))
            .expect("unary answers carry a status");
        assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
        assert!(status.message().starts_with("request body: is not valid grpc-web"), "{what}: {status:?}");
    }
    let mut projects = ProjectsServiceClient::new(server.authed(&server.admin_token().await).await);
    let listed = projects.list_projects(pb::ListProjectsRequest::default()).await.unwrap().into_inner().projects;
    assert!(listed.is_empty(), "no refused request created a project: {listed:?}");
}

async fn control_characters_in_text_fields_are_refused_naming_the_field(backend: Backend) {
    let server = TestServer::start(backend).await;
    let project_id = server.project("p").await;
    let token = server.admin_token().await;
    let mut secrets = SecretsServiceClient::new(server.authed(&token).await);
    let mut identities = IdentityServiceClient::new(server.authed(&token).await);

    let role = pb::CreateRoleRequest { name: "ops".into(), description: "on call\0".into(), policies: vec![] };
    let refused = identities.create_role(role).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(refused.message().starts_with("description: ") && refused.message().contains("U+0000"), "{refused:?}");

    let input =
        |key: &str, comment: &str| pb::SecretInput { key: key.into(), value: "v".into(), comment: comment.into() };
    let batch = pb::BatchCreateSecretsRequest {
        project_id: project_id.clone(),
        environment: "dev".into(),
        secret_path: "/".into(),
        secrets: vec![input("A", "fine\nmultiline"), input("B", "bell\u{7}")],
    };
    let refused = secrets.batch_create_secrets(batch).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(refused.message().starts_with("secrets[1].comment: "), "{}", refused.message());

    // Secret values are stored encrypted: any text, NUL included, round-trips.
    let value = "line1\nnul\0bell\u{7}end";
    let create = pb::CreateSecretRequest {
        project_id: project_id.clone(),
        environment: "dev".into(),
        secret_path: "/".into(),
        key: "K".into(),
        value: value.into(),
        comment: "tab\tand newline\n are fine".into(),
    };
    secrets.create_secret(create).await.expect("a NUL in a value is accepted");
    let read = pb::GetSecretRequest {
        project_id: project_id.clone(),
        environment: "dev".into(),
        secret_path: "/".into(),
        key: "K".into(),
        ..Default::default()
    };
    assert_eq!(secrets.get_secret(read).await.unwrap().into_inner().secret.unwrap().value, value);

    // JSON callers get the same answer (`\u0000` is valid JSON).
    let auth = format!("Bearer {token}");
    let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
    let (status, body) = http1::exchange(server.addr, "POST", CREATE_PROJECT, &headers, r#"{"name":"a\u0000b"}"#).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid_argument") && body.contains("name: "), "{body}");
}

async fn error_answers_are_bounded(backend: Backend) {
    let server = TestServer::start(backend).await;
    let project_id = server.project("p").await;
    let token = server.admin_token().await;
    let mut secrets = SecretsServiceClient::new(server.authed(&token).await);
    // A 1 MB environment slug of valid characters is refused by a rule that quotes it.
    let huge = "x".repeat(1_000_000);
    let list =
        pb::ListSecretsRequest { project_id, environment: huge.clone(), secret_path: "/".into(), ..Default::default() };
    let refused = secrets.list_secrets(list).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{}", &refused.message()[..100]);
    assert!(refused.message().len() <= hush::gateway::bounded_errors::MAX_MESSAGE_BYTES, "{}", refused.message().len());

    // A JSON body whose unknown field name is 1 MB long.
    let auth = format!("Bearer {token}");
    let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
    let body = format!(r#"{{"{huge}": 1}}"#);
    let (status, answer) = http1::exchange(server.addr, "POST", CREATE_PROJECT, &headers, &body).await;
    assert_eq!(status, 400);
    assert!(answer.len() < 2 * hush::gateway::bounded_errors::MAX_MESSAGE_BYTES, "{} bytes", answer.len());
}

/// Runs `create` 20 times at once: exactly one may win, the others must be told the name is taken (or to
/// retry), never INTERNAL.
async fn race<F, Fut, T>(what: &str, create: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>> + Send + 'static,
    T: Send + 'static,
{
    let tasks: Vec<_> = (0..20).map(|_| tokio::spawn(create())).collect();
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => won += 1,
            Err(status) => assert!(
                matches!(status.code(), Code::AlreadyExists | Code::Aborted),
                "{what}: a loser was answered {status:?}"
            ),
        }
    }
    assert_eq!(won, 1, "{what}: exactly one of the concurrent creates succeeds");
}

async fn concurrent_creates_of_one_name_answer_already_exists(backend: Backend) {
    let server = TestServer::start(backend).await;
    let token = server.admin_token().await;
    let channel = server.authed(&token).await;
    let project_id = server.project("p").await;
    // Project names need not be unique; an environment's slug is, within its project.
    let projects = ProjectsServiceClient::new(channel.clone());
    race("CreateEnvironment", || {
        let mut client = projects.clone();
        let request =
            pb::CreateEnvironmentRequest { project_id: project_id.clone(), slug: "same".into(), name: String::new() };
        async move { client.create_environment(request).await }
    })
    .await;
    let identities = IdentityServiceClient::new(channel.clone());
    race("CreateIdentity", || {
        let mut client = identities.clone();
        let request = pb::CreateIdentityRequest { name: "same".into(), org_role: String::new() };
        async move { client.create_identity(request).await }
    })
    .await;
    race("CreateRole", || {
        let mut client = identities.clone();
        let request = pb::CreateRoleRequest { name: "same".into(), ..Default::default() };
        async move { client.create_role(request).await }
    })
    .await;
    let secrets = SecretsServiceClient::new(channel);
    race("CreateSecret", || {
        let mut client = secrets.clone();
        let request = pb::CreateSecretRequest {
            project_id: project_id.clone(),
            environment: "dev".into(),
            secret_path: "/".into(),
            key: "SAME".into(),
            value: "v".into(),
            comment: String::new(),
        };
        async move { client.create_secret(request).await }
    })
    .await;
}

/// A frame header announcing more than a message may hold is refused as soon as it arrives, RESOURCE_EXHAUSTED,
/// without waiting for bytes that may never come (it waited for the body deadline, then answered CANCELLED).
async fn a_message_announced_larger_than_the_limit_is_refused_at_once(backend: Backend) {
    use futures_util::StreamExt;
    let server = TestServer::start(backend).await;
    let auth = format!("Bearer {}", server.admin_token().await);
    let mut channel = server.channel().await;
    for announced in [u32::MAX, 4 * 1024 * 1024 + 1] {
        let header: Vec<u8> = [0u8].into_iter().chain(announced.to_be_bytes()).collect();
        // The header, then nothing: the body stays open.
        let chunks = futures_util::stream::once(async move {
            Ok::<_, std::convert::Infallible>(http_body::Frame::data(bytes::Bytes::from(header)))
        })
        .chain(futures_util::stream::pending());
        let request = http::Request::post(format!("{}{CREATE_PROJECT}", server.url()))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("authorization", auth.as_str())
            .body(tonic::body::Body::new(http_body_util::StreamBody::new(chunks)))
            .unwrap();
        let started = std::time::Instant::now();
        let ready = tower::ServiceExt::ready(&mut channel).await.unwrap();
        let call = tower::Service::call(ready, request);
        let response = tokio::time::timeout(std::time::Duration::from_secs(5), call).await.expect("answered").unwrap();
        let status = tonic::Status::from_header_map(response.headers()).expect("an error answer");
        assert_eq!(status.code(), Code::ResourceExhausted, "{announced}: {status:?}");
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "took {:?}", started.elapsed());
    }
}

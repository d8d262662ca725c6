//! Events carry the versions they produced and what was done: a consumer holding a value can tell whether it is
//! current. Checked on gRPC, on SSE's common shape and in CloudEvents, for create, update, rollback, delete,
//! batches and a folder delete.

mod common;

use common::{
    Backend, TestServer, create_secret,
    events::{next_event, registration, subscribe},
    http1::{self, SseReader, field},
};
use hush::pb;

backend_tests!(events_carry_versions_and_operations);

/// (key, version, previous version) of an event's secrets.
fn versions(event: &pb::Event) -> Vec<(&str, Option<u32>, Option<u32>)> {
    event.secrets.iter().map(|s| (s.secret_key.as_str(), s.version, s.previous_version)).collect()
}

async fn events_carry_versions_and_operations(backend: Backend) {
    let server = TestServer::start(backend).await;
    let project = server.project("versions").await;
    let token = server.admin_token().await;
    let mut secrets = server.admin_secrets().await;
    let mut stream = subscribe(&server, &token, &project, vec![registration("*", "", "")], None).await.unwrap();
    let auth = format!("Bearer {token}");
    let body = format!(r#"{{"projectId": "{project}", "register": [{{"event": "*"}}]}}"#);
    let sse_path = "/api/v1/events/subscribe/project-events";
    let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
    let mut common_shape = SseReader::new(http1::send(server.addr, "POST", sse_path, &headers, &body).await);
    let cloud_path = format!("{sse_path}?format=cloudevents");
    let mut cloud = SseReader::new(http1::send(server.addr, "POST", &cloud_path, &headers, &body).await);
    let addr = |key: &str| (project.clone(), "dev".to_owned(), "/api".to_owned(), key.to_owned());
    let (p, env, path, key) = addr("DB");

    create_secret(&mut secrets, &project, "dev", "/api", "DB", "one").await;
    let created = next_event(&mut stream).await;
    assert_eq!((created.operation.as_str(), versions(&created)), ("create-secret", vec![("DB", Some(1), None)]));
    let sse = next_data_json(&mut common_shape).await;
    assert_eq!(
        (&sse["data"]["operation"], &sse["data"]["payload"][0]["version"]),
        (&"create-secret".into(), &1.into()),
        "{sse}"
    );
    assert!(sse["data"]["payload"][0].get("previousVersion").is_none(), "{sse}");
    let ce = next_data_json(&mut cloud).await;
    assert_eq!(
        (&ce["data"]["operation"], &ce["data"]["payload"]["secrets"][0]["version"]),
        (&"create-secret".into(), &1.into())
    );

    let update = pb::UpdateSecretRequest {
        project_id: p.clone(),
        environment: env.clone(),
        secret_path: path.clone(),
        key: key.clone(),
        value: "two".into(),
        comment: None,
        expected_version: None,
    };
    secrets.update_secret(update).await.unwrap();
    let updated = next_event(&mut stream).await;
    assert_eq!((updated.operation.as_str(), versions(&updated)), ("update-secret", vec![("DB", Some(2), Some(1))]));
    let sse = next_data_json(&mut common_shape).await;
    assert_eq!(
        (&sse["data"]["payload"][0]["version"], &sse["data"]["payload"][0]["previousVersion"]),
        (&2.into(), &1.into())
    );
    next_data_json(&mut cloud).await;

    let rollback = pb::RollbackSecretRequest {
        project_id: p.clone(),
        environment: env.clone(),
        secret_path: path.clone(),
        key: key.clone(),
        version: 1,
        expected_version: None,
    };
    secrets.rollback_secret(rollback).await.unwrap();
    let rolled = next_event(&mut stream).await;
    assert_eq!(rolled.r#type, "secret:update");
    assert_eq!((rolled.operation.as_str(), versions(&rolled)), ("rollback-secret", vec![("DB", Some(3), Some(2))]));

    let delete = pb::DeleteSecretRequest {
        project_id: p.clone(),
        environment: env,
        secret_path: path,
        key,
        expected_version: None,
    };
    secrets.delete_secret(delete).await.unwrap();
    let deleted = next_event(&mut stream).await;
    assert_eq!((deleted.operation.as_str(), versions(&deleted)), ("delete-secret", vec![("DB", None, Some(3))]));
    next_data_json(&mut common_shape).await;
    let sse = next_data_json(&mut common_shape).await;
    assert_eq!(sse["data"]["payload"][0]["previousVersion"], 3, "{sse}");
    assert!(sse["data"]["payload"][0].get("version").is_none(), "a deleted secret has no version: {sse}");

    // A batch that creates one secret and updates another: two events, each with its versions.
    create_secret(&mut secrets, &project, "dev", "/api", "KEEP", "k1").await;
    next_event(&mut stream).await;
    let batch = pb::BatchUpdateSecretsRequest {
        project_id: p.clone(),
        environment: "dev".into(),
        secret_path: "/api".into(),
        secrets: ["KEEP", "FRESH"]
            .iter()
            .map(|k| pb::SecretInput { key: (*k).into(), value: "v".into(), comment: String::new() })
            .collect(),
        expected_versions: Default::default(),
        allow_missing: true,
    };
    secrets.batch_update_secrets(batch).await.unwrap();
    let created = next_event(&mut stream).await;
    let updated = next_event(&mut stream).await;
    assert_eq!(
        (created.operation.as_str(), versions(&created)),
        ("create-secrets-batch", vec![("FRESH", Some(1), None)])
    );
    assert_eq!(
        (updated.operation.as_str(), versions(&updated)),
        ("update-secrets-batch", vec![("KEEP", Some(2), Some(1))])
    );

    // A folder delete names what each secret was at.
    let folder = pb::DeleteFolderRequest { project_id: p, environment: "dev".into(), path: "/api".into() };
    secrets.delete_folder(folder).await.unwrap();
    let gone = next_event(&mut stream).await;
    let mut gone_versions = versions(&gone);
    gone_versions.sort();
    assert_eq!(gone.operation, "delete-folder");
    assert_eq!(gone_versions, vec![("FRESH", None, Some(1)), ("KEEP", None, Some(2))]);
}

async fn next_data_json(reader: &mut SseReader) -> serde_json::Value {
    let block = reader.next_data().await;
    serde_json::from_str(field(&block, "data").expect("data")).expect("JSON data")
}

//! ListSecrets pages: bounded in count, in bytes and in rows examined, resumable with an opaque token, and the
//! CLI follows the pages so users still see everything.

mod common;

use common::{
    Authed, Backend, TestServer,
    cli::hush,
    create_secret,
    members::{member_with, policy},
};
use hush::pb::{self, secrets_service_client::SecretsServiceClient};
use prost::Message;
use sea_orm::ConnectionTrait;
use tonic::Code;

backend_tests!(
    pages_cover_a_folder_and_a_subtree_in_order,
    imported_secrets_follow_the_local_ones_across_pages,
    a_page_stops_before_the_response_size_cap,
    a_page_stops_after_examining_ten_thousand_hidden_rows,
    bad_page_sizes_and_tokens_are_invalid_arguments,
    the_cli_prints_every_page,
);

fn list(project: &str, path: &str, recursive: bool, page_size: i32) -> pb::ListSecretsRequest {
    pb::ListSecretsRequest {
        project_id: project.into(),
        environment: "dev".into(),
        secret_path: path.into(),
        recursive,
        page_size,
        ..Default::default()
    }
}

/// Follows every page; returns the pages.
async fn all_pages(
    client: &mut SecretsServiceClient<Authed>,
    mut request: pb::ListSecretsRequest,
) -> Vec<pb::ListSecretsResponse> {
    let mut pages = Vec::new();
    loop {
        let page = client.list_secrets(request.clone()).await.unwrap().into_inner();
        let token = page.next_page_token.clone();
        pages.push(page);
        if token.is_empty() {
            return pages;
        }
        assert!(pages.len() < 100, "paging ends");
        request.page_token = token;
    }
}

fn keys(pages: &[pb::ListSecretsResponse]) -> Vec<String> {
    pages.iter().flat_map(|p| p.secrets.iter().map(|s| format!("{}/{}", s.secret_path, s.key))).collect()
}

async fn batch(
    client: &mut SecretsServiceClient<Authed>,
    project: &str,
    path: &str,
    keys: impl Iterator<Item = String>,
    value: &str,
) {
    let secrets = keys.map(|key| pb::SecretInput { key, value: value.into(), comment: String::new() }).collect();
    let request = pb::BatchCreateSecretsRequest {
        project_id: project.into(),
        environment: "dev".into(),
        secret_path: path.into(),
        secrets,
    };
    client.batch_create_secrets(request).await.unwrap();
}

async fn pages_cover_a_folder_and_a_subtree_in_order(backend: Backend) {
    let server = TestServer::start(backend).await;
    let project = server.project("paging").await;
    let mut admin = server.admin_secrets().await;
    batch(&mut admin, &project, "/big", (0..250).map(|i| format!("K{i:03}")), "v").await;
    batch(&mut admin, &project, "/big/sub", (0..5).map(|i| format!("S{i}")), "v").await;
    batch(&mut admin, &project, "/bigger", (0..3).map(|i| format!("B{i}")), "v").await;

    let pages = all_pages(&mut admin, list(&project, "/big", false, 100)).await;
    assert_eq!(pages.iter().map(|p| p.secrets.len()).collect::<Vec<_>>(), [100, 100, 50]);
    let expected: Vec<String> = (0..250).map(|i| format!("/big/K{i:03}")).collect();
    assert_eq!(keys(&pages), expected);

    let first = admin.list_secrets(list(&project, "/big", false, 0)).await.unwrap().into_inner();
    assert_eq!(first.secrets.len(), 100, "page_size 0 means 100");
    let huge = admin.list_secrets(list(&project, "/big", false, 5000)).await.unwrap().into_inner();
    assert_eq!((huge.secrets.len(), huge.next_page_token.as_str()), (250, ""), "sizes above 1000 are 1000");

    // The subtree holds /big and /big/sub, not the look-alike /bigger.
    let pages = all_pages(&mut admin, list(&project, "/big", true, 7)).await;
    let mut expected: Vec<String> = (0..250).map(|i| format!("/big/K{i:03}")).collect();
    expected.extend((0..5).map(|i| format!("/big/sub/S{i}")));
    assert_eq!(keys(&pages), expected);
    assert!(pages.iter().all(|p| p.secrets.len() <= 7));
}

async fn imported_secrets_follow_the_local_ones_across_pages(backend: Backend) {
    let server = TestServer::start(backend).await;
    let project = server.project("imports").await;
    let mut admin = server.admin_secrets().await;
    batch(&mut admin, &project, "/app", ["A", "B", "C"].map(String::from).into_iter(), "local").await;
    batch(&mut admin, &project, "/shared", ["B", "D", "E"].map(String::from).into_iter(), "shared").await;
    let import = pb::CreateSecretImportRequest {
        project_id: project.clone(),
        environment: "dev".into(),
        secret_path: "/app".into(),
        import_environment: "dev".into(),
        import_path: "/shared".into(),
    };
    admin.create_secret_import(import).await.unwrap();
    let mut request = list(&project, "/app", false, 2);
    request.include_imports = true;
    let pages = all_pages(&mut admin, request).await;
    let seen: Vec<Vec<(String, String)>> =
        pages.iter().map(|p| p.secrets.iter().map(|s| (s.key.clone(), s.value.clone())).collect()).collect();
    let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    assert_eq!(
        seen,
        [
            vec![pair("A", "local"), pair("B", "local")],
            vec![pair("C", "local"), pair("D", "shared")],
            vec![pair("E", "shared")],
        ],
        "local B shadows the imported one; imports come after the local secrets"
    );
}

async fn a_page_stops_before_the_response_size_cap(backend: Backend) {
    let server = TestServer::start(backend).await;
    let project = server.project("big-values").await;
    let mut admin = server.admin_secrets().await;
    let value = "x".repeat(60 * 1024);
    for chunk in 0..4 {
        batch(&mut admin, &project, "/blobs", (0..20).map(|i| format!("K{:02}", chunk * 20 + i)), &value).await;
    }
    let pages = all_pages(&mut admin, list(&project, "/blobs", false, 1000)).await;
    assert!(pages.len() >= 2, "80 × 60 KiB does not fit one page");
    for page in &pages {
        assert!(page.encoded_len() <= 3 * 1024 * 1024 + 768 * 1024, "page of {} bytes", page.encoded_len());
    }
    let expected: Vec<String> = (0..80).map(|i| format!("/blobs/K{i:02}")).collect();
    assert_eq!(keys(&pages), expected);
}

async fn a_page_stops_after_examining_ten_thousand_hidden_rows(backend: Backend) {
    let server = TestServer::start(backend).await;
    let project = server.project("hidden-rows").await;
    let mut admin = server.admin_secrets().await;
    create_secret(&mut admin, &project, "dev", "/hidden", "SEED", "s").await;
    create_secret(&mut admin, &project, "dev", "/zzz", "VISIBLE", "v").await;
    // 10 500 more rows the reader may not see, written directly: they are never decrypted.
    let db = server.raw_db().await;
    let sql = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10500) \
               INSERT INTO secrets (id, environment_id, path, key, version, sealed_value, comment, created_at, updated_at) \
               SELECT 'bulk-' || n.i, s.environment_id, s.path, 'H' || n.i, s.version, s.sealed_value, s.comment, \
               s.created_at, s.updated_at FROM n, secrets s WHERE s.key = 'SEED'";
    db.execute_unprepared(sql).await.unwrap();
    let reader = member_with(
        &server,
        &project,
        "reader",
        vec![
            policy("secrets", &["read"], &["dev"], "/**", false),
            policy("secrets", &["read"], &["dev"], "/hidden/**", true),
        ],
    )
    .await;
    let mut secrets = reader.secrets(&server).await;
    let pages = all_pages(&mut secrets, list(&project, "/", true, 1000)).await;
    assert!(pages[0].secrets.is_empty() && !pages[0].next_page_token.is_empty(), "an empty page that says more follow");
    assert_eq!(keys(&pages), ["/zzz/VISIBLE"]);
}

async fn bad_page_sizes_and_tokens_are_invalid_arguments(backend: Backend) {
    let server = TestServer::start(backend).await;
    let project = server.project("bad").await;
    let mut admin = server.admin_secrets().await;
    batch(&mut admin, &project, "/f", (0..3).map(|i| format!("K{i}")), "v").await;
    let status = admin.list_secrets(list(&project, "/f", false, -1)).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("page_size"), "{}", status.message());
    use base64::Engine;
    let encode = |json: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
    for token in [
        "not a token!".to_owned(),
        "A".repeat(5000),
        encode("{}"),
        encode(r#"{"l":{"path":"/a/../b","key":"K"}}"#),
        encode(r#"{"l":{"path":"/f","key":"bad key"}}"#),
    ] {
        let mut request = list(&project, "/f", false, 1);
        request.page_token = token.clone();
        let status = admin.list_secrets(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{token:.40}");
        assert!(status.message().contains("page_token"), "{}", status.message());
        assert!(status.message().len() < 200, "the token is not echoed");
    }
}

async fn the_cli_prints_every_page(backend: Backend) {
    let server = TestServer::start(backend).await;
    let project = server.project("cli").await;
    let mut admin = server.admin_secrets().await;
    batch(&mut admin, &project, "/many", (0..150).map(|i| format!("K{i:03}")), "v").await;
    let config = tempfile::tempdir().unwrap();
    let bootstrap = server.data_dir.path().join("bootstrap.json");
    let url = server.url();
    hush(config.path(), &["login", "--server", &url, "--from-file", bootstrap.to_str().unwrap()]).await.unwrap();
    let out = hush(config.path(), &["secrets", "list", "--project", &project, "--env", "dev", "--path", "/many"])
        .await
        .unwrap();
    let expected: String = (0..150).map(|i| format!("K{i:03}=v\n")).collect();
    assert_eq!(out, expected);
}

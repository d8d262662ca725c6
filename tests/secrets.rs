//! Secrets end to end through gRPC: versions and rollback, batch atomicity, imports, folders and environments.

mod common;

use common::{
    Backend, TestServer, create_secret,
    events::{next_event, registration, subscribe},
    get_secret, list_secrets, metric,
};
use hush::pb;
use tonic::Code;

backend_tests!(
    versions_and_rollback,
    batch_writes_are_all_or_nothing,
    failed_writes_among_concurrent_ones_undo_only_themselves,
    the_largest_batches_are_written_in_bulk,
    a_batch_costs_the_statements_of_a_batch_of_one,
    imports_resolve_with_local_precedence,
    folders_nest_list_and_delete,
    deleting_an_environment_removes_its_secrets,
    write_responses_never_carry_values,
    reads_follow_deleted_and_recreated_scopes,
);

/// Statements sent to the database by the server (every one, reads included).
const STATEMENTS: &str = "hush_db_statements_total";

/// Each statement count is measured this many times and the median kept. A window closes only after the
/// write's event was delivered, so the outbox read that the write causes is always inside it.
const TRIES: usize = 5;

/// The median of `counts`.
fn median(mut counts: Vec<u64>) -> u64 {
    counts.sort_unstable();
    counts[counts.len() / 2]
}

/// Creating a secret below existing folders reads the whole folder chain in one query: a secret 20 folders deep
/// (the deepest allowed) costs the statements of one a folder below the root (SQLite, where the server sends
/// the database little else).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deep_path_costs_the_statements_of_a_shallow_one() {
    let server = TestServer::start(Backend::Sqlite).await;
    let project = server.project("deep").await;
    let mut secrets = server.admin_secrets().await;
    let deep: String = (0..20).map(|i| format!("/f{i}")).collect();
    create_secret(&mut secrets, &project, "dev", &deep, "CHAIN", "v").await;
    let token = server.admin_token().await;
    let mut events = subscribe(&server, &token, &project, vec![registration("*", "", "")], None).await.unwrap();
    let mut cost = async |path: &str| {
        let mut counts = Vec::with_capacity(TRIES);
        for attempt in 0..TRIES {
            let before = metric(&server, STATEMENTS).await;
            create_secret(&mut secrets, &project, "dev", path, &format!("MEASURED_{attempt}"), "v").await;
            next_event(&mut events).await;
            counts.push(metric(&server, STATEMENTS).await - before);
        }
        median(counts)
    };
    let shallow = cost("/f0").await;
    assert_eq!(cost(&deep).await, shallow, "a secret 20 folders deep against one 1 folder deep");
}

/// PostgreSQL: a CreateSecret and an UpdateSecret by a caller whose token was resolved before send only the
/// statements of the write itself: `BEGIN`; the environment locked, with the permission version and whether
/// anything imports from it; (UpdateSecret) the secret row locked; its changes; its log rows; `COMMIT`. No
/// statement reads the permission version alone, the keys a create does not find, or the folders that import
/// from an environment nothing imports from (each was one more statement a write). The count is the metric's:
/// without `BEGIN` and `COMMIT`, with the three outbox reads the write's event causes (its settled head and
/// rows).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_write_sends_only_its_own_statements() {
    if !common::postgres_configured("statements of a write") {
        return;
    }
    let server = TestServer::start(Backend::Postgres).await;
    let project = server.project("lean").await;
    let mut secrets = server.admin_secrets().await;
    create_secret(&mut secrets, &project, "dev", "/app", "WARM", "v").await;
    let token = server.admin_token().await;
    let mut events = subscribe(&server, &token, &project, vec![registration("*", "", "")], None).await.unwrap();
    let mut creates = Vec::with_capacity(TRIES);
    let mut updates = Vec::with_capacity(TRIES);
    for attempt in 0..TRIES {
        let key = format!("LEAN_{attempt}");
        let before = metric(&server, STATEMENTS).await;
        create_secret(&mut secrets, &project, "dev", "/app", &key, "v").await;
        next_event(&mut events).await;
        let created = metric(&server, STATEMENTS).await;
        let update = pb::UpdateSecretRequest {
            project_id: project.clone(),
            environment: "dev".into(),
            secret_path: "/app".into(),
            key,
            value: "v2".into(),
            comment: None,
            expected_version: None,
        };
        secrets.update_secret(update).await.unwrap();
        next_event(&mut events).await;
        creates.push(created - before);
        updates.push(metric(&server, STATEMENTS).await - created);
    }
    assert_eq!([median(creates), median(updates)], [3 + 3, 4 + 3], "statements of [a create, an update]");
}

/// A batch create, update and delete cost the statements of a batch of one however many secrets they carry
/// (one read of the keys, then bulk inserts, the updates left for the commit, or one delete): on SQLite in the
/// commit's one hand-off, every statement counted, for 100 secrets; on PostgreSQL the changes joined into one
/// statement and the log rows into another (see `store::at_commit`), for the 16 secrets one statement's updates
/// hold, the statements that write counted (reads of the permission version come and go with time there).
async fn a_batch_costs_the_statements_of_a_batch_of_one(backend: Backend) {
    let (counted, many) = match backend {
        Backend::Sqlite => (STATEMENTS, 100),
        Backend::Postgres => ("hush_db_write_statements_total", 16),
    };
    let server = TestServer::start(backend).await;
    let project = server.project("bulk").await;
    let mut secrets = server.admin_secrets().await;
    create_secret(&mut secrets, &project, "dev", "/bulk", "FOLDER", "v").await;
    let token = server.admin_token().await;
    let mut events = subscribe(&server, &token, &project, vec![registration("*", "", "")], None).await.unwrap();
    let mut cost = async |count: usize, prefix: String| {
        let keys: Vec<String> = (0..count).map(|i| format!("{prefix}{i}")).collect();
        let before = metric(&server, counted).await;
        let create = pb::BatchCreateSecretsRequest {
            project_id: project.clone(),
            environment: "dev".into(),
            secret_path: "/bulk".into(),
            secrets: keys.iter().map(|key| input(key, "v")).collect(),
        };
        assert_eq!(secrets.batch_create_secrets(create).await.unwrap().into_inner().secrets.len(), count);
        next_event(&mut events).await;
        let created = metric(&server, counted).await;
        let update = pb::BatchUpdateSecretsRequest {
            project_id: project.clone(),
            environment: "dev".into(),
            secret_path: "/bulk".into(),
            secrets: keys.iter().map(|key| input(key, "v2")).collect(),
            expected_versions: Default::default(),
            allow_missing: false,
        };
        let updated = secrets.batch_update_secrets(update).await.unwrap().into_inner().secrets;
        assert!(updated.iter().all(|secret| secret.version == 2), "every key at version 2");
        next_event(&mut events).await;
        let updated = metric(&server, counted).await;
        let delete = pb::BatchDeleteSecretsRequest {
            project_id: project.clone(),
            environment: "dev".into(),
            secret_path: "/bulk".into(),
            keys,
            expected_versions: Default::default(),
        };
        secrets.batch_delete_secrets(delete).await.unwrap();
        next_event(&mut events).await;
        let deleted = metric(&server, counted).await;
        [created - before, updated - created, deleted - updated]
    };
    let mut typical = async |count: usize| {
        let mut costs: [Vec<u64>; 3] = Default::default();
        for attempt in 0..TRIES {
            for (costs, cost) in costs.iter_mut().zip(cost(count, format!("K{count}_{attempt}_")).await) {
                costs.push(cost);
            }
        }
        costs.map(median)
    };
    let one = typical(1).await;
    assert_eq!(typical(many).await, one, "[create, update, delete] of {many} secrets against 1");
    let left = list_secrets(&mut secrets, &project, "dev", "/bulk", false).await.unwrap();
    assert_eq!(left, vec![("FOLDER".to_owned(), "v".to_owned())], "the batches were deleted, the rest kept");
}

fn input(key: &str, value: &str) -> pb::SecretInput {
    pb::SecretInput { key: key.into(), value: value.into(), comment: String::new() }
}

async fn versions_and_rollback(backend: Backend) {
    let server = TestServer::start(backend).await;
    let project = server.project("versions").await;
    let mut secrets = server.admin_secrets().await;
    create_secret(&mut secrets, &project, "dev", "/", "API_KEY", "one").await;
    for value in ["two", "three"] {
        let request = pb::UpdateSecretRequest {
            project_id: project.clone(),
            environment: "dev".into(),
            secret_path: "/".into(),
            key: "API_KEY".into(),
            value: value.into(),
            comment: Some(format!("set to {value}")),
            expected_version: None,
        };
        secrets.update_secret(request).await.unwrap();
    }
    let address = |version| pb::GetSecretRequest {
        project_id: project.clone(),
        environment: "dev".into(),
        secret_path: "/".into(),
        key: "API_KEY".into(),
        include_imports: false,
        version,
    };
    let current = secrets.get_secret(address(0)).await.unwrap().into_inner().secret.unwrap();
    assert_eq!((current.version, current.value.as_str()), (3, "three"));
    let first = secrets.get_secret(address(1)).await.unwrap().into_inner().secret.unwrap();
    assert_eq!((first.version, first.value.as_str()), (1, "one"));
    assert_eq!(secrets.get_secret(address(9)).await.unwrap_err().code(), Code::NotFound);

    let versions = secrets
        .list_secret_versions(pb::ListSecretVersionsRequest {
            project_id: project.clone(),
            environment: "dev".into(),
            secret_path: "/".into(),
            key: "API_KEY".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .versions;
    let listed: Vec<(u32, &str)> = versions.iter().map(|v| (v.version, v.value.as_str())).collect();
    assert_eq!(listed, vec![(3, "three"), (2, "two"), (1, "one")]);
    assert_eq!(versions[0].comment, "set to three");

    let rollback = |version| pb::RollbackSecretRequest {
        project_id: project.clone(),
        environment: "dev".into(),
        secret_path: "/".into(),
        key: "API_KEY".into(),
        version,
        expected_version: None,
    };
    let rolled = secrets.rollback_secret(rollback(1)).await.unwrap().into_inner().secret.unwrap();
    assert_eq!(rolled.version, 4, "a rollback is a new version, history is kept");
    assert_eq!(rolled.value, "", "write responses carry no value");
    let now = get_secret(&mut secrets, &project, "dev", "/", "API_KEY").await.unwrap();
    assert_eq!((now.version, now.value.as_str()), (4, "one"));
    assert_eq!(secrets.rollback_secret(rollback(42)).await.unwrap_err().code(), Code::NotFound);
    assert_eq!(secrets.rollback_secret(rollback(0)).await.unwrap_err().code(), Code::InvalidArgument);
}

/// The largest batch (`MAX_BATCH` secrets, every one with the largest key) goes through the bulk statements on
/// both databases: one read of 1 000 keys, inserts of 1 000 rows and versions, an upsert of half existing and
/// half new keys, and one delete of 1 000 rows, within the databases' limits on bound values.
async fn the_largest_batches_are_written_in_bulk(backend: Backend) {
    use hush::secrets::validate::{MAX_BATCH, MAX_KEY_LEN};
    let server = TestServer::start(backend).await;
    let project = server.project("largest").await;
    let mut secrets = server.admin_secrets().await;
    let key = |i: usize| format!("{i:0>width$}", width = MAX_KEY_LEN).replacen('0', "K", 1);
    let items = |range: std::ops::Range<usize>, value: &str| range.map(|i| input(&key(i), value)).collect::<Vec<_>>();
    let create = pb::BatchCreateSecretsRequest {
        project_id: project.clone(),
        environment: "dev".into(),
        secret_path: "/big".into(),
        secrets: items(0..MAX_BATCH, "first"),
    };
    assert_eq!(secrets.batch_create_secrets(create).await.unwrap().into_inner().secrets.len(), MAX_BATCH);
    let half = MAX_BATCH / 2;
    let upsert = pb::BatchUpdateSecretsRequest {
        project_id: project.clone(),
        environment: "dev".into(),
        secret_path: "/big".into(),
        secrets: items(half..MAX_BATCH + half, "second"),
        expected_versions: Default::default(),
        allow_missing: true,
    };
    let written = secrets.batch_update_secrets(upsert).await.unwrap().into_inner().secrets;
    let versions: Vec<u32> = written.iter().map(|s| s.version).collect();
    assert_eq!(versions, [vec![2; half], vec![1; half]].concat(), "existing keys updated, new ones created, in order");
    assert_eq!(get_secret(&mut secrets, &project, "dev", "/big", &key(half)).await.unwrap().value, "second");
    assert_eq!(get_secret(&mut secrets, &project, "dev", "/big", &key(0)).await.unwrap().value, "first");
    let delete = pb::BatchDeleteSecretsRequest {
        project_id: project.clone(),
        environment: "dev".into(),
        secret_path: "/big".into(),
        keys: (0..MAX_BATCH).map(key).collect(),
        expected_versions: Default::default(),
    };
    secrets.batch_delete_secrets(delete).await.unwrap();
    let gone = get_secret(&mut secrets, &project, "dev", "/big", &key(MAX_BATCH - 1)).await.unwrap_err();
    assert_eq!(gone.code(), Code::NotFound, "the last key of the deleted range");
    let kept = get_secret(&mut secrets, &project, "dev", "/big", &key(MAX_BATCH)).await.unwrap();
    assert_eq!(kept.value, "second", "the first key past the deleted range is kept");
}

/// Creates of a taken key racing creates of new keys, on one connection each: every failed create answers
/// ALREADY_EXISTS naming its key and leaves nothing behind, and every other create is kept with its value
/// (on SQLite they share write groups, where a failed member may be the one that opened its group).
async fn failed_writes_among_concurrent_ones_undo_only_themselves(backend: Backend) {
    const WRITERS: usize = 32;
    let server = TestServer::start(backend).await;
    let project = server.project("mixed").await;
    let mut secrets = server.admin_secrets().await;
    create_secret(&mut secrets, &project, "dev", "/mix", "TAKEN", "first").await;
    let mut writers = tokio::task::JoinSet::new();
    for i in 0..WRITERS {
        let (mut client, project) = (server.admin_secrets().await, project.clone());
        let key = if i % 2 == 0 { format!("NEW_{i}") } else { "TAKEN".to_owned() };
        writers.spawn(async move {
            let request = pb::CreateSecretRequest {
                project_id: project,
                environment: "dev".into(),
                secret_path: "/mix".into(),
                key: key.clone(),
                value: format!("value of {i}"),
                comment: String::new(),
            };
            (i, key, client.create_secret(request).await)
        });
    }
    let mut expected = vec![("TAKEN".to_owned(), "first".to_owned())];
    while let Some(done) = writers.join_next().await {
        let (i, key, outcome) = done.unwrap();
        match outcome {
            Ok(_) => expected.push((key, format!("value of {i}"))),
            Err(status) => {
                assert_eq!((status.code(), key.as_str()), (Code::AlreadyExists, "TAKEN"), "{status:?}");
                assert!(status.message().contains("'TAKEN'"), "names the key: {}", status.message());
            }
        }
    }
    expected.sort();
    assert_eq!(expected.len(), 1 + WRITERS / 2, "every new key was created");
    let mut stored = list_secrets(&mut secrets, &project, "dev", "/mix", false).await.unwrap();
    stored.sort();
    assert_eq!(stored, expected);
}

async fn batch_writes_are_all_or_nothing(backend: Backend) {
    let server = TestServer::start(backend).await;
    let project = server.project("batch").await;
    let mut secrets = server.admin_secrets().await;
    create_secret(&mut secrets, &project, "dev", "/svc", "EXISTING", "old").await;

    let batch = |items: Vec<pb::SecretInput>| pb::BatchCreateSecretsRequest {
        project_id: project.clone(),
        environment: "dev".into(),
        secret_path: "/svc".into(),
        secrets: items,
    };
    // One invalid key: nothing is written and the error names the item.
    let err = secrets.batch_create_secrets(batch(vec![input("A", "1"), input("bad key", "2")])).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("secrets[1].key"), "{}", err.message());
    // One key that exists already: the items before it are rolled back.
    let err = secrets
        .batch_create_secrets(batch(vec![input("A", "1"), input("B", "2"), input("EXISTING", "3")]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    assert!(err.message().contains("'EXISTING'"), "the error names the key taken: {}", err.message());
    let keys = list_secrets(&mut secrets, &project, "dev", "/svc", false).await.unwrap();
    assert_eq!(keys, vec![("EXISTING".to_owned(), "old".to_owned())], "a failed batch writes nothing");

    let created = secrets.batch_create_secrets(batch(vec![input("A", "1"), input("B", "2")])).await.unwrap();
    assert_eq!(created.into_inner().secrets.len(), 2);

    // Update: one missing key rolls back the others.
    let update = |items| pb::BatchUpdateSecretsRequest {
        project_id: project.clone(),
        environment: "dev".into(),
        secret_path: "/svc".into(),
        secrets: items,
        expected_versions: Default::default(),
        allow_missing: false,
    };
    let err = secrets.batch_update_secrets(update(vec![input("A", "10"), input("MISSING", "x")])).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(get_secret(&mut secrets, &project, "dev", "/svc", "A").await.unwrap().value, "1");
    secrets.batch_update_secrets(update(vec![input("A", "10"), input("B", "20")])).await.unwrap();
    let b = get_secret(&mut secrets, &project, "dev", "/svc", "B").await.unwrap();
    assert_eq!((b.value.as_str(), b.version), ("20", 2));

    // Update with allow_missing: existing keys get a new version, missing ones are created, in one transaction
    // (a folder that does not exist yet included); a key with an expected version must exist.
    let upsert = |path: &str, items, expected: &[(&str, u32)]| pb::BatchUpdateSecretsRequest {
        project_id: project.clone(),
        environment: "dev".into(),
        secret_path: path.into(),
        secrets: items,
        expected_versions: expected.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
        allow_missing: true,
    };
    let refused = secrets
        .batch_update_secrets(upsert("/svc", vec![input("B", "21"), input("NEW", "n")], &[("NEW", 1)]))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::NotFound, "{refused:?}");
    let upserted = secrets
        .batch_update_secrets(upsert("/svc", vec![input("B", "21"), input("NEW", "n")], &[("B", 2)]))
        .await
        .unwrap()
        .into_inner()
        .secrets;
    let versions: Vec<_> = upserted.iter().map(|s| (s.key.as_str(), s.version)).collect();
    assert_eq!(versions, [("B", 3), ("NEW", 1)], "request order, each at its new version");
    assert_eq!(get_secret(&mut secrets, &project, "dev", "/svc", "NEW").await.unwrap().value, "n");
    secrets.batch_update_secrets(upsert("/fresh/folder", vec![input("F", "f")], &[])).await.unwrap();
    assert_eq!(get_secret(&mut secrets, &project, "dev", "/fresh/folder", "F").await.unwrap().value, "f");
    // Creating through an update needs the create permission too: an editor alone is refused, nothing written.
    let editor = common::members::member_with(
        &server,
        &project,
        "editor",
        vec![common::members::policy("secrets", &["read", "edit"], &[], "", false)],
    )
    .await;
    let mut as_editor = editor.secrets(&server).await;
    let refused =
        as_editor.batch_update_secrets(upsert("/svc", vec![input("B", "22"), input("SNEAK", "s")], &[])).await;
    assert_eq!(refused.unwrap_err().code(), Code::PermissionDenied);
    assert_eq!(get_secret(&mut secrets, &project, "dev", "/svc", "B").await.unwrap().value, "21");

    // Delete: one missing key deletes nothing.
    let delete = |keys: &[&str]| pb::BatchDeleteSecretsRequest {
        project_id: project.clone(),
        environment: "dev".into(),
        secret_path: "/svc".into(),
        keys: keys.iter().map(|k| k.to_string()).collect(),
        expected_versions: Default::default(),
    };
    assert_eq!(secrets.batch_delete_secrets(delete(&["A", "NOPE"])).await.unwrap_err().code(), Code::NotFound);
    assert!(get_secret(&mut secrets, &project, "dev", "/svc", "A").await.is_ok());
    secrets.batch_delete_secrets(delete(&["A", "B"])).await.unwrap();
    let keys = list_secrets(&mut secrets, &project, "dev", "/svc", false).await.unwrap();
    let keys: Vec<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["EXISTING", "NEW"]);

    // Duplicate keys in one batch are rejected up front.
    let err = secrets.batch_create_secrets(batch(vec![input("D", "1"), input("D", "2")])).await.unwrap_err();
    assert!(err.message().contains("appears more than once"), "{}", err.message());
}

async fn imports_resolve_with_local_precedence(backend: Backend) {
    let server = TestServer::start(backend).await;
    let project = server.project("imports").await;
    let mut secrets = server.admin_secrets().await;
    create_secret(&mut secrets, &project, "prod", "/shared", "DB_HOST", "prod-db").await;
    create_secret(&mut secrets, &project, "prod", "/shared", "REGION", "eu").await;
    create_secret(&mut secrets, &project, "staging", "/", "REGION", "us").await;
    create_secret(&mut secrets, &project, "dev", "/app", "DB_HOST", "localhost").await;

    let import = |env: &str, path: &str| pb::CreateSecretImportRequest {
        project_id: project.clone(),
        environment: "dev".into(),
        secret_path: "/app".into(),
        import_environment: env.into(),
        import_path: path.into(),
    };
    secrets.create_secret_import(import("prod", "/shared")).await.unwrap();
    // Created later, so it wins over the first import for REGION.
    secrets.create_secret_import(import("staging", "/")).await.unwrap();
    assert_eq!(secrets.create_secret_import(import("staging", "/")).await.unwrap_err().code(), Code::AlreadyExists);
    assert_eq!(secrets.create_secret_import(import("prod", "/nowhere")).await.unwrap_err().code(), Code::NotFound);

    let resolved = list_secrets(&mut secrets, &project, "dev", "/app", true).await.unwrap();
    let mut resolved: Vec<(&str, &str)> = resolved.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    resolved.sort();
    assert_eq!(resolved, vec![("DB_HOST", "localhost"), ("REGION", "us")], "local wins, later import wins");
    let local_only = list_secrets(&mut secrets, &project, "dev", "/app", false).await.unwrap();
    assert_eq!(local_only.len(), 1);

    let get = |key: &str, include_imports| pb::GetSecretRequest {
        project_id: project.clone(),
        environment: "dev".into(),
        secret_path: "/app".into(),
        key: key.into(),
        include_imports,
        version: 0,
    };
    let region = secrets.get_secret(get("REGION", true)).await.unwrap().into_inner().secret.unwrap();
    assert_eq!(region.value, "us");
    let source = region.imported_from.expect("imported secrets say where they come from");
    assert_eq!((source.environment.as_str(), source.secret_path.as_str()), ("staging", "/"));
    assert_eq!(secrets.get_secret(get("REGION", false)).await.unwrap_err().code(), Code::NotFound);

    let imports = secrets
        .list_secret_imports(pb::ListSecretImportsRequest {
            project_id: project.clone(),
            environment: "dev".into(),
            secret_path: "/app".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .secret_imports;
    assert_eq!(imports.len(), 2);
    let staging = imports.iter().find(|i| i.import_environment == "staging").unwrap();
    secrets
        .delete_secret_import(pb::DeleteSecretImportRequest {
            project_id: project.clone(),
            secret_import_id: staging.id.clone(),
        })
        .await
        .unwrap();
    let region = secrets.get_secret(get("REGION", true)).await.unwrap().into_inner().secret.unwrap();
    assert_eq!(region.value, "eu", "with the later import gone, the earlier one supplies the key");
}

async fn folders_nest_list_and_delete(backend: Backend) {
    let server = TestServer::start(backend).await;
    let project = server.project("folders").await;
    let mut secrets = server.admin_secrets().await;
    let folder = |path: &str| pb::CreateFolderRequest {
        project_id: project.clone(),
        environment: "dev".into(),
        path: path.into(),
    };
    let created = secrets.create_folder(folder("/api/keys")).await.unwrap().into_inner().folder.unwrap();
    assert_eq!((created.path.as_str(), created.name.as_str()), ("/api/keys", "keys"));
    assert_eq!(secrets.create_folder(folder("/api")).await.unwrap_err().code(), Code::AlreadyExists);
    secrets.create_folder(folder("/web")).await.unwrap();
    create_secret(&mut secrets, &project, "dev", "/api/keys", "K1", "v").await;
    create_secret(&mut secrets, &project, "dev", "/api/keys/old", "K2", "v").await;
    create_secret(&mut secrets, &project, "dev", "/web", "K3", "v").await;

    let list = |path: &str, recursive| pb::ListFoldersRequest {
        project_id: project.clone(),
        environment: "dev".into(),
        secret_path: path.into(),
        recursive,
    };
    let paths = |folders: Vec<pb::Folder>| folders.into_iter().map(|f| f.path).collect::<Vec<_>>();
    let top = secrets.list_folders(list("/", false)).await.unwrap().into_inner().folders;
    assert_eq!(paths(top), vec!["/api", "/web"]);
    let all = secrets.list_folders(list("/api", true)).await.unwrap().into_inner().folders;
    assert_eq!(paths(all), vec!["/api/keys", "/api/keys/old"]);
    assert_eq!(secrets.list_folders(list("/nope", false)).await.unwrap_err().code(), Code::NotFound);

    let recursive = secrets
        .list_secrets(pb::ListSecretsRequest {
            project_id: project.clone(),
            environment: "dev".into(),
            secret_path: "/api".into(),
            include_imports: false,
            recursive: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .secrets;
    assert_eq!(recursive.iter().map(|s| s.key.as_str()).collect::<Vec<_>>(), vec!["K1", "K2"]);

    let deleted = secrets
        .delete_folder(pb::DeleteFolderRequest {
            project_id: project.clone(),
            environment: "dev".into(),
            path: "/api".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.deleted_secrets, 2);
    let top = secrets.list_folders(list("/", true)).await.unwrap().into_inner().folders;
    assert_eq!(paths(top), vec!["/web"]);
    assert_eq!(get_secret(&mut secrets, &project, "dev", "/api/keys", "K1").await.unwrap_err().code(), Code::NotFound);
    assert!(get_secret(&mut secrets, &project, "dev", "/web", "K3").await.is_ok(), "siblings are untouched");
    let root = pb::DeleteFolderRequest { project_id: project.clone(), environment: "dev".into(), path: "/".into() };
    assert_eq!(secrets.delete_folder(root).await.unwrap_err().code(), Code::InvalidArgument);
}

async fn deleting_an_environment_removes_its_secrets(backend: Backend) {
    let server = TestServer::start(backend).await;
    let project = server.project("envs").await;
    let mut secrets = server.admin_secrets().await;
    let mut projects = server.admin_projects().await;
    let env = projects
        .create_environment(pb::CreateEnvironmentRequest {
            project_id: project.clone(),
            slug: "qa".into(),
            name: "QA".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .environment
        .unwrap();
    assert_eq!(env.position, 3, "appended after dev, staging, prod");
    create_secret(&mut secrets, &project, "qa", "/", "A", "1").await;
    create_secret(&mut secrets, &project, "qa", "/deep/er", "B", "2").await;
    create_secret(&mut secrets, &project, "dev", "/", "A", "dev-value").await;
    // dev imports from qa: the import must go with qa.
    secrets
        .create_secret_import(pb::CreateSecretImportRequest {
            project_id: project.clone(),
            environment: "dev".into(),
            secret_path: "/".into(),
            import_environment: "qa".into(),
            import_path: "/deep/er".into(),
        })
        .await
        .unwrap();

    let delete = pb::DeleteEnvironmentRequest { project_id: project.clone(), environment: "qa".into() };
    let deleted = projects.delete_environment(delete.clone()).await.unwrap().into_inner();
    assert_eq!(deleted.deleted_secrets, 2);
    assert_eq!(projects.delete_environment(delete).await.unwrap_err().code(), Code::NotFound);
    let slugs: Vec<String> = projects
        .list_environments(pb::ListEnvironmentsRequest { project_id: project.clone() })
        .await
        .unwrap()
        .into_inner()
        .environments
        .into_iter()
        .map(|e| e.slug)
        .collect();
    assert_eq!(slugs, vec!["dev", "staging", "prod"]);
    assert_eq!(get_secret(&mut secrets, &project, "qa", "/", "A").await.unwrap_err().code(), Code::NotFound);
    assert_eq!(get_secret(&mut secrets, &project, "dev", "/", "A").await.unwrap().value, "dev-value");
    let with_imports = list_secrets(&mut secrets, &project, "dev", "/", true).await.unwrap();
    assert_eq!(with_imports.len(), 1, "the import from the deleted environment is gone");

    // Recreating the environment starts empty: nothing of the old one survives.
    projects
        .create_environment(pb::CreateEnvironmentRequest {
            project_id: project.clone(),
            slug: "qa".into(),
            name: String::new(),
        })
        .await
        .unwrap();
    assert!(list_secrets(&mut secrets, &project, "qa", "/", false).await.unwrap().is_empty());
}

async fn write_responses_never_carry_values(backend: Backend) {
    let server = TestServer::start(backend).await;
    let project = server.project("quiet").await;
    let mut secrets = server.admin_secrets().await;
    let created = create_secret(&mut secrets, &project, "dev", "/", "TOKEN", "do-not-echo").await;
    assert_eq!(created.value, "");
    let batch = secrets
        .batch_create_secrets(pb::BatchCreateSecretsRequest {
            project_id: project.clone(),
            environment: "dev".into(),
            secret_path: "/".into(),
            secrets: vec![input("X", "do-not-echo")],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(batch.secrets.iter().all(|s| s.value.is_empty()));
    // A failing write does not echo the value either.
    let err = secrets
        .create_secret(pb::CreateSecretRequest {
            project_id: project.clone(),
            environment: "dev".into(),
            secret_path: "/".into(),
            key: "TOKEN".into(),
            value: "do-not-echo".into(),
            comment: String::new(),
        })
        .await
        .unwrap_err();
    assert!(!err.message().contains("do-not-echo"));
}

/// Reads resolve project and environment from memory once seen (`secrets/scope_cache.rs`): deleting the
/// environment or the project must still show on the very next read, on the same token, and an environment
/// created again under the same slug is a new one, without the old secrets.
async fn reads_follow_deleted_and_recreated_scopes(backend: Backend) {
    let server = TestServer::start(backend).await;
    let project = server.project("scopes").await;
    let mut projects = server.admin_projects().await;
    let mut secrets = server.admin_secrets().await;
    let qa = pb::CreateEnvironmentRequest { project_id: project.clone(), slug: "qa".into(), name: String::new() };
    projects.create_environment(qa.clone()).await.expect("create qa");
    create_secret(&mut secrets, &project, "qa", "/", "TOKEN", "old").await;
    assert_eq!(get_secret(&mut secrets, &project, "qa", "/", "TOKEN").await.expect("read").value, "old");

    let delete = pb::DeleteEnvironmentRequest { project_id: project.clone(), environment: "qa".into() };
    projects.delete_environment(delete).await.expect("delete qa");
    let gone = get_secret(&mut secrets, &project, "qa", "/", "TOKEN").await.expect_err("qa is gone");
    assert_eq!(gone.code(), Code::NotFound);
    assert!(gone.message().contains("environment 'qa'"), "{}", gone.message());

    projects.create_environment(qa).await.expect("create qa again");
    let fresh = get_secret(&mut secrets, &project, "qa", "/", "TOKEN").await.expect_err("a new qa is empty");
    assert_eq!(fresh.code(), Code::NotFound);
    assert!(
        fresh.message().contains("TOKEN"),
        "the environment exists again, the secret does not: {}",
        fresh.message()
    );

    assert!(get_secret(&mut secrets, &project, "dev", "/", "NONE").await.is_err());
    projects.delete_project(pb::DeleteProjectRequest { project_id: project.clone() }).await.expect("delete project");
    let gone = get_secret(&mut secrets, &project, "dev", "/", "NONE").await.expect_err("the project is gone");
    assert_eq!(gone.code(), Code::NotFound);
    assert!(gone.message().contains(&format!("project '{project}'")), "{}", gone.message());
}

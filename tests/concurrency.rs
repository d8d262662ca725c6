//! Concurrent writers: through two instances on one PostgreSQL database (one instance on SQLite), updates of
//! the same secrets lose nothing and leave no gap in the versions, check-and-set lets exactly one of two racing
//! writers win, concurrent creates of one name answer ALREADY_EXISTS, and role edits, memberships and logins
//! with a single-use client secret stay consistent. No race is ever answered INTERNAL.

mod common;

use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, Instant},
};

use common::{
    Authed, Backend, TestServer, create_secret, get_secret, http1,
    members::{identity_admin, new_member, policy},
    stored::{audited, texts},
};
use hush::pb::{self, secrets_service_client::SecretsServiceClient};
use tokio::task::JoinSet;
use tonic::Code;

backend_tests!(
    concurrent_updates_of_four_secrets_lose_nothing,
    check_and_set_lets_exactly_one_of_two_racing_updates_win,
    check_and_set_on_every_write_refuses_a_stale_version,
    concurrent_creates_of_one_name_answer_already_exists,
    concurrent_role_edits_and_memberships_lose_nothing,
    a_single_use_client_secret_logs_in_once_under_a_race,
    creates_racing_a_folder_delete_leave_no_secret_without_its_folder,
    creates_racing_an_environment_delete_fail_cleanly,
    racing_upserts_of_new_keys_all_succeed,
);

/// Codes that would mean the server, not the race, failed.
const SERVER_FAULTS: [Code; 4] = [Code::Internal, Code::Unknown, Code::DataLoss, Code::Unavailable];

/// The server, plus a second instance on the same database on PostgreSQL (SQLite serves one instance).
async fn instances(backend: Backend) -> Vec<TestServer> {
    let first = TestServer::start(backend).await;
    match backend {
        Backend::Postgres => {
            let second = first.join(|_| {}).await;
            vec![first, second]
        }
        Backend::Sqlite => vec![first],
    }
}

/// One SecretsService client per instance, as the admin.
async fn clients(servers: &[TestServer], token: &str) -> Vec<SecretsServiceClient<Authed>> {
    let mut clients = Vec::new();
    for server in servers {
        clients.push(SecretsServiceClient::new(server.authed(token).await));
    }
    clients
}

fn update(project: &str, key: &str, value: &str, expected_version: Option<u32>) -> pb::UpdateSecretRequest {
    pb::UpdateSecretRequest {
        project_id: project.into(),
        environment: "dev".into(),
        secret_path: "/load".into(),
        key: key.into(),
        value: value.into(),
        comment: None,
        expected_version,
    }
}

/// Every version of a secret, oldest first, as (version, value).
async fn versions(client: &mut SecretsServiceClient<Authed>, project: &str, key: &str) -> Vec<(u32, String)> {
    let request = pb::ListSecretVersionsRequest {
        project_id: project.into(),
        environment: "dev".into(),
        secret_path: "/load".into(),
        key: key.into(),
    };
    let mut versions: Vec<(u32, String)> = client
        .list_secret_versions(request)
        .await
        .expect("list versions")
        .into_inner()
        .versions
        .into_iter()
        .map(|v| (v.version, v.value))
        .collect();
    versions.sort();
    versions
}

const CLIENTS: usize = 32;
const KEYS: usize = 4;
const LOAD: Duration = Duration::from_secs(10);

/// What one update answered.
struct Outcome {
    key: usize,
    value: String,
    answer: Result<u32, (Code, String)>,
}

async fn concurrent_updates_of_four_secrets_lose_nothing(backend: Backend) {
    let servers = instances(backend).await;
    let project = servers[0].project("load").await;
    let token = servers[0].admin_token().await;
    let mut admin = clients(&servers, &token).await.remove(0);
    let key = |k: usize| format!("K{k}");
    for k in 0..KEYS {
        create_secret(&mut admin, &project, "dev", "/load", &key(k), "initial").await;
    }

    let stop = Instant::now() + LOAD;
    let mut tasks = JoinSet::new();
    for client in 0..CLIENTS {
        let mut secrets = SecretsServiceClient::new(servers[client % servers.len()].authed(&token).await);
        let project = project.clone();
        tasks.spawn(async move {
            let mut outcomes = Vec::new();
            let mut n = 0;
            while Instant::now() < stop {
                let k = (client + n) % KEYS;
                let value = format!("client {client} update {n}");
                let answer = match secrets.update_secret(update(&project, &key(k), &value, None)).await {
                    Ok(response) => Ok(response.into_inner().secret.expect("secret").version),
                    Err(status) => Err((status.code(), status.message().to_owned())),
                };
                outcomes.push(Outcome { key: k, value, answer });
                n += 1;
            }
            outcomes
        });
    }
    let outcomes: Vec<Outcome> = tasks.join_all().await.into_iter().flatten().collect();

    let mut codes: BTreeMap<String, usize> = BTreeMap::new();
    for outcome in &outcomes {
        let code = outcome.answer.as_ref().map_or_else(|(code, _)| format!("{code:?}"), |_| "Ok".to_owned());
        *codes.entry(code).or_default() += 1;
    }
    let successes = codes.get("Ok").copied().unwrap_or(0);
    println!(
        "{backend:?}, {} instance(s): {} updates in {LOAD:?} ({:.0}/s) by {CLIENTS} clients on {KEYS} secrets: {codes:?}",
        servers.len(),
        outcomes.len(),
        outcomes.len() as f64 / LOAD.as_secs_f64(),
    );
    // An update of an existing secret has no reason to fail: not INTERNAL, and not a unique violation passed
    // off as ALREADY_EXISTS or a deadlock as ABORTED either.
    for outcome in &outcomes {
        if let Err((code, message)) = &outcome.answer {
            panic!("a concurrent update failed with {code:?}: {message}");
        }
    }
    assert!(successes >= 100, "too few updates went through to show anything: {codes:?}");

    let audit = audited(&servers[0].raw_db().await, "update-secret").await;
    for k in 0..KEYS {
        let won: Vec<&Outcome> = outcomes.iter().filter(|o| o.key == k && o.answer.is_ok()).collect();
        let current = get_secret(&mut admin, &project, "dev", "/load", &key(k)).await.expect("get");
        assert_eq!(current.version as usize, 1 + won.len(), "{}: final version is 1 + successful updates", key(k));
        let history = versions(&mut admin, &project, &key(k)).await;
        let numbers: Vec<u32> = history.iter().map(|(v, _)| *v).collect();
        assert_eq!(numbers, (1..=current.version).collect::<Vec<_>>(), "{}: versions without gap", key(k));
        let stored: HashMap<u32, &str> = history.iter().map(|(v, value)| (*v, value.as_str())).collect();
        for outcome in won {
            let version = *outcome.answer.as_ref().unwrap();
            assert_eq!(stored.get(&version), Some(&outcome.value.as_str()), "{} version {version}", key(k));
        }
        let mut entries: Vec<u32> = audit.iter().filter(|(name, _)| *name == key(k)).map(|(_, v)| *v).collect();
        entries.sort();
        assert_eq!(entries, (2..=current.version).collect::<Vec<_>>(), "{}: one audit entry per version", key(k));
    }
}

async fn check_and_set_lets_exactly_one_of_two_racing_updates_win(backend: Backend) {
    let servers = instances(backend).await;
    let project = servers[0].project("cas").await;
    let token = servers[0].admin_token().await;
    let mut first = clients(&servers, &token).await;
    // Two clients on two connections (and two instances on PostgreSQL).
    let mut second = SecretsServiceClient::new(servers[servers.len() - 1].authed(&token).await);
    let mut one = first.remove(0);
    create_secret(&mut one, &project, "dev", "/load", "RACED", "initial").await;
    const ROUNDS: u32 = 50;
    for round in 0..ROUNDS {
        let current = get_secret(&mut one, &project, "dev", "/load", "RACED").await.expect("get").version;
        let (a, b) = tokio::join!(
            one.update_secret(update(&project, "RACED", &format!("a{round}"), Some(current))),
            second.update_secret(update(&project, "RACED", &format!("b{round}"), Some(current))),
        );
        let (won, lost) = match (a, b) {
            (Ok(won), Err(lost)) | (Err(lost), Ok(won)) => (won.into_inner().secret.unwrap(), lost),
            (a, b) => panic!("round {round}: exactly one of two racing updates must win, got {a:?} and {b:?}"),
        };
        assert_eq!(won.version, current + 1);
        assert_eq!(lost.code(), Code::Aborted, "round {round}: {lost:?}");
        let names = format!("is at version {}, not the expected version {current}", current + 1);
        assert!(lost.message().contains(&names), "round {round}: {:?} should say {names:?}", lost.message());
    }
    let history = versions(&mut one, &project, "RACED").await;
    assert_eq!(history.len() as u32, ROUNDS + 1, "one version per round");
}

async fn check_and_set_on_every_write_refuses_a_stale_version(backend: Backend) {
    let server = TestServer::start(backend).await;
    let project = server.project("cas-writes").await;
    let token = server.admin_token().await;
    let mut secrets = SecretsServiceClient::new(server.authed(&token).await);
    for key in ["A", "B", "C"] {
        create_secret(&mut secrets, &project, "dev", "/load", key, "v1").await;
    }
    let at = |version| format!("is at version {version}, not the expected version");

    // Single writes: a stale version writes nothing, the current one goes through.
    let stale = secrets.update_secret(update(&project, "A", "v2", Some(2))).await.unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);
    assert!(stale.message().contains("secret 'A' at dev:/load") && stale.message().contains(&at(1)), "{stale:?}");
    let updated = secrets.update_secret(update(&project, "A", "v2", Some(1))).await.unwrap().into_inner();
    assert_eq!(updated.secret.unwrap().version, 2);
    let rollback = |expected_version| pb::RollbackSecretRequest {
        project_id: project.clone(),
        environment: "dev".into(),
        secret_path: "/load".into(),
        key: "A".into(),
        version: 1,
        expected_version,
    };
    let stale = secrets.rollback_secret(rollback(Some(1))).await.unwrap_err();
    assert_eq!(stale.code(), Code::Aborted, "{stale:?}");
    assert_eq!(secrets.rollback_secret(rollback(Some(2))).await.unwrap().into_inner().secret.unwrap().version, 3);
    let delete = |key: &str, expected_version| pb::DeleteSecretRequest {
        project_id: project.clone(),
        environment: "dev".into(),
        secret_path: "/load".into(),
        key: key.into(),
        expected_version,
    };
    let stale = secrets.delete_secret(delete("A", Some(2))).await.unwrap_err();
    assert_eq!(stale.code(), Code::Aborted, "{stale:?}");
    assert!(stale.message().contains(&at(3)), "{stale:?}");
    assert_eq!(get_secret(&mut secrets, &project, "dev", "/load", "A").await.unwrap().version, 3, "not deleted");
    let zero = secrets.update_secret(update(&project, "A", "v", Some(0))).await.unwrap_err();
    assert_eq!(zero.code(), Code::InvalidArgument);
    assert!(zero.message().starts_with("expected_version:"), "{zero:?}");

    // Batches: one stale item fails the whole batch, naming the item; nothing is written.
    let items = |keys: &[&str]| {
        keys.iter()
            .map(|k| pb::SecretInput { key: k.to_string(), value: "batch".into(), comment: String::new() })
            .collect()
    };
    let batch_update = |expected: &[(&str, u32)]| pb::BatchUpdateSecretsRequest {
        project_id: project.clone(),
        environment: "dev".into(),
        secret_path: "/load".into(),
        secrets: items(&["B", "C"]),
        expected_versions: expected.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        allow_missing: false,
    };
    let stale = secrets.batch_update_secrets(batch_update(&[("B", 1), ("C", 7)])).await.unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);
    assert!(stale.message().starts_with("secrets[1]: secret 'C' at dev:/load") && stale.message().contains(&at(1)));
    for key in ["B", "C"] {
        assert_eq!(
            get_secret(&mut secrets, &project, "dev", "/load", key).await.unwrap().version,
            1,
            "{key} untouched"
        );
    }
    let outside = secrets.batch_update_secrets(batch_update(&[("A", 3)])).await.unwrap_err();
    assert_eq!(outside.code(), Code::InvalidArgument);
    assert!(outside.message().starts_with("expected_versions[\"A\"]:"), "{outside:?}");
    let written = secrets.batch_update_secrets(batch_update(&[("B", 1), ("C", 1)])).await.unwrap().into_inner();
    assert!(written.secrets.iter().all(|s| s.version == 2));
    let batch_delete = |expected: &[(&str, u32)]| pb::BatchDeleteSecretsRequest {
        project_id: project.clone(),
        environment: "dev".into(),
        secret_path: "/load".into(),
        keys: vec!["B".into(), "C".into()],
        expected_versions: expected.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
    };
    let stale = secrets.batch_delete_secrets(batch_delete(&[("B", 1)])).await.unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);
    assert!(stale.message().starts_with("keys[0]: secret 'B'"), "{stale:?}");
    assert!(get_secret(&mut secrets, &project, "dev", "/load", "C").await.is_ok(), "nothing deleted");

    // JSON: the same refusal is 409 with the code name.
    let body = format!(
        r#"{{"projectId": "{project}", "environment": "dev", "secretPath": "/load", "key": "A", "value": "x", "expectedVersion": 1}}"#
    );
    let headers = [("content-type", "application/json"), ("authorization", &format!("Bearer {token}") as &str)];
    let (status, text) =
        http1::exchange(server.addr, "POST", "/hush.v1.SecretsService/UpdateSecret", &headers, &body).await;
    assert_eq!(status, http::StatusCode::CONFLICT, "{text}");
    assert!(text.contains("\"aborted\"") && text.contains(&at(3)), "{text}");
}

/// The admin's authenticated channel to each instance.
async fn admin_channels(servers: &[TestServer]) -> Vec<Authed> {
    let token = servers[0].admin_token().await;
    let mut channels = Vec::new();
    for server in servers {
        channels.push(server.authed(&token).await);
    }
    channels
}

/// Sends `racers` calls at once, call `i` through instance `i % n`, and counts the answers by code.
async fn race<F, Fut, T>(channels: &[Authed], racers: usize, mut call: F) -> BTreeMap<String, usize>
where
    F: FnMut(usize, Authed) -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>> + Send + 'static,
    T: Send + 'static,
{
    let mut tasks = JoinSet::new();
    for i in 0..racers {
        tasks.spawn(call(i, channels[i % channels.len()].clone()));
    }
    let mut codes = BTreeMap::new();
    for answer in tasks.join_all().await {
        let code = match answer {
            Ok(_) => "Ok".to_owned(),
            Err(status) => {
                assert!(!SERVER_FAULTS.contains(&status.code()), "a racing call failed: {status:?}");
                format!("{:?}", status.code())
            }
        };
        *codes.entry(code).or_default() += 1;
    }
    codes
}

fn one_winner(racers: usize) -> BTreeMap<String, usize> {
    BTreeMap::from([("AlreadyExists".to_owned(), racers - 1), ("Ok".to_owned(), 1)])
}

fn all_win(racers: usize) -> BTreeMap<String, usize> {
    BTreeMap::from([("Ok".to_owned(), racers)])
}

const RACERS: usize = 8;
/// Racing creates of one key whose answers are read: enough that losers share a write group with the winner.
const NAMED_RACERS: usize = 30;

fn create(project: &str, path: &str, key: &str) -> pb::CreateSecretRequest {
    pb::CreateSecretRequest {
        project_id: project.into(),
        environment: "dev".into(),
        secret_path: path.into(),
        key: key.into(),
        value: "v".into(),
        comment: String::new(),
    }
}

async fn concurrent_creates_of_one_name_answer_already_exists(backend: Backend) {
    let servers = instances(backend).await;
    let project = servers[0].project("creates").await;
    let channels = admin_channels(&servers).await;
    let secrets = |channel| SecretsServiceClient::new(channel);
    let identities = |channel| hush::pb::identity_service_client::IdentityServiceClient::new(channel);

    let codes = race(&channels, RACERS, |_, channel| {
        let request = create(&project, "/new/deep", "SAME");
        async move { secrets(channel).create_secret(request).await }
    });
    assert_eq!(codes.await, one_winner(RACERS), "same secret");
    // Every loser is told which key was taken, also when the winner is not committed yet (on SQLite: an earlier
    // write of the same write group).
    let mut tasks = JoinSet::new();
    for i in 0..NAMED_RACERS {
        let mut client = secrets(channels[i % channels.len()].clone());
        let request = create(&project, "/named", "NAMED");
        tasks.spawn(async move { client.create_secret(request).await });
    }
    for answer in tasks.join_all().await {
        if let Err(status) = answer {
            assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
            assert!(status.message().contains("'NAMED'"), "the loser is told the key: {}", status.message());
        }
    }
    // Different keys in one new folder: every create wins (the folders they make are not a conflict).
    let codes = race(&channels, RACERS, |i, channel| {
        let request = create(&project, "/fresh/folder", &format!("KEY{i}"));
        async move { secrets(channel).create_secret(request).await }
    });
    assert_eq!(codes.await, all_win(RACERS), "different secrets, one new folder");
    let codes = race(&channels, RACERS, |_, channel| {
        let request = pb::CreateFolderRequest {
            project_id: project.clone(),
            environment: "dev".into(),
            path: "/made/once".into(),
        };
        async move { secrets(channel).create_folder(request).await }
    });
    assert_eq!(codes.await, one_winner(RACERS), "same folder");
    let codes = race(&channels, RACERS, |_, channel| {
        let request =
            pb::CreateEnvironmentRequest { project_id: project.clone(), slug: "qa".into(), name: String::new() };
        async move {
            hush::pb::projects_service_client::ProjectsServiceClient::new(channel).create_environment(request).await
        }
    });
    assert_eq!(codes.await, one_winner(RACERS), "same environment");
    let codes = race(&channels, RACERS, |_, channel| {
        let request = pb::CreateIdentityRequest { name: "twin".into(), org_role: String::new() };
        async move { identities(channel).create_identity(request).await }
    });
    assert_eq!(codes.await, one_winner(RACERS), "same identity name");
    let codes = race(&channels, RACERS, |_, channel| {
        let policies = vec![policy("secrets", &["read"], &[], "", false)];
        let request = pb::CreateRoleRequest { name: "twin-role".into(), description: String::new(), policies };
        async move { identities(channel).create_role(request).await }
    });
    assert_eq!(codes.await, one_winner(RACERS), "same role name");
    let codes = race(&channels, RACERS, |_, channel| {
        let request = pb::CreateProjectRequest { name: "twin-project".into() };
        async move { hush::pb::projects_service_client::ProjectsServiceClient::new(channel).create_project(request).await }
    });
    assert_eq!(codes.await, one_winner(RACERS), "same project name");
    // The same import of one folder into another: exactly one is made.
    let codes = race(&channels, RACERS, |_, channel| {
        let request = pb::CreateSecretImportRequest {
            project_id: project.clone(),
            environment: "dev".into(),
            secret_path: "/fresh/folder".into(),
            import_environment: "dev".into(),
            import_path: "/made/once".into(),
        };
        async move { secrets(channel).create_secret_import(request).await }
    });
    assert_eq!(codes.await, one_winner(RACERS), "same import");
}

async fn concurrent_role_edits_and_memberships_lose_nothing(backend: Backend) {
    let servers = instances(backend).await;
    let project = servers[0].project("members").await;
    let channels = admin_channels(&servers).await;
    let identities = |channel| hush::pb::identity_service_client::IdentityServiceClient::new(channel);
    let readers = common::members::create_role(
        &servers[0],
        "readers",
        vec![policy("secrets", &["read"], &[], "", false), policy("projects", &["read"], &[], "", false)],
    )
    .await;
    let mut members = Vec::new();
    for i in 0..RACERS {
        members.push(new_member(&servers[0], &format!("member-{i}"), "").await.id);
    }
    let assign = |member: &str, role: &str| pb::SetProjectRoleRequest {
        project_id: project.clone(),
        identity_id: member.into(),
        role_id: role.into(),
    };

    // Different identities into one project at once: every membership is there afterwards.
    let codes = race(&channels, RACERS, |i, channel| {
        let request = assign(&members[i], &readers);
        async move { identities(channel).set_project_role(request).await }
    });
    assert_eq!(codes.await, all_win(RACERS));
    let sql = format!("SELECT identity_id FROM project_memberships WHERE project_id = '{project}'");
    let mut held = texts(&servers[0].raw_db().await, &sql).await;
    held.sort();
    let mut expected = members.clone();
    expected.sort();
    assert_eq!(held, expected, "one membership per identity");

    // One identity given different roles at once: each call wins in turn, one membership remains.
    let codes = race(&channels, RACERS, |i, channel| {
        let request = assign(&members[0], if i % 2 == 0 { "viewer" } else { &readers });
        async move { identities(channel).set_project_role(request).await }
    });
    assert_eq!(codes.await, all_win(RACERS));
    let sql = format!(
        "SELECT role_id FROM project_memberships WHERE project_id = '{project}' AND identity_id = '{}'",
        members[0]
    );
    assert_eq!(texts(&servers[0].raw_db().await, &sql).await.len(), 1, "one membership for the identity");

    // Edits of one role at once: all go through, one after the other; the role ends as one of them wrote it,
    // and every edit is audited.
    let codes = race(&channels, RACERS, |i, channel| {
        let request = pb::UpdateRoleRequest {
            role_id: readers.clone(),
            name: format!("readers-{i}"),
            description: format!("edit {i}"),
            policies: vec![policy("secrets", &["read"], &[&format!("env-{i}")], "", false)],
        };
        async move { identities(channel).update_role(request).await }
    });
    assert_eq!(codes.await, all_win(RACERS));
    let roles = identities(channels[0].clone()).list_roles(pb::ListRolesRequest::default()).await.unwrap();
    let roles = roles.into_inner().roles;
    let role = roles.iter().find(|r| r.id == readers).expect("the role");
    let i: usize = role.name.trim_start_matches("readers-").parse().expect("a name one edit wrote");
    assert_eq!(role.description, format!("edit {i}"), "name and description come from the same edit");
    let conditions = role.policies[0].conditions.as_ref().unwrap();
    assert_eq!(conditions.environments, vec![format!("env-{i}")], "policies come from the same edit");
    let sql = "SELECT event_type FROM audit_logs WHERE event_type = 'update-role'";
    assert_eq!(texts(&servers[0].raw_db().await, sql).await.len(), RACERS, "every edit audited");
}

async fn a_single_use_client_secret_logs_in_once_under_a_race(backend: Backend) {
    let servers = instances(backend).await;
    let channels = admin_channels(&servers).await;
    let member = new_member(&servers[0], "once", "").await;
    let mut admin = identity_admin(&servers[0]).await;
    let secret = admin
        .create_client_secret(pb::CreateClientSecretRequest {
            identity_id: member.id.clone(),
            description: "single use".into(),
            ttl: None,
            max_uses: 1,
        })
        .await
        .unwrap()
        .into_inner();
    let codes = race(&channels, RACERS, |_, channel| {
        let request =
            pb::LoginRequest { client_id: secret.client_id.clone(), client_secret: secret.client_secret.clone() };
        async move { hush::pb::identity_service_client::IdentityServiceClient::new(channel).login(request).await }
    });
    assert_eq!(codes.await, BTreeMap::from([("Ok".to_owned(), 1), ("Unauthenticated".to_owned(), RACERS - 1)]));
}

async fn creates_racing_a_folder_delete_leave_no_secret_without_its_folder(backend: Backend) {
    let servers = instances(backend).await;
    let project = servers[0].project("subtree").await;
    let channels = admin_channels(&servers).await;
    const ROUNDS: usize = 10;
    for round in 0..ROUNDS {
        // RACERS creates below /tree and one delete of /tree, at once.
        let codes = race(&channels, RACERS + 1, |i, channel| {
            let request = create(&project, &format!("/tree/{}", i % 3), &format!("R{round}N{i}"));
            let delete = pb::DeleteFolderRequest {
                project_id: project.clone(),
                environment: "dev".into(),
                path: "/tree".into(),
            };
            async move {
                let mut client = SecretsServiceClient::new(channel);
                if i < RACERS {
                    return client.create_secret(request).await.map(|_| ());
                }
                match client.delete_folder(delete).await {
                    Err(status) if status.code() == Code::NotFound => Ok(()),
                    other => other.map(|_| ()),
                }
            }
        });
        assert_eq!(codes.await, all_win(RACERS + 1), "round {round}");
    }
    // Every secret's folder exists: a create either came first (and went with the folder) or came after the
    // delete (and made the folder again).
    let orphans = texts(
        &servers[0].raw_db().await,
        "SELECT s.key FROM secrets s WHERE s.path <> '/' AND NOT EXISTS \
         (SELECT 1 FROM folders f WHERE f.environment_id = s.environment_id AND f.path = s.path)",
    )
    .await;
    assert!(orphans.is_empty(), "secrets without their folder: {orphans:?}");
    let parents = texts(
        &servers[0].raw_db().await,
        "SELECT f.path FROM folders f WHERE f.path LIKE '/tree/%' AND NOT EXISTS \
         (SELECT 1 FROM folders p WHERE p.environment_id = f.environment_id AND p.path = '/tree')",
    )
    .await;
    assert!(parents.is_empty(), "folders without their parent: {parents:?}");
}

/// Creates racing the deletion of their environment: each one either came first (and went with the
/// environment) or came after it (NOT_FOUND, also when the deletion came first inside one SQLite write group,
/// where the row's foreign key refuses it); none is a server fault or a call to retry, and none outlives the
/// environment it was written to.
async fn creates_racing_an_environment_delete_fail_cleanly(backend: Backend) {
    let servers = instances(backend).await;
    let project = servers[0].project("doomed").await;
    let channels = admin_channels(&servers).await;
    let projects = |channel| hush::pb::projects_service_client::ProjectsServiceClient::new(channel);
    const ROUNDS: usize = 10;
    let mut seen = BTreeMap::<String, usize>::new();
    for round in 0..ROUNDS {
        let env =
            pb::CreateEnvironmentRequest { project_id: project.clone(), slug: "doomed".into(), name: String::new() };
        projects(channels[0].clone()).create_environment(env).await.expect("create the environment");
        // Every create's scope is in memory before the race, as it is for a client writing steadily.
        let mut warm = create(&project, "/", &format!("WARM{round}"));
        warm.environment = "doomed".into();
        SecretsServiceClient::new(channels[0].clone()).create_secret(warm).await.expect("warm-up create");
        let codes = race(&channels, RACERS + 1, |i, channel| {
            let mut request = create(&project, &format!("/r{}", i % 3), &format!("R{round}N{i}"));
            request.environment = "doomed".into();
            let delete = pb::DeleteEnvironmentRequest { project_id: project.clone(), environment: "doomed".into() };
            async move {
                if i < RACERS {
                    return SecretsServiceClient::new(channel).create_secret(request).await.map(|_| ());
                }
                projects(channel).delete_environment(delete).await.map(|_| ())
            }
        });
        for (code, count) in codes.await {
            assert!(["Ok", "NotFound"].contains(&code.as_str()), "round {round}: {code}");
            *seen.entry(code).or_default() += count;
        }
    }
    let orphans = texts(
        &servers[0].raw_db().await,
        "SELECT s.key FROM secrets s WHERE NOT EXISTS (SELECT 1 FROM environments e WHERE e.id = s.environment_id)",
    )
    .await;
    assert!(orphans.is_empty(), "secrets without their environment: {orphans:?}");
    eprintln!("answers over {ROUNDS} rounds: {seen:?}");
}

/// Upserts (`allow_missing`) of the same new keys, racing through both instances on PostgreSQL: one creates the
/// keys, every other one updates them (they answered ALREADY_EXISTS once the winner committed), and each key
/// ends with one version per racer.
async fn racing_upserts_of_new_keys_all_succeed(backend: Backend) {
    const RACERS: usize = 16;
    let servers = instances(backend).await;
    let project = servers[0].project("upserts").await;
    let channels = admin_channels(&servers).await;
    let keys = ["B0", "B1", "B2"];
    let answers = race(&channels, RACERS, |i, channel| {
        let request = pb::BatchUpdateSecretsRequest {
            project_id: project.clone(),
            environment: "dev".into(),
            secret_path: "/load".into(),
            secrets: keys
                .iter()
                .map(|k| pb::SecretInput { key: k.to_string(), value: format!("v{i}"), comment: String::new() })
                .collect(),
            expected_versions: HashMap::new(),
            allow_missing: true,
        };
        async move { SecretsServiceClient::new(channel).batch_update_secrets(request).await }
    })
    .await;
    assert_eq!(answers, all_win(RACERS));
    let mut client = SecretsServiceClient::new(channels[0].clone());
    for key in keys {
        let numbers: Vec<u32> = versions(&mut client, &project, key).await.into_iter().map(|(n, _)| n).collect();
        assert_eq!(numbers, (1..=RACERS as u32).collect::<Vec<_>>(), "{key}: one version per racer, no gap");
    }
}

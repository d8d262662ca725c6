//! Crash safety with real processes: `hush serve` is killed with SIGKILL in the middle of a burst of
//! concurrent writes (or reads), then started again on the same data. Every write the server acknowledged must be
//! there: readable with its value, its event replayable from the outbox, its audit entry stored; every read it
//! answered must have its audit entry.

mod common;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use common::{Backend, authed, events::next_event, export_entries, login, serve_binary::ServeProcess};
use hush::pb::{self, events_service_client::EventsServiceClient, secrets_service_client::SecretsServiceClient};

backend_tests!(acknowledged_writes_survive_kill_9, answered_reads_stay_audited_after_kill_9);

/// Concurrent writers in the burst.
const WRITERS: usize = 16;

/// What the server acknowledged before it was killed.
#[derive(Default)]
struct Acknowledged {
    /// Created secrets: key → value.
    created: BTreeMap<String, String>,
    /// Per writer's own secret: the highest acknowledged version and its value.
    updated: BTreeMap<String, (u32, String)>,
}

async fn admin(server: &ServeProcess) -> (String, common::Authed) {
    let bootstrap = server.bootstrap();
    let token = login(&server.url(), &bootstrap.client_id, &bootstrap.client_secret).await.expect("login");
    let channel = authed(&server.url(), &token.access_token).await;
    (token.access_token, channel)
}

fn create(project: &str, key: &str, value: &str) -> pb::CreateSecretRequest {
    pb::CreateSecretRequest {
        project_id: project.into(),
        environment: "dev".into(),
        secret_path: "/".into(),
        key: key.into(),
        value: value.into(),
        comment: String::new(),
    }
}

/// One writer: alternately creates a new secret and updates its own, recording what was acknowledged, until
/// the server goes away.
async fn write_until_killed(channel: common::Authed, project: String, writer: usize, acked: Arc<Mutex<Acknowledged>>) {
    let mut secrets = SecretsServiceClient::new(channel);
    let own = format!("OWN_{writer}");
    for i in 0.. {
        let key = format!("NEW_{writer}_{i}");
        let value = format!("created-{writer}-{i}");
        if secrets.create_secret(create(&project, &key, &value)).await.is_err() {
            return;
        }
        acked.lock().unwrap().created.insert(key, value);
        let value = format!("updated-{writer}-{i}");
        let request = pb::UpdateSecretRequest {
            project_id: project.clone(),
            environment: "dev".into(),
            secret_path: "/".into(),
            key: own.clone(),
            value: value.clone(),
            ..Default::default()
        };
        let Ok(response) = secrets.update_secret(request).await else { return };
        let version = response.into_inner().secret.expect("secret").version;
        acked.lock().unwrap().updated.insert(own.clone(), (version, value));
    }
}

/// The audit entries of `event_types` in `project`, as `secretKey` and `secretVersion` of their metadata.
async fn audited_secrets(
    server: &ServeProcess,
    token: &str,
    project: &str,
    event_types: &[&str],
) -> Vec<(String, String)> {
    let filter = pb::AuditLogFilter {
        event_types: event_types.iter().map(|t| t.to_string()).collect(),
        project_id: project.into(),
        ..Default::default()
    };
    export_entries(authed(&server.url(), token).await, filter)
        .await
        .into_iter()
        .map(|entry| {
            let fields = entry.event_metadata.expect("metadata").fields;
            let text = |name: &str| match fields.get(name).and_then(|v| v.kind.clone()) {
                Some(prost_types::value::Kind::StringValue(s)) => s,
                Some(prost_types::value::Kind::NumberValue(n)) => n.to_string(),
                other => panic!("{name} in the audit metadata: {other:?}"),
            };
            (text("secretKey"), text("secretVersion"))
        })
        .collect()
}

async fn acknowledged_writes_survive_kill_9(backend: Backend) {
    let server = ServeProcess::start(backend).await;
    let (_, channel) = admin(&server).await;
    let project = common::create_project(channel.clone(), "crash").await;
    let mut secrets = SecretsServiceClient::new(channel.clone());
    for writer in 0..WRITERS {
        secrets.create_secret(create(&project, &format!("OWN_{writer}"), "initial")).await.expect("own secret");
    }
    // The cursor of an event written before the burst: replay after the crash starts right after it.
    let mut events = EventsServiceClient::new(channel.clone());
    let request = pb::SubscribeRequest { project_id: project.clone(), registrations: vec![], resume_after: None };
    let mut live = events.subscribe(request).await.expect("subscribe").into_inner();
    secrets.create_secret(create(&project, "MARKER", "before the burst")).await.expect("marker");
    let start = next_event(&mut live).await.cursor;
    drop(live);

    let acked = Arc::new(Mutex::new(Acknowledged::default()));
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| tokio::spawn(write_until_killed(channel.clone(), project.clone(), writer, acked.clone())))
        .collect();
    // Kill once the burst is well under way, at a point that varies from run to run.
    let kill_after = 40 + rand::random::<usize>() % 60;
    while acked.lock().unwrap().created.len() < kill_after {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let server = server.crash_and_restart().await;
    for writer in writers {
        tokio::time::timeout(Duration::from_secs(30), writer).await.expect("writers stop once killed").unwrap();
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert!(acked.created.len() >= kill_after, "the burst was acknowledged before the kill");

    let (token, channel) = admin(&server).await;
    let mut secrets = SecretsServiceClient::new(channel.clone());
    for (key, value) in &acked.created {
        let stored = common::get_secret(&mut secrets, &project, "dev", "/", key).await;
        let stored = stored.unwrap_or_else(|status| panic!("acknowledged create of {key} lost: {status}"));
        assert_eq!(&stored.value, value, "value of {key}");
    }
    for (key, (version, value)) in &acked.updated {
        let request = pb::GetSecretRequest {
            project_id: project.clone(),
            environment: "dev".into(),
            secret_path: "/".into(),
            key: key.clone(),
            version: *version,
            ..Default::default()
        };
        let stored = secrets.get_secret(request).await.map(|r| r.into_inner().secret.expect("secret").value);
        let stored = stored.unwrap_or_else(|status| panic!("acknowledged version {version} of {key} lost: {status}"));
        assert_eq!(&stored, value, "value of {key} version {version}");
    }

    // Every acknowledged write's event replays from the outbox, after the marker's cursor.
    let mut wanted: BTreeSet<_> = acked.created.keys().chain(acked.updated.keys()).cloned().collect();
    let mut events = EventsServiceClient::new(channel.clone());
    let request =
        pb::SubscribeRequest { project_id: project.clone(), registrations: vec![], resume_after: Some(start) };
    let mut replay = events.subscribe(request).await.expect("resume").into_inner();
    while !wanted.is_empty() {
        let event = next_event(&mut replay).await;
        for secret in &event.secrets {
            assert_eq!((secret.environment.as_str(), secret.secret_path.as_str()), ("dev", "/"));
            wanted.remove(&secret.secret_key);
        }
    }

    // And every acknowledged write has its audit entry.
    let audited: BTreeSet<(String, String)> =
        audited_secrets(&server, &token, &project, &["create-secret", "update-secret"]).await.into_iter().collect();
    for key in acked.created.keys() {
        assert!(audited.contains(&(key.clone(), "1".into())), "audit entry of the create of {key}");
    }
    for (key, (version, _)) in &acked.updated {
        assert!(audited.contains(&(key.clone(), version.to_string())), "audit entry of {key} version {version}");
    }
    server.stop().await;
}

/// One reader: reads its own secret until the server goes away, counting the answers.
async fn read_until_killed(
    channel: common::Authed,
    project: String,
    key: String,
    answered: Arc<Mutex<BTreeMap<String, usize>>>,
) {
    let mut secrets = SecretsServiceClient::new(channel);
    while common::get_secret(&mut secrets, &project, "dev", "/", &key).await.is_ok() {
        *answered.lock().unwrap().entry(key.clone()).or_default() += 1;
    }
}

/// Reads' audit entries are committed in groups; a read is answered only once its group is durable, so a
/// kill in the middle of a read burst loses no entry of a read that was answered.
async fn answered_reads_stay_audited_after_kill_9(backend: Backend) {
    let server = ServeProcess::start(backend).await;
    let (_, channel) = admin(&server).await;
    let project = common::create_project(channel.clone(), "crash").await;
    let mut secrets = SecretsServiceClient::new(channel.clone());
    let keys: Vec<String> = (0..WRITERS).map(|reader| format!("READ_{reader}")).collect();
    for key in &keys {
        secrets.create_secret(create(&project, key, "read me")).await.expect("secret to read");
    }
    let answered = Arc::new(Mutex::new(BTreeMap::new()));
    let readers: Vec<_> = keys
        .iter()
        .map(|key| tokio::spawn(read_until_killed(channel.clone(), project.clone(), key.clone(), answered.clone())))
        .collect();
    let kill_after = 200 + rand::random::<usize>() % 300;
    while answered.lock().unwrap().values().sum::<usize>() < kill_after {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let server = server.crash_and_restart().await;
    for reader in readers {
        tokio::time::timeout(Duration::from_secs(30), reader).await.expect("readers stop once killed").unwrap();
    }
    let answered = std::mem::take(&mut *answered.lock().unwrap());

    let (token, _) = admin(&server).await;
    let mut audited: BTreeMap<String, usize> = BTreeMap::new();
    for (key, _) in audited_secrets(&server, &token, &project, &["get-secret"]).await {
        *audited.entry(key).or_default() += 1;
    }
    for (key, reads) in &answered {
        // More entries than answers is fine (a read audited, then killed before its answer left).
        let entries = audited.get(key).copied().unwrap_or(0);
        assert!(entries >= *reads, "{key}: {reads} reads answered before the kill, {entries} audited");
    }
    server.stop().await;
}

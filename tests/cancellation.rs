//! Write requests cancelled at random points (the client drops the call, or closes its connection) against a
//! real `hush serve` process: afterwards no database connection is left inside a transaction, every write is
//! either whole (the change, its versions, its event and its audit entry) or absent, every acknowledged one is
//! there, and the server log has no "transaction in progress" warning from a connection reused mid-transaction.

mod common;

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use common::{
    Authed, Backend,
    serve_binary::ServeProcess,
    stored::{audited, evented, texts},
};
use hush::pb::{self, secrets_service_client::SecretsServiceClient};
use rand::{Rng, SeedableRng, rngs::StdRng};
use sea_orm::Database;
use tokio::task::JoinSet;

backend_tests!(cancelled_writes_leave_no_transaction_open_and_nothing_half_written);

/// Requests sent and cancelled.
const REQUESTS: usize = 1000;
/// Requests in flight at once.
const WORKERS: usize = 16;
/// Secrets the updates go to.
const UPDATED: usize = 20;

/// What a request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Create,
    Update,
    Delete,
}

fn kind(i: usize) -> Kind {
    match i % 5 {
        0 | 1 => Kind::Create,
        2 | 3 => Kind::Update,
        _ => Kind::Delete,
    }
}

fn key(i: usize) -> String {
    match kind(i) {
        Kind::Create => format!("C{i}"),
        Kind::Update => format!("U{}", (i / 5) % UPDATED),
        Kind::Delete => format!("D{i}"),
    }
}

fn value(i: usize) -> String {
    format!("value of request {i}")
}

async fn connect(url: &str, token: &str) -> SecretsServiceClient<Authed> {
    SecretsServiceClient::new(common::authed(url, token).await)
}

/// Sends request `i` and gives it `delay`; true when it was answered OK in time, false when it was cancelled
/// (or refused).
async fn send(mut client: SecretsServiceClient<Authed>, project: &str, i: usize, delay: Duration) -> bool {
    let (project_id, environment, secret_path) = (project.to_owned(), "dev".to_owned(), "/c".to_owned());
    let call = async {
        match kind(i) {
            Kind::Create => {
                let request = pb::CreateSecretRequest {
                    project_id,
                    environment,
                    secret_path,
                    key: key(i),
                    value: value(i),
                    comment: String::new(),
                };
                client.create_secret(request).await.map(|_| ())
            }
            Kind::Update => {
                let request = pb::UpdateSecretRequest {
                    project_id,
                    environment,
                    secret_path,
                    key: key(i),
                    value: value(i),
                    comment: None,
                    expected_version: None,
                };
                client.update_secret(request).await.map(|_| ())
            }
            Kind::Delete => {
                let request = pb::DeleteSecretRequest {
                    project_id,
                    environment,
                    secret_path,
                    key: key(i),
                    expected_version: None,
                };
                client.delete_secret(request).await.map(|_| ())
            }
        }
    };
    match tokio::time::timeout(delay, call).await {
        Ok(Ok(())) => true,
        Ok(Err(status)) => {
            // A transport error is the client's side of a connection the server closed (HTTP/2 servers close
            // connections that reset too many streams): the request is unacknowledged, not failed.
            let server_fault = matches!(status.code(), tonic::Code::Internal | tonic::Code::DataLoss)
                || (status.code() == tonic::Code::Unknown && std::error::Error::source(&status).is_none());
            assert!(!server_fault, "request {i} failed: {status:?}");
            false
        }
        Err(_) => false,
    }
}

async fn cancelled_writes_leave_no_transaction_open_and_nothing_half_written(backend: Backend) {
    let server = ServeProcess::start(backend).await;
    let bootstrap = server.bootstrap();
    let login = common::login(&server.url(), &bootstrap.client_id, &bootstrap.client_secret).await;
    let token = login.unwrap().access_token;
    let shared = connect(&server.url(), &token).await;
    let project = common::create_project(common::authed(&server.url(), &token).await, "cancelled").await;
    // What the updates and deletes work on.
    let mut setup = shared.clone();
    let deleted = (0..REQUESTS).filter(|i| kind(*i) == Kind::Delete).map(key);
    for name in deleted.chain((0..UPDATED).map(|u| format!("U{u}"))) {
        let request = pb::CreateSecretRequest {
            project_id: project.clone(),
            environment: "dev".into(),
            secret_path: "/c".into(),
            key: name,
            value: "initial".into(),
            comment: String::new(),
        };
        setup.create_secret(request).await.expect("setup");
    }

    // How long a write takes here with WORKERS at once (writes to one environment queue for its lock, and
    // debug builds on busy machines vary a lot): cancels are spread from 0 to twice the median, so they land
    // before, during and after the transactions.
    let mut timed = JoinSet::new();
    for n in 0..WORKERS {
        let (mut client, project) = (shared.clone(), project.clone());
        timed.spawn(async move {
            let started = Instant::now();
            let request = pb::UpdateSecretRequest {
                project_id: project,
                environment: "dev".into(),
                secret_path: "/c".into(),
                key: format!("U{}", n % UPDATED),
                value: "timed".into(),
                comment: None,
                expected_version: None,
            };
            client.update_secret(request).await.expect("timed update");
            started.elapsed()
        });
    }
    let mut latencies = timed.join_all().await;
    latencies.sort();
    let typical = latencies[WORKERS / 2];
    // Every fourth request on a connection of its own, closed when the request is cancelled; the others on one
    // shared HTTP/2 connection, where a cancelled call is a stream reset.
    let mut rng = StdRng::seed_from_u64(13);
    let plan: Vec<(usize, Duration, bool)> =
        (0..REQUESTS).map(|i| (i, typical.mul_f64(rng.gen_range(0.0..2.0)), i % 4 == 3)).collect();
    let mut acknowledged = vec![false; REQUESTS];
    for chunk in plan.chunks(WORKERS) {
        let mut tasks = JoinSet::new();
        for &(i, delay, own_connection) in chunk {
            let (url, token, project, shared) = (server.url(), token.clone(), project.clone(), shared.clone());
            tasks.spawn(async move {
                let client = if own_connection { connect(&url, &token).await } else { shared };
                (i, send(client, &project, i, delay).await)
            });
        }
        for (i, ok) in tasks.join_all().await {
            acknowledged[i] = ok;
        }
    }
    let answered = acknowledged.iter().filter(|ok| **ok).count();
    println!(
        "{backend:?}: {WORKERS} writes at once take {typical:?} (median); {REQUESTS} writes cancelled after 0 to {:?}: \
         {answered} answered first, {} cancelled",
        typical * 2,
        REQUESTS - answered
    );
    assert!(answered > 0 && answered < REQUESTS, "the delays must cancel some requests and not all: {answered}");

    let db = Database::connect(&server.database_url).await.expect("database");
    // A cancelled write runs on to its end (`limits::detach`), and under load the last ones may still be waiting
    // for their turn: the checks below read the secrets, then the events and audit entries, so a write landing in
    // between would look half-written. Wait until a second passes without a new audit entry.
    let entries = "SELECT CAST(COUNT(*) AS TEXT) FROM audit_logs";
    let settling = Instant::now();
    let mut seen = texts(&db, entries).await;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = texts(&db, entries).await;
        if now == seen {
            break;
        }
        assert!(settling.elapsed() < Duration::from_secs(60), "the cancelled writes did not settle");
        seen = now;
    }
    if backend == Backend::Postgres {
        let name = server.database_url.rsplit('/').next().unwrap().split('?').next().unwrap();
        let sql = format!(
            "SELECT CAST(pid AS TEXT) FROM pg_stat_activity WHERE datname = '{name}' AND state LIKE 'idle in transaction%'"
        );
        let open = texts(&db, &sql).await;
        assert!(open.is_empty(), "connections left inside a transaction: {open:?}");
    }

    // Every write is whole or absent; every acknowledged one is there.
    let mut client = shared.clone();
    let mut current: HashMap<String, (u32, Vec<(u32, String)>)> = HashMap::new();
    let list = pb::ListSecretsRequest {
        project_id: project.clone(),
        environment: "dev".into(),
        secret_path: "/c".into(),
        page_size: 1000,
        ..Default::default()
    };
    let mut request = list.clone();
    loop {
        let page = client.list_secrets(request.clone()).await.unwrap().into_inner();
        for secret in page.secrets {
            current.insert(secret.key, (secret.version, Vec::new()));
        }
        if page.next_page_token.is_empty() {
            break;
        }
        request.page_token = page.next_page_token;
    }
    for (name, (_, history)) in current.iter_mut().filter(|(name, _)| name.starts_with('U') || name.starts_with('C')) {
        let request = pb::ListSecretVersionsRequest {
            project_id: project.clone(),
            environment: "dev".into(),
            secret_path: "/c".into(),
            key: name.clone(),
        };
        *history = client
            .list_secret_versions(request)
            .await
            .unwrap()
            .into_inner()
            .versions
            .into_iter()
            .map(|v| (v.version, v.value))
            .collect();
        history.sort();
    }
    let count = |list: &[String], name: &str| list.iter().filter(|k| *k == name).count();
    let (created_events, updated_events, deleted_events) =
        (evented(&db, "secret:create").await, evented(&db, "secret:update").await, evented(&db, "secret:delete").await);
    let created_audit: Vec<String> = audited(&db, "create-secret").await.into_iter().map(|(k, _)| k).collect();
    let updated_audit = audited(&db, "update-secret").await;
    let deleted_audit: Vec<String> = audited(&db, "delete-secret").await.into_iter().map(|(k, _)| k).collect();

    for i in (0..REQUESTS).filter(|i| kind(*i) == Kind::Create) {
        let name = key(i);
        let records = (count(&created_events, &name), count(&created_audit, &name));
        match current.get(&name) {
            Some((version, history)) => {
                assert_eq!((*version, history.clone()), (1, vec![(1, value(i))]), "{name}: one whole version");
                assert_eq!(records, (1, 1), "{name} exists: its event and audit entry too");
            }
            None => {
                assert!(!acknowledged[i], "{name} was acknowledged and is missing");
                assert_eq!(records, (0, 0), "{name} is absent: no event or audit entry either");
            }
        }
    }
    for i in (0..REQUESTS).filter(|i| kind(*i) == Kind::Delete) {
        let name = key(i);
        let records = (count(&deleted_events, &name), count(&deleted_audit, &name));
        if current.contains_key(&name) {
            assert!(!acknowledged[i], "{name} was acknowledged deleted and is still there");
            assert_eq!(records, (0, 0), "{name} still exists: no delete event or audit entry");
        } else {
            assert_eq!(records, (1, 1), "{name} is gone: its event and audit entry are there");
        }
    }
    for u in 0..UPDATED {
        let name = format!("U{u}");
        let (version, history) = current.get(&name).unwrap_or_else(|| panic!("{name} exists"));
        let numbers: Vec<u32> = history.iter().map(|(v, _)| *v).collect();
        assert_eq!(numbers, (1..=*version).collect::<Vec<_>>(), "{name}: versions without gap");
        let mut audited_versions: Vec<u32> =
            updated_audit.iter().filter(|(k, _)| *k == name).map(|(_, v)| *v).collect();
        audited_versions.sort();
        assert_eq!(audited_versions, (2..=*version).collect::<Vec<_>>(), "{name}: one audit entry per update");
        assert_eq!(count(&updated_events, &name), *version as usize - 1, "{name}: one event per update");
        let served = common::get_secret(&mut client, &project, "dev", "/c", &name).await.unwrap().version;
        assert_eq!(served, *version, "{name}: a read (from memory where it can) serves the committed version");
        let values: Vec<&str> = history.iter().map(|(_, v)| v.as_str()).collect();
        for i in (0..REQUESTS).filter(|i| kind(*i) == Kind::Update && key(*i) == name && acknowledged[*i]) {
            assert!(values.contains(&value(i).as_str()), "{name}: acknowledged update {i} is missing");
        }
    }

    let warnings: Vec<String> =
        server.lines().into_iter().filter(|line| line.contains("transaction in progress")).collect();
    assert!(warnings.is_empty(), "the server reused a connection inside a transaction: {warnings:#?}");
    server.stop().await;
}

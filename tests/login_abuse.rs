//! Login abuse (issue 11 item 4): huge or guessed client ids leave (almost) nothing behind, and a flood of wrong
//! secrets is throttled per address while the right secret from another address still logs in.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, TestServer, http1};
use hush::{
    identity::login_throttle::{FREE_FAILURES_PER_ADDRESS, FREE_FAILURES_PER_PAIR},
    pb::{self, identity_service_client::IdentityServiceClient},
};
use sea_orm::{ConnectionTrait, Statement};
use tonic::Code;
use tonic_types::StatusExt;

backend_tests!(huge_and_guessed_client_ids_do_not_grow_storage, a_flood_is_throttled_but_another_address_logs_in);

/// What the server's storage holds: bytes of the data dir on SQLite, bytes of the audit table on PostgreSQL
/// (each test has its own database, so the table is this test's alone).
async fn stored_bytes(server: &TestServer) -> u64 {
    match server.backend {
        Backend::Sqlite => std::fs::read_dir(server.data_dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().metadata().unwrap().len())
            .sum(),
        Backend::Postgres => {
            let db = server.raw_db().await;
            let sql = "SELECT pg_total_relation_size('audit_logs')::bigint AS n";
            let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap().unwrap();
            row.try_get::<i64>("", "n").unwrap() as u64
        }
    }
}

async fn audit_rows(server: &TestServer) -> i64 {
    let db = server.raw_db().await;
    let sql = "SELECT COUNT(*) AS n FROM audit_logs";
    let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap().unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

/// A Login request from `forwarded_for` (the test server trusts 127.0.0.1 as a proxy).
fn login_from(forwarded_for: &str, client_id: &str, client_secret: &str) -> tonic::Request<pb::LoginRequest> {
    let mut request =
        tonic::Request::new(pb::LoginRequest { client_id: client_id.into(), client_secret: client_secret.into() });
    request.metadata_mut().insert("x-forwarded-for", forwarded_for.parse().unwrap());
    request
}

fn trusting_localhost(config: &mut hush::config::ServeConfig) {
    config.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
}

async fn huge_and_guessed_client_ids_do_not_grow_storage(backend: Backend) {
    let server = TestServer::start_with(backend, trusting_localhost).await;
    let before = (stored_bytes(&server).await, audit_rows(&server).await);
    let started = Instant::now();

    // 1 000 logins with 4 MB client ids, 8 at a time: refused before anything is stored.
    let huge = "a".repeat(4_000_000);
    let channel = server.channel().await;
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..8 {
        let (channel, huge) = (channel.clone(), huge.clone());
        tasks.spawn(async move {
            let mut client = IdentityServiceClient::new(channel);
            for i in 0..125 {
                let from = format!("198.51.100.{}", worker * 10 + i % 10);
                let status = client.login(login_from(&from, &huge, "hush_cs_x")).await.unwrap_err();
                assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
                assert!(status.message().starts_with("client_id:") && status.message().len() < 200);
            }
        });
    }
    tasks.join_all().await;
    let huge_elapsed = started.elapsed();

    // 1 000 guessed (well-formed, unknown) client ids from 1 000 addresses: summarised, not stored per attempt.
    let mut client = IdentityServiceClient::new(channel.clone());
    for i in 0..1000u32 {
        let from = format!("203.0.{}.{}", i / 250, i % 250);
        let status = client.login(login_from(&from, &uuid::Uuid::new_v4().to_string(), "hush_cs_x")).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
    }
    let after = (stored_bytes(&server).await, audit_rows(&server).await);
    let growth = after.0.saturating_sub(before.0);
    eprintln!(
        "{backend:?}: storage {} -> {} bytes (+{growth}), audit rows {} -> {}; 1000 x 4 MB ids in {huge_elapsed:?}, total {:?}",
        before.0,
        after.0,
        before.1,
        after.1,
        started.elapsed()
    );
    assert!(growth < 1_000_000, "storage grew by {growth} bytes");
    assert!(after.1 - before.1 <= 2, "guessed ids are summarised, not stored per attempt: {before:?} -> {after:?}");

    // A client secret too long to be real is refused by name, too.
    let status = client.login(login_from("198.51.100.200", &server.bootstrap.client_id, &"s".repeat(300))).await;
    let status = status.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().starts_with("client_secret:"), "{status:?}");
}

async fn a_flood_is_throttled_but_another_address_logs_in(backend: Backend) {
    let server = TestServer::start_with(backend, trusting_localhost).await;
    let client_id = server.bootstrap.client_id.clone();
    let mut client = IdentityServiceClient::new(server.channel().await);
    let attacker = "203.0.113.66";

    // The first failures are answered normally, then the pair is throttled with a growing delay.
    let started = Instant::now();
    let mut codes = Vec::new();
    let mut retry_after = Vec::new();
    for _ in 0..200 {
        let status = client.login(login_from(attacker, &client_id, "hush_cs_wrong")).await.unwrap_err();
        codes.push(status.code());
        if status.code() == Code::ResourceExhausted {
            retry_after.push(status.get_details_retry_info().and_then(|r| r.retry_delay).expect("RetryInfo"));
        }
    }
    let flood = started.elapsed();
    let refused = codes.iter().filter(|c| **c == Code::ResourceExhausted).count();
    eprintln!("{backend:?}: 200 wrong secrets in {flood:?}: {refused} throttled, first waits {:?}", &retry_after[..1]);
    assert!(codes[..FREE_FAILURES_PER_PAIR as usize].iter().all(|c| *c == Code::Unauthenticated), "{codes:?}");
    assert_eq!(refused, 200 - FREE_FAILURES_PER_PAIR as usize, "every attempt past the free ones is refused");
    assert!(retry_after[0] > Duration::from_millis(500) && retry_after[0] <= Duration::from_secs(1));

    // Even the right secret waits from the flooding address...
    let status = client.login(login_from(attacker, &client_id, &server.bootstrap.client_secret)).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    // ...but logs in from another one, during the flood.
    let ok = client.login(login_from("198.51.100.7", &client_id, &server.bootstrap.client_secret)).await;
    assert!(ok.is_ok(), "{ok:?}");

    // Over JSON the refusal is 429 with Retry-After.
    let body = format!(r#"{{"clientId":"{client_id}","clientSecret":"hush_cs_wrong"}}"#);
    let headers = [("content-type", "application/json"), ("x-forwarded-for", attacker)];
    let response = http1::send(server.addr, "POST", "/hush.v1.IdentityService/Login", &headers, &body).await;
    assert_eq!(response.status(), http::StatusCode::TOO_MANY_REQUESTS);
    let seconds: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=1).contains(&seconds), "Retry-After {seconds}");

    // The delay doubles: after waiting it out, one more failure is answered, then refused for ~2 s.
    tokio::time::sleep(retry_after[0]).await;
    let status = client.login(login_from(attacker, &client_id, "hush_cs_wrong")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = client.login(login_from(attacker, &client_id, "hush_cs_wrong")).await.unwrap_err();
    let wait = status.get_details_retry_info().and_then(|r| r.retry_delay).unwrap();
    assert!(wait > Duration::from_millis(1500) && wait <= Duration::from_secs(2), "{wait:?}");

    // One address guessing many client ids is throttled as a whole.
    let sprayer = "203.0.113.99";
    let mut last = Code::Ok;
    for _ in 0..FREE_FAILURES_PER_ADDRESS {
        let guess = uuid::Uuid::new_v4().to_string();
        last = client.login(login_from(sprayer, &guess, "hush_cs_wrong")).await.unwrap_err().code();
    }
    assert_eq!(last, Code::Unauthenticated);
    let status = client.login(login_from(sprayer, &client_id, &server.bootstrap.client_secret)).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
}

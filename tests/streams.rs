//! Audit streams against real HTTP receivers (in-process axum servers that record what they get and fail on
//! purpose): request shapes per provider, retries, drops, outages, backfill, redaction.

mod common;

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use common::{
    Backend, TestServer, http1,
    receiver::{Answer, Receiver, eventually},
};
use hush::{
    config::ServeConfig,
    pb::{
        self, audit_streams_service_client::AuditStreamsServiceClient, projects_service_client::ProjectsServiceClient,
    },
};
use tonic::Code;

fn fast(config: &mut ServeConfig) {
    config.streams_allow_private = true;
    config.stream_retry_base = Duration::from_millis(50);
    config.stream_retry_cap = Duration::from_millis(200);
    config.stream_lease = Duration::from_secs(1);
}

async fn streams_client(server: &TestServer) -> AuditStreamsServiceClient<common::Authed> {
    AuditStreamsServiceClient::new(server.authed(&server.admin_token().await).await)
}

fn custom(url: &str, batch: bool) -> pb::create_audit_stream_request::Provider {
    pb::create_audit_stream_request::Provider::Custom(pb::CustomProvider {
        url: url.into(),
        headers: [("x-team-secret".to_owned(), "header-credential-77".to_owned())].into(),
        batch,
        ..Default::default()
    })
}

async fn create(
    client: &mut AuditStreamsServiceClient<common::Authed>,
    name: &str,
    provider: pb::create_audit_stream_request::Provider,
) -> pb::AuditStream {
    let request = pb::CreateAuditStreamRequest {
        name: name.into(),
        skip_test: true,
        provider: Some(provider),
        ..Default::default()
    };
    client.create_audit_stream(request).await.unwrap().into_inner().audit_stream.unwrap()
}

/// Makes `n` audit entries (project reads) and returns the project id (a new project each call: names are
/// unique).
async fn activity(server: &TestServer, n: usize) -> String {
    let project = server.project(&format!("streamed-{}", uuid::Uuid::now_v7().simple())).await;
    let mut projects = ProjectsServiceClient::new(server.authed(&server.admin_token().await).await);
    for _ in 0..n {
        projects.get_project(pb::GetProjectRequest { project_id: project.clone() }).await.unwrap();
    }
    project
}

async fn status(client: &mut AuditStreamsServiceClient<common::Authed>, id: &str) -> pb::AuditStreamStatus {
    let request = pb::GetAuditStreamStatusRequest { audit_stream_id: id.into() };
    client.get_audit_stream_status(request).await.unwrap().into_inner().status.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_provider_gets_its_request_shape() {
    let server = TestServer::start_with(Backend::Sqlite, fast).await;
    let receiver = Receiver::default();
    let (url, _serving) = receiver.start().await;
    let mut client = streams_client(&server).await;
    use pb::create_audit_stream_request::Provider as P;
    create(&mut client, "custom-batch", custom(&format!("{url}/batch"), true)).await;
    create(&mut client, "custom-single", custom(&format!("{url}/single"), false)).await;
    create(
        &mut client,
        "splunk",
        P::Splunk(pb::SplunkProvider { host: format!("{url}/splunk"), token: "splunk-hec-token".into() }),
    )
    .await;
    create(
        &mut client,
        "datadog",
        P::Datadog(pb::DatadogProvider { site: String::new(), api_key: "dd-key-123".into(), url: format!("{url}/dd") }),
    )
    .await;
    create(
        &mut client,
        "cribl",
        P::Cribl(pb::CriblProvider { url: format!("{url}/cribl"), token: "cribl-token".into() }),
    )
    .await;
    create(
        &mut client,
        "azure",
        P::Azure(pb::AzureProvider {
            tenant_id: "tenant-1".into(),
            client_id: "app-1".into(),
            client_secret: "azure-client-secret".into(),
            dce_url: format!("{url}/dce"),
            dcr_immutable_id: "dcr-abc".into(),
            table: "HushAudit_CL".into(),
            login_url: format!("{url}/login"),
        }),
    )
    .await;
    activity(&server, 3).await;
    let paths = [
        "/batch",
        "/single",
        "/splunk/services/collector/event",
        "/dd",
        "/cribl",
        "/dce/dataCollectionRules/dcr-abc/streams/Custom-HushAudit_CL",
    ];
    eventually(Duration::from_secs(10), "every destination to get the 3 reads", || {
        paths.iter().all(|p| receiver.ids(p).len() >= 4)
    })
    .await;
    let received = receiver.received();
    let first = |path: &str| received.iter().find(|r| r.path == path).unwrap().clone();
    assert_eq!(first("/batch").headers["x-team-secret"], "header-credential-77");
    assert!(first("/batch").body.starts_with('['), "batch mode sends a JSON array");
    assert!(first("/single").body.starts_with('{'), "single mode sends one object per request");
    assert_eq!(first("/splunk/services/collector/event").headers["authorization"], "Splunk splunk-hec-token");
    assert!(first("/splunk/services/collector/event").body.contains("\"event\":{"));
    assert_eq!(first("/dd").headers["dd-api-key"], "dd-key-123");
    assert!(first("/dd").body.contains("\"ddsource\":\"hush\""));
    // Datadog and Splunk HEC get gzip bodies (the receiver unpacks them); the others plain JSON.
    for gzipped in ["/dd", "/splunk/services/collector/event"] {
        assert_eq!(first(gzipped).headers["content-encoding"], "gzip", "{gzipped}");
    }
    for plain in ["/batch", "/single", "/cribl"] {
        assert!(first(plain).headers.get("content-encoding").is_none(), "{plain}");
    }
    assert_eq!(first("/cribl").headers["authorization"], "Bearer cribl-token");
    assert_eq!(first("/cribl").headers["content-type"], "application/x-ndjson");
    let azure = first("/dce/dataCollectionRules/dcr-abc/streams/Custom-HushAudit_CL");
    assert_eq!(azure.headers["authorization"], "Bearer azure-access-token");
    let token_calls: Vec<_> = received.iter().filter(|r| r.path == "/login/tenant-1/oauth2/v2.0/token").collect();
    assert!(!token_calls.is_empty() && token_calls[0].body.contains("grant_type=client_credentials"));
    assert!(token_calls.len() <= 2, "the token is cached: {} token requests", token_calls.len());
    // Every entry is a complete audit entry with an id.
    let batch: serde_json::Value = serde_json::from_str(&first("/batch").body).unwrap();
    let entry = &batch[0];
    for key in ["id", "actor", "eventType", "orgId", "createdAt", "userAgentType"] {
        assert!(entry.get(key).is_some(), "{key} in {entry}");
    }

    // Responses never show credentials.
    let listed = client.list_audit_streams(pb::ListAuditStreamsRequest::default()).await.unwrap().into_inner();
    let shown = format!("{listed:?}");
    for secret in ["header-credential-77", "splunk-hec-token", "dd-key-123", "cribl-token", "azure-client-secret"] {
        assert!(!shown.contains(secret), "{secret} shown in a response");
    }
    assert!(shown.contains("[REDACTED]"));
    // Nor are they stored in clear.
    let bytes: Vec<u8> = std::fs::read_dir(server.data_dir.path())
        .unwrap()
        .flat_map(|f| std::fs::read(f.unwrap().path()).unwrap())
        .collect();
    assert!(!bytes.windows(16).any(|w| w == b"splunk-hec-token"), "credentials are encrypted at rest");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_retried_and_exhausted_batches_dropped_visibly() {
    let server = TestServer::start_with(Backend::Sqlite, fast).await;
    let receiver = Receiver::default();
    let (url, _serving) = receiver.start().await;
    let mut client = streams_client(&server).await;
    let stream = create(&mut client, "flaky", custom(&format!("{url}/in"), true)).await;

    // 500, then 429 asking for a 1 s pause, then accepted.
    receiver.fail_next(&[Answer::Status(500), Answer::TooManyRequests { retry_after_secs: 1 }]);
    let started = Instant::now();
    activity(&server, 2).await;
    eventually(Duration::from_secs(10), "delivery after retries", || receiver.ids("/in").len() >= 3).await;
    assert!(started.elapsed() >= Duration::from_millis(900), "Retry-After was honoured");
    let s = status(&mut client, &stream.id).await;
    assert!(s.attempts >= 3, "{s:?}");
    assert_eq!(s.dropped_batches, 0);

    // Five failures in a row: the batch is dropped, counted, and the next batches flow.
    let delivered_before = receiver.ids("/in").len();
    receiver.fail_next(&[Answer::Status(500); 5]);
    activity(&server, 1).await;
    let mut dropped = pb::AuditStreamStatus::default();
    for _ in 0..200 {
        dropped = status(&mut client, &stream.id).await;
        if dropped.dropped_batches > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(dropped.dropped_batches, 1, "{dropped:?}");
    assert!(dropped.dropped_events >= 1);
    assert!(dropped.last_error.contains("500"), "{}", dropped.last_error);
    assert!(!dropped.last_error.contains("header-credential-77"));
    activity(&server, 1).await;
    eventually(Duration::from_secs(10), "later batches to flow", || receiver.ids("/in").len() > delivered_before).await;
    let (_, metrics) = http1::exchange(server.addr, "GET", "/metrics", &[], "").await;
    let line = metrics
        .lines()
        .find(|l| l.starts_with("hush_audit_stream_dropped_batches_total") && l.contains(&stream.id))
        .unwrap();
    assert!(line.ends_with(" 1"), "{line}");
    assert!(metrics.contains("hush_audit_stream_delivered_events_total"));

    // Backfill re-delivers a chosen range.
    let before = receiver.ids("/in").len();
    let from = prost_types::Timestamp { seconds: chrono::Utc::now().timestamp() - 3600, nanos: 0 };
    let queued = client
        .backfill_audit_stream(pb::BackfillAuditStreamRequest {
            audit_stream_id: stream.id.clone(),
            start_time: Some(from),
            end_time: None,
        })
        .await
        .unwrap()
        .into_inner()
        .queued_events;
    assert!(queued > 0);
    eventually(Duration::from_secs(10), "the backfill", || receiver.ids("/in").len() >= before + queued as usize).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_was_down_gets_everything_once_up() {
    let server = TestServer::start_with(Backend::Sqlite, |c| {
        fast(c);
        // Retries span seconds, so the outage below ends before the first batch runs out of attempts.
        c.stream_retry_base = Duration::from_millis(500);
        c.stream_retry_cap = Duration::from_secs(2);
    })
    .await;
    // Reserve a port, then close it: connections are refused until the receiver starts there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut client = streams_client(&server).await;
    let stream = create(&mut client, "down", custom(&format!("http://{addr}/in"), true)).await;
    activity(&server, 20).await;
    // Wait for a refused attempt, then bring the receiver up.
    let mut s = status(&mut client, &stream.id).await;
    while s.attempts < 1 || s.last_error.is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
        s = status(&mut client, &stream.id).await;
    }
    assert!(s.last_error.contains("request failed"), "{}", s.last_error);
    let receiver = Receiver::default();
    let _serving = receiver.serve(tokio::net::TcpListener::bind(addr).await.unwrap());
    eventually(Duration::from_secs(20), "every queued entry", || receiver.ids("/in").len() >= 21).await;
    let unique: HashSet<String> = receiver.ids("/in").into_iter().collect();
    assert!(unique.len() >= 21, "at least once, de-duplicable by id");
    assert_eq!(status(&mut client, &stream.id).await.dropped_batches, 0, "nothing was lost to the outage");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_stay_within_500_entries() {
    let server = TestServer::start_with(Backend::Sqlite, fast).await;
    let receiver = Receiver::default();
    let (url, _serving) = receiver.start().await;
    let mut client = streams_client(&server).await;
    // Hold delivery back while 600 entries accumulate.
    receiver.fail_next(&[Answer::Status(503)]);
    create(&mut client, "bounded", custom(&format!("{url}/in"), true)).await;
    activity(&server, 600).await;
    eventually(Duration::from_secs(20), "600 entries", || receiver.ids("/in").len() >= 600).await;
    for request in receiver.received().iter().filter(|r| r.path == "/in") {
        let batch: Vec<serde_json::Value> = serde_json::from_str(&request.body).unwrap();
        assert!(batch.len() <= 500, "a batch of {}", batch.len());
        assert!(request.body.len() <= 1024 * 1024);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_destinations_and_bad_configs_are_refused() {
    let server = TestServer::start(Backend::Sqlite).await;
    let mut client = streams_client(&server).await;
    let refused = client
        .create_audit_stream(pb::CreateAuditStreamRequest {
            name: "internal".into(),
            skip_test: true,
            provider: Some(custom("http://127.0.0.1:9/in", true)),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused.message().starts_with("custom.url:") && refused.message().contains("HUSH_STREAMS_ALLOW_PRIVATE"),
        "{}",
        refused.message()
    );
    let missing = client
        .create_audit_stream(pb::CreateAuditStreamRequest {
            name: "none".into(),
            skip_test: true,
            provider: None,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_streams_and_updates_are_refused_naming_the_field() {
    let server = TestServer::start_with(Backend::Sqlite, fast).await;
    let receiver = Receiver::default();
    let (url, _serving) = receiver.start().await;
    let mut client = streams_client(&server).await;
    let with_headers = |headers: &[(&str, &str)]| {
        pb::create_audit_stream_request::Provider::Custom(pb::CustomProvider {
            url: format!("{url}/in"),
            headers: headers.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect(),
            batch: true,
            ..Default::default()
        })
    };
    let mut refused = async |name: &str, provider, on_failure: i32| {
        let request =
            pb::CreateAuditStreamRequest { name: name.into(), skip_test: true, provider: Some(provider), on_failure };
        let status = client.create_audit_stream(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        status.message().to_owned()
    };
    // A header value that would inject a header, and one that would cut the body short.
    let injected = refused("s", with_headers(&[("x-a", "v\r\nX-Injected: 1")]), 0).await;
    assert!(injected.starts_with("custom.headers.x-a: ") && !injected.contains("Injected"), "{injected}");
    let framing = refused("s", with_headers(&[("content-length", "5")]), 0).await;
    assert!(framing.starts_with("custom.headers.content-length: "), "{framing}");
    assert!(refused("two\nlines", with_headers(&[]), 0).await.starts_with("name: "));
    assert!(refused("s", with_headers(&[]), 7).await.starts_with("on_failure: "));

    let stream = create(&mut client, "masked", with_headers(&[])).await;
    let mut update = async |mask: &[&str], name: &str, provider: Option<pb::update_audit_stream_request::Provider>| {
        let request = pb::UpdateAuditStreamRequest {
            audit_stream_id: stream.id.clone(),
            name: name.into(),
            update_mask: Some(prost_types::FieldMask { paths: mask.iter().map(|p| (*p).to_owned()).collect() }),
            provider,
            ..Default::default()
        };
        client.update_audit_stream(request).await
    };
    let custom = pb::update_audit_stream_request::Provider::Custom(pb::CustomProvider {
        url: format!("{url}/elsewhere"),
        batch: true,
        ..Default::default()
    });
    for (mask, name, provider, field) in [
        (vec!["bogus"], "", None, "update_mask: "),
        (vec!["name"], "", None, "name: "),
        (vec!["on_failure"], "", None, "on_failure: "),
        (vec!["custom"], "", None, "update_mask: "),
        (vec!["datadog"], "", Some(custom.clone()), "update_mask: "),
    ] {
        let status = update(&mask, name, provider).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{mask:?}: {status:?}");
        assert!(status.message().starts_with(field), "{mask:?}: {}", status.message());
    }
    let moved = update(&["custom"], "", Some(custom)).await.unwrap().into_inner().audit_stream.unwrap();
    let Some(pb::audit_stream::Provider::Custom(c)) = moved.provider else { panic!() };
    assert!(c.url.ends_with("/elsewhere"), "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_tests_the_destination_and_single_cannot_return_from_batch() {
    let server = TestServer::start_with(Backend::Sqlite, fast).await;
    let receiver = Receiver::default();
    let (url, _serving) = receiver.start().await;
    let mut client = streams_client(&server).await;
    receiver.fail_next(&[Answer::Status(401)]);
    let refused = client
        .create_audit_stream(pb::CreateAuditStreamRequest {
            name: "t".into(),
            skip_test: false,
            provider: Some(custom(&format!("{url}/in"), false)),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("401"), "{}", refused.message());
    let stream = client
        .create_audit_stream(pb::CreateAuditStreamRequest {
            name: "t".into(),
            skip_test: false,
            provider: Some(custom(&format!("{url}/in"), false)),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .audit_stream
        .unwrap();
    let test = client
        .test_audit_stream(pb::TestAuditStreamRequest { audit_stream_id: stream.id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert!(test.success && test.status_code == 200, "{test:?}");

    use pb::update_audit_stream_request::Provider as U;
    let to = |batch| {
        U::Custom(pb::CustomProvider {
            url: format!("{url}/in"),
            headers: [("x-team-secret".to_owned(), "[REDACTED]".to_owned())].into(),
            batch,
            ..Default::default()
        })
    };
    let update = |provider| pb::UpdateAuditStreamRequest {
        audit_stream_id: stream.id.clone(),
        name: String::new(),
        update_mask: None,
        provider: Some(provider),
        ..Default::default()
    };
    let switched = client.update_audit_stream(update(to(true))).await.unwrap().into_inner().audit_stream.unwrap();
    let Some(pb::audit_stream::Provider::Custom(c)) = switched.provider else { panic!() };
    assert!(c.batch);
    let back = client.update_audit_stream(update(to(false))).await.unwrap_err();
    assert_eq!(back.code(), Code::FailedPrecondition);
    // The redacted header kept its stored value: deliveries still carry it.
    activity(&server, 1).await;
    eventually(Duration::from_secs(10), "a batch", || {
        receiver.received().iter().any(|r| r.path == "/in" && r.body.starts_with('['))
    })
    .await;
    let batch = receiver.received().into_iter().find(|r| r.path == "/in" && r.body.starts_with('[')).unwrap();
    assert_eq!(batch.headers["x-team-secret"], "header-credential-77");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_only_mode_keeps_entries_until_delivered() {
    let server = TestServer::start_with(Backend::Sqlite, |c| {
        fast(c);
        c.audit_storage = hush::config::AuditStorage::Off;
    })
    .await;
    let receiver = Receiver::default();
    let (url, _serving) = receiver.start().await;
    let mut client = streams_client(&server).await;
    create(&mut client, "only-copy", custom(&format!("{url}/in"), true)).await;
    activity(&server, 5).await;
    eventually(Duration::from_secs(10), "delivery", || receiver.ids("/in").len() >= 6).await;
    let db = server.raw_db().await;
    let mut remaining = i64::MAX;
    for _ in 0..100 {
        use sea_orm::{ConnectionTrait, Statement};
        let row = db
            .query_one_raw(Statement::from_string(db.get_database_backend(), "SELECT COUNT(*) AS n FROM audit_logs"))
            .await
            .unwrap()
            .unwrap();
        remaining = row.try_get("", "n").unwrap();
        if remaining == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(remaining, 0, "delivered entries are not kept");
    let token = server.admin_token().await;
    let mut logs = pb::audit_logs_service_client::AuditLogsServiceClient::new(server.authed(&token).await);
    let refused = logs.list_audit_logs(pb::ListAuditLogsRequest::default()).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("HUSH_AUDIT_STORAGE=off"), "{}", refused.message());
}

/// On PostgreSQL an audit entry takes its `seq` when inserted and becomes visible when its transaction commits,
/// so entries of concurrent writers become visible out of `seq` order. A stream whose cursor passed an entry
/// still being committed would skip it forever; the cursor only moves up to the settled head, so every entry
/// of 8 racing writers (their writes and their reads) reaches the receiver, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_on_postgres_lose_no_entry() {
    if !common::postgres_configured("this test") {
        return;
    }
    const WRITERS: usize = 8;
    const WRITES: usize = 60;
    let server = TestServer::start_with(Backend::Postgres, |c| {
        fast(c);
        // A lease that never runs out during the test: a second delivery would then be a cursor bug.
        c.stream_lease = Duration::from_secs(60);
    })
    .await;
    let receiver = Receiver::default();
    let (url, _serving) = receiver.start().await;
    create(&mut streams_client(&server).await, "all", custom(&format!("{url}/in"), true)).await;
    let project = server.project("racing").await;
    let token = server.admin_token().await;
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (server_url, token, project) = (server.url(), token.clone(), project.clone());
            tokio::spawn(async move {
                // Each writer on its own connection, as separate clients would be.
                let mut secrets =
                    pb::secrets_service_client::SecretsServiceClient::new(common::authed(&server_url, &token).await);
                for i in 0..WRITES {
                    let key = format!("K{i}");
                    common::create_secret(&mut secrets, &project, "dev", &format!("/w{w}"), &key, "v").await;
                    common::get_secret(&mut secrets, &project, "dev", &format!("/w{w}"), &key).await.unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let filter = pb::AuditLogFilter { project_id: project.clone(), ..Default::default() };
    let logged: HashSet<String> =
        common::all_entries(&server, &token, filter).await.into_iter().map(|e| e.id).collect();
    assert!(logged.len() >= 2 * WRITERS * WRITES, "{} entries logged", logged.len());
    eventually(Duration::from_secs(30), "every entry of the project delivered", || {
        let delivered: HashSet<String> = receiver.ids("/in").into_iter().collect();
        logged.is_subset(&delivered)
    })
    .await;
    let delivered = receiver.ids("/in");
    let unique: HashSet<&String> = delivered.iter().collect();
    assert_eq!(unique.len(), delivered.len(), "an entry was delivered twice");
}

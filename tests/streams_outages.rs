//! How long an outage an audit stream survives, against real HTTP receivers that go down on purpose: with the
//! backoff's floor a short outage never drops a batch, `pause` mode outlasts any outage and keeps order,
//! `Retry-After` wins over the cap, and idle streams send the database nothing.

mod common;

use std::time::{Duration, Instant};

use common::{
    Backend, TestServer, http1,
    receiver::{Receiver, eventually},
};
use hush::{
    config::ServeConfig,
    pb::{
        self, audit_streams_service_client::AuditStreamsServiceClient, projects_service_client::ProjectsServiceClient,
    },
};

/// The figures: retries wait [d/2, d] with d = min(1.6 s, 400 ms·2^n), so the four retries of a batch
/// span at least 0.2 + 0.4 + 0.8 + 0.8 = 2.2 s.
fn outage_tolerant(config: &mut ServeConfig) {
    config.streams_allow_private = true;
    config.stream_retry_base = Duration::from_millis(400);
    config.stream_retry_cap = Duration::from_millis(1600);
    config.stream_lease = Duration::from_secs(2);
}

async fn streams_client(server: &TestServer) -> AuditStreamsServiceClient<common::Authed> {
    AuditStreamsServiceClient::new(server.authed(&server.admin_token().await).await)
}

async fn create(
    client: &mut AuditStreamsServiceClient<common::Authed>,
    name: &str,
    url: &str,
    on_failure: pb::AuditStreamFailureMode,
) -> pb::AuditStream {
    let provider = pb::create_audit_stream_request::Provider::Custom(pb::CustomProvider {
        url: url.into(),
        batch: true,
        ..Default::default()
    });
    let request = pb::CreateAuditStreamRequest {
        name: name.into(),
        skip_test: true,
        provider: Some(provider),
        on_failure: on_failure.into(),
    };
    client.create_audit_stream(request).await.unwrap().into_inner().audit_stream.unwrap()
}

async fn status(client: &mut AuditStreamsServiceClient<common::Authed>, id: &str) -> pb::AuditStreamStatus {
    let request = pb::GetAuditStreamStatusRequest { audit_stream_id: id.into() };
    client.get_audit_stream_status(request).await.unwrap().into_inner().status.unwrap()
}

/// Makes `n` audit entries (project reads).
async fn activity(server: &TestServer, project: &str, n: usize) {
    let mut projects = ProjectsServiceClient::new(server.authed(&server.admin_token().await).await);
    for _ in 0..n {
        projects.get_project(pb::GetProjectRequest { project_id: project.into() }).await.unwrap();
    }
}

/// A value of `/metrics` for the line starting with `name` and containing `label`.
async fn metric(server: &TestServer, name: &str, label: &str) -> f64 {
    metrics(server, &[(name, label)]).await[0]
}

/// Values of `/metrics`, one scrape: for each (name, label), the line starting with name and containing label.
async fn metrics(server: &TestServer, wanted: &[(&str, &str)]) -> Vec<f64> {
    let (_, text) = http1::exchange(server.addr, "GET", "/metrics", &[], "").await;
    let value = |(name, label): &(&str, &str)| {
        let line = text.lines().find(|l| l.starts_with(name) && l.contains(label)).unwrap_or_else(|| panic!("{name}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    wanted.iter().map(value).collect()
}

/// A server (with `outage_tolerant` settings), a project, and one stream to a receiver of its own, caught up
/// (its creation entry delivered).
struct OneStream {
    server: TestServer,
    project: String,
    client: AuditStreamsServiceClient<common::Authed>,
    receiver: Receiver,
    _serving: tokio::task::JoinHandle<()>,
    stream: pb::AuditStream,
    /// Entries the receiver holds now.
    before: usize,
}

impl OneStream {
    async fn start(name: &str, on_failure: pb::AuditStreamFailureMode) -> Self {
        let server = TestServer::start_with(Backend::Sqlite, outage_tolerant).await;
        let project = server.project(name).await;
        let mut client = streams_client(&server).await;
        let receiver = Receiver::default();
        let (url, _serving) = receiver.start().await;
        let stream = create(&mut client, name, &format!("{url}/in"), on_failure).await;
        eventually(Duration::from_secs(10), "the creation entry", || !receiver.ids("/in").is_empty()).await;
        let before = receiver.ids("/in").len();
        Self { server, project, client, receiver, _serving, stream, before }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_second_outage_loses_nothing_twenty_times_over() {
    let server = TestServer::start_with(Backend::Sqlite, outage_tolerant).await;
    let project = server.project("outages").await;
    let mut client = streams_client(&server).await;
    // Twenty streams, each to a receiver of its own: twenty independent runs of the same outage.
    let mut runs = Vec::new();
    for i in 0..20 {
        let receiver = Receiver::default();
        let (url, serving) = receiver.start().await;
        let stream =
            create(&mut client, &format!("run-{i}"), &format!("{url}/in"), pb::AuditStreamFailureMode::Drop).await;
        runs.push((receiver, serving, stream));
    }
    // Every stream is caught up (the creations of the later streams reached the earlier ones).
    for (receiver, _, _) in &runs {
        eventually(Duration::from_secs(10), "the creation entries", || !receiver.ids("/in").is_empty()).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before: Vec<usize> = runs.iter().map(|(receiver, _, _)| receiver.ids("/in").len()).collect();
    // Each receiver goes down for 2 s from the moment the next entry reaches it.
    for (receiver, _, _) in &runs {
        receiver.outage(Duration::from_secs(2));
    }
    let started = Instant::now();
    activity(&server, &project, 1).await;
    for ((receiver, _, stream), before) in runs.iter().zip(before) {
        eventually(Duration::from_secs(15), "the entry after the outage", || receiver.ids("/in").len() > before).await;
        let s = status(&mut client, &stream.id).await;
        assert_eq!(s.dropped_batches, 0, "{}: nothing was dropped: {s:?}", stream.name);
        assert!(s.last_error.contains("503"), "{}: the outage was seen: {s:?}", stream.name);
    }
    assert!(started.elapsed() >= Duration::from_secs(2), "delivered only once the outages ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_mode_outlasts_a_long_outage_and_keeps_order() {
    let OneStream { server, project, mut client, receiver, stream, before, .. } =
        OneStream::start("never-drop", pb::AuditStreamFailureMode::Pause).await;
    assert_eq!(stream.on_failure, pb::AuditStreamFailureMode::Pause as i32);

    // 30 s down: far beyond the 2.2 s after which a dropping stream gives a batch up.
    receiver.outage(Duration::from_secs(30));
    let started = Instant::now();
    activity(&server, &project, 5).await;
    eventually(Duration::from_secs(10), "the stream to pause", || !receiver.outage_over()).await;
    let mut paused = status(&mut client, &stream.id).await;
    while !paused.paused {
        assert!(started.elapsed() < Duration::from_secs(10), "paused after its retries: {paused:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        paused = status(&mut client, &stream.id).await;
    }
    assert!(paused.pause_time.is_some() && paused.last_error.contains("503"), "{paused:?}");
    assert_eq!(metric(&server, "hush_audit_stream_paused", &stream.id).await, 1.0);
    // More entries queue up behind the held batch while the destination is down.
    tokio::time::sleep(Duration::from_secs(10)).await;
    activity(&server, &project, 5).await;
    let held = status(&mut client, &stream.id).await;
    assert!(held.paused && held.dropped_batches == 0 && held.queue_depth >= 10, "{held:?}");

    eventually(Duration::from_secs(45), "everything after the outage", || receiver.ids("/in").len() >= before + 10)
        .await;
    assert!(started.elapsed() >= Duration::from_secs(30), "nothing was accepted during the outage");
    let delivered = receiver.entries("/in");
    let times: Vec<&str> = delivered.iter().map(|e| e["createdAt"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "delivered in order: {times:?}");
    let ids: std::collections::HashSet<&str> = delivered.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), delivered.len(), "each entry once");
    let mut resumed = status(&mut client, &stream.id).await;
    for _ in 0..100 {
        if !resumed.paused {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        resumed = status(&mut client, &stream.id).await;
    }
    assert!(!resumed.paused && resumed.pause_time.is_none() && resumed.dropped_batches == 0, "{resumed:?}");
    assert_eq!(metric(&server, "hush_audit_stream_paused", &stream.id).await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_lengthens_waits_and_never_shortens_them() {
    let OneStream { server, project, mut client, receiver, stream, before, .. } =
        OneStream::start("asked", pb::AuditStreamFailureMode::Drop).await;
    // 3 s, longer than the 1.6 s cap: the retry waits what the destination asked for.
    receiver.fail_next(&[common::receiver::Answer::TooManyRequests { retry_after_secs: 3 }]);
    let started = Instant::now();
    activity(&server, &project, 1).await;
    eventually(Duration::from_secs(10), "the retried entry", || receiver.ids("/in").len() > before).await;
    assert!(started.elapsed() >= Duration::from_millis(2900), "Retry-After honoured: {:?}", started.elapsed());
    let s = status(&mut client, &stream.id).await;
    assert!(s.last_error.contains("retry-after=3") && s.dropped_batches == 0, "{s:?}");

    // Asking for less than the backoff does not shorten it: five `Retry-After: 0` answers still take the
    // 2.2 s floor to drop the batch.
    receiver.fail_next(&[common::receiver::Answer::TooManyRequests { retry_after_secs: 0 }; 5]);
    let started = Instant::now();
    activity(&server, &project, 1).await;
    let mut s = status(&mut client, &stream.id).await;
    while s.dropped_batches == 0 {
        assert!(started.elapsed() < Duration::from_secs(15), "{s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
        s = status(&mut client, &stream.id).await;
    }
    assert!(started.elapsed() >= Duration::from_millis(2200), "dropped after {:?}", started.elapsed());
}

backend_tests!(idle_streams_send_the_database_nothing);

async fn idle_streams_send_the_database_nothing(backend: Backend) {
    let server = TestServer::start_with(backend, outage_tolerant).await;
    let project = server.project("idle").await;
    let mut client = streams_client(&server).await;
    let receiver = Receiver::default();
    let (url, _serving) = receiver.start().await;
    for i in 0..10 {
        create(&mut client, &format!("idle-{i}"), &format!("{url}/s{i}"), pb::AuditStreamFailureMode::Drop).await;
    }
    activity(&server, &project, 3).await;
    eventually(Duration::from_secs(10), "every stream caught up", || {
        (0..10).all(|i| receiver.ids(&format!("/s{i}")).len() >= 3)
    })
    .await;
    // Longer than a lease (2 s) and many polling periods of the old engine (250 ms).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let counters = [("hush_db_write_statements_total", ""), ("hush_db_statements_total", "")];
    let before = metrics(&server, &counters).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = metrics(&server, &counters).await;
    assert_eq!(after[0], before[0], "no write while idle");
    // On SQLite nothing else polls: what remains is the first scrape's own two reads of the streams' state
    // (made after it read the counter). On PostgreSQL the event tailer's fallback poll and the permission
    // version are read several times a second as well; the streams add nothing to either.
    let read = after[1] - before[1];
    if backend == Backend::Sqlite {
        assert_eq!(read, 2.0, "statements in 5 idle seconds");
    }

    // And they still wake at once for new entries.
    let woken = Instant::now();
    activity(&server, &project, 1).await;
    eventually(Duration::from_secs(5), "the next entry", || {
        (0..10).all(|i| receiver.ids(&format!("/s{i}")).len() >= 4)
    })
    .await;
    assert!(woken.elapsed() < Duration::from_secs(1), "delivered within a second: {:?}", woken.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_committed_on_another_instance_wake_the_lease_holder() {
    if !common::postgres_configured("multi-instance test") {
        return;
    }
    // A lease far longer than the wait below: whichever instance holds it must be woken by the other's
    // entries (NOTIFY), not find them when the lease runs out.
    let long_lease = |c: &mut ServeConfig| {
        outage_tolerant(c);
        c.stream_lease = Duration::from_secs(60);
    };
    let a = TestServer::start_with(Backend::Postgres, long_lease).await;
    let b = a.join(long_lease).await;
    let project = a.project("two-instances").await;
    let mut client = streams_client(&a).await;
    let receiver = Receiver::default();
    let (url, _serving) = receiver.start().await;
    create(&mut client, "shared", &format!("{url}/in"), pb::AuditStreamFailureMode::Drop).await;
    eventually(Duration::from_secs(10), "the creation entry", || !receiver.ids("/in").is_empty()).await;
    for (round, server) in [&a, &b, &a, &b, &b, &a].into_iter().enumerate() {
        let before = receiver.ids("/in").len();
        let started = Instant::now();
        activity(server, &project, 1).await;
        eventually(Duration::from_secs(10), "the entry", || receiver.ids("/in").len() > before).await;
        assert!(started.elapsed() < Duration::from_secs(2), "round {round}: {:?}", started.elapsed());
    }
}

async fn update(
    client: &mut AuditStreamsServiceClient<common::Authed>,
    id: &str,
    mask: &str,
    name: &str,
    url: Option<&str>,
) -> pb::AuditStream {
    let provider = url.map(|url| {
        pb::update_audit_stream_request::Provider::Custom(pb::CustomProvider {
            url: url.into(),
            batch: true,
            ..Default::default()
        })
    });
    let request = pb::UpdateAuditStreamRequest {
        audit_stream_id: id.into(),
        name: name.into(),
        update_mask: Some(prost_types::FieldMask { paths: vec![mask.into()] }),
        provider,
        ..Default::default()
    };
    client.update_audit_stream(request).await.unwrap().into_inner().audit_stream.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pointing_a_paused_stream_elsewhere_delivers_at_once() {
    // A 10 s cap: a paused stream retries every 10 s, so without the early attempt the batch would wait up to
    // 10 s after the update.
    let server = TestServer::start_with(Backend::Sqlite, |c| {
        outage_tolerant(c);
        c.stream_retry_cap = Duration::from_secs(10);
    })
    .await;
    let project = server.project("moving").await;
    let mut client = streams_client(&server).await;
    let (down, up) = (Receiver::default(), Receiver::default());
    let ((down_url, _down), (up_url, _up)) = (down.start().await, up.start().await);
    let stream = create(&mut client, "moving", &format!("{down_url}/in"), pb::AuditStreamFailureMode::Pause).await;
    eventually(Duration::from_secs(10), "the creation entry", || !down.ids("/in").is_empty()).await;
    down.outage(Duration::from_secs(600));
    activity(&server, &project, 1).await;
    let mut s = status(&mut client, &stream.id).await;
    while !s.paused {
        tokio::time::sleep(Duration::from_millis(50)).await;
        s = status(&mut client, &stream.id).await;
    }
    // Paused: its next attempt is 10 s away.
    let moved = Instant::now();
    update(&mut client, &stream.id, "custom", "", Some(&format!("{up_url}/in"))).await;
    eventually(Duration::from_secs(10), "the batch at the new destination", || !up.ids("/in").is_empty()).await;
    assert!(moved.elapsed() < Duration::from_secs(2), "delivered {:?} after the update", moved.elapsed());
    assert_eq!(status(&mut client, &stream.id).await.dropped_batches, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_stream_switched_to_drop_is_not_paused_any_more() {
    let OneStream { server, project, mut client, receiver, stream, .. } =
        OneStream::start("switched", pb::AuditStreamFailureMode::Pause).await;
    receiver.outage(Duration::from_secs(600));
    activity(&server, &project, 1).await;
    let mut s = status(&mut client, &stream.id).await;
    while !s.paused {
        tokio::time::sleep(Duration::from_millis(50)).await;
        s = status(&mut client, &stream.id).await;
    }
    let request = pb::UpdateAuditStreamRequest {
        audit_stream_id: stream.id.clone(),
        update_mask: Some(prost_types::FieldMask { paths: vec!["on_failure".into()] }),
        on_failure: pb::AuditStreamFailureMode::Drop.into(),
        ..Default::default()
    };
    let switched = client.update_audit_stream(request).await.unwrap().into_inner().audit_stream.unwrap();
    assert_eq!(switched.on_failure, pb::AuditStreamFailureMode::Drop as i32);
    let s = status(&mut client, &stream.id).await;
    assert!(!s.paused && s.pause_time.is_none(), "{s:?}");
    assert_eq!(metric(&server, "hush_audit_stream_paused", &stream.id).await, 0.0);
    // The held batch is given up at once (the edit's attempt fails too), as a dropping stream would.
    let mut s = status(&mut client, &stream.id).await;
    for _ in 0..100 {
        if s.dropped_batches > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        s = status(&mut client, &stream.id).await;
    }
    assert_eq!(s.dropped_batches, 1, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_during_an_outage_do_not_hasten_the_drop() {
    let OneStream { server, project, mut client, receiver, stream, before, .. } =
        OneStream::start("edited", pb::AuditStreamFailureMode::Drop).await;
    receiver.outage(Duration::from_secs(2));
    activity(&server, &project, 1).await;
    // Every edit makes an attempt at once; none of them may count towards the five that drop the batch.
    let started = Instant::now();
    for i in 0.. {
        if started.elapsed() > Duration::from_millis(2500) {
            break;
        }
        update(&mut client, &stream.id, "name", &format!("edited-{i}"), None).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eventually(Duration::from_secs(10), "the entry after the outage", || receiver.ids("/in").len() > before).await;
    let s = status(&mut client, &stream.id).await;
    assert_eq!(s.dropped_batches, 0, "{s:?}");
    assert!(s.attempts >= 10, "the edits made attempts: {s:?}");
}

//! A subscriber that stops reading must not slow anyone else down. In a test binary of its own, so that the
//! timing is not disturbed by other tests running alongside.

mod common;

use std::time::{Duration, Instant};

use common::{
    Backend, TestServer, create_secret,
    events::{flood_batch, keys, next_event, subscribe, triple},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscriber_does_not_delay_a_fast_one() {
    let server = TestServer::start(Backend::Sqlite).await;
    let project = server.project("slow").await;
    let token = server.admin_token().await;
    let mut secrets = server.admin_secrets().await;
    // Subscribed, never read: its HTTP/2 window and queue fill up.
    let _slow = subscribe(&server, &token, &project, vec![], None).await.unwrap();
    let mut fast = subscribe(&server, &token, &project, vec![], None).await.unwrap();
    for n in 0..60 {
        secrets.batch_create_secrets(flood_batch(&project, n)).await.unwrap();
        next_event(&mut fast).await;
    }
    let mut worst = Duration::ZERO;
    for i in 0..20 {
        create_secret(&mut secrets, &project, "dev", "/probe", &format!("P{i}"), "v").await;
        let written = Instant::now();
        let event = next_event(&mut fast).await;
        assert_eq!(keys(&event), vec![triple("dev", "/probe", &format!("P{i}"))]);
        worst = worst.max(written.elapsed());
    }
    assert!(worst < Duration::from_millis(100), "fast subscriber delayed by {worst:?}");
}

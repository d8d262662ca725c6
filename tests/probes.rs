//! `GET /healthz` and `GET /readyz` as a load balancer uses them, including a database that goes away and
//! comes back (a TCP proxy in front of PostgreSQL that the test stops and restarts).

mod common;

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use common::{Backend, PG_URL_VAR, TestServer, http1};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::Value;
use tokio::{net::TcpListener, task::JoinSet};

backend_tests!(probes_answer_200_when_ready, readyz_notices_data_sealed_with_another_root_key);

async fn probe(addr: SocketAddr, path: &str) -> (u16, Value) {
    let (status, body) = http1::exchange(addr, "GET", path, &[], "").await;
    (status.as_u16(), serde_json::from_str(&body).unwrap_or_else(|_| panic!("JSON from {path}: {body}")))
}

async fn probes_answer_200_when_ready(backend: Backend) {
    let server = TestServer::start(backend).await;
    assert_eq!(probe(server.addr, "/healthz").await, (200, serde_json::json!({"status": "alive"})));
    let (status, body) = probe(server.addr, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    for check in ["database", "migrations", "root_key", "event_tailer"] {
        assert_eq!(body["checks"][check], "ok", "{body}");
    }
}

/// The key check is re-read on every probe: data re-sealed under another root key by another process while this
/// instance runs (here: the stored check replaced by one sealed with another key) makes it unready.
async fn readyz_notices_data_sealed_with_another_root_key(backend: Backend) {
    let server = TestServer::start(backend).await;
    assert_eq!(probe(server.addr, "/readyz").await.0, 200);
    let db = server.raw_db().await;
    let kind = db.get_database_backend();
    let sql = if backend == Backend::Sqlite {
        "UPDATE root_key_check SET sealed_check = ?"
    } else {
        "UPDATE root_key_check SET sealed_check = $1"
    };
    let other = hush::crypto::RootKey::generate().seal_check();
    db.execute_raw(Statement::from_sql_and_values(kind, sql, [other.into()])).await.unwrap();
    let (status, body) = probe(server.addr, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["checks"]["root_key"], "does not match the data", "{body}");
    assert_eq!(body["checks"]["database"], "ok", "{body}");
}

/// A TCP proxy to `upstream` on a fixed local port; stopping it closes the open connections and refuses new
/// ones, as a database host that went away.
struct Proxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    tasks: JoinSet<()>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let mut proxy = Self { addr: listener.local_addr().unwrap(), upstream, tasks: JoinSet::new() };
        proxy.serve(listener);
        proxy
    }

    fn serve(&mut self, listener: TcpListener) {
        let upstream = self.upstream;
        self.tasks.spawn(async move {
            // Connections live in this task's own set, so aborting the task drops (closes) them all.
            let mut connections = JoinSet::new();
            loop {
                let Ok((mut client, _)) = listener.accept().await else { return };
                connections.spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
    }

    fn stop(&mut self) {
        self.tasks.abort_all();
    }

    async fn restart(&mut self) {
        let _ = self.tasks.join_next().await;
        let listener = TcpListener::bind(self.addr).await.expect("rebind the proxy port");
        self.serve(listener);
    }
}

/// Polls `/readyz` until it answers `want`; every answer must come within 3 s (the checks are bounded).
async fn readyz_becomes(addr: SocketAddr, want: u16, within: Duration) -> Value {
    let start = Instant::now();
    loop {
        let asked = Instant::now();
        let (status, body) = probe(addr, "/readyz").await;
        assert!(asked.elapsed() < Duration::from_secs(3), "/readyz took {:?}", asked.elapsed());
        if status == want {
            return body;
        }
        assert!(start.elapsed() < within, "/readyz still {status} after {within:?}: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_while_postgres_is_unreachable() {
    let Ok(pg) = std::env::var(PG_URL_VAR) else {
        eprintln!("{PG_URL_VAR} unset: not run");
        return;
    };
    let pg = url::Url::parse(&pg).expect("PostgreSQL URL");
    let host = pg.host_str().expect("host");
    let upstream = tokio::net::lookup_host((host, pg.port().unwrap_or(5432))).await.unwrap().next().unwrap();
    let mut proxy = Proxy::start(upstream).await;
    let proxy_port = proxy.addr.port();
    let server = TestServer::start_with(Backend::Postgres, |config| {
        let mut url = url::Url::parse(config.storage.database_url.as_deref().unwrap()).unwrap();
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(proxy_port)).unwrap();
        config.storage.database_url = Some(url.to_string());
    })
    .await;
    readyz_becomes(server.addr, 200, Duration::from_secs(5)).await;

    proxy.stop();
    let stopped = Instant::now();
    let body = readyz_becomes(server.addr, 503, Duration::from_secs(10)).await;
    eprintln!("/readyz answered 503 {:?} after the database went away", stopped.elapsed());
    assert_eq!(body["status"], "unready", "{body}");
    assert_ne!(body["checks"]["database"], "ok", "{body}");
    assert_eq!(probe(server.addr, "/healthz").await.0, 200, "alive while the database is away");

    proxy.restart().await;
    let restarted = Instant::now();
    let body = readyz_becomes(server.addr, 200, Duration::from_secs(20)).await;
    eprintln!("/readyz answered 200 {:?} after the database came back", restarted.elapsed());
    assert_eq!(body["checks"]["event_tailer"], "ok", "{body}");
}

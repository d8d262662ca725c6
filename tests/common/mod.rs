//! Test harness: boots the real server in-process on `127.0.0.1:0` with the same `Server` that `hush serve`
//! uses, against SQLite (a temp dir) or PostgreSQL (a fresh database per test on `HUSH_TEST_DATABASE_URL`),
//! and hands out typed clients that carry a bearer token.

#![allow(dead_code)] // Each test binary uses a different part of the harness.

pub mod cli;
pub mod deployment;
pub mod events;
pub mod members;
pub mod raw;
pub mod receiver;
pub mod serve_binary;
pub mod stored;

use std::{net::SocketAddr, time::Duration};

use hush::{
    config::ServeConfig,
    pb::{
        self, identity_service_client::IdentityServiceClient, projects_service_client::ProjectsServiceClient,
        secrets_service_client::SecretsServiceClient,
    },
    server::Server,
};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use tokio_util::sync::CancellationToken;
use tonic::{
    metadata::MetadataValue,
    service::{Interceptor, interceptor::InterceptedService},
    transport::Channel,
};

/// Environment variable naming the PostgreSQL server for the PostgreSQL variant of each test.
pub const PG_URL_VAR: &str = "HUSH_TEST_DATABASE_URL";

/// Whether PostgreSQL tests can run here ([`PG_URL_VAR`] is set); says on stderr that `what` is skipped when not.
pub fn postgres_configured(what: &str) -> bool {
    let configured = std::env::var(PG_URL_VAR).is_ok();
    if !configured {
        eprintln!("{PG_URL_VAR} unset: {what} not run");
    }
    configured
}

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each listed test body once per backend: `<name>::sqlite` and `<name>::postgres`. The PostgreSQL
/// variant passes without doing anything when `HUSH_TEST_DATABASE_URL` is unset (`.ci/run` always sets it).
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::common::Backend::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if !$crate::common::postgres_configured("PostgreSQL variant") {
                    return;
                }
                super::$name($crate::common::Backend::Postgres).await;
            }
        }
    )*};
}

/// Bootstrap credentials as written to `bootstrap.json`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Bootstrap {
    pub client_id: String,
    pub client_secret: String,
    pub org_id: String,
    pub identity_id: String,
}

/// A running server.
pub struct TestServer {
    pub addr: SocketAddr,
    pub data_dir: tempfile::TempDir,
    pub database_url: String,
    pub bootstrap: Bootstrap,
    pub backend: Backend,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// PostgreSQL database to drop afterwards: (server URL, database name).
    pg_database: Option<(String, String)>,
}

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct Bearer(MetadataValue<tonic::metadata::Ascii>);

impl Bearer {
    /// Carries `token`.
    pub fn new(token: &str) -> Self {
        Self(format!("Bearer {token}").parse().expect("ascii token"))
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        request.metadata_mut().insert("authorization", self.0.clone());
        Ok(request)
    }
}

pub type Authed = InterceptedService<Channel, Bearer>;

/// Replaces the database name in a PostgreSQL URL.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
    match query {
        Some(q) => format!("{server}/{database}?{q}"),
        None => format!("{server}/{database}"),
    }
}

pub async fn fresh_postgres_database() -> (String, String) {
    let server_url = std::env::var(PG_URL_VAR).expect("checked by the caller");
    let name = format!("hush_test_{}", uuid::Uuid::new_v4().simple());
    let admin = Database::connect(&server_url).await.expect("PostgreSQL reachable at HUSH_TEST_DATABASE_URL");
    admin.execute_unprepared(&format!("CREATE DATABASE \"{name}\"")).await.expect("create test database");
    admin.close().await.ok();
    (server_url, name)
}

/// A plain channel (no token) to the server at `url`.
pub async fn channel(url: &str) -> Channel {
    Channel::from_shared(url.to_owned()).unwrap().connect().await.expect("connect")
}

/// Calls Login on the server at `url`.
pub async fn login(url: &str, client_id: &str, client_secret: &str) -> Result<pb::LoginResponse, tonic::Status> {
    let mut client = IdentityServiceClient::new(channel(url).await);
    let request = pb::LoginRequest { client_id: client_id.into(), client_secret: client_secret.into() };
    client.login(request).await.map(tonic::Response::into_inner)
}

/// A channel to the server at `url` carrying `token`.
pub async fn authed(url: &str, token: &str) -> Authed {
    InterceptedService::new(channel(url).await, Bearer::new(token))
}

/// Creates a project over `channel` and returns its id.
pub async fn create_project(channel: Authed, name: &str) -> String {
    let mut projects = ProjectsServiceClient::new(channel);
    let response = projects.create_project(pb::CreateProjectRequest { name: name.into() }).await;
    response.expect("create project").into_inner().project.expect("project").id
}

impl TestServer {
    /// Starts a server on `backend` with default settings.
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, |_| {}).await
    }

    /// Starts a server on `backend`, letting the test adjust the settings first.
    pub async fn start_with(backend: Backend, adjust: impl FnOnce(&mut ServeConfig)) -> Self {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut config = ServeConfig::with_data_dir(data_dir.path().to_path_buf());
        let pg_database = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let (server_url, name) = fresh_postgres_database().await;
                config.storage.database_url = Some(with_database(&server_url, &name));
                Some((server_url, name))
            }
        };
        adjust(&mut config);
        let database_url = config.storage.database_url();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let server = Server::prepare(config).await.expect("server prepares");
        let bootstrap_path = server.bootstrap_file.clone().expect("a fresh database bootstraps");
        let bootstrap = serde_json::from_slice(&std::fs::read(bootstrap_path).expect("bootstrap.json")).expect("json");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(server.serve(listener, shutdown.clone()));
        Self { addr, data_dir, database_url, bootstrap, backend, shutdown, task: Some(task), pg_database }
    }

    /// A second instance on the same database and root key (for multi-instance tests on PostgreSQL).
    pub async fn join(&self, adjust: impl FnOnce(&mut ServeConfig)) -> TestServer {
        let root_key = std::fs::read_to_string(self.data_dir.path().join("root.key")).expect("root key");
        Self::open(self.backend, &self.database_url, &root_key, self.bootstrap.clone(), adjust).await
    }

    /// A server on a database that is bootstrapped already (another instance's, or a fixture's), with the
    /// root key that opens it and the bootstrap admin's credentials.
    pub async fn open(
        backend: Backend,
        database_url: &str,
        root_key: &str,
        bootstrap: Bootstrap,
        adjust: impl FnOnce(&mut ServeConfig),
    ) -> TestServer {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut config = ServeConfig::with_data_dir(data_dir.path().to_path_buf());
        config.storage.database_url = Some(database_url.to_owned());
        config.key.root_key = Some(root_key.to_owned());
        adjust(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let server = Server::prepare(config).await.expect("the server prepares on the existing database");
        assert!(server.bootstrap_file.is_none(), "the database is bootstrapped already");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(server.serve(listener, shutdown.clone()));
        TestServer {
            addr,
            data_dir,
            database_url: database_url.to_owned(),
            bootstrap,
            backend,
            shutdown,
            task: Some(task),
            pg_database: None,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A plain channel (no token).
    pub async fn channel(&self) -> Channel {
        channel(&self.url()).await
    }

    /// Logs in with the bootstrap admin's credentials and returns the token.
    pub async fn admin_token(&self) -> String {
        self.login(&self.bootstrap.client_id, &self.bootstrap.client_secret).await.expect("admin login").access_token
    }

    /// Calls Login.
    pub async fn login(&self, client_id: &str, client_secret: &str) -> Result<pb::LoginResponse, tonic::Status> {
        login(&self.url(), client_id, client_secret).await
    }

    /// A channel carrying `token`.
    pub async fn authed(&self, token: &str) -> Authed {
        authed(&self.url(), token).await
    }

    /// SecretsService client as the bootstrap admin.
    pub async fn admin_secrets(&self) -> SecretsServiceClient<Authed> {
        SecretsServiceClient::new(self.authed(&self.admin_token().await).await)
    }

    /// ProjectsService client as the bootstrap admin.
    pub async fn admin_projects(&self) -> ProjectsServiceClient<Authed> {
        ProjectsServiceClient::new(self.authed(&self.admin_token().await).await)
    }

    /// Creates a project as the admin and returns its id.
    pub async fn project(&self, name: &str) -> String {
        create_project(self.authed(&self.admin_token().await).await, name).await
    }

    /// A direct connection to the server's database, for tests that inspect or damage stored rows.
    pub async fn raw_db(&self) -> DatabaseConnection {
        Database::connect(&self.database_url).await.expect("raw database connection")
    }

    /// Stops the server and waits for it to finish.
    pub async fn stop(mut self) {
        self.halt().await;
    }

    /// Stops serving but keeps the database (other instances may still use it).
    pub async fn halt(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some((server_url, name)) = self.pg_database.take() {
            drop_postgres_database(server_url, name);
        }
    }
}

/// An empty database of a test's own: a file in a temp dir, or a fresh PostgreSQL database dropped afterwards.
pub struct ScratchDatabase {
    pub url: String,
    pub dir: tempfile::TempDir,
    pg_database: Option<(String, String)>,
}

impl ScratchDatabase {
    pub async fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        match backend {
            Backend::Sqlite => {
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("hush.db").display());
                Self { url, dir, pg_database: None }
            }
            Backend::Postgres => {
                let (server_url, name) = fresh_postgres_database().await;
                Self { url: with_database(&server_url, &name), dir, pg_database: Some((server_url, name)) }
            }
        }
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        if let Some((server_url, name)) = self.pg_database.take() {
            drop_postgres_database(server_url, name);
        }
    }
}

/// Drops a test's PostgreSQL database, from a `Drop` impl: drop runs inside the test's runtime, which cannot
/// block on itself, so this uses a thread with its own.
pub fn drop_postgres_database(server_url: String, name: String) {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            if let Ok(admin) = Database::connect(&server_url).await {
                let _ = admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await;
            }
        });
    })
    .join()
    .ok();
}

/// Creates a secret as the given client; panics on failure.
pub async fn create_secret(
    client: &mut SecretsServiceClient<Authed>,
    project_id: &str,
    environment: &str,
    path: &str,
    key: &str,
    value: &str,
) -> pb::Secret {
    let request = pb::CreateSecretRequest {
        project_id: project_id.into(),
        environment: environment.into(),
        secret_path: path.into(),
        key: key.into(),
        value: value.into(),
        comment: String::new(),
    };
    client.create_secret(request).await.expect("create secret").into_inner().secret.expect("secret")
}

/// Reads a secret's current value (no imports).
pub async fn get_secret(
    client: &mut SecretsServiceClient<Authed>,
    project_id: &str,
    environment: &str,
    path: &str,
    key: &str,
) -> Result<pb::Secret, tonic::Status> {
    let request = pb::GetSecretRequest {
        project_id: project_id.into(),
        environment: environment.into(),
        secret_path: path.into(),
        key: key.into(),
        include_imports: false,
        version: 0,
    };
    client.get_secret(request).await.map(|r| r.into_inner().secret.expect("secret"))
}

/// Lists a folder's secrets as `(key, value)` pairs.
pub async fn list_secrets(
    client: &mut SecretsServiceClient<Authed>,
    project_id: &str,
    environment: &str,
    path: &str,
    include_imports: bool,
) -> Result<Vec<(String, String)>, tonic::Status> {
    let request = pb::ListSecretsRequest {
        project_id: project_id.into(),
        environment: environment.into(),
        secret_path: path.into(),
        include_imports,
        recursive: false,
        ..Default::default()
    };
    let secrets = client.list_secrets(request).await?.into_inner().secrets;
    Ok(secrets.into_iter().map(|s| (s.key, s.value)).collect())
}

/// A plain HTTP/1.1 exchange with the server, as curl would do it.
/// A counter or gauge from `/metrics` (the test is a loopback peer).
pub async fn metric(server: &TestServer, name: &str) -> u64 {
    let (status, text) = http1::exchange(server.addr, "GET", "/metrics", &[], "").await;
    assert_eq!(status, 200);
    let line = text.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} in\n{text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

pub mod http1 {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper::body::Incoming;

    /// Sends `method path` with `headers` and `body`; returns the response with its body still streaming.
    pub async fn send(
        addr: std::net::SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> http::Response<Incoming> {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.expect("handshake");
        tokio::spawn(connection);
        let mut request = http::Request::builder().method(method).uri(path).header("host", addr.to_string());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(Bytes::from(body.to_owned()))).expect("request");
        sender.send_request(request).await.expect("response")
    }

    /// Sends a request and reads the whole answer as (status, body text).
    pub async fn exchange(
        addr: std::net::SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (http::StatusCode, String) {
        let response = send(addr, method, path, headers, body).await;
        let status = response.status();
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        (status, String::from_utf8(bytes.to_vec()).expect("utf-8 body"))
    }

    /// Reads server-sent events off a streaming response: each item is the event's fields
    /// (`id`, `event`, `data`, or `:` for a comment).
    pub struct SseReader {
        body: Incoming,
        buffer: String,
    }

    impl SseReader {
        pub fn new(response: http::Response<Incoming>) -> Self {
            Self { body: response.into_body(), buffer: String::new() }
        }

        /// The next event block; None when the stream ends.
        pub async fn next(&mut self) -> Option<Vec<(String, String)>> {
            loop {
                if let Some(end) = self.buffer.find("\n\n") {
                    let block: String = self.buffer.drain(..end + 2).collect();
                    let fields = block
                        .lines()
                        .filter(|l| !l.is_empty())
                        .map(|line| match line.strip_prefix(':') {
                            Some(comment) => (":".to_owned(), comment.trim().to_owned()),
                            None => {
                                let (name, value) = line.split_once(':').unwrap_or((line, ""));
                                (name.to_owned(), value.strip_prefix(' ').unwrap_or(value).to_owned())
                            }
                        })
                        .collect();
                    return Some(fields);
                }
                let frame = self.body.frame().await?.ok()?;
                if let Ok(data) = frame.into_data() {
                    self.buffer.push_str(&String::from_utf8_lossy(&data));
                }
            }
        }

        /// The next block that carries `data`, skipping comments (heartbeats); panics after 5 s.
        pub async fn next_data(&mut self) -> Vec<(String, String)> {
            let deadline = std::time::Duration::from_secs(5);
            loop {
                let block = tokio::time::timeout(deadline, self.next()).await.expect("an SSE event within 5 s");
                let block = block.expect("stream open");
                if block.iter().any(|(name, _)| name == "data") {
                    return block;
                }
            }
        }
    }

    /// The value of `field` in an SSE block.
    pub fn field<'a>(block: &'a [(String, String)], field: &str) -> Option<&'a str> {
        block.iter().find(|(name, _)| name == field).map(|(_, value)| value.as_str())
    }
}

/// Every audit entry `filter` selects, through ExportAuditLogs.
pub async fn all_entries(server: &TestServer, token: &str, filter: pb::AuditLogFilter) -> Vec<pb::AuditLog> {
    export_entries(server.authed(token).await, filter).await
}

/// Every audit entry `filter` selects, through ExportAuditLogs on `channel`.
pub async fn export_entries(channel: Authed, filter: pb::AuditLogFilter) -> Vec<pb::AuditLog> {
    let mut client = hush::pb::audit_logs_service_client::AuditLogsServiceClient::new(channel);
    let mut stream =
        client.export_audit_logs(pb::ExportAuditLogsRequest { filter: Some(filter) }).await.unwrap().into_inner();
    let mut entries = Vec::new();
    while let Some(chunk) = stream.message().await.unwrap() {
        entries.extend(chunk.audit_logs);
    }
    entries
}

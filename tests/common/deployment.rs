//! A data dir (and, on PostgreSQL, a database) that outlives the `hush` processes run on it: servers started
//! and stopped with different root keys, `hush keys rotate`, `hush backup` and `hush restore`, as an operator
//! runs them.

use std::{net::SocketAddr, path::Path, process::ExitStatus, time::Duration};

use hush::pb::{
    self, identity_service_client::IdentityServiceClient, projects_service_client::ProjectsServiceClient,
    secrets_service_client::SecretsServiceClient,
};
use tokio::process::Command;
use tonic::{service::interceptor::InterceptedService, transport::Channel};

use super::{Authed, Backend, Bearer, Bootstrap, cli::HUSH, serve_binary::Collected};

/// Settings a developer's environment might hold; every run here passes what it needs explicitly.
const SERVER_ENV: [&str; 8] = [
    "HUSH_ROOT_KEY",
    "HUSH_ROOT_KEY_COMMAND",
    "HUSH_DATA_DIR",
    "HUSH_DATABASE_URL",
    "HUSH_LISTEN",
    "HUSH_LOG",
    "RUST_LOG",
    "HUSH_LOG_FORMAT",
];

/// One hush installation's data.
pub struct Deployment {
    pub dir: tempfile::TempDir,
    pub backend: Backend,
    /// Set on PostgreSQL; SQLite uses the default file in the data dir, as an operator would.
    pub database_url: Option<String>,
    pg_database: Option<(String, String)>,
}

/// What a command printed.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// A `hush serve` that exited before it listened.
#[derive(Debug)]
pub struct Refused {
    pub status: ExitStatus,
    pub stderr: String,
    /// Whether a TCP connection to its port succeeded while it was starting.
    pub accepted_a_connection: bool,
}

/// A listening `hush serve`; killed when dropped.
pub struct Served {
    pub addr: SocketAddr,
    pub process: Collected,
}

impl Deployment {
    /// An empty data dir (and database) on `backend`.
    pub async fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let (database_url, pg_database) = match backend {
            Backend::Sqlite => (None, None),
            Backend::Postgres => {
                let (server, name) = super::fresh_postgres_database().await;
                (Some(super::with_database(&server, &name)), Some((server, name)))
            }
        };
        Self { dir, backend, database_url, pg_database }
    }

    /// The data dir.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `hush <args>` with `--data-dir` (and `--database-url` on PostgreSQL) of this deployment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(HUSH);
        for name in SERVER_ENV {
            command.env_remove(name);
        }
        command.args(args).arg("--data-dir").arg(self.path());
        if let Some(url) = &self.database_url {
            command.args(["--database-url", url]);
        }
        command
    }

    /// Runs `hush <args>` on this deployment to its end.
    pub async fn run(&self, args: &[&str]) -> Output {
        let output = self.command(args).output().await.expect("run hush");
        Output {
            status: output.status,
            stdout: String::from_utf8(output.stdout).expect("utf-8 stdout"),
            stderr: String::from_utf8(output.stderr).expect("utf-8 stderr"),
        }
    }

    /// Starts `hush serve <args>` on a free loopback port, connecting to the port all the while it starts: Ok
    /// once it listens, Err when it exits first.
    pub async fn serve(&self, args: &[&str]) -> Result<Served, Refused> {
        self.serve_with_env(args, &[]).await
    }

    /// `serve` with extra environment variables.
    pub async fn serve_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Result<Served, Refused> {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let listen = format!("127.0.0.1:{port}");
        let mut command = self.command(&["serve", "--listen", &listen]);
        command.args(args).envs(env.iter().copied());
        let mut process = Collected::spawn(command);
        let prober = tokio::spawn(async move {
            let mut accepted = false;
            for _ in 0..3000 {
                accepted |= tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            accepted
        });
        match process.listening().await {
            Ok(addr) => {
                prober.abort();
                Ok(Served { addr, process })
            }
            Err(status) => {
                prober.abort();
                // Whether the port accepted anything while the process lived.
                let accepted_a_connection = prober.await.unwrap_or(false);
                Err(Refused { status, stderr: process.lines().join("\n"), accepted_a_connection })
            }
        }
    }

    /// `serve` that must succeed.
    pub async fn serve_ok(&self, args: &[&str]) -> Served {
        self.serve(args).await.unwrap_or_else(|refused| panic!("hush serve {args:?} was refused: {refused:#?}"))
    }

    /// `serve` that must be refused.
    pub async fn serve_refused(&self, args: &[&str]) -> Refused {
        match self.serve(args).await {
            Ok(served) => panic!("hush serve {args:?} started: {:#?}", served.process.lines()),
            Err(refused) => refused,
        }
    }

    /// The data dir's `root.key`, if there is one.
    pub fn key_file(&self) -> Option<String> {
        std::fs::read_to_string(self.path().join("root.key")).ok()
    }

    /// The bootstrap credentials of the first start.
    pub fn bootstrap(&self) -> Bootstrap {
        let text = std::fs::read(self.path().join("bootstrap.json")).expect("bootstrap.json");
        serde_json::from_slice(&text).expect("bootstrap JSON")
    }

    /// A direct connection to the database, for tests that inspect or damage stored rows.
    pub async fn raw_db(&self) -> sea_orm::DatabaseConnection {
        let url =
            self.database_url.clone().unwrap_or_else(|| format!("sqlite://{}", self.path().join("hush.db").display()));
        sea_orm::Database::connect(url).await.expect("raw database connection")
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        if let Some((server_url, name)) = self.pg_database.take() {
            super::drop_postgres_database(server_url, name);
        }
    }
}

impl Served {
    /// A channel to the server.
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr)).unwrap().connect().await.expect("connect")
    }

    /// A channel carrying the bootstrap admin's token.
    pub async fn admin(&self, bootstrap: &Bootstrap) -> Authed {
        let mut identity = IdentityServiceClient::new(self.channel().await);
        let login =
            pb::LoginRequest { client_id: bootstrap.client_id.clone(), client_secret: bootstrap.client_secret.clone() };
        let token = identity.login(login).await.expect("admin login").into_inner().access_token;
        InterceptedService::new(self.channel().await, Bearer::new(&token))
    }

    /// Secrets and projects clients as the bootstrap admin.
    pub async fn admin_clients(
        &self,
        bootstrap: &Bootstrap,
    ) -> (SecretsServiceClient<Authed>, ProjectsServiceClient<Authed>) {
        let channel = self.admin(bootstrap).await;
        (SecretsServiceClient::new(channel.clone()), ProjectsServiceClient::new(channel))
    }

    /// Stops the server (SIGKILL: nothing depends on a graceful stop here).
    pub async fn stop(mut self) {
        self.process.kill().await;
    }
}

//! The real `hush serve` binary in a child process, with its stderr collected line by line, for tests of
//! what an operator sees in the logs.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

use super::{Backend, cli::HUSH};

/// A running `hush serve`; killed when dropped.
pub struct ServeProcess {
    pub addr: SocketAddr,
    pub data_dir: tempfile::TempDir,
    pub database_url: String,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl ServeProcess {
    /// Starts `hush serve` on a free loopback port with a fresh database on `backend`.
    pub async fn start(backend: Backend) -> Self {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let database_url = match backend {
            Backend::Sqlite => format!("sqlite://{}?mode=rwc", data_dir.path().join("hush.db").display()),
            Backend::Postgres => {
                let (server, name) = super::fresh_postgres_database().await;
                super::with_database(&server, &name)
            }
        };
        Self::spawn(data_dir, database_url).await
    }

    /// Kills the process with SIGKILL (no shutdown of any kind) and starts a new one on the same data dir and
    /// database, as after a crash.
    pub async fn crash_and_restart(mut self) -> Self {
        self.child.kill().await.expect("SIGKILL hush serve");
        Self::spawn(self.data_dir, self.database_url).await
    }

    async fn spawn(data_dir: tempfile::TempDir, database_url: String) -> Self {
        let mut child = Command::new(HUSH)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir.path())
            .env("HUSH_DATABASE_URL", &database_url)
            .env_remove("HUSH_LOG")
            .env_remove("RUST_LOG")
            .env_remove("HUSH_LOG_FORMAT")
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn hush serve");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let mut reader = BufReader::new(child.stderr.take().expect("piped stderr")).lines();
        let collected = lines.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = reader.next_line().await {
                collected.lock().unwrap().push(line);
            }
        });
        let mut process = Self { addr: "127.0.0.1:0".parse().unwrap(), data_dir, database_url, child, lines };
        let listening = process.wait_for_line(|l| l.contains("hush is listening"), Duration::from_secs(30)).await;
        let fields = listening.split("address=").nth(1).expect("the listening line names the address");
        let address = fields.split_whitespace().next().unwrap_or_default();
        process.addr = address.parse().unwrap_or_else(|e| panic!("a socket address in {listening:?}: {e}"));
        process
    }

    /// Every stderr line so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// The first line matching `wanted`, waiting up to `within`.
    pub async fn wait_for_line(&self, wanted: impl Fn(&str) -> bool, within: Duration) -> String {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(line) = self.lines().into_iter().find(|l| wanted(l)) {
                return line;
            }
            assert!(tokio::time::Instant::now() < deadline, "no such line within {within:?}: {:#?}", self.lines());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The bootstrap credentials the first start wrote.
    pub fn bootstrap(&self) -> super::Bootstrap {
        let text = std::fs::read(self.data_dir.path().join("bootstrap.json")).expect("bootstrap.json");
        serde_json::from_slice(&text).expect("bootstrap JSON")
    }

    /// The server's URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the process.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

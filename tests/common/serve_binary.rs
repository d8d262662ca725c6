//! The real `hush serve` binary in a child process, with its stderr collected line by line, for tests of
//! what an operator sees in the logs.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

use super::{Backend, cli::HUSH};

/// A `hush` child process whose stderr is collected line by line; killed when dropped.
pub struct Collected {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    /// Set to stop reading stderr, as a stalled log collector would, keeping the pipe open.
    stalled: Arc<AtomicBool>,
}

impl Collected {
    /// Spawns `command` with stderr piped and collected, stdout discarded.
    pub fn spawn(mut command: Command) -> Self {
        let mut child = command
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn hush");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let mut reader = BufReader::new(child.stderr.take().expect("piped stderr")).lines();
        let (collected, stalled) = (lines.clone(), Arc::new(AtomicBool::new(false)));
        let stop = stalled.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = reader.next_line().await {
                collected.lock().unwrap().push(line);
                if stop.load(Ordering::SeqCst) {
                    // Holds the pipe open without reading it, until the test ends.
                    std::future::pending::<()>().await;
                }
            }
        });
        Self { child, lines, stalled }
    }

    /// Stops reading stderr (after at most one more line) and keeps the pipe open: a stalled log collector.
    pub fn stall_reading(&self) {
        self.stalled.store(true, Ordering::SeqCst);
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

    /// The address `hush serve` logged it listens on, or its exit status if it ended first (within 30 s).
    pub async fn listening(&mut self) -> Result<SocketAddr, std::process::ExitStatus> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(line) = self.lines().into_iter().find(|l| l.contains("hush is listening")) {
                let fields = line.split("address=").nth(1).expect("the listening line names the address");
                let address = fields.split_whitespace().next().unwrap_or_default();
                return Ok(address.parse().unwrap_or_else(|e| panic!("a socket address in {line:?}: {e}")));
            }
            if let Some(status) = self.child.try_wait().expect("child status") {
                // Let the reader catch the last lines.
                tokio::time::sleep(Duration::from_millis(50)).await;
                return Err(status);
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "hush serve neither listened nor exited: {:#?}",
                self.lines()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Kills the process (SIGKILL) and waits for it.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// Waits for the process to end by itself; its exit status.
    pub async fn wait(&mut self) -> std::process::ExitStatus {
        self.child.wait().await.expect("wait for hush")
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id().expect("running")
    }
}

/// A running `hush serve`; killed when dropped.
pub struct ServeProcess {
    pub addr: SocketAddr,
    pub data_dir: tempfile::TempDir,
    pub database_url: String,
    process: Collected,
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
        self.process.kill().await;
        Self::spawn(self.data_dir, self.database_url).await
    }

    async fn spawn(data_dir: tempfile::TempDir, database_url: String) -> Self {
        let mut command = Command::new(HUSH);
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir.path())
            .env("HUSH_DATABASE_URL", &database_url)
            .env_remove("HUSH_LOG")
            .env_remove("RUST_LOG")
            .env_remove("HUSH_LOG_FORMAT");
        let mut process = Collected::spawn(command);
        let addr = process.listening().await.unwrap_or_else(|status| panic!("hush serve exited with {status}"));
        Self { addr, data_dir, database_url, process }
    }

    /// Every stderr line so far.
    pub fn lines(&self) -> Vec<String> {
        self.process.lines()
    }

    /// Stops reading the server's stderr, keeping the pipe open (see [`Collected::stall_reading`]).
    pub fn stall_stderr(&self) {
        self.process.stall_reading();
    }

    /// The first line matching `wanted`, waiting up to `within`.
    pub async fn wait_for_line(&self, wanted: impl Fn(&str) -> bool, within: Duration) -> String {
        self.process.wait_for_line(wanted, within).await
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
        self.process.kill().await;
    }
}

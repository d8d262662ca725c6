//! The configuration new TLS connections get, replaced on SIGHUP and when the files change. Open connections
//! keep the configuration they were accepted with, so a reload never drops them.

use std::{
    sync::{Arc, RwLock},
    time::{Duration, SystemTime},
};

use rustls::ServerConfig;
use tokio_util::sync::CancellationToken;

use super::{TlsError, files::TlsFiles};

/// How often the certificate files are checked for changes (SIGHUP reloads at once).
pub const POLL_INTERVAL: Duration = Duration::from_secs(10);

/// The current server configuration and the files it came from.
#[derive(Clone)]
pub struct ReloadableConfig {
    files: TlsFiles,
    current: Arc<RwLock<Arc<ServerConfig>>>,
}

impl ReloadableConfig {
    /// Loads `files`; an error here stops the start.
    pub fn load(files: TlsFiles) -> Result<Self, TlsError> {
        let config = files.load()?;
        Ok(Self { files, current: Arc::new(RwLock::new(Arc::new(config))) })
    }

    /// The configuration for the next connection.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.current.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Re-reads the files; on failure the previous certificate stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = Arc::new(self.files.load()?);
        *self.current.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = config;
        Ok(())
    }

    /// Reloads on SIGHUP and when a file's modification time changes, until `stop`.
    pub fn spawn_watcher(self, stop: CancellationToken) {
        tokio::spawn(async move {
            let mut hangup = hangup_signal();
            let mut seen = self.modified();
            let mut poll = tokio::time::interval(POLL_INTERVAL);
            loop {
                let cause = tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = next_hangup(&mut hangup) => "SIGHUP",
                    _ = poll.tick() => {
                        if self.modified() == seen {
                            continue;
                        }
                        "file change"
                    }
                };
                // Read before loading, so a change made during the load is seen on the next tick.
                seen = self.modified();
                match self.reload() {
                    Ok(()) => tracing::info!(cause, cert = %self.files.cert.display(), "TLS certificate reloaded"),
                    Err(error) => tracing::error!(cause, %error, "TLS reload failed; the previous certificate stays"),
                }
            }
        });
    }

    fn modified(&self) -> Vec<Option<SystemTime>> {
        self.files.paths().map(|path| std::fs::metadata(path).and_then(|m| m.modified()).ok()).collect()
    }
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = ();

#[cfg(unix)]
fn hangup_signal() -> Hangup {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .inspect_err(|error| tracing::warn!(%error, "no SIGHUP handler; TLS files are still polled for changes"))
        .ok()
}

#[cfg(not(unix))]
fn hangup_signal() -> Hangup {}

/// Resolves on the next SIGHUP; never where there is none.
async fn next_hangup(hangup: &mut Hangup) {
    #[cfg(unix)]
    if let Some(signal) = hangup {
        signal.recv().await;
        return;
    }
    let _ = hangup;
    std::future::pending::<()>().await
}

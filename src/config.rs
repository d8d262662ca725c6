//! Server settings from flags and `HUSH_*` environment variables.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

/// Default listen address: loopback only, so a fresh start exposes nothing to the network.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default lifetime of an access token issued by Login.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(3600);
/// Default heartbeat interval of idle event streams.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(15);
/// Default retention of the event outbox.
pub const DEFAULT_EVENT_RETENTION: Duration = Duration::from_secs(24 * 3600);
/// Default cap on open event subscriptions of one identity on one server.
pub const DEFAULT_MAX_STREAMS_PER_IDENTITY: usize = 1000;
/// Default cap on open event subscriptions on one client connection.
pub const DEFAULT_MAX_STREAMS_PER_CONNECTION: usize = 200;
/// Name of the SQLite database file in the data dir.
pub const SQLITE_FILE: &str = "hush.db";

/// Whether audit entries are stored for querying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuditStorage {
    /// Kept for the retention and queryable.
    On,
    /// Stream-only: kept until every audit stream delivered them; not queryable.
    Off,
}

/// Where hush keeps its data: shared by `hush serve`, `hush keys rotate` and `hush backup`, so each finds the
/// same database the same way.
#[derive(Debug, Clone, clap::Args)]
pub struct StorageFlags {
    /// Folder for the SQLite database, the generated root key and bootstrap.json.
    #[arg(long, env = "HUSH_DATA_DIR", default_value = "./hush-data")]
    pub data_dir: PathBuf,
    /// Database URL (`postgres://…` or `sqlite://…`); default: SQLite file `<data-dir>/hush.db`.
    #[arg(long, env = "HUSH_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

impl StorageFlags {
    /// The data in `data_dir`, on the default SQLite database there.
    pub fn in_dir(data_dir: PathBuf) -> Self {
        Self { data_dir, database_url: None }
    }

    /// The database URL in effect.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}?mode=rwc", self.data_dir.join(SQLITE_FILE).display()),
        }
    }
}

/// Where the root key comes from: at most one of the two flags; with neither, the key file in the data dir
/// (`crate::keys::KeySource`). Shared by `hush serve` and `hush keys rotate`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RootKeyFlags {
    /// Root key, base64 of 32 bytes; default: `<data-dir>/root.key`, generated on first start.
    #[arg(long, env = "HUSH_ROOT_KEY", hide_env_values = true)]
    pub root_key: Option<String>,
    /// Shell command (run with `sh -c`) that prints the root key, base64 of 32 bytes, on stdout; e.g. a secret
    /// manager's CLI. Not together with `--root-key`.
    #[arg(long, env = "HUSH_ROOT_KEY_COMMAND", hide_env_values = true)]
    pub root_key_command: Option<String>,
}

/// Settings of `hush serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeConfig {
    /// Address to listen on for gRPC, grpc-web and HTTP.
    #[arg(long, env = "HUSH_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Where the data lives.
    #[command(flatten)]
    pub storage: StorageFlags,
    /// Where the root key comes from.
    #[command(flatten)]
    pub key: RootKeyFlags,
    /// Lifetime of access tokens, e.g. `1h`, `15m`, `30s`.
    #[arg(long, env = "HUSH_TOKEN_TTL", default_value = "1h", value_parser = parse_duration)]
    pub token_ttl: Duration,
    /// Idle event streams get a heartbeat this often.
    #[arg(long, env = "HUSH_HEARTBEAT_INTERVAL", default_value = "15s", value_parser = parse_duration)]
    pub heartbeat_interval: Duration,
    /// Events are kept this long for resuming streams, then pruned.
    #[arg(long, env = "HUSH_EVENT_RETENTION", default_value = "24h", value_parser = parse_duration)]
    pub event_retention: Duration,
    /// Most open event subscriptions (gRPC, grpc-web, SSE, WebSocket) of one identity on this server; beyond it
    /// Subscribe answers RESOURCE_EXHAUSTED (HTTP 429).
    #[arg(long, env = "HUSH_MAX_STREAMS_PER_IDENTITY", default_value_t = DEFAULT_MAX_STREAMS_PER_IDENTITY)]
    pub max_streams_per_identity: usize,
    /// Most open event subscriptions on one client connection (below the HTTP/2 stream limit, so that unary
    /// calls still fit next to them).
    #[arg(long, env = "HUSH_MAX_STREAMS_PER_CONNECTION", default_value_t = DEFAULT_MAX_STREAMS_PER_CONNECTION)]
    pub max_streams_per_connection: usize,
    /// Audit entries are kept this long, then pruned.
    #[arg(long, env = "HUSH_AUDIT_RETENTION", default_value = "90d", value_parser = parse_duration)]
    pub audit_retention: Duration,
    /// `on`: audit entries are kept for the retention and can be queried. `off` (stream-only mode): kept only
    /// until every audit stream delivered them, and not queryable.
    #[arg(long, env = "HUSH_AUDIT_STORAGE", value_enum, default_value = "on")]
    pub audit_storage: AuditStorage,
    /// Proxies whose `X-Forwarded-For` header is believed for client IPs (comma-separated IPs).
    #[arg(long, env = "HUSH_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Upper bound of the first retry delay of audit stream deliveries (`30s`; tests use e.g. `200ms`).
    #[arg(long, env = "HUSH_STREAM_RETRY_BASE", default_value = "30s", value_parser = parse_duration)]
    pub stream_retry_base: Duration,
    /// Upper bound of any retry delay of audit stream deliveries.
    #[arg(long, env = "HUSH_STREAM_RETRY_CAP", default_value = "240s", value_parser = parse_duration)]
    pub stream_retry_cap: Duration,
    /// How long an instance's lease on a stream lasts without renewal (takeover time after a crash).
    #[arg(long, env = "HUSH_STREAM_LEASE", default_value = "30s", value_parser = parse_duration)]
    pub stream_lease: Duration,
    /// Allow audit stream destinations on private, loopback and link-local addresses.
    #[arg(long, env = "HUSH_STREAMS_ALLOW_PRIVATE", default_value_t = false, action = clap::ArgAction::Set)]
    pub streams_allow_private: bool,
    /// How audit stream destination names are resolved; None: the system resolver. Not a flag: tests inject
    /// a resolver to make names answer the addresses they need (e.g. loopback, or a changing answer).
    #[arg(skip)]
    pub streams_lookup: Option<std::sync::Arc<dyn crate::streams::Lookup>>,
    /// Folder of the built web client (`clients/web/dist`) to serve at `/ui`; unset = no `/ui`.
    #[arg(long, env = "HUSH_UI_DIR")]
    pub ui_dir: Option<PathBuf>,
    /// Address serving `/metrics` to any peer (e.g. `0.0.0.0:9090` for a scraper elsewhere); unset: `/metrics`
    /// only on the main port, to loopback peers.
    #[arg(long, env = "HUSH_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Origins allowed to call grpc-web from a browser (comma-separated); `*` allows any.
    #[arg(long, env = "HUSH_CORS_ORIGINS", value_delimiter = ',', default_value = "*")]
    pub cors_origins: Vec<String>,
    /// Connection, message and request limits.
    #[command(flatten)]
    pub limits: crate::limits::LimitSettings,
    /// https on the listen address, and whether cleartext is allowed off loopback.
    #[command(flatten)]
    pub tls: crate::tls::TlsFlags,
}

impl ServeConfig {
    /// Settings for a server whose data lives in `data_dir`, everything else default.
    pub fn with_data_dir(data_dir: PathBuf) -> Self {
        Self {
            listen: DEFAULT_LISTEN.parse().expect("valid default address"),
            storage: StorageFlags::in_dir(data_dir),
            key: RootKeyFlags::default(),
            token_ttl: DEFAULT_TOKEN_TTL,
            heartbeat_interval: DEFAULT_HEARTBEAT,
            event_retention: DEFAULT_EVENT_RETENTION,
            max_streams_per_identity: DEFAULT_MAX_STREAMS_PER_IDENTITY,
            max_streams_per_connection: DEFAULT_MAX_STREAMS_PER_CONNECTION,
            ui_dir: None,
            audit_retention: crate::store::DEFAULT_AUDIT_RETENTION,
            trusted_proxies: Vec::new(),
            audit_storage: AuditStorage::On,
            stream_retry_base: Duration::from_secs(30),
            stream_retry_cap: Duration::from_secs(240),
            stream_lease: Duration::from_secs(30),
            streams_allow_private: false,
            streams_lookup: None,
            cors_origins: vec!["*".into()],
            metrics_listen: None,
            limits: crate::limits::LimitSettings::default(),
            tls: crate::tls::TlsFlags::default(),
        }
    }
}

/// Parses durations written as a number and a unit: `250ms`, `30s`, `15m`, `1h`, `2d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| format!("'{text}' is not a duration like 250ms, 30s, 15m, 1h or 2d"))?;
    let unit_ms: u64 = match unit {
        "ms" => 1,
        "s" | "" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => {
            return Err(format!("'{text}' has unknown unit '{unit}' (use ms, s, m, h or d)"));
        }
    };
    n.checked_mul(unit_ms).map(Duration::from_millis).ok_or_else(|| format!("'{text}' is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("200ms"), Ok(Duration::from_millis(200)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert!(parse_duration("1y").is_err());
        assert!(parse_duration("h").is_err());
    }
}

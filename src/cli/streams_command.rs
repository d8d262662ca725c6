//! `hush streams create|list|status|test|backfill|delete`: audit streams, the destinations (a custom HTTPS
//! endpoint, Datadog, Splunk, Cribl or Azure Monitor) that receive every new audit log of the org.
//!
//! Credentials can come from the environment instead of the command line: `HUSH_STREAM_TOKEN` (Splunk, Cribl),
//! `HUSH_STREAM_API_KEY` (Datadog) and `HUSH_STREAM_CLIENT_SECRET` (Azure). The server never sends them back:
//! `list --output json` shows them as `[REDACTED]`.

use std::collections::HashMap;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand, ValueEnum};

use super::time_args::{parse_time, timestamp};
use super::{
    client,
    commands::{Target, rpc},
    output,
};
use crate::pb::{self, audit_streams_service_client::AuditStreamsServiceClient};

/// Environment variable with the Splunk HEC or Cribl token.
const TOKEN_ENV: &str = "HUSH_STREAM_TOKEN";
/// Environment variable with the Datadog API key.
const API_KEY_ENV: &str = "HUSH_STREAM_API_KEY";
/// Environment variable with the Azure app registration's client secret.
const CLIENT_SECRET_ENV: &str = "HUSH_STREAM_CLIENT_SECRET";

#[derive(Debug, Subcommand)]
pub enum StreamsCommand {
    /// Create a stream (after sending the destination a test event, unless --skip-test) and print its id.
    Create(Box<CreateArgs>),
    /// List the streams as `id<TAB>name<TAB>provider<TAB>on_failure`, oldest first; `--output json` shows their
    /// configuration (credentials redacted).
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Rename a stream and/or change what it does with a batch its destination keeps refusing; prints the
    /// stream's `list` line.
    Update {
        /// Stream id.
        id: String,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        /// `drop` the batch after the last retry, or `pause` and retry it until accepted.
        #[arg(long, value_enum)]
        on_failure: Option<OnFailure>,
        #[command(flatten)]
        target: Target,
    },
    /// Print a stream's delivery health as `field<TAB>value` lines (queue depth, lag, deliveries, drops, last
    /// success and error, paused).
    Status {
        /// Stream id.
        id: String,
        #[command(flatten)]
        target: Target,
    },
    /// Send a test event to a stream's destination; prints `ok <http status>` or fails with its answer.
    Test {
        /// Stream id.
        id: String,
        #[command(flatten)]
        target: Target,
    },
    /// Queue past audit logs for delivery to a stream again; prints how many were queued.
    Backfill(BackfillArgs),
    /// Delete a stream; audit logs not yet delivered to it are dropped.
    Delete {
        /// Stream id.
        id: String,
        #[command(flatten)]
        target: Target,
    },
}

/// `--on-failure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnFailure {
    Drop,
    Pause,
}

impl From<OnFailure> for pb::AuditStreamFailureMode {
    fn from(mode: OnFailure) -> Self {
        match mode {
            OnFailure::Drop => pb::AuditStreamFailureMode::Drop,
            OnFailure::Pause => pb::AuditStreamFailureMode::Pause,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Provider {
    /// Any HTTPS endpoint: --url, optional --header K=V, --single.
    Custom,
    /// Datadog logs: --site or --url, and --api-key.
    Datadog,
    /// Splunk HTTP Event Collector: --host and --token.
    Splunk,
    /// Cribl Stream HTTP source: --url and --token.
    Cribl,
    /// Azure Monitor Logs Ingestion: --tenant-id, --client-id, --client-secret, --dce-url, --dcr-id, --table.
    Azure,
}

impl Provider {
    fn name(self) -> &'static str {
        match self {
            Provider::Custom => "custom",
            Provider::Datadog => "datadog",
            Provider::Splunk => "splunk",
            Provider::Cribl => "cribl",
            Provider::Azure => "azure",
        }
    }
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Stream name, 1 to 64 characters, unique within the org.
    name: String,
    /// Kind of destination.
    #[arg(long, value_enum)]
    provider: Provider,
    /// Endpoint URL (custom, cribl), or intake URL override (datadog).
    #[arg(long)]
    url: Option<String>,
    /// Extra HTTP header sent with every request, as NAME=VALUE; repeatable (custom). Values are write-only.
    #[arg(long = "header", value_name = "NAME=VALUE", value_parser = parse_header)]
    headers: Vec<(String, String)>,
    /// Send a JSON array of logs per request (custom; the default).
    #[arg(long, conflicts_with = "single")]
    batch: bool,
    /// Send one JSON object per request, the legacy mode (custom). A stream can later move to batch, not back.
    #[arg(long)]
    single: bool,
    /// Compress request bodies with gzip (custom; the endpoint must accept `Content-Encoding: gzip`).
    #[arg(long)]
    gzip: bool,
    /// Datadog site, e.g. datadoghq.com, us3.datadoghq.com, datadoghq.eu (datadog).
    #[arg(long)]
    site: Option<String>,
    /// Datadog API key (datadog); or set HUSH_STREAM_API_KEY.
    #[arg(long)]
    api_key: Option<String>,
    /// HEC base URL, e.g. https://splunk.example.com:8088 (splunk).
    #[arg(long)]
    host: Option<String>,
    /// HEC token (splunk) or HTTP source token (cribl); or set HUSH_STREAM_TOKEN.
    #[arg(long)]
    token: Option<String>,
    /// Microsoft Entra tenant id of the app registration (azure).
    #[arg(long)]
    tenant_id: Option<String>,
    /// Client (application) id of the app registration (azure).
    #[arg(long)]
    client_id: Option<String>,
    /// Client secret of the app registration (azure); or set HUSH_STREAM_CLIENT_SECRET.
    #[arg(long)]
    client_secret: Option<String>,
    /// Data collection endpoint URL (azure).
    #[arg(long)]
    dce_url: Option<String>,
    /// Immutable id of the data collection rule, dcr-… (azure).
    #[arg(long)]
    dcr_id: Option<String>,
    /// Custom log table, e.g. HushAudit_CL (azure).
    #[arg(long)]
    table: Option<String>,
    /// Token endpoint base URL override; default https://login.microsoftonline.com (azure).
    #[arg(long)]
    login_url: Option<String>,
    /// Create the stream without first sending the destination a test event.
    #[arg(long)]
    skip_test: bool,
    /// What to do with a batch the destination still refuses after the last retry: `drop` it (recorded, and
    /// it can be backfilled) or `pause` the stream and retry it until accepted, losing nothing.
    #[arg(long, value_enum, default_value_t = OnFailure::Drop)]
    on_failure: OnFailure,
    #[command(flatten)]
    target: Target,
}

#[derive(Debug, Args)]
pub struct BackfillArgs {
    /// Stream id.
    id: String,
    /// Earliest time (inclusive): RFC 3339 (`2025-01-31T12:00:00Z`) or a duration ago (`30m`, `1h`, `7d`).
    #[arg(long, value_parser = parse_time)]
    since: DateTime<Utc>,
    /// Latest time (exclusive), in the same forms; default now.
    #[arg(long, value_parser = parse_time)]
    until: Option<DateTime<Utc>>,
    #[command(flatten)]
    target: Target,
}

/// `NAME=VALUE` → (name, value); the value may contain `=`.
fn parse_header(text: &str) -> Result<(String, String), String> {
    let (name, value) = text.split_once('=').ok_or_else(|| "expected NAME=VALUE".to_owned())?;
    let name = name.trim();
    if name.is_empty() {
        return Err("the header name before '=' is empty".into());
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// A flag's value, or the environment variable's when the flag is absent (credentials).
fn flag_or_env(flag: Option<String>, env: &str) -> Option<String> {
    flag.or_else(|| std::env::var(env).ok()).filter(|v| !v.is_empty())
}

/// Required flags of one provider that are missing, reported all at once.
struct Required {
    provider: Provider,
    missing: Vec<String>,
}

impl Required {
    fn new(provider: Provider) -> Self {
        Required { provider, missing: Vec::new() }
    }

    /// The flag's value; when absent or blank, notes the flag as missing and returns an empty string.
    fn flag(&mut self, value: Option<String>, flag: &str) -> String {
        match value.filter(|v| !v.trim().is_empty()) {
            Some(value) => value,
            None => {
                self.missing.push(flag.to_owned());
                String::new()
            }
        }
    }

    /// A credential: the flag's value, else the environment variable's.
    fn secret(&mut self, value: Option<String>, flag: &str, env: &str) -> String {
        match flag_or_env(value, env).filter(|v| !v.trim().is_empty()) {
            Some(value) => value,
            None => {
                self.missing.push(format!("{flag} (or {env} in the environment)"));
                String::new()
            }
        }
    }

    /// An error naming every missing flag, if any.
    fn check(self) -> anyhow::Result<()> {
        if self.missing.is_empty() {
            return Ok(());
        }
        anyhow::bail!("--provider {} needs {}", self.provider.name(), self.missing.join(", "))
    }
}

impl CreateArgs {
    /// Refuses flags that the chosen provider does not take, so a mistyped command does not silently ignore them.
    fn reject_foreign_flags(&self) -> anyhow::Result<()> {
        let given = [
            ("--url", self.url.is_some(), &[Provider::Custom, Provider::Datadog, Provider::Cribl][..]),
            ("--header", !self.headers.is_empty(), &[Provider::Custom]),
            ("--batch", self.batch, &[Provider::Custom]),
            ("--single", self.single, &[Provider::Custom]),
            ("--gzip", self.gzip, &[Provider::Custom]),
            ("--site", self.site.is_some(), &[Provider::Datadog]),
            ("--api-key", self.api_key.is_some(), &[Provider::Datadog]),
            ("--host", self.host.is_some(), &[Provider::Splunk]),
            ("--token", self.token.is_some(), &[Provider::Splunk, Provider::Cribl]),
            ("--tenant-id", self.tenant_id.is_some(), &[Provider::Azure]),
            ("--client-id", self.client_id.is_some(), &[Provider::Azure]),
            ("--client-secret", self.client_secret.is_some(), &[Provider::Azure]),
            ("--dce-url", self.dce_url.is_some(), &[Provider::Azure]),
            ("--dcr-id", self.dcr_id.is_some(), &[Provider::Azure]),
            ("--table", self.table.is_some(), &[Provider::Azure]),
            ("--login-url", self.login_url.is_some(), &[Provider::Azure]),
        ];
        for (flag, present, providers) in given {
            if present && !providers.contains(&self.provider) {
                let takers: Vec<&str> = providers.iter().map(|p| p.name()).collect();
                anyhow::bail!(
                    "{flag} does not apply to --provider {} (it is for {})",
                    self.provider.name(),
                    takers.join(", ")
                );
            }
        }
        Ok(())
    }

    /// The request's provider config, after checking that every required flag is there.
    fn provider(self) -> anyhow::Result<pb::create_audit_stream_request::Provider> {
        use pb::create_audit_stream_request::Provider as P;
        self.reject_foreign_flags()?;
        let mut need = Required::new(self.provider);
        let provider = match self.provider {
            Provider::Custom => {
                let url = need.flag(self.url, "--url");
                let mut headers = HashMap::new();
                for (name, value) in self.headers {
                    if headers.keys().any(|n: &String| n.eq_ignore_ascii_case(&name)) {
                        anyhow::bail!("--header {name} is given more than once");
                    }
                    headers.insert(name, value);
                }
                P::Custom(pb::CustomProvider { url, headers, batch: !self.single, gzip: self.gzip })
            }
            Provider::Datadog => {
                let site = self.site.filter(|s| !s.trim().is_empty());
                let url = self.url.filter(|u| !u.trim().is_empty());
                if site.is_none() && url.is_none() {
                    need.missing.push("--site (or --url for another intake)".into());
                }
                P::Datadog(pb::DatadogProvider {
                    site: site.unwrap_or_default(),
                    api_key: need.secret(self.api_key, "--api-key", API_KEY_ENV),
                    url: url.unwrap_or_default(),
                })
            }
            Provider::Splunk => P::Splunk(pb::SplunkProvider {
                host: need.flag(self.host, "--host"),
                token: need.secret(self.token, "--token", TOKEN_ENV),
            }),
            Provider::Cribl => P::Cribl(pb::CriblProvider {
                url: need.flag(self.url, "--url"),
                token: need.secret(self.token, "--token", TOKEN_ENV),
            }),
            Provider::Azure => P::Azure(pb::AzureProvider {
                tenant_id: need.flag(self.tenant_id, "--tenant-id"),
                client_id: need.flag(self.client_id, "--client-id"),
                client_secret: need.secret(self.client_secret, "--client-secret", CLIENT_SECRET_ENV),
                dce_url: need.flag(self.dce_url, "--dce-url"),
                dcr_immutable_id: need.flag(self.dcr_id, "--dcr-id"),
                table: need.flag(self.table, "--table"),
                login_url: self.login_url.unwrap_or_default(),
            }),
        };
        need.check()?;
        Ok(provider)
    }
}

async fn streams_client(target: &Target) -> anyhow::Result<AuditStreamsServiceClient<client::AuthedChannel>> {
    Ok(AuditStreamsServiceClient::new(client::authed(target).await?))
}

pub async fn streams(command: StreamsCommand) -> anyhow::Result<()> {
    match command {
        StreamsCommand::Create(args) => {
            let name = args.name.clone();
            let skip_test = args.skip_test;
            let on_failure = pb::AuditStreamFailureMode::from(args.on_failure).into();
            // Build (and check) the config before connecting, so flag mistakes need no server.
            let target = args.target.clone();
            let provider = args.provider()?;
            let request = pb::CreateAuditStreamRequest { name, skip_test, provider: Some(provider), on_failure };
            let response = streams_client(&target).await?.create_audit_stream(request).await.map_err(rpc)?;
            let stream = response.into_inner().audit_stream.context("server sent no stream")?;
            output::single(&stream, || stream.id.clone());
        }
        StreamsCommand::List { target } => {
            let mut client = streams_client(&target).await?;
            let mut listing = output::Listing::new(&["ID", "NAME", "PROVIDER", "ON FAILURE"]);
            let mut page_token = String::new();
            loop {
                let page = client
                    .list_audit_streams(pb::ListAuditStreamsRequest { page_size: 0, page_token })
                    .await
                    .map_err(rpc)?
                    .into_inner();
                for stream in page.audit_streams {
                    listing.item(&stream, stream_columns(&stream));
                }
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            listing.finish();
        }
        StreamsCommand::Update { id, name, on_failure, target } => {
            let mut paths = Vec::new();
            if name.is_some() {
                paths.push("name".to_owned());
            }
            if on_failure.is_some() {
                paths.push("on_failure".to_owned());
            }
            anyhow::ensure!(!paths.is_empty(), "nothing to change: give --name and/or --on-failure");
            let request = pb::UpdateAuditStreamRequest {
                audit_stream_id: id,
                name: name.unwrap_or_default(),
                update_mask: Some(prost_types::FieldMask { paths }),
                on_failure: on_failure.map_or(0, |mode| pb::AuditStreamFailureMode::from(mode).into()),
                provider: None,
            };
            let response = streams_client(&target).await?.update_audit_stream(request).await.map_err(rpc)?;
            let stream = response.into_inner().audit_stream.context("server sent no stream")?;
            output::single(&stream, || stream_columns(&stream).join("\t"));
        }
        StreamsCommand::Status { id, target } => {
            let request = pb::GetAuditStreamStatusRequest { audit_stream_id: id };
            let response = streams_client(&target).await?.get_audit_stream_status(request).await.map_err(rpc)?;
            let status = response.into_inner().status.context("server sent no status")?;
            output::single(&status, || status_text(&status));
        }
        StreamsCommand::Test { id, target } => {
            let request = pb::TestAuditStreamRequest { audit_stream_id: id };
            let answer = streams_client(&target).await?.test_audit_stream(request).await.map_err(rpc)?.into_inner();
            if answer.success {
                outln!("ok {}", answer.status_code);
            } else if answer.status_code == 0 {
                anyhow::bail!("the destination could not be reached: {}", answer.message);
            } else {
                anyhow::bail!("the destination answered {}: {}", answer.status_code, answer.message);
            }
        }
        StreamsCommand::Backfill(args) => {
            if args.until.is_some_and(|until| until <= args.since) {
                anyhow::bail!("--until must be after --since");
            }
            let request = pb::BackfillAuditStreamRequest {
                audit_stream_id: args.id,
                start_time: Some(timestamp(args.since)),
                end_time: args.until.map(timestamp),
            };
            let response = streams_client(&args.target).await?.backfill_audit_stream(request).await.map_err(rpc)?;
            let response = response.into_inner();
            output::single(&response, || response.queued_events.to_string());
        }
        StreamsCommand::Delete { id, target } => {
            let request = pb::DeleteAuditStreamRequest { audit_stream_id: id };
            streams_client(&target).await?.delete_audit_stream(request).await.map_err(rpc)?;
            eprintln!("deleted");
        }
    }
    Ok(())
}

/// A stream's line of `list` (and `update`): id, name, provider kind, failure mode.
fn stream_columns(stream: &pb::AuditStream) -> Vec<String> {
    use pb::audit_stream::Provider as P;
    let kind = match &stream.provider {
        Some(P::Custom(_)) => "custom",
        Some(P::Datadog(_)) => "datadog",
        Some(P::Splunk(_)) => "splunk",
        Some(P::Cribl(_)) => "cribl",
        Some(P::Azure(_)) => "azure",
        None => "",
    };
    vec![stream.id.clone(), stream.name.clone(), kind.to_owned(), on_failure_name(stream.on_failure).to_owned()]
}

/// A stream's status as `field<TAB>value` lines; times RFC 3339, the lag in seconds.
fn status_text(status: &pb::AuditStreamStatus) -> String {
    let time = |t: Option<prost_types::Timestamp>| match output::time(t, chrono::SecondsFormat::Millis) {
        text if text.is_empty() => "-".to_owned(),
        text => text,
    };
    let lag = status.cursor_lag.map_or(0.0, |d| d.seconds as f64 + f64::from(d.nanos) / 1e9);
    let error = if status.last_error.is_empty() { "-" } else { status.last_error.as_str() };
    [
        ("queue depth", status.queue_depth.to_string()),
        ("lag seconds", format!("{lag:.3}")),
        ("delivered events", status.delivered_events.to_string()),
        ("attempts", status.attempts.to_string()),
        ("dropped batches", status.dropped_batches.to_string()),
        ("dropped events", status.dropped_events.to_string()),
        ("last success", time(status.last_success_time)),
        ("last error", error.to_owned()),
        ("last error time", time(status.last_error_time)),
        ("paused", if status.paused { time(status.pause_time) } else { "no".to_owned() }),
    ]
    .map(|(field, value)| format!("{field}\t{value}"))
    .join("\n")
}

/// A failure mode as the CLI spells it.
fn on_failure_name(mode: i32) -> &'static str {
    match pb::AuditStreamFailureMode::try_from(mode) {
        Ok(pb::AuditStreamFailureMode::Pause) => "pause",
        _ => "drop",
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: StreamsCommand,
    }

    fn create(args: &[&str]) -> anyhow::Result<pb::create_audit_stream_request::Provider> {
        let mut argv = vec!["streams", "create"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv)?.command {
            StreamsCommand::Create(args) => args.provider(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn custom_defaults_to_batch_and_collects_headers() {
        use pb::create_audit_stream_request::Provider as P;
        let args =
            ["s", "--provider", "custom", "--url", "https://x.example/in", "--header", "a=b=c", "--header", "k=v"];
        let P::Custom(custom) = create(&args).unwrap() else { panic!() };
        assert!(custom.batch);
        assert_eq!(custom.headers["a"], "b=c");
        assert_eq!(custom.headers["k"], "v");
        let P::Custom(single) = create(&["s", "--provider", "custom", "--url", "https://x", "--single"]).unwrap()
        else {
            panic!()
        };
        assert!(!single.batch);
        assert!(create(&["s", "--provider", "custom", "--url", "https://x", "--header", "novalue"]).is_err());
    }

    #[test]
    fn missing_and_foreign_flags_are_named() {
        let err = create(&["s", "--provider", "custom"]).unwrap_err().to_string();
        assert!(err.contains("--url"), "{err}");
        let err = create(&["s", "--provider", "azure", "--tenant-id", "t"]).unwrap_err().to_string();
        for flag in ["--client-id", "--client-secret", "--dce-url", "--dcr-id", "--table"] {
            assert!(err.contains(flag), "{err}");
        }
        assert!(!err.contains("--tenant-id"), "{err}");
        let err =
            create(&["s", "--provider", "splunk", "--host", "https://h", "--api-key", "k"]).unwrap_err().to_string();
        assert!(err.contains("--api-key") && err.contains("datadog"), "{err}");
    }
}

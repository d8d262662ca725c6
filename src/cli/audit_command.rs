//! `hush audit list|export`: audit log entries. As text (the default), JSON lines in the shape of the HTTP
//! NDJSON export (`GET /api/v1/audit-logs/export`), byte for byte, so one parser reads both; with `--output
//! json` the AuditLog messages in protobuf's JSON mapping; with `--output table` a line per entry for people
//! (time, event, actor, project), printed as it arrives.

use std::io::Write;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand, ValueEnum};

use super::time_args::{parse_time, timestamp};
use super::{
    client,
    commands::{Target, rpc},
};
use crate::{
    audit::AuditRecord,
    pb::{self, audit_logs_service_client::AuditLogsServiceClient},
};

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print one page of audit logs, newest first; the next page's token (if any) goes to stderr.
    List(ListArgs),
    /// Print every matching audit log, oldest first.
    Export(ExportArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Entries on the page (1 to 1000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i32).range(1..=1000))]
    limit: i32,
    /// Token printed by a previous `hush audit list` (use the same filters).
    #[arg(long)]
    page_token: Option<String>,
    #[command(flatten)]
    filter: FilterArgs,
    #[command(flatten)]
    target: Target,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    filter: FilterArgs,
    #[command(flatten)]
    target: Target,
}

/// Filters shared by `list` and `export`; every given filter must match.
#[derive(Debug, Args)]
pub struct FilterArgs {
    /// Earliest time (inclusive): RFC 3339 (`2025-01-31T12:00:00Z`) or a duration ago (`30m`, `1h`, `7d`).
    #[arg(long, value_parser = parse_time)]
    since: Option<DateTime<Utc>>,
    /// Latest time (exclusive), in the same forms.
    #[arg(long, value_parser = parse_time)]
    until: Option<DateTime<Utc>>,
    /// Event type such as `create-secret`; repeat or separate with commas for several.
    #[arg(long = "event", value_name = "TYPE", value_delimiter = ',')]
    events: Vec<String>,
    /// The acting identity: id or name.
    #[arg(long)]
    actor: Option<String>,
    /// Kind of actor.
    #[arg(long, value_enum)]
    actor_type: Option<ActorType>,
    /// Project: id or name.
    #[arg(long, env = "HUSH_PROJECT")]
    project: Option<String>,
    /// Client kind: `cli`, `web`, `grpc-python`, `grpc-other`, `curl` or `other`.
    #[arg(long)]
    user_agent_type: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ActorType {
    Identity,
    Platform,
    #[value(name = "unknownUser")]
    UnknownUser,
}

impl FilterArgs {
    /// The wire filter; a project or actor given by name becomes its id (a name matching nothing is an error,
    /// never an empty answer).
    async fn into_pb(self, target: &Target) -> anyhow::Result<pb::AuditLogFilter> {
        let project = match self.project.as_deref().filter(|p| !p.is_empty()) {
            Some(given) => super::names::project_id(target, given).await?,
            None => String::new(),
        };
        let actor = match self.actor.as_deref().filter(|a| !a.is_empty()) {
            Some(given) => super::names::identity_id(target, given).await?,
            None => String::new(),
        };
        Ok(pb::AuditLogFilter {
            event_types: self.events.into_iter().map(|e| e.trim().to_owned()).filter(|e| !e.is_empty()).collect(),
            actor_type: match self.actor_type {
                None => pb::ActorType::Unspecified,
                Some(ActorType::Identity) => pb::ActorType::Identity,
                Some(ActorType::Platform) => pb::ActorType::Platform,
                Some(ActorType::UnknownUser) => pb::ActorType::UnknownUser,
            } as i32,
            actor_id: actor,
            project_id: project,
            user_agent_type: self.user_agent_type.unwrap_or_default(),
            start_time: self.since.map(timestamp),
            end_time: self.until.map(timestamp),
        })
    }
}

pub async fn audit(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::List(args) => {
            let mut client = AuditLogsServiceClient::new(client::authed(&args.target).await?);
            let request = pb::ListAuditLogsRequest {
                filter: Some(args.filter.into_pb(&args.target).await?),
                page_size: args.limit,
                page_token: args.page_token.unwrap_or_default(),
            };
            let page = client.list_audit_logs(request).await.map_err(rpc)?.into_inner();
            if !write_lines(page.audit_logs, &mut true)? {
                return Ok(());
            }
            if !page.next_page_token.is_empty() {
                eprintln!("next page: --page-token {}", page.next_page_token);
            }
        }
        AuditCommand::Export(args) => {
            let mut client = AuditLogsServiceClient::new(client::authed(&args.target).await?);
            let request = pb::ExportAuditLogsRequest { filter: Some(args.filter.into_pb(&args.target).await?) };
            let mut stream = client.export_audit_logs(request).await.map_err(rpc)?.into_inner();
            let mut header = true;
            while let Some(chunk) = stream.message().await.map_err(rpc)? {
                if !write_lines(chunk.audit_logs, &mut header)? {
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

/// Widths of the table's time, event and actor columns (fixed: an export is printed as it streams).
const TABLE_WIDTHS: [usize; 3] = [24, 24, 24];

/// Writes one line per log and flushes; false when stdout was closed (`| head`), which ends quietly.
fn write_lines(logs: Vec<pb::AuditLog>, header: &mut bool) -> anyhow::Result<bool> {
    use super::output::{Output, chosen, proto_json};
    let mut text = String::new();
    for log in logs {
        match chosen() {
            Output::Text => text.push_str(&json_line(log)?.to_string()),
            Output::Json => text.push_str(&proto_json(&log).to_string()),
            Output::Table => {
                let [time, event, actor] = TABLE_WIDTHS;
                if std::mem::take(header) {
                    text.push_str(&format!("{:time$}  {:event$}  {:actor$}  PROJECT\n", "TIME", "EVENT", "ACTOR"));
                }
                let at = log.create_time.map(|t| self::time("create_time", t)).transpose()?;
                let at = at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)).unwrap_or_default();
                let who = log.actor.as_ref().map_or("", |a| if a.name.is_empty() { &a.identity_id } else { &a.name });
                text.push_str(&format!("{at:time$}  {:event$}  {who:actor$}  {}", log.event_type, log.project_id));
            }
        }
        text.push('\n');
    }
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(anyhow::Error::new(e).context("writing audit logs")),
    }
}

/// One log as the HTTP export prints it.
fn json_line(log: pb::AuditLog) -> anyhow::Result<serde_json::Value> {
    let kept_forever = log.expire_time.is_none();
    let mut json = record(log)?.to_json();
    if kept_forever {
        json["expiresAt"] = serde_json::Value::Null;
    }
    Ok(json)
}

fn time(field: &str, t: prost_types::Timestamp) -> anyhow::Result<DateTime<Utc>> {
    u32::try_from(t.nanos)
        .ok()
        .and_then(|nanos| DateTime::from_timestamp(t.seconds, nanos))
        .with_context(|| format!("audit log {field} out of range"))
}

/// The wire log as the domain record whose `to_json` the HTTP export prints.
fn record(log: pb::AuditLog) -> anyhow::Result<AuditRecord> {
    let actor = log.actor.unwrap_or_default();
    let actor_type = match pb::ActorType::try_from(actor.r#type) {
        Ok(pb::ActorType::Identity) => "identity",
        Ok(pb::ActorType::Platform) => "platform",
        Ok(pb::ActorType::UnknownUser) => "unknownUser",
        Ok(pb::ActorType::Unspecified) | Err(_) => "",
    };
    Ok(AuditRecord {
        // Not on the wire, and not part of the JSON shape.
        seq: 0,
        id: log.id,
        actor_type: actor_type.into(),
        actor_id: actor.identity_id,
        actor_name: actor.name,
        ip_address: log.ip_address,
        user_agent: log.user_agent,
        user_agent_type: log.user_agent_type,
        event_type: log.event_type,
        event_metadata: log.event_metadata.map_or(serde_json::Value::Null, struct_json),
        org_id: log.org_id,
        project_id: Some(log.project_id).filter(|p| !p.is_empty()),
        created_at: time("create_time", log.create_time.context("audit log without create_time")?)?,
        // Unset means kept forever: `json_line` prints null for it.
        expires_at: log.expire_time.map(|t| time("expire_time", t)).transpose()?.unwrap_or(DateTime::<Utc>::MAX_UTC),
    })
}

/// google.protobuf.Struct → JSON object.
fn struct_json(s: prost_types::Struct) -> serde_json::Value {
    serde_json::Value::Object(s.fields.into_iter().map(|(k, v)| (k, value_json(v))).collect())
}

/// google.protobuf.Value → JSON. Struct numbers are doubles: whole ones within ±2^53 become JSON integers, as
/// the server stored them.
fn value_json(value: prost_types::Value) -> serde_json::Value {
    use prost_types::value::Kind;
    use serde_json::Value;
    match value.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(b)) => Value::Bool(b),
        Some(Kind::NumberValue(n)) => {
            const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
            if n.fract() == 0.0 && n.abs() <= EXACT {
                Value::from(n as i64)
            } else {
                serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
            }
        }
        Some(Kind::StringValue(s)) => Value::String(s),
        Some(Kind::ListValue(list)) => Value::Array(list.values.into_iter().map(value_json).collect()),
        Some(Kind::StructValue(s)) => struct_json(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_numbers_round_trip_as_integers_when_whole() {
        let json = serde_json::json!({"n": 3, "f": 1.5, "s": "x", "l": [true, null], "o": {"k": -2}});
        let pb_value = prost_types::Struct {
            fields: [
                ("n", prost_types::value::Kind::NumberValue(3.0)),
                ("f", prost_types::value::Kind::NumberValue(1.5)),
                ("s", prost_types::value::Kind::StringValue("x".into())),
                (
                    "l",
                    prost_types::value::Kind::ListValue(prost_types::ListValue {
                        values: vec![
                            prost_types::Value { kind: Some(prost_types::value::Kind::BoolValue(true)) },
                            prost_types::Value { kind: Some(prost_types::value::Kind::NullValue(0)) },
                        ],
                    }),
                ),
                (
                    "o",
                    prost_types::value::Kind::StructValue(prost_types::Struct {
                        fields: [(
                            "k".to_owned(),
                            prost_types::Value { kind: Some(prost_types::value::Kind::NumberValue(-2.0)) },
                        )]
                        .into(),
                    }),
                ),
            ]
            .into_iter()
            .map(|(k, kind)| (k.to_owned(), prost_types::Value { kind: Some(kind) }))
            .collect(),
        };
        assert_eq!(struct_json(pb_value), json);
    }
}

//! `hush events subscribe`: one CloudEvents 1.0 JSON object per line per event, like `vault events subscribe`
//! (`--output json`: the Event messages in protobuf's JSON mapping; `--output table`: time, type, keys).
//! It says on stderr when it is subscribed, follows the stream across disconnects and server restarts (resuming
//! after the last event printed: none lost, none repeated), and exits non-zero with the reason on a refusal.

use anyhow::Context;
use clap::{Args, Subcommand};

use super::{
    commands::Target,
    event_follower::{Followed, Follower},
};
use crate::{
    events::{self, Actor, EventType, ImportMutation, Payload, SecretRef, cloudevent},
    pb,
};

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Stream events as CloudEvents JSON lines until interrupted, resuming after disconnects. Heartbeats are
    /// not printed.
    Subscribe(SubscribeArgs),
}

#[derive(Debug, Args)]
pub struct SubscribeArgs {
    /// Event types: `secret:create`, `secret:update`, `secret:delete`, `secret:import-mutation`, `secret:*`.
    #[arg(required = true)]
    event_types: Vec<String>,
    /// Project id or name [default: .hush.toml's].
    #[arg(long, env = "HUSH_PROJECT", default_value = "", hide_default_value = true)]
    project: String,
    /// Only events in this environment [default: all].
    #[arg(long = "env", env = "HUSH_ENV", default_value = "", hide_default_value = true)]
    environment: String,
    /// Only events under this path glob (`/`, `/api/*`, `/**`) [default: all].
    #[arg(long, env = "HUSH_PATH", default_value = "", hide_default_value = true)]
    path: String,
    /// Replay the events after this cursor first (the `subject` of a printed event).
    #[arg(long)]
    resume_after: Option<String>,
    #[command(flatten)]
    target: Target,
}

pub async fn events(command: EventsCommand) -> anyhow::Result<()> {
    let EventsCommand::Subscribe(mut args) = command;
    let project = super::local_defaults::project(std::mem::take(&mut args.project))?;
    args.project = super::names::project_id(&args.target, &project).await?;
    let conditions = pb::EventConditions { environment_slug: args.environment, secret_path: args.path };
    let request = pb::SubscribeRequest {
        project_id: args.project,
        registrations: args
            .event_types
            .into_iter()
            .map(|event_type| pb::Registration { event_type, conditions: Some(conditions.clone()) })
            .collect(),
        resume_after: args.resume_after,
    };
    let mut follower = Follower::start(args.target, request).await?;
    loop {
        match follower.next().await {
            Ok(Followed::Event(event)) => {
                use std::io::Write;
                let event = *event;
                let line = match super::output::chosen() {
                    super::output::Output::Text => cloudevent::to_json(&domain_event(event)?).to_string(),
                    super::output::Output::Json => super::output::proto_json(&event).to_string(),
                    super::output::Output::Table => table_line(&event),
                };
                let mut out = std::io::stdout().lock();
                writeln!(out, "{line}")?;
                // Each line out at once: a consumer acts on it, and a killed process lost nothing it printed.
                out.flush()?;
            }
            Ok(Followed::Resumed) => {}
            Err(reason) => anyhow::bail!("the subscription ended: {reason}"),
        }
    }
}

/// An event for people: time, type, and the secrets it names as `env:path/KEY`.
fn table_line(event: &pb::Event) -> String {
    let time = super::output::time(event.time, chrono::SecondsFormat::Millis);
    let secrets: Vec<String> = event
        .secrets
        .iter()
        .map(|s| format!("{}:{}/{}", s.environment, s.secret_path.trim_end_matches('/'), s.secret_key))
        .collect();
    format!("{time:24}  {:24}  {}", event.r#type, secrets.join(" "))
}

/// The wire event in the domain shape that the CloudEvents framing takes.
fn domain_event(event: pb::Event) -> anyhow::Result<events::Event> {
    let time = event.time.context("event without time")?;
    let actor = event.actor.unwrap_or_default();
    Ok(events::Event {
        seq: event.cursor.parse().context("event cursor is not a number")?,
        event_type: EventType::parse(&event.r#type).with_context(|| format!("unknown event type {}", event.r#type))?,
        time: chrono::DateTime::from_timestamp(time.seconds, time.nanos as u32).context("event time out of range")?,
        payload: Payload {
            operation: event.operation,
            secrets: event
                .secrets
                .into_iter()
                .map(|s| SecretRef {
                    environment: s.environment,
                    secret_path: s.secret_path,
                    secret_key: s.secret_key,
                    version: s.version,
                    previous_version: s.previous_version,
                })
                .collect(),
            import_mutation: event
                .import_mutation
                .map(|m| ImportMutation { environment: m.environment, secret_path: m.secret_path }),
        },
        actor: Actor {
            kind: match pb::ActorType::try_from(actor.r#type) {
                Ok(pb::ActorType::Platform) => "platform".into(),
                _ => "identity".into(),
            },
            id: actor.identity_id,
            name: actor.name,
        },
        id: event.id,
        project_id: event.project_id,
    })
}

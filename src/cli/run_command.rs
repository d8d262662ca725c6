//! `hush run` and `hush export`: a folder's secrets handed to a program as its environment, or printed for
//! another tool.

use clap::Args;
use rustix::process::Signal;
use tokio::process::Child;

use super::{
    client,
    commands::{Folder, list_all, rpc},
    formats::{self, Format},
};
use crate::pb::{self, secrets_service_client::SecretsServiceClient};

/// Which secrets: a folder, optionally with its subfolders and imports.
#[derive(Debug, Args)]
pub struct Scope {
    #[command(flatten)]
    pub(super) folder: Folder,
    /// Also the secrets of every subfolder (a deeper folder's value wins over a shallower one's).
    #[arg(long)]
    pub(super) recursive: bool,
    /// Also the folder's imported secrets (its own keys win).
    #[arg(long)]
    pub(super) include_imports: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub(super) scope: Scope,
    /// Start the program with the secrets only, instead of adding them to the current environment.
    #[arg(long)]
    clean_env: bool,
    /// Keep watching: when a secret in scope changes, restart the program with the new values.
    #[arg(long)]
    watch: bool,
    /// With --watch: send the program this signal instead of restarting it (for programs that reload).
    #[arg(long, value_enum, requires = "watch")]
    pub(super) watch_signal: Option<WatchSignal>,
    /// With --watch: how long a restarted program has to exit after SIGTERM before it is killed.
    #[arg(long, default_value = "10s", value_parser = crate::config::parse_duration)]
    pub(super) grace: std::time::Duration,
    /// The program and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<String>,
}

/// A signal `--watch-signal` may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "UPPER")]
pub enum WatchSignal {
    Hup,
    Usr1,
    Usr2,
    Term,
    Int,
}

impl WatchSignal {
    pub(super) fn name(self) -> &'static str {
        match self {
            WatchSignal::Hup => "HUP",
            WatchSignal::Usr1 => "USR1",
            WatchSignal::Usr2 => "USR2",
            WatchSignal::Term => "TERM",
            WatchSignal::Int => "INT",
        }
    }

    pub(super) fn rustix(self) -> Signal {
        match self {
            WatchSignal::Hup => Signal::HUP,
            WatchSignal::Usr1 => Signal::USR1,
            WatchSignal::Usr2 => Signal::USR2,
            WatchSignal::Term => Signal::TERM,
            WatchSignal::Int => Signal::INT,
        }
    }
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    scope: Scope,
    /// How to print them.
    #[arg(long, value_enum, default_value_t = Format::Dotenv)]
    format: Format,
}

/// A scope's secrets as (key, value), in listing order.
pub type Secrets = Vec<(String, String)>;

/// The scope's secrets, one value per key (the last listed wins: subfolders are listed after their parents).
pub(super) async fn fetch(scope: &Scope) -> anyhow::Result<Secrets> {
    let folder = &scope.folder;
    let mut client = SecretsServiceClient::new(client::authed(&folder.target).await?);
    let request = pb::ListSecretsRequest {
        project_id: folder.project.clone(),
        environment: folder.environment.clone(),
        secret_path: folder.path.clone(),
        include_imports: scope.include_imports,
        recursive: scope.recursive,
        ..Default::default()
    };
    let mut secrets: Secrets = Vec::new();
    let mut index = std::collections::HashMap::new();
    for secret in list_all(&mut client, request).await.map_err(rpc)? {
        match index.get(&secret.key) {
            Some(&at) => secrets[at] = (secret.key, secret.value),
            None => {
                index.insert(secret.key.clone(), secrets.len());
                secrets.push((secret.key, secret.value));
            }
        }
    }
    Ok(secrets)
}

/// `hush export`: prints the scope's secrets in the chosen format.
pub async fn export(mut args: ExportArgs) -> anyhow::Result<()> {
    args.scope.folder.resolve().await?;
    let secrets = fetch(&args.scope).await?;
    super::output::write(format_args!("{}", formats::render(args.format, &secrets)?));
    Ok(())
}

/// `hush run`: starts the program with the secrets in its environment and exits with its exit code (128 + the
/// signal's number when a signal ended it). SIGTERM, SIGINT and SIGHUP sent to hush are passed on to it.
pub async fn run(mut args: RunArgs) -> anyhow::Result<()> {
    args.scope.folder.resolve().await?;
    let code = if args.watch {
        super::run_watch::run(args).await?
    } else {
        let mut child = start(&args, &fetch(&args.scope).await?)?;
        let mut signals = PassedSignals::new()?;
        loop {
            tokio::select! {
                status = child.wait() => break exit_code(status?),
                passed = signals.next() => pass_on(&child, passed),
            }
        }
    };
    std::process::exit(code);
}

/// Starts the program with `secrets` in its environment.
pub(super) fn start(args: &RunArgs, secrets: &Secrets) -> anyhow::Result<Child> {
    formats::require_variable_names(secrets.iter().map(|(k, _)| k.as_str()))?;
    let (program, arguments) = args.command.split_first().expect("clap requires a command");
    let mut command = tokio::process::Command::new(program);
    command.args(arguments);
    if args.clean_env {
        command.env_clear();
    }
    command.envs(secrets.iter().map(|(k, v)| (k, v)));
    command.spawn().map_err(|error| anyhow::anyhow!("starting {program}: {error}"))
}

/// The exit code hush ends with for the program's `status`: its code, or 128 + the signal that ended it.
pub(super) fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// The signals that ask hush to stop, to be passed on to the program.
pub(super) struct PassedSignals {
    term: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl PassedSignals {
    pub(super) fn new() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    /// The next one received.
    pub(super) async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => Signal::TERM,
            _ = self.interrupt.recv() => Signal::INT,
            _ = self.hangup.recv() => Signal::HUP,
        }
    }
}

/// Sends `signal` to the program (which may have exited meanwhile: then there is nobody to tell).
pub(super) fn pass_on(child: &Child, signal: Signal) {
    if let Some(pid) = child.id().and_then(|id| rustix::process::Pid::from_raw(id as i32)) {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

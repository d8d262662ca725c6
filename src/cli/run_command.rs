//! `hush run` and `hush export`: a folder's secrets handed to a program as its environment, or printed for
//! another tool.

use clap::Args;

use super::{
    client,
    commands::{Folder, rpc},
    formats::{self, Format},
};
use crate::pb::{self, secrets_service_client::SecretsServiceClient};

/// Which secrets: a folder, optionally with its subfolders and imports.
#[derive(Debug, Args)]
pub struct Scope {
    #[command(flatten)]
    folder: Folder,
    /// Also the secrets of every subfolder (a deeper folder's value wins over a shallower one's).
    #[arg(long)]
    recursive: bool,
    /// Also the folder's imported secrets (its own keys win).
    #[arg(long)]
    include_imports: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    scope: Scope,
    /// Start the program with the secrets only, instead of adding them to the current environment.
    #[arg(long)]
    clean_env: bool,
    /// The program and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    scope: Scope,
    /// How to print them.
    #[arg(long, value_enum, default_value_t = Format::Dotenv)]
    format: Format,
}

/// The scope's secrets as (key, value), in listing order, one value per key (the last listed wins: subfolders
/// are listed after their parents).
async fn fetch(scope: &Scope) -> anyhow::Result<Vec<(String, String)>> {
    let folder = &scope.folder;
    let mut client = SecretsServiceClient::new(client::authed(&folder.target).await?);
    let mut request = pb::ListSecretsRequest {
        project_id: folder.project.clone(),
        environment: folder.environment.clone(),
        secret_path: folder.path.clone(),
        include_imports: scope.include_imports,
        recursive: scope.recursive,
        ..Default::default()
    };
    let mut secrets: Vec<(String, String)> = Vec::new();
    let mut index = std::collections::HashMap::new();
    loop {
        let page = client.list_secrets(request.clone()).await.map_err(rpc)?.into_inner();
        for secret in page.secrets {
            match index.get(&secret.key) {
                Some(&at) => secrets[at] = (secret.key, secret.value),
                None => {
                    index.insert(secret.key.clone(), secrets.len());
                    secrets.push((secret.key, secret.value));
                }
            }
        }
        if page.next_page_token.is_empty() {
            return Ok(secrets);
        }
        request.page_token = page.next_page_token;
    }
}

/// `hush export`: prints the scope's secrets in the chosen format.
pub async fn export(args: ExportArgs) -> anyhow::Result<()> {
    let secrets = fetch(&args.scope).await?;
    print!("{}", formats::render(args.format, &secrets)?);
    Ok(())
}

/// `hush run`: starts the program with the secrets in its environment and exits with its exit code (128 + the
/// signal's number when a signal ended it). SIGTERM, SIGINT and SIGHUP sent to hush are passed on to it.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let secrets = fetch(&args.scope).await?;
    formats::require_variable_names(secrets.iter().map(|(k, _)| k.as_str()))?;
    let (program, arguments) = args.command.split_first().expect("clap requires a command");
    let mut command = tokio::process::Command::new(program);
    command.args(arguments);
    if args.clean_env {
        command.env_clear();
    }
    command.envs(secrets);
    let mut child = command.spawn().map_err(|error| anyhow::anyhow!("starting {program}: {error}"))?;
    let code = wait_passing_signals(&mut child).await?;
    std::process::exit(code);
}

/// Waits for `child`, passing on the signals that ask hush to stop; its exit code.
async fn wait_passing_signals(child: &mut tokio::process::Child) -> anyhow::Result<i32> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut hangup = signal(SignalKind::hangup())?;
    loop {
        let passed = tokio::select! {
            status = child.wait() => {
                let status = status?;
                use std::os::unix::process::ExitStatusExt;
                return Ok(status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0)));
            }
            _ = term.recv() => rustix::process::Signal::TERM,
            _ = interrupt.recv() => rustix::process::Signal::INT,
            _ = hangup.recv() => rustix::process::Signal::HUP,
        };
        if let Some(pid) = child.id().and_then(|id| rustix::process::Pid::from_raw(id as i32)) {
            // The child may have exited meanwhile: then there is nobody to tell.
            let _ = rustix::process::kill_process(pid, passed);
        }
    }
}

//! Command line: `hush serve` and the client commands (`login`, `projects`, `secrets`, `identities`, `roles`).

/// `println!` for results, through [`output::write`]: a closed stdout ends the command quietly.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::output::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

mod audit_command;
mod backup_command;
mod client;
mod commands;
mod event_follower;
mod events_command;
mod folder_commands;
mod formats;
mod identity_commands;
mod import_command;
mod keys_command;
mod local_defaults;
mod names;
mod output;
mod project_commands;
mod run_command;
mod run_watch;
mod session;
mod session_commands;
mod streams_command;
mod time_args;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio::net::TcpSocket;
use tokio_util::sync::CancellationToken;

use crate::config::ServeConfig;

pub use session::Session;

/// Connections the kernel queues before `accept` (what `TcpListener::bind` uses).
const LISTEN_BACKLOG: u32 = 1024;

/// hush: a gRPC-first secrets service.
#[derive(Debug, Parser)]
#[command(name = "hush", version, about)]
pub struct Cli {
    /// The saved session to use (`hush login --profile NAME` makes one) [default: the default profile].
    #[arg(long, env = "HUSH_PROFILE", global = true)]
    profile: Option<String>,
    /// How client commands print: text (tab-separated lines), table (aligned columns, for people) or json
    /// (protobuf's JSON mapping, lowerCamelCase, one object per line).
    #[arg(long, env = "HUSH_OUTPUT", global = true, value_enum, default_value_t)]
    output: output::Output,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (gRPC, grpc-web, reflection and health on one port).
    Serve(Box<ServeConfig>),
    /// Log in with a machine identity's client id and secret; the token is kept in the user config dir, one
    /// session per profile (--profile).
    Login(session_commands::LoginArgs),
    /// Revoke the profile's token and delete its session.
    Logout {
        #[command(flatten)]
        target: commands::Target,
    },
    /// Show who the profile's token belongs to, its org role and when it expires.
    Whoami {
        #[command(flatten)]
        target: commands::Target,
    },
    /// Write `.hush.toml` here: the project (and environment, path) commands in this directory and below use.
    Init(local_defaults::InitArgs),
    /// Print a completion script for a shell: `hush completions bash > /etc/bash_completion.d/hush`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Create, list and delete projects.
    #[command(subcommand)]
    Projects(commands::ProjectsCommand),
    /// List, create and delete a project's environments.
    #[command(subcommand)]
    Envs(project_commands::EnvsCommand),
    /// List who holds which role in a project.
    #[command(subcommand)]
    Members(project_commands::MembersCommand),
    /// Set, get, list and delete secrets.
    #[command(subcommand)]
    Secrets(commands::SecretsCommand),
    /// List, create and delete folders.
    #[command(subcommand)]
    Folders(folder_commands::FoldersCommand),
    /// List, create and delete a folder's imports of other folders.
    #[command(subcommand)]
    Imports(folder_commands::ImportsCommand),
    /// Run a program with a folder's secrets as environment variables: `hush run --project P -- CMD ARGS…`.
    Run(run_command::RunArgs),
    /// Print a folder's secrets as dotenv, shell, JSON or YAML.
    Export(run_command::ExportArgs),
    /// Create, list and delete machine identities; issue and revoke their client secrets; revoke tokens.
    #[command(subcommand)]
    Identities(identity_commands::IdentitiesCommand),
    /// Create, update, list and delete roles; give identities roles in projects.
    #[command(subcommand)]
    Roles(identity_commands::RolesCommand),
    /// Subscribe to secret events.
    #[command(subcommand)]
    Events(events_command::EventsCommand),
    /// List and export audit logs (JSON lines, as the HTTP export prints them).
    #[command(subcommand)]
    Audit(audit_command::AuditCommand),
    /// Manage audit streams: create, list, check status, test, backfill and delete destinations.
    #[command(subcommand)]
    Streams(streams_command::StreamsCommand),
    /// Root key maintenance: `hush keys rotate` (offline).
    #[command(subcommand)]
    Keys(keys_command::KeysCommand),
    /// Copy the SQLite database of a (running) server to a new file; on PostgreSQL, explains pg_dump.
    Backup(backup_command::BackupArgs),
    /// Put a `hush backup` file into a new data dir for `hush serve`.
    Restore(backup_command::RestoreArgs),
}

/// Runs one command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    session::choose_profile(cli.profile)?;
    output::choose(cli.output);
    match cli.command {
        Command::Serve(config) => serve(*config).await,
        Command::Login(args) => session_commands::login(args).await,
        Command::Logout { target } => session_commands::logout(target).await,
        Command::Whoami { target } => session_commands::whoami(target).await,
        Command::Init(args) => local_defaults::init(args).await,
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "hush", &mut std::io::stdout());
            Ok(())
        }
        Command::Projects(command) => commands::projects(command).await,
        Command::Envs(command) => project_commands::envs(command).await,
        Command::Members(command) => project_commands::members(command).await,
        Command::Secrets(command) => commands::secrets(command).await,
        Command::Folders(command) => folder_commands::folders(command).await,
        Command::Imports(command) => folder_commands::imports(command).await,
        Command::Run(args) => run_command::run(args).await,
        Command::Export(args) => run_command::export(args).await,
        Command::Identities(command) => identity_commands::identities(command).await,
        Command::Roles(command) => identity_commands::roles(command).await,
        Command::Events(command) => events_command::events(command).await,
        Command::Audit(command) => audit_command::audit(command).await,
        Command::Streams(command) => streams_command::streams(command).await,
        Command::Keys(command) => keys_command::keys(command).await,
        Command::Backup(args) => backup_command::backup(args).await,
        Command::Restore(args) => backup_command::restore(args).await,
    }
}

async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    let _log = crate::log_output::init();
    // Bound now, so a port in use fails before anything is written, but listening only once storage and the
    // root key check are ready: a refused start never accepts a connection.
    let socket = if config.listen.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }
        .and_then(|socket| socket.set_reuseaddr(true).map(|()| socket))
        .and_then(|socket| socket.bind(config.listen).map(|()| socket))
        .with_context(|| format!("binding {}", config.listen))?;
    let server = crate::server::Server::prepare(config).await?;
    let listener = socket.listen(LISTEN_BACKLOG)?;
    if let Some(path) = &server.bootstrap_file {
        tracing::info!(path = %path.display(), "first start: admin credentials written (mode 0600); log in with them");
    }
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    server.serve(listener, shutdown).await
}

/// Cancels `token` on Ctrl-C or SIGTERM.
async fn cancel_on_signal(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down: finishing in-flight requests");
    token.cancel();
}

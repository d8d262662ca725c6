//! The client commands. Output is for people and scripts: values on stdout, one item per line.

use anyhow::Context;
use clap::{Args, Subcommand};

use super::client;
use crate::pb::{self, projects_service_client::ProjectsServiceClient, secrets_service_client::SecretsServiceClient};

/// Turns a gRPC error into a one-line CLI error.
pub(super) fn rpc(status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{:?}: {}", status.code(), status.message())
}

/// Where a client command sends its calls.
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// Server URL; default: the one `hush login` used.
    #[arg(long, env = "HUSH_SERVER", global = true)]
    pub(super) server: Option<String>,
    /// PEM CA bundle for an https server; default: the one `hush login` used.
    #[arg(long, env = "HUSH_CA_CERT", global = true)]
    pub(super) ca_cert: Option<std::path::PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ProjectsCommand {
    /// Create a project (with dev, staging and prod) and print its id.
    Create {
        /// Project name.
        name: String,
        #[command(flatten)]
        target: Target,
    },
    /// List projects as `id<TAB>name`.
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Delete a project with its environments, folders and secrets (their events and audit entries stay).
    Delete {
        /// Project id or name.
        project: String,
        /// Confirm: nothing is deleted without it.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        target: Target,
    },
}

pub async fn projects(command: ProjectsCommand) -> anyhow::Result<()> {
    match command {
        ProjectsCommand::Create { name, target } => {
            let mut client = ProjectsServiceClient::new(client::authed(&target).await?);
            let response = client.create_project(pb::CreateProjectRequest { name }).await.map_err(rpc)?.into_inner();
            let project = response.project.context("server sent no project")?;
            super::output::single(&project, || project.id.clone());
        }
        ProjectsCommand::Delete { project, yes, target } => {
            let id = super::names::project_id(&target, &project).await?;
            anyhow::ensure!(yes, "deleting project {id} removes all of its secrets: add --yes to confirm");
            let mut client = ProjectsServiceClient::new(client::authed(&target).await?);
            client.delete_project(pb::DeleteProjectRequest { project_id: id.clone() }).await.map_err(rpc)?;
            eprintln!("deleted project {id}");
        }
        ProjectsCommand::List { target } => {
            let mut client = ProjectsServiceClient::new(client::authed(&target).await?);
            let mut listing = super::output::Listing::new(&["ID", "NAME"]);
            let mut page_token = String::new();
            loop {
                let page = client
                    .list_projects(pb::ListProjectsRequest { page_size: 0, page_token })
                    .await
                    .map_err(rpc)?
                    .into_inner();
                for project in page.projects {
                    listing.item(&project, vec![project.id.clone(), project.name.clone()]);
                }
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            listing.finish();
        }
    }
    Ok(())
}

/// A folder of a project's environment; what is not given comes from `.hush.toml` (see `hush init`).
#[derive(Debug, Args)]
pub struct Folder {
    /// Project id or name [default: .hush.toml's].
    #[arg(long, env = "HUSH_PROJECT", default_value = "", hide_default_value = true)]
    pub(super) project: String,
    /// Environment slug [default: .hush.toml's, else dev].
    #[arg(long = "env", env = "HUSH_ENV", default_value = "", hide_default_value = true)]
    pub(super) environment: String,
    /// Folder path [default: .hush.toml's, else /].
    #[arg(long, env = "HUSH_PATH", default_value = "", hide_default_value = true)]
    pub(super) path: String,
    #[command(flatten)]
    pub(super) target: Target,
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Create a secret, or update it when it exists: `set KEY [VALUE]`. The value: an argument (visible in
    /// `ps` and shell history), `-` to read it from stdin, `--value-file PATH`, or, with none of them on a
    /// terminal, typed at a prompt without echo. Files and stdin are stored byte for byte (a trailing newline
    /// included). `set K1=V1 K2=V2 …` creates or updates several in one atomic batch.
    Set {
        /// Secret key, or the first KEY=VALUE pair.
        key: String,
        /// Secret value, `-` for stdin, or the second KEY=VALUE pair.
        #[arg(allow_hyphen_values = true)]
        value: Option<String>,
        /// More KEY=VALUE pairs.
        #[arg(value_name = "KEY=VALUE")]
        more: Vec<String>,
        /// Read the value from this file.
        #[arg(long)]
        value_file: Option<std::path::PathBuf>,
        /// Check-and-set: update the existing secret only if it is at this version now (else exit non-zero
        /// naming the current version); never creates.
        #[arg(long)]
        expected_version: Option<u32>,
        #[command(flatten)]
        folder: Folder,
    },
    /// Print a secret's value (and a newline, unless --raw).
    Get {
        /// Secret key.
        key: String,
        /// Resolve the key through the folder's imports too.
        #[arg(long)]
        include_imports: bool,
        /// Print the value's bytes exactly, without a newline after them.
        #[arg(long)]
        raw: bool,
        #[command(flatten)]
        folder: Folder,
    },
    /// Print a folder's secrets as `KEY=value` lines, values quoted as dotenv (see `hush export`).
    List {
        /// Include imported secrets.
        #[arg(long)]
        include_imports: bool,
        /// Include every subfolder; each folder's lines follow a `# <path>` comment line.
        #[arg(long)]
        recursive: bool,
        #[command(flatten)]
        folder: Folder,
    },
    /// Set the secrets of a dotenv, JSON or YAML file in one atomic batch (created or updated); --dry-run shows
    /// what would change.
    Import(super::import_command::ImportArgs),
    /// List a secret's versions as `version<TAB>time<TAB>comment`, newest first (values are not printed).
    Versions {
        /// Secret key.
        key: String,
        #[command(flatten)]
        folder: Folder,
    },
    /// Make an earlier version's value current again (as a new version).
    Rollback {
        /// Secret key.
        key: String,
        /// The version whose value comes back.
        #[arg(long)]
        to: u32,
        /// Check-and-set: only if the secret is at this version now.
        #[arg(long)]
        expected_version: Option<u32>,
        #[command(flatten)]
        folder: Folder,
    },
    /// Delete a secret; several keys are deleted in one atomic batch (all or none).
    Delete {
        /// Secret keys.
        #[arg(required = true)]
        keys: Vec<String>,
        /// Check-and-delete: delete only if the secret is at this version now (else exit non-zero naming the
        /// current version).
        #[arg(long)]
        expected_version: Option<u32>,
        #[command(flatten)]
        folder: Folder,
    },
}

/// Every secret a ListSecrets request returns, its pages followed (a page may be short, or empty, while more
/// follow).
pub(super) async fn list_all(
    client: &mut SecretsServiceClient<client::AuthedChannel>,
    mut request: pb::ListSecretsRequest,
) -> Result<Vec<pb::Secret>, tonic::Status> {
    let mut secrets = Vec::new();
    loop {
        let page = client.list_secrets(request.clone()).await?.into_inner();
        secrets.extend(page.secrets);
        if page.next_page_token.is_empty() {
            return Ok(secrets);
        }
        request.page_token = page.next_page_token;
    }
}

impl Folder {
    /// Fills what was not given from `.hush.toml` or the defaults, and replaces a project name with the
    /// project's id (see `names`).
    pub(super) async fn resolve(&mut self) -> anyhow::Result<()> {
        if self.project.is_empty() || self.environment.is_empty() || self.path.is_empty() {
            let local = super::local_defaults::find()?;
            let fill = |given: &mut String, local: Option<String>, default: &str| {
                if given.is_empty() {
                    *given = local.unwrap_or_else(|| default.to_owned());
                }
            };
            fill(&mut self.environment, local.env, "dev");
            fill(&mut self.path, local.path, "/");
            if self.project.is_empty() {
                self.project = local.project.context(super::local_defaults::NO_PROJECT)?;
            }
        }
        self.project = super::names::project_id(&self.target, &self.project).await?;
        Ok(())
    }
}

pub async fn secrets(command: SecretsCommand) -> anyhow::Result<()> {
    match command {
        SecretsCommand::Set { key, value, more, value_file, expected_version, mut folder } => {
            if key.contains('=') {
                anyhow::ensure!(
                    value_file.is_none() && expected_version.is_none(),
                    "KEY=VALUE pairs take neither --value-file nor --expected-version"
                );
                return set_many(std::iter::once(key).chain(value).chain(more).collect(), folder).await;
            }
            anyhow::ensure!(more.is_empty(), "one value after {key} (or give KEY=VALUE pairs)");
            anyhow::ensure!(value.is_none() || value_file.is_none(), "give the value or --value-file, not both");
            let value = read_value(value, value_file.as_deref())?;
            folder.resolve().await?;
            let mut client = SecretsServiceClient::new(client::authed(&folder.target).await?);
            let update = pb::UpdateSecretRequest {
                project_id: folder.project.clone(),
                environment: folder.environment.clone(),
                secret_path: folder.path.clone(),
                key: key.clone(),
                value: value.clone(),
                comment: None,
                expected_version,
            };
            let secret = if expected_version.is_some() {
                client.update_secret(update).await.map_err(rpc)?.into_inner().secret
            } else {
                let create = pb::CreateSecretRequest {
                    project_id: folder.project,
                    environment: folder.environment,
                    secret_path: folder.path,
                    key,
                    value,
                    comment: String::new(),
                };
                match client.create_secret(create).await {
                    Ok(response) => response.into_inner().secret,
                    Err(status) if status.code() == tonic::Code::AlreadyExists => {
                        client.update_secret(update).await.map_err(rpc)?.into_inner().secret
                    }
                    Err(status) => return Err(rpc(status)),
                }
            };
            let secret = secret.context("server sent no secret")?;
            if super::output::chosen() == super::output::Output::Json {
                outln!("{}", super::output::proto_json(&secret));
            }
            eprintln!("{} is at version {}", secret.key, secret.version);
        }
        SecretsCommand::Get { key, include_imports, raw, mut folder } => {
            folder.resolve().await?;
            let mut client = SecretsServiceClient::new(client::authed(&folder.target).await?);
            let request = pb::GetSecretRequest {
                project_id: folder.project,
                environment: folder.environment,
                secret_path: folder.path,
                key,
                include_imports,
                version: 0,
            };
            let secret = client.get_secret(request).await.map_err(rpc)?.into_inner().secret;
            let secret = secret.context("server sent no secret")?;
            if super::output::chosen() == super::output::Output::Json {
                outln!("{}", super::output::proto_json(&secret));
                return Ok(());
            }
            let value = secret.value;
            if raw {
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                out.write_all(value.as_bytes())?;
                out.flush()?;
            } else {
                outln!("{value}");
            }
        }
        SecretsCommand::List { include_imports, recursive, mut folder } => {
            folder.resolve().await?;
            let mut client = SecretsServiceClient::new(client::authed(&folder.target).await?);
            let request = pb::ListSecretsRequest {
                project_id: folder.project,
                environment: folder.environment,
                secret_path: folder.path,
                include_imports,
                recursive,
                ..Default::default()
            };
            let mut current_path = None;
            for secret in list_all(&mut client, request).await.map_err(rpc)? {
                if super::output::chosen() == super::output::Output::Json {
                    outln!("{}", super::output::proto_json(&secret));
                    continue;
                }
                if recursive && current_path.as_ref() != Some(&secret.secret_path) {
                    outln!("# {}", secret.secret_path);
                    current_path = Some(secret.secret_path.clone());
                }
                outln!("{}={}", secret.key, super::formats::dotenv_value(&secret.value));
            }
        }
        SecretsCommand::Import(args) => super::import_command::import(args).await?,
        SecretsCommand::Versions { key, mut folder } => {
            folder.resolve().await?;
            let mut client = SecretsServiceClient::new(client::authed(&folder.target).await?);
            let request = pb::ListSecretVersionsRequest {
                project_id: folder.project,
                environment: folder.environment,
                secret_path: folder.path,
                key,
            };
            let mut listing = super::output::Listing::new(&["VERSION", "TIME", "COMMENT"]);
            for version in client.list_secret_versions(request).await.map_err(rpc)?.into_inner().versions {
                // A history to look at, not a way to print every old value: the JSON leaves the value out.
                if super::output::chosen() == super::output::Output::Json {
                    let mut json = super::output::proto_json(&version);
                    json.as_object_mut().map(|fields| fields.remove("value"));
                    outln!("{json}");
                    continue;
                }
                let time = super::output::time(version.create_time, chrono::SecondsFormat::Millis);
                listing.item(&version, vec![version.version.to_string(), time, version.comment.clone()]);
            }
            listing.finish();
        }
        SecretsCommand::Rollback { key, to, expected_version, mut folder } => {
            folder.resolve().await?;
            let mut client = SecretsServiceClient::new(client::authed(&folder.target).await?);
            let request = pb::RollbackSecretRequest {
                project_id: folder.project,
                environment: folder.environment,
                secret_path: folder.path,
                key,
                version: to,
                expected_version,
            };
            let secret = client.rollback_secret(request).await.map_err(rpc)?.into_inner().secret;
            let secret = secret.context("server sent no secret")?;
            eprintln!("{} is at version {} (the value of version {to})", secret.key, secret.version);
        }
        SecretsCommand::Delete { mut keys, expected_version, mut folder } => {
            folder.resolve().await?;
            let mut client = SecretsServiceClient::new(client::authed(&folder.target).await?);
            if keys.len() > 1 {
                anyhow::ensure!(expected_version.is_none(), "--expected-version is for one key");
                let count = keys.len();
                let request = pb::BatchDeleteSecretsRequest {
                    project_id: folder.project,
                    environment: folder.environment,
                    secret_path: folder.path,
                    keys,
                    expected_versions: Default::default(),
                };
                client.batch_delete_secrets(request).await.map_err(rpc)?;
                eprintln!("deleted {count} secrets");
                return Ok(());
            }
            let key = keys.pop().expect("clap requires one key");
            let request = pb::DeleteSecretRequest {
                project_id: folder.project,
                environment: folder.environment,
                secret_path: folder.path,
                key,
                expected_version,
            };
            client.delete_secret(request).await.map_err(rpc)?;
            eprintln!("deleted");
        }
    }
    Ok(())
}

/// One atomic batch that creates the missing secrets of the folder and updates the others.
pub(super) fn upsert(folder: &Folder, secrets: Vec<pb::SecretInput>) -> pb::BatchUpdateSecretsRequest {
    pb::BatchUpdateSecretsRequest {
        project_id: folder.project.clone(),
        environment: folder.environment.clone(),
        secret_path: folder.path.clone(),
        secrets,
        expected_versions: Default::default(),
        allow_missing: true,
    }
}

/// `secrets set K1=V1 K2=V2 …`: one BatchUpdateSecrets that creates or updates them all, or changes nothing.
async fn set_many(pairs: Vec<String>, mut folder: Folder) -> anyhow::Result<()> {
    let mut secrets = Vec::with_capacity(pairs.len());
    for pair in pairs {
        let (key, value) = pair.split_once('=').with_context(|| format!("'{pair}' is not KEY=VALUE"))?;
        secrets.push(pb::SecretInput { key: key.to_owned(), value: value.to_owned(), comment: String::new() });
    }
    folder.resolve().await?;
    let mut client = SecretsServiceClient::new(client::authed(&folder.target).await?);
    let written = client.batch_update_secrets(upsert(&folder, secrets)).await.map_err(rpc)?.into_inner().secrets;
    for secret in &written {
        eprintln!("{} is at version {}", secret.key, secret.version);
    }
    Ok(())
}

/// The value of `secrets set`: the argument, stdin for `-`, the file, or a prompt without echo on a terminal.
fn read_value(value: Option<String>, file: Option<&std::path::Path>) -> anyhow::Result<String> {
    use std::io::{IsTerminal, Read};
    let utf8 = |bytes: Vec<u8>, from: &str| {
        String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("the value from {from} is not UTF-8 text"))
    };
    // Read no more than a value may hold (and one byte to tell), however large the input.
    let limit = crate::secrets::validate::MAX_VALUE_BYTES;
    let bounded = |input: &mut dyn Read, from: &str| -> anyhow::Result<String> {
        utf8(super::output::read_capped(input, limit, &format!("the value from {from}"))?, from)
    };
    match (value, file) {
        (Some(value), _) if value != "-" => Ok(value),
        (Some(_), _) => bounded(&mut std::io::stdin(), "stdin"),
        (None, Some(path)) => {
            let mut file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
            bounded(&mut file, &path.display().to_string())
        }
        (None, None) if std::io::stdin().is_terminal() => prompt_hidden("value (not shown): "),
        (None, None) => anyhow::bail!("no value: give it as an argument, `-` to read stdin, or --value-file PATH"),
    }
}

/// Reads one line from the terminal with echo off; the line break is not part of it.
fn prompt_hidden(prompt: &str) -> anyhow::Result<String> {
    use rustix::termios::{self, LocalModes, OptionalActions};
    let stdin = std::io::stdin();
    let original = termios::tcgetattr(&stdin).context("reading the terminal's settings")?;
    let mut silent = original.clone();
    silent.local_modes.remove(LocalModes::ECHO);
    termios::tcsetattr(&stdin, OptionalActions::Now, &silent).context("turning echo off")?;
    eprint!("{prompt}");
    let mut line = String::new();
    let read = stdin.read_line(&mut line);
    // Echo comes back even when the read failed.
    let restored = termios::tcsetattr(&stdin, OptionalActions::Now, &original);
    eprintln!();
    read.context("reading the value")?;
    restored.context("turning echo back on")?;
    let line = line.strip_suffix('\n').unwrap_or(&line);
    Ok(line.strip_suffix('\r').unwrap_or(line).to_owned())
}

//! `hush secrets import FILE`: a dotenv, JSON or YAML file of secrets set in one folder as one atomic batch (created
//! or updated; BatchUpdateSecrets with allow_missing), or with --dry-run only what would change.

use anyhow::Context;
use clap::{Args, ValueEnum};

use super::{
    client,
    commands::{Folder, list_all, rpc, upsert},
    formats,
};
use crate::pb::{self, secrets_service_client::SecretsServiceClient};

/// Most secrets one import sets: the batch limit of the server, so the import stays one transaction.
const MAX_IMPORT: usize = 1000;
/// Largest file read, and most bytes of keys and values one import sends: the batch is one request, and a
/// request is at most this large.
const MAX_BYTES: usize = crate::limits::MAX_MESSAGE_BYTES;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImportFormat {
    /// JSON for `.json` files, YAML for `.yaml` and `.yml`, dotenv otherwise.
    Auto,
    Dotenv,
    Json,
    Yaml,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The file to read, or `-` for stdin.
    file: String,
    #[arg(long, value_enum, default_value_t = ImportFormat::Auto)]
    format: ImportFormat,
    /// Print what would be created and updated (keys only), change nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    folder: Folder,
}

/// The file (or stdin for `-`), read no further than [`MAX_BYTES`]: a larger one could not be one batch.
fn read_bounded(file: &str) -> anyhow::Result<String> {
    let input: Box<dyn std::io::Read> = if file == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(file).with_context(|| format!("reading {file}"))?)
    };
    let bytes = super::output::read_capped(input, MAX_BYTES, file)?;
    String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("{file} is not UTF-8 text"))
}

pub async fn import(mut args: ImportArgs) -> anyhow::Result<()> {
    let text = read_bounded(&args.file)?;
    let format = match args.format {
        ImportFormat::Auto if args.file.ends_with(".json") => ImportFormat::Json,
        ImportFormat::Auto if args.file.ends_with(".yaml") || args.file.ends_with(".yml") => ImportFormat::Yaml,
        ImportFormat::Auto => ImportFormat::Dotenv,
        format => format,
    };
    let wanted = match format {
        ImportFormat::Json => formats::parse_json(&text)?,
        ImportFormat::Yaml => formats::parse_yaml(&text)?,
        _ => formats::parse_dotenv(&text)?,
    };
    anyhow::ensure!(wanted.len() <= MAX_IMPORT, "{} secrets: one import sets at most {MAX_IMPORT}", wanted.len());
    // Checked here, naming the key, so that --dry-run never approves what the import would refuse.
    for (key, value) in &wanted {
        crate::secrets::validate::secret_key("key", key).map_err(|e| anyhow::anyhow!("{key}: {e}"))?;
        crate::secrets::validate::secret_value("value", value).map_err(|e| anyhow::anyhow!("{key}: {e}"))?;
    }
    // YAML aliases can make a small file hold large values: what counts is what would be sent.
    let total: usize = wanted.iter().map(|(k, v)| k.len() + v.len()).sum();
    anyhow::ensure!(
        total <= MAX_BYTES,
        "the keys and values add up to {total} bytes, more than one request holds ({MAX_BYTES})"
    );

    args.folder.resolve().await?;
    let folder = &args.folder;
    let mut client = SecretsServiceClient::new(client::authed(&folder.target).await?);
    let request = pb::ListSecretsRequest {
        project_id: folder.project.clone(),
        environment: folder.environment.clone(),
        secret_path: folder.path.clone(),
        ..Default::default()
    };
    let listed = match list_all(&mut client, request).await {
        Ok(listed) => listed,
        // A folder that does not exist yet holds nothing; the import creates it.
        Err(status) if status.code() == tonic::Code::NotFound && status.message().starts_with("folder ") => Vec::new(),
        Err(status) => return Err(rpc(status)),
    };
    let current: std::collections::HashMap<String, String> = listed.into_iter().map(|s| (s.key, s.value)).collect();
    let mut changes = Vec::new();
    // What happens to each key: printed when it has happened (or, with --dry-run, would).
    let mut plan = Vec::with_capacity(wanted.len());
    for (key, value) in &wanted {
        let verb = match current.get(key) {
            None => "create",
            Some(old) if old != value => "update",
            Some(_) => "unchanged",
        };
        plan.push(format!("{verb} {key}"));
        if verb != "unchanged" {
            changes.push(pb::SecretInput { key: key.clone(), value: value.clone(), comment: String::new() });
        }
    }
    let print_plan = || plan.iter().for_each(|line| outln!("{line}"));
    if args.dry_run || changes.is_empty() {
        print_plan();
        eprintln!(
            "{} to create or update; {}",
            changes.len(),
            if args.dry_run { "dry run: nothing changed" } else { "nothing to do" }
        );
        return Ok(());
    }
    let request = upsert(folder, changes);
    let size = prost::Message::encoded_len(&request);
    anyhow::ensure!(
        size <= MAX_BYTES,
        "the changes make a {size}-byte request, more than one request holds ({MAX_BYTES})"
    );
    let written = client.batch_update_secrets(request).await.map_err(rpc)?.into_inner().secrets;
    print_plan();
    eprintln!("imported {} secrets in one transaction", written.len());
    Ok(())
}

//! `hush secrets import FILE`: a dotenv or JSON file of secrets set in one folder as one atomic batch (created
//! or updated; BatchUpdateSecrets with allow_missing), or with --dry-run only what would change.

use anyhow::Context;
use clap::{Args, ValueEnum};

use super::{
    client,
    commands::{Folder, list_all, rpc},
    formats,
};
use crate::pb::{self, secrets_service_client::SecretsServiceClient};

/// Most secrets one import sets: the batch limit of the server, so the import stays one transaction.
const MAX_IMPORT: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImportFormat {
    /// JSON when the file name ends in `.json`, dotenv otherwise.
    Auto,
    Dotenv,
    Json,
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

pub async fn import(mut args: ImportArgs) -> anyhow::Result<()> {
    let text = if args.file == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading stdin")?
    } else {
        std::fs::read_to_string(&args.file).with_context(|| format!("reading {}", args.file))?
    };
    let json = match args.format {
        ImportFormat::Auto => args.file.ends_with(".json"),
        format => format == ImportFormat::Json,
    };
    let wanted = if json { formats::parse_json(&text)? } else { formats::parse_dotenv(&text)? };
    anyhow::ensure!(wanted.len() <= MAX_IMPORT, "{} secrets: one import sets at most {MAX_IMPORT}", wanted.len());

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
    for (key, value) in &wanted {
        let verb = match current.get(key) {
            None => "create",
            Some(old) if old != value => "update",
            Some(_) => "unchanged",
        };
        println!("{verb} {key}");
        if verb != "unchanged" {
            changes.push(pb::SecretInput { key: key.clone(), value: value.clone(), comment: String::new() });
        }
    }
    if args.dry_run || changes.is_empty() {
        eprintln!(
            "{} to create or update; {}",
            changes.len(),
            if args.dry_run { "dry run: nothing changed" } else { "nothing to do" }
        );
        return Ok(());
    }
    let request = pb::BatchUpdateSecretsRequest {
        project_id: folder.project.clone(),
        environment: folder.environment.clone(),
        secret_path: folder.path.clone(),
        secrets: changes,
        expected_versions: Default::default(),
        allow_missing: true,
    };
    let written = client.batch_update_secrets(request).await.map_err(rpc)?.into_inner().secrets;
    eprintln!("imported {} secrets in one transaction", written.len());
    Ok(())
}

//! `hush folders`: list, create and delete the folders of a project's environment.

use clap::Subcommand;

use super::{
    client,
    commands::{Folder, rpc},
};
use crate::pb::{self, secrets_service_client::SecretsServiceClient};

#[derive(Debug, Subcommand)]
pub enum FoldersCommand {
    /// Print the folders under --path (every level with --recursive), one path per line.
    List {
        #[arg(long)]
        recursive: bool,
        #[command(flatten)]
        folder: Folder,
    },
    /// Create the folder at --path (and its missing parents).
    Create {
        #[command(flatten)]
        folder: Folder,
    },
    /// Delete the folder at --path with everything in it; prints how many secrets went with it.
    Delete {
        /// Confirm: nothing is deleted without it.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        folder: Folder,
    },
}

pub async fn folders(command: FoldersCommand) -> anyhow::Result<()> {
    match command {
        FoldersCommand::List { recursive, mut folder } => {
            folder.resolve().await?;
            let mut client = SecretsServiceClient::new(client::authed(&folder.target).await?);
            let request = pb::ListFoldersRequest {
                project_id: folder.project,
                environment: folder.environment,
                secret_path: folder.path,
                recursive,
            };
            for found in client.list_folders(request).await.map_err(rpc)?.into_inner().folders {
                println!("{}", found.path);
            }
        }
        FoldersCommand::Create { mut folder } => {
            folder.resolve().await?;
            let mut client = SecretsServiceClient::new(client::authed(&folder.target).await?);
            let request = pb::CreateFolderRequest {
                project_id: folder.project,
                environment: folder.environment,
                path: folder.path,
            };
            client.create_folder(request).await.map_err(rpc)?;
            eprintln!("created");
        }
        FoldersCommand::Delete { yes, mut folder } => {
            folder.resolve().await?;
            anyhow::ensure!(yes, "deleting {} removes every secret in it: add --yes to confirm", folder.path);
            let mut client = SecretsServiceClient::new(client::authed(&folder.target).await?);
            let request = pb::DeleteFolderRequest {
                project_id: folder.project,
                environment: folder.environment,
                path: folder.path,
            };
            let deleted = client.delete_folder(request).await.map_err(rpc)?.into_inner().deleted_secrets;
            eprintln!("deleted, with {deleted} secrets");
        }
    }
    Ok(())
}

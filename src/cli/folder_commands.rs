//! `hush folders` (list, create and delete the folders of a project's environment) and `hush imports` (list,
//! create and delete a folder's imports of other folders' secrets).

use clap::Subcommand;

use super::{
    client,
    commands::{Folder, rpc},
    output::Listing,
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
            let mut listing = Listing::new(&["PATH"]);
            for found in client.list_folders(request).await.map_err(rpc)?.into_inner().folders {
                listing.item(&found, vec![found.path.clone()]);
            }
            listing.finish();
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
            eprintln!("deleted, with {}", super::output::count(deleted, "secret"));
        }
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum ImportsCommand {
    /// List the folder's imports as `id<TAB>environment<TAB>path`, in the order they resolve.
    List {
        #[command(flatten)]
        folder: Folder,
    },
    /// Make the folder at --env/--path see the secrets of another folder (read-only, by reference).
    Create {
        /// Environment slug of the folder imported.
        #[arg(long)]
        from_env: String,
        /// Path of the folder imported.
        #[arg(long)]
        from_path: String,
        #[command(flatten)]
        folder: Folder,
    },
    /// Delete an import by id (its secrets stay where they are).
    Delete {
        /// Import id, as `hush imports list` prints it.
        id: String,
        #[command(flatten)]
        folder: Folder,
    },
}

pub async fn imports(command: ImportsCommand) -> anyhow::Result<()> {
    match command {
        ImportsCommand::List { mut folder } => {
            folder.resolve().await?;
            let mut client = SecretsServiceClient::new(client::authed(&folder.target).await?);
            let request = pb::ListSecretImportsRequest {
                project_id: folder.project,
                environment: folder.environment,
                secret_path: folder.path,
            };
            let mut listing = Listing::new(&["ID", "FROM ENV", "FROM PATH"]);
            for import in client.list_secret_imports(request).await.map_err(rpc)?.into_inner().secret_imports {
                let columns = vec![import.id.clone(), import.import_environment.clone(), import.import_path.clone()];
                listing.item(&import, columns);
            }
            listing.finish();
        }
        ImportsCommand::Create { from_env, from_path, mut folder } => {
            folder.resolve().await?;
            let mut client = SecretsServiceClient::new(client::authed(&folder.target).await?);
            let request = pb::CreateSecretImportRequest {
                project_id: folder.project,
                environment: folder.environment,
                secret_path: folder.path,
                import_environment: from_env,
                import_path: from_path,
            };
            let import = client.create_secret_import(request).await.map_err(rpc)?.into_inner().secret_import;
            let import = import.ok_or_else(|| anyhow::anyhow!("server sent no import"))?;
            super::output::single(&import, || import.id.clone());
        }
        ImportsCommand::Delete { id, mut folder } => {
            folder.resolve().await?;
            let mut client = SecretsServiceClient::new(client::authed(&folder.target).await?);
            let request = pb::DeleteSecretImportRequest { project_id: folder.project, secret_import_id: id };
            client.delete_secret_import(request).await.map_err(rpc)?;
            eprintln!("deleted");
        }
    }
    Ok(())
}

//! `hush keys rotate`: offline root key rotation (see `crate::keys::rotate`).

use std::path::PathBuf;

use clap::Subcommand;

use crate::{
    config::{RootKeyFlags, StorageFlags},
    keys::rotate,
};

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Re-seal everything under a new root key, in one transaction. Stop every `hush serve` on the database
    /// first (refused otherwise). The current key is read as `hush serve` reads it.
    Rotate {
        /// Where the data lives.
        #[command(flatten)]
        storage: StorageFlags,
        /// The current root key.
        #[command(flatten)]
        key: RootKeyFlags,
        /// File with the new root key (base64 of 32 bytes); generated (0600) when it does not exist. Keep it
        /// until `hush serve` has started with the new key.
        #[arg(long)]
        new_root_key_file: PathBuf,
    },
}

pub async fn keys(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Rotate { storage, key, new_root_key_file } => {
            let done = rotate::rotate(&storage, &key, &new_root_key_file).await?;
            let file = new_root_key_file.display();
            if done.generated_new_key {
                outln!("generated a new root key in {file}");
            }
            outln!(
                "re-sealed {} project data keys, {} audit stream configurations and the root key check with the new key",
                done.resealed.project_keys,
                done.resealed.stream_configs
            );
            match done.key_file {
                Some(path) => outln!("{} holds the new key; `hush serve` uses it from now on", path.display()),
                None => outln!(
                    "the old key no longer opens this data: store the new key from {file} where --root-key or \
                     --root-key-command reads it, start `hush serve` with it, then delete {file}"
                ),
            }
            Ok(())
        }
    }
}

//! `hush backup` and `hush restore` (see `crate::store::backup`).

use std::path::PathBuf;

use clap::Args;

use crate::{config::StorageFlags, store::backup};

/// What `hush backup` says on PostgreSQL, where pg_dump is the tool. It never repeats the database URL (it may
/// hold a password).
const USE_PG_DUMP: &str = "hush backup copies SQLite databases; this one is PostgreSQL, whose own pg_dump takes a \
     consistent snapshot of a running database (the root key check included):
  pg_dump --format=custom --file hush.dump \"$HUSH_DATABASE_URL\"
and pg_restore puts it into a new, empty database:
  createdb hush_restored && pg_restore --no-owner --dbname postgres://…/hush_restored hush.dump
then `hush serve --database-url postgres://…/hush_restored` with the same root key";

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The new backup file (0600); an existing file is never overwritten.
    #[arg(long)]
    to: PathBuf,
    /// The database to copy, found as `hush serve` finds it; the server may be running.
    #[command(flatten)]
    storage: StorageFlags,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// A file made by `hush backup`.
    #[arg(long)]
    from: PathBuf,
    /// The data dir to restore into: it must not exist or be empty.
    #[arg(long, env = "HUSH_DATA_DIR")]
    data_dir: PathBuf,
}

pub async fn backup(args: BackupArgs) -> anyhow::Result<()> {
    if args.storage.database_url.as_deref().is_some_and(|url| url.starts_with("postgres")) {
        anyhow::bail!(USE_PG_DUMP);
    }
    let url = args.storage.database_url();
    let source = crate::store::sqlite_file(&url)
        .ok_or_else(|| anyhow::anyhow!("--database-url must be a postgres:// or sqlite:// URL of a file"))?;
    backup::backup(&source, &args.to).await?;
    outln!("backed up {} to {}", source.display(), args.to.display());
    Ok(())
}

pub async fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let database = backup::restore(&args.from, &args.data_dir).await?;
    outln!(
        "restored {} to {}; serve it with `hush serve --data-dir {}` and the root key the data was sealed with \
         (copy root.key from the old data dir into {}, or give it with --root-key or --root-key-command)",
        args.from.display(),
        database.display(),
        args.data_dir.display(),
        args.data_dir.display()
    );
    Ok(())
}

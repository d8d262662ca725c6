//! `.hush.toml`: a directory's default project, environment and folder path, written by `hush init` and read
//! by every command run in that directory or below it (the nearest file up the tree wins). A flag or its
//! environment variable (`HUSH_PROJECT`, `HUSH_ENV`, `HUSH_PATH`) beats the file; the file beats the built-in
//! defaults (`dev`, `/`). It holds no credential: it can be committed with the code it configures.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use serde::{Deserialize, Serialize};

use super::commands::Target;

/// The file's name.
pub const FILE_NAME: &str = ".hush.toml";
/// The error when no project is named anywhere.
pub const NO_PROJECT: &str = "no project: pass --project, set HUSH_PROJECT, or run `hush init --project NAME` here";
/// Largest file read: a few short lines are expected.
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// What a `.hush.toml` holds.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalDefaults {
    /// Project id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Environment slug.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// Folder path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// The nearest `.hush.toml` from the current directory up, read; none found is all defaults.
pub fn find() -> anyhow::Result<LocalDefaults> {
    let cwd = std::env::current_dir().context("reading the current directory")?;
    match cwd.ancestors().map(|dir| dir.join(FILE_NAME)).find(|file| file.is_file()) {
        Some(file) => read(&file),
        None => Ok(LocalDefaults::default()),
    }
}

fn read(file: &Path) -> anyhow::Result<LocalDefaults> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(file)
        .and_then(|f| f.take(MAX_FILE_BYTES).read_to_string(&mut text))
        .with_context(|| format!("reading {}", file.display()))?;
    toml::from_str(&text).with_context(|| format!("{} is not a valid {FILE_NAME}", file.display()))
}

/// `given` when it is not empty, else the project of `.hush.toml`, else an error saying how to name one.
pub fn project(given: String) -> anyhow::Result<String> {
    if !given.is_empty() {
        return Ok(given);
    }
    find()?.project.context(NO_PROJECT)
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Project id or name (stored as its id).
    #[arg(long, env = "HUSH_PROJECT")]
    project: String,
    /// Environment slug.
    #[arg(long = "env", env = "HUSH_ENV")]
    environment: Option<String>,
    /// Folder path.
    #[arg(long, env = "HUSH_PATH")]
    path: Option<String>,
    /// Replace an existing `.hush.toml` here.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    target: Target,
}

/// `hush init`: checks the project exists for the caller, then writes `.hush.toml` in the current directory.
pub async fn init(args: InitArgs) -> anyhow::Result<()> {
    let file = PathBuf::from(FILE_NAME);
    anyhow::ensure!(args.force || !file.exists(), "{FILE_NAME} exists here: add --force to replace it");
    let id = super::names::project_id(&args.target, &args.project).await?;
    let defaults = LocalDefaults { project: Some(id), env: args.environment, path: args.path };
    let mut text = format!("# hush defaults for this directory and below (hush init --project {})\n", args.project);
    text.push_str(&toml::to_string(&defaults).context("writing TOML")?);
    std::fs::write(&file, text).with_context(|| format!("writing {FILE_NAME}"))?;
    eprintln!("wrote {}: commands here use project {}", std::path::absolute(&file)?.display(), args.project);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_init_writes_and_refuses_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(FILE_NAME);
        let written = LocalDefaults { project: Some("p".into()), env: Some("prod".into()), path: None };
        std::fs::write(&file, toml::to_string(&written).unwrap()).unwrap();
        let read_back = read(&file).unwrap();
        assert_eq!(
            (read_back.project.as_deref(), read_back.env.as_deref(), read_back.path),
            (Some("p"), Some("prod"), None)
        );
        std::fs::write(&file, "projet = \"p\"\n").unwrap();
        let error = format!("{:#}", read(&file).unwrap_err());
        assert!(error.contains("projet"), "the misspelt key is named: {error}");
    }
}

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
const MAX_FILE_BYTES: usize = 64 * 1024;

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

/// The nearest `.hush.toml` from the current directory up, read; none found is all defaults. The nearest one
/// that exists is the one used: if it cannot be used (not a file, too large, not TOML), that is an error naming
/// it, never a silent fall-back to a file further up.
pub fn find() -> anyhow::Result<LocalDefaults> {
    let cwd = std::env::current_dir().context("reading the current directory")?;
    match cwd.ancestors().map(|dir| dir.join(FILE_NAME)).find(|file| file.symlink_metadata().is_ok()) {
        Some(file) => read(&file),
        None => Ok(LocalDefaults::default()),
    }
}

fn read(file: &Path) -> anyhow::Result<LocalDefaults> {
    let shown = file.display();
    let metadata = std::fs::metadata(file).with_context(|| format!("reading {shown}"))?;
    // A FIFO or a device would never end (or block); a directory cannot be read.
    anyhow::ensure!(metadata.is_file(), "{shown} is not a regular file");
    let opened = std::fs::File::open(file).with_context(|| format!("reading {shown}"))?;
    let bytes = super::output::read_capped(opened, MAX_FILE_BYTES, &shown.to_string())?;
    let text = String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("{shown} is not UTF-8 text"))?;
    toml::from_str(&text).with_context(|| format!("{shown} is not a valid {FILE_NAME}"))
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

/// `hush init`: checks that the caller can see the project and that it has the environment, then writes
/// `.hush.toml` in the current directory. What it writes is what later commands will use, so it is checked now.
pub async fn init(args: InitArgs) -> anyhow::Result<()> {
    use crate::pb::{self, projects_service_client::ProjectsServiceClient};
    let file = PathBuf::from(FILE_NAME);
    anyhow::ensure!(
        args.force || file.symlink_metadata().is_err(),
        "{FILE_NAME} exists here: add --force to replace it"
    );
    if let Some(path) = &args.path {
        anyhow::ensure!(path.starts_with('/'), "--path '{path}': a folder path starts with /");
    }
    let id = super::names::project_id(&args.target, &args.project).await?;
    let mut client = ProjectsServiceClient::new(super::client::authed(&args.target).await?);
    let request = pb::ListEnvironmentsRequest { project_id: id.clone() };
    let envs = client.list_environments(request).await.map_err(super::commands::rpc)?.into_inner().environments;
    if let Some(env) = &args.environment {
        let slugs: Vec<&str> = envs.iter().map(|e| e.slug.as_str()).collect();
        anyhow::ensure!(
            slugs.contains(&env.as_str()),
            "--env '{env}': the project's environments are {}",
            slugs.join(", ")
        );
    }
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
        // Too large, or not a file: refused naming it, never read in part.
        std::fs::write(&file, format!("project = \"p\"\n#{}\npath = \"/api\"\n", "x".repeat(70_000))).unwrap();
        assert!(format!("{:#}", read(&file).unwrap_err()).contains("larger than"));
        std::fs::remove_file(&file).unwrap();
        std::fs::create_dir(&file).unwrap();
        assert!(format!("{:#}", read(&file).unwrap_err()).contains("not a regular file"));
    }
}

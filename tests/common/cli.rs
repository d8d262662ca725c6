//! Running the `hush` binary as a user would, with its session in a directory of the test's own.

use tokio::process::Command;

/// The binary cargo built for these tests.
pub const HUSH: &str = env!("CARGO_BIN_EXE_hush");

/// Client settings a developer's environment might hold; the tests pass everything explicitly.
const CLIENT_ENV: [&str; 12] = [
    "HUSH_TOKEN",
    "HUSH_SERVER",
    "HUSH_PROJECT",
    "HUSH_ENV",
    "HUSH_PATH",
    "HUSH_PROFILE",
    "HUSH_OUTPUT",
    "HUSH_CLIENT_ID",
    "HUSH_CLIENT_SECRET",
    "HUSH_STREAM_TOKEN",
    "HUSH_STREAM_API_KEY",
    "HUSH_STREAM_CLIENT_SECRET",
];

/// What a run printed.
pub struct Run {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `hush args…` with its session kept in `config_dir`, which is also its working directory (so no
/// `.hush.toml` of the developer's applies).
pub async fn run(config_dir: &std::path::Path, args: &[&str]) -> Run {
    run_in(config_dir, config_dir, args).await
}

/// Runs `hush args…` in `cwd`, with its session kept in `config_dir`.
pub async fn run_in(config_dir: &std::path::Path, cwd: &std::path::Path, args: &[&str]) -> Run {
    let mut command = Command::new(HUSH);
    command.args(args).env("HUSH_CONFIG_DIR", config_dir).current_dir(cwd);
    for name in CLIENT_ENV {
        command.env_remove(name);
    }
    let output = command.output().await.expect("run hush");
    Run {
        success: output.status.success(),
        stdout: String::from_utf8(output.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(output.stderr).expect("utf-8 stderr"),
    }
}

/// Runs `hush args…`; stdout on success, stderr on failure.
pub async fn hush(config_dir: &std::path::Path, args: &[&str]) -> Result<String, String> {
    let run = run(config_dir, args).await;
    if run.success { Ok(run.stdout) } else { Err(run.stderr) }
}

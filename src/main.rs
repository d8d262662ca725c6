//! The `hush` binary: `serve` runs the server; the other commands are a gRPC client of it.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = hush::cli::Cli::parse();
    match hush::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

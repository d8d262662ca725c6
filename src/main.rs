//! The `hush` binary: `serve` runs the server; the other commands are a gRPC client of it.

use clap::Parser;

/// glibc's allocator spent about a seventh of a loaded server's CPU in malloc/free (consolidating chunks freed by
/// other threads); mimalloc's per-thread heaps avoid that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

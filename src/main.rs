//! The `hush` binary: `serve` runs the server; the other commands are a gRPC client of it.

use clap::Parser;

// A server allocates and frees small buffers for every request on every thread; glibc's allocator spent about
// a tenth of the server's CPU on that in the read benchmark (docs/BENCHMARKS.md), mimalloc much less.
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

//! The `hush` binary: `serve` runs the server; the other commands are a gRPC client of it.

use clap::Parser;

/// mimalloc rather than glibc's malloc: a request allocates and frees many small buffers (HTTP/2 frames,
/// protobuf messages, SQL rows) across threads; reads +8–23% side by side (docs/BENCHMARKS.md). Built without
/// transparent huge pages (`no_thp`): with them an idle server's RSS doubled and freed request bodies stayed
/// resident (`tests/limits.rs`).
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

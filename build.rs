//! Compiles `proto/hush/v1/*.proto` with protox (pure Rust, no system `protoc`), generates the tonic services
//! and messages into `OUT_DIR`, and writes the encoded descriptor set that reflection and the JSON gateway read.

use std::{fs, io, path::PathBuf};

use protox::prost::Message;

const PROTO_ROOT: &str = "proto";
const PROTO_DIR: &str = "proto/hush/v1";

fn main() -> io::Result<()> {
    // The builder does not emit rerun-if-changed for protox input; without this a proto edit is ignored.
    println!("cargo:rerun-if-changed={PROTO_ROOT}");

    let mut files: Vec<PathBuf> = fs::read_dir(PROTO_DIR)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "proto"))
        .collect();
    files.sort();

    let fds = protox::compile(&files, [PROTO_ROOT]).map_err(io::Error::other)?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::write(out_dir.join("hush_descriptor.bin"), fds.encode_to_vec())?;

    // Every message knows its full name (`prost::Name`), so the CLI prints any of them as proto JSON.
    let mut config = tonic_prost_build::Config::new();
    config.enable_type_names();
    tonic_prost_build::configure()
        // Services answer UNIMPLEMENTED until a later change implements each RPC.
        .generate_default_stubs(true)
        .compile_fds_with_config(fds, config)
}

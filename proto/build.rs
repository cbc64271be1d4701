//! Compiles `vuoro/v1/*.proto` with the vendored `protoc` (no system protobuf needed), and
//! writes a descriptor set for gRPC server reflection.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let files =
        ["contact", "agent", "pool", "admin", "log", "telephony"].map(|f| format!("vuoro/v1/{f}.proto"));
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure()
        // `AgentService.Connect` would clash with the generated clients' `connect`
        // constructor: clients are built with `new(Channel)` instead.
        .build_transport(false)
        .file_descriptor_set_path(out.join("vuoro_v1_descriptor.bin"))
        .compile_with_config(config, &files, &[".".to_owned()])?;
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    Ok(())
}

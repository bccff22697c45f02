//! Compiles `proto/faultline/v1/*.proto` with protox (pure Rust, no `protoc` needed).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/faultline/v1/agent.proto"];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    // The descriptors, for faultd's server reflection (grpcurl needs no .proto file).
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("faultline_v1_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}

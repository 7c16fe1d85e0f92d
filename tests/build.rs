//! Compiles the test-only protos (echo baseline, reflection client view) with protox.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("proto");
    let files = ["loadtest/echo.proto", "reflection/v1.proto", "reflection/v1alpha.proto"];
    for f in files {
        println!("cargo:rerun-if-changed={}", root.join(f).display());
    }
    let fds = protox::compile(files, [&root])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    let echo = protox::compile(["loadtest/echo.proto"], [&root])?;
    std::fs::write(out.join("echo.descriptor.bin"), prost::Message::encode_to_vec(&echo))?;
    tonic_prost_build::configure().build_server(true).build_client(true).compile_fds(fds)?;
    Ok(())
}

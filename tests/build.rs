//! Compiles the test-only protos (echo baseline, reflection client view) with protox.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("proto");
    let out = PathBuf::from(env::var("OUT_DIR")?);
    for f in ["loadtest/echo.proto", "reflection/v1.proto"] {
        println!("cargo:rerun-if-changed={}", root.join(f).display());
    }
    // v1alpha is the same protocol under another package name: derive it rather than keep a copy.
    let v1 = std::fs::read_to_string(root.join("reflection/v1.proto"))?;
    let generated = out.join("generated");
    std::fs::create_dir_all(generated.join("reflection"))?;
    std::fs::write(
        generated.join("reflection/v1alpha.proto"),
        v1.replace("grpc.reflection.v1;", "grpc.reflection.v1alpha;"),
    )?;
    let files = ["loadtest/echo.proto", "reflection/v1.proto", "reflection/v1alpha.proto"];
    let fds = protox::compile(files, [&root, &generated])?;
    let echo = protox::compile(["loadtest/echo.proto"], [&root])?;
    std::fs::write(out.join("echo.descriptor.bin"), prost::Message::encode_to_vec(&echo))?;
    tonic_prost_build::configure().build_server(true).build_client(true).compile_fds(fds)?;
    Ok(())
}

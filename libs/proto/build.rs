//! Compiles every package under `proto/` with protox (pure Rust, no system protoc) and writes
//! one encoded `FileDescriptorSet` per package to OUT_DIR for gRPC reflection.

use std::{env, fs, path::PathBuf};

use prost::Message;

/// The packages this crate exposes: (proto package, files relative to `proto/`).
const PACKAGES: &[(&str, &[&str])] = &[
    (
        "timetravelers.common.v1",
        &["timetravelers/common/v1/event.proto", "timetravelers/common/v1/outbox.proto"],
    ),
    (
        "timetravelers.identity.v1",
        &[
            "timetravelers/identity/v1/resources.proto",
            "timetravelers/identity/v1/auth.proto",
            "timetravelers/identity/v1/account.proto",
            "timetravelers/identity/v1/admin.proto",
            "timetravelers/identity/v1/settings.proto",
            "timetravelers/identity/v1/revocations.proto",
        ],
    ),
    (
        "timetravelers.profiles.v1",
        &[
            "timetravelers/profiles/v1/resources.proto",
            "timetravelers/profiles/v1/profile.proto",
            "timetravelers/profiles/v1/goals.proto",
            "timetravelers/profiles/v1/assessment.proto",
            "timetravelers/profiles/v1/experience.proto",
            "timetravelers/profiles/v1/skills.proto",
            "timetravelers/profiles/v1/integration.proto",
        ],
    ),
    (
        "timetravelers.analytics.v1",
        &[
            "timetravelers/analytics/v1/ingest.proto",
            "timetravelers/analytics/v1/reports.proto",
            "timetravelers/analytics/v1/events.proto",
            "timetravelers/analytics/v1/admin.proto",
        ],
    ),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    println!("cargo:rerun-if-changed={}", root.display());

    for (package, files) in PACKAGES {
        for file in *files {
            println!("cargo:rerun-if-changed={}", root.join(file).display());
        }
        let fds = protox::compile(*files, [&root])?;
        fs::write(out_dir.join(format!("{package}.descriptor.bin")), fds.encode_to_vec())?;
    }
    // Code for every package in one pass: generating per package would write a package a
    // second time, from only the files another package imports of it.
    let all: Vec<&str> = PACKAGES.iter().flat_map(|(_, files)| files.iter().copied()).collect();
    let fds = protox::compile(all, [&root])?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(fds)?;
    Ok(())
}

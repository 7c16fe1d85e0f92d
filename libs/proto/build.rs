//! Compiles every package under `proto/` with protox (pure Rust, no system protoc) and writes
//! one encoded `FileDescriptorSet` per package to OUT_DIR for gRPC reflection.

use std::{env, fs, path::PathBuf};

use prost::Message;

/// The packages this crate exposes: (proto package, files relative to `proto/`).
const PACKAGES: &[(&str, &[&str])] = &[
    (
        "timetravelers.common.v1",
        &[
            "timetravelers/common/v1/event.proto",
            "timetravelers/common/v1/outbox.proto",
            "timetravelers/common/v1/usage.proto",
        ],
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
        "timetravelers.matching.v1",
        &[
            "timetravelers/matching/v1/mentors.proto",
            "timetravelers/matching/v1/matches.proto",
            "timetravelers/matching/v1/mentorships.proto",
            "timetravelers/matching/v1/admin.proto",
            "timetravelers/matching/v1/integration.proto",
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
    let generated = format!("{}{}", descriptor_sets(), message_limits(&fds));
    fs::write(out_dir.join("generated.rs"), generated)?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(fds)?;
    Ok(())
}

/// `FILE_DESCRIPTOR_SETS`: every package's descriptors, so tools that walk all the contracts
/// (reflection-driven test suites) need no list of their own.
fn descriptor_sets() -> String {
    let mut out = String::from(
        "/// The encoded descriptors of every package, in `PACKAGES` order.\n\
         pub const FILE_DESCRIPTOR_SETS: &[&[u8]] = &[\n",
    );
    for (package, _) in PACKAGES {
        out.push_str(&format!("    crate::{}::FILE_DESCRIPTOR_SET,\n", module_path(package)));
    }
    out.push_str("];\n");
    out
}

/// `impl MessageLimits` for every generated server, so the platform sets the message-size
/// limits when it mounts one (no service writes the two calls itself).
fn message_limits(fds: &prost_types::FileDescriptorSet) -> String {
    let mut out = String::new();
    for file in &fds.file {
        let module = module_path(file.package());
        for service in &file.service {
            let name = service.name();
            out.push_str(&format!(
                "impl<T> crate::MessageLimits for crate::{module}::{snake}_server::{name}Server<T> {{\n\
                 \x20   fn with_message_limits(self, max: usize) -> Self {{\n\
                 \x20       self.max_decoding_message_size(max).max_encoding_message_size(max)\n\
                 \x20   }}\n}}\n",
                snake = snake_case(name),
            ));
        }
    }
    out
}

/// `timetravelers.profiles.v1` -> `profiles::v1`, the crate module of a package.
fn module_path(package: &str) -> String {
    package.strip_prefix("timetravelers.").unwrap_or(package).replace('.', "::")
}

/// `ProfileService` -> `profile_service`, as tonic names the server module.
fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

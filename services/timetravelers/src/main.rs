//! `timetravelers`: the whole platform in one process (SQLite, in-process cache, no services to
//! install). `cargo run --release` at the workspace root starts it.

use std::process::ExitCode;

use timetravelers::{Config, run};
use tt_common::server::run_binary;

fn main() -> ExitCode {
    let config = Config::load();
    let (telemetry, listen) = (config.telemetry.clone(), config.listen);
    run_binary("timetravelers", &telemetry, listen, |listener, shutdown| run(config, listener, shutdown))
}

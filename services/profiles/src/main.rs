//! The standalone profiles service (one service per process, configured from the environment).

use std::process::ExitCode;

use tt_common::{config, server::run_binary};
use tt_profiles::run::{ProfilesConfig, run};

fn main() -> ExitCode {
    let config: ProfilesConfig = config::load();
    let (telemetry, listen) = (config.telemetry.clone(), config.listen);
    run_binary("profiles", &telemetry, listen, |listener, shutdown| run(config, listener, shutdown))
}

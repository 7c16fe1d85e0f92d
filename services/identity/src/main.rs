//! The standalone identity service (one service per process, configured from the environment).

use std::process::ExitCode;

use tt_common::{config, server::run_binary};
use tt_identity::run::{IdentityConfig, run};

fn main() -> ExitCode {
    let config: IdentityConfig = config::load();
    let (telemetry, listen) = (config.telemetry.clone(), config.listen);
    run_binary("identity", &telemetry, listen, |listener, shutdown| run(config, listener, shutdown))
}

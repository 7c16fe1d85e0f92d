//! The standalone analytics service (one service per process, configured from the environment).

use std::process::ExitCode;

use tt_analytics::run::{AnalyticsConfig, run};
use tt_common::{config, server::run_binary};

fn main() -> ExitCode {
    let config: AnalyticsConfig = config::load();
    let (telemetry, listen) = (config.telemetry.clone(), config.listen);
    run_binary("analytics", &telemetry, listen, |listener, shutdown| run(config, listener, shutdown))
}

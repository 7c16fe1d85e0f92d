//! The standalone identity service (one service per process, configured from the environment).

use tt_common::{config, server::Shutdown, telemetry};
use tt_identity::run::{IdentityConfig, run};

fn main() -> anyhow::Result<()> {
    let config: IdentityConfig = config::load();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let _telemetry = telemetry::init(&config.telemetry, "identity").map_err(anyhow::Error::msg)?;
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        run(config, listener, Shutdown::on_signals()).await.map_err(anyhow::Error::msg)
    })
}

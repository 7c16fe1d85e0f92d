//! `timetravelers`: the whole platform in one process (SQLite, in-process cache, no services to
//! install). `cargo run --release` at the workspace root starts it.

use timetravelers::{Config, run};
use tt_common::{config, server::Shutdown, telemetry};

fn main() -> anyhow::Result<()> {
    let config: Config = config::load();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let _telemetry = telemetry::init(&config.telemetry, "timetravelers").map_err(anyhow::Error::msg)?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| anyhow::anyhow!("TT_LISTEN_ADDR {}: {e}", config.listen))?;
        run(config, listener, Shutdown::on_signals()).await.map_err(anyhow::Error::msg)
    })
}

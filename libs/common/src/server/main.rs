//! The body every service binary's `main` shares: runtime, telemetry, listener, signals, exit code.

use std::{future::Future, net::SocketAddr, process::ExitCode};

use tokio::net::TcpListener;

use super::Shutdown;
use crate::{config::TelemetryArgs, telemetry};

/// Starts a multi-threaded runtime, initialises telemetry for `service`, binds `listen`, and runs
/// `serve` until it returns; SIGTERM and SIGINT trigger its shutdown. Errors are printed as one
/// line naming the binary, with exit code 1.
pub fn run_binary<F, Fut, E>(
    service: &str,
    telemetry_args: &TelemetryArgs,
    listen: SocketAddr,
    serve: F,
) -> ExitCode
where
    F: FnOnce(TcpListener, Shutdown) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|runtime| {
            runtime.block_on(async {
                let _telemetry = telemetry::init(telemetry_args, service).map_err(|e| e.to_string())?;
                let listener =
                    TcpListener::bind(listen).await.map_err(|e| format!("TT_LISTEN_ADDR {listen}: {e}"))?;
                serve(listener, Shutdown::on_signals()).await.map_err(|e| e.to_string())
            })
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{service}: {e}");
            ExitCode::FAILURE
        }
    }
}

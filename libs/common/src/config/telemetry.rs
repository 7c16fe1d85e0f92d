//! Telemetry settings (logs and traces).

use clap::Args;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Telemetry settings shared by every binary.
#[derive(Debug, Clone, Args)]
pub struct TelemetryArgs {
    /// Log format.
    #[arg(long, env = "TT_LOG_FORMAT", value_enum, default_value = "pretty")]
    pub log_format: LogFormat,
    /// Log filter, RUST_LOG syntax (for example `info,tt_identity=debug`).
    #[arg(long, env = "TT_LOG", default_value = "info")]
    pub log: String,
    /// OTLP/gRPC endpoint for traces (for example http://otel-collector:4317); off when empty.
    #[arg(long, env = "TT_OTLP_ENDPOINT", default_value = "")]
    pub otlp_endpoint: String,
}

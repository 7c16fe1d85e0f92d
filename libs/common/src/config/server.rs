//! Serving settings: limits, timeouts, metrics, shutdown.

use std::{net::SocketAddr, time::Duration};

use clap::Args;

use super::{ConfigError, HumanDuration, defaults};

/// Serving settings shared by every binary.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Prometheus metrics address; `off` disables the endpoint.
    #[arg(long, env = "TT_METRICS_ADDR", default_value = "127.0.0.1:9464")]
    pub metrics_addr: String,
    /// Longest time a request may run (a shorter grpc-timeout from the caller wins).
    #[arg(long, env = "TT_REQUEST_TIMEOUT", default_value = "30s")]
    pub request_timeout: HumanDuration,
    /// Requests served at once across all connections; beyond it calls get RESOURCE_EXHAUSTED.
    #[arg(long, env = "TT_MAX_CONCURRENT_REQUESTS", default_value_t = 1024)]
    pub max_concurrent_requests: usize,
    /// HTTP/2 streams per connection.
    #[arg(long, env = "TT_MAX_CONCURRENT_STREAMS", default_value_t = 256)]
    pub max_concurrent_streams: u32,
    /// Largest request or response message, in bytes.
    #[arg(long, env = "TT_MAX_MESSAGE_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_message_bytes: usize,
    /// HTTP/2 keepalive ping interval.
    #[arg(long, env = "TT_KEEPALIVE", default_value = "30s")]
    pub keepalive: HumanDuration,
    /// Open client connections at most (lowered to stay below the open-file limit); new ones
    /// past it are closed at once.
    #[arg(long, env = "TT_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
    /// How long a new connection may take to send the HTTP/2 preface and its first frame.
    #[arg(long, env = "TT_HANDSHAKE_TIMEOUT", default_value = "10s")]
    pub handshake_timeout: HumanDuration,
    /// After a shutdown signal: how long to keep serving while load balancers notice NOT_SERVING.
    #[arg(long, env = "TT_SHUTDOWN_DRAIN", default_value = "5s")]
    pub shutdown_drain: HumanDuration,
    /// After the drain: how long in-flight calls get before the process stops anyway.
    #[arg(long, env = "TT_SHUTDOWN_GRACE", default_value = "10s")]
    pub shutdown_grace: HumanDuration,
}

impl ServerArgs {
    /// The metrics address, or `None` when disabled.
    pub fn metrics_addr(&self) -> Result<Option<SocketAddr>, ConfigError> {
        match self.metrics_addr.trim() {
            "" | "off" => Ok(None),
            addr => addr
                .parse()
                .map(Some)
                .map_err(|_| ConfigError::new("TT_METRICS_ADDR", format!("{addr:?} is not host:port"))),
        }
    }

    /// Checks the values clap accepted for semantic sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.metrics_addr()?;
        if self.max_concurrent_requests == 0 {
            return Err(ConfigError::new("TT_MAX_CONCURRENT_REQUESTS", "must be at least 1"));
        }
        if self.max_message_bytes < 1024 {
            return Err(ConfigError::new("TT_MAX_MESSAGE_BYTES", "must be at least 1024"));
        }
        if self.request_timeout.0.is_zero() {
            return Err(ConfigError::new("TT_REQUEST_TIMEOUT", "must be positive"));
        }
        if self.max_connections == 0 {
            return Err(ConfigError::new("TT_MAX_CONNECTIONS", "must be at least 1"));
        }
        if self.handshake_timeout.0.is_zero() {
            return Err(ConfigError::new("TT_HANDSHAKE_TIMEOUT", "must be positive"));
        }
        Ok(())
    }

    /// Settings for tests and embedding: metrics off, short drain.
    pub fn for_tests() -> Self {
        Self {
            metrics_addr: "off".into(),
            shutdown_drain: HumanDuration(Duration::ZERO),
            shutdown_grace: HumanDuration(Duration::from_secs(5)),
            ..defaults()
        }
    }
}

//! Why the platform could not start or serve.

use crate::{config::ConfigError, server::ServeError, storage::StorageError};

pub use crate::error::BoxError;

/// Start-up and serving failures, each naming what failed.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("database: {0}")]
    Storage(#[from] StorageError),
    #[error("cache: {0}")]
    Cache(#[from] crate::cache::CacheError),
    #[error("peer {name}: {source}")]
    Peer { name: String, source: crate::client::PeerError },
    #[error("{module}: {source}")]
    Module { module: &'static str, source: BoxError },
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error("telemetry: {0}")]
    Telemetry(String),
}

impl PlatformError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io { what: what.into(), source }
    }
}

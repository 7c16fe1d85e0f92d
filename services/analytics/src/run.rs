//! Assembly: analytics over a database and the shared cache, and the standalone `analytics`
//! binary's configuration and entry point.

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use clap::Parser;
use tokio::net::TcpListener;
use tt_common::{
    auth::remote_verifier,
    cache::Cache,
    client::{Credentials, Peer, PeerOptions},
    clock::SharedClock,
    config::{ConfigError, ServerArgs, StoreArgs, TelemetryArgs, TokenArgs, Validate},
    secrets::Secret,
    server::{ServerBuilder, Shutdown},
    storage::{Database, PageTokens},
};

use crate::{Analytics, config::AnalyticsArgs, store::Store};

/// Builds analytics on its database and the platform cache (analytics keys its entries under
/// `analytics:`).
pub fn build(
    db: Database,
    cache: &Cache,
    secret: &Secret,
    clock: SharedClock,
    args: &AnalyticsArgs,
) -> Arc<Analytics> {
    Arc::new(Analytics::new(
        Store::new(db),
        cache.scoped("analytics:"),
        clock,
        PageTokens::new(secret),
        args.analytics_dashboard_ttl.0,
    ))
}

/// Configuration of the standalone `analytics` binary (production: PostgreSQL and Redis).
#[derive(Debug, Clone, Parser)]
#[command(name = "analytics", version, about = "TimeTravelers analytics service")]
pub struct AnalyticsConfig {
    /// TOML file with any of these settings (keys are the long flag names).
    #[arg(long, env = "TT_CONFIG")]
    pub config: Option<PathBuf>,
    /// gRPC listen address.
    #[arg(long, env = "TT_LISTEN_ADDR", default_value = "0.0.0.0:50051")]
    pub listen: SocketAddr,
    /// Identity's gRPC URL (verification keys).
    #[arg(long, env = "TT_IDENTITY_URL", default_value = "")]
    pub identity_url: String,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub tokens: TokenArgs,
    #[command(flatten)]
    pub analytics: AnalyticsArgs,
}

impl Validate for AnalyticsConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        tt_common::config::check_peer_url("TT_IDENTITY_URL", &self.identity_url, true)?;
        self.server.validate()?;
        self.store.validate()?;
        self.analytics.validate()
    }
}

/// Runs the standalone analytics service until `shutdown`.
pub async fn run(config: AnalyticsConfig, listener: TcpListener, shutdown: Shutdown) -> Result<(), String> {
    let clock: SharedClock = Arc::new(tt_common::clock::SystemClock);
    let (secret, db, cache) = config.store.open()?;
    let analytics = build(db, &cache, &secret, clock.clone(), &config.analytics);
    let identity = Peer::connect_lazy(PeerOptions::new(config.identity_url.clone()), Credentials::None)?;
    let mut builder = ServerBuilder::new(config.server.clone());
    builder.verifier(remote_verifier(config.tokens.settings(), identity, &secret, clock));
    crate::register(&mut builder, analytics.clone());
    let result = builder.serve(listener, shutdown).await.map_err(|e| e.to_string());
    analytics.store.db().close().await;
    result
}

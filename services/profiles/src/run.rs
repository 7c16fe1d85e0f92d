//! Assembly: profiles over a database and the shared cache, and the standalone `profiles`
//! binary's configuration and entry point.

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use clap::Parser;
use tokio::net::TcpListener;
use tt_common::{
    auth::{ClientCredentials, remote_verifier},
    cache::Cache,
    client::{Credentials, Peer, PeerOptions},
    clock::SharedClock,
    config::{ConfigError, ServerArgs, ServiceAccountArgs, StoreArgs, TelemetryArgs, TokenArgs, Validate},
    secrets::Secret,
    server::{ServerBuilder, Shutdown},
    storage::{Database, PageTokens},
};

use crate::{Profiles, config::ProfilesArgs, store::Store};

/// Builds profiles on its database and the platform cache (profiles keys its entries under
/// `profiles:`).
pub fn build(
    db: Database,
    cache: &Cache,
    secret: &Secret,
    clock: SharedClock,
    args: &ProfilesArgs,
) -> Result<Arc<Profiles>, String> {
    Profiles::new(
        Store::new(db),
        cache.scoped("profiles:"),
        clock,
        PageTokens::new(secret),
        args.profiles_cache_ttl.0,
    )
}

/// Configuration of the standalone `profiles` binary (production: PostgreSQL and Redis).
#[derive(Debug, Clone, Parser)]
#[command(name = "profiles", version, about = "TimeTravelers profiles service")]
pub struct ProfilesConfig {
    /// TOML file with any of these settings (keys are the long flag names).
    #[arg(long, env = "TT_CONFIG")]
    pub config: Option<PathBuf>,
    /// gRPC listen address.
    #[arg(long, env = "TT_LISTEN_ADDR", default_value = "0.0.0.0:50051")]
    pub listen: SocketAddr,
    /// Identity's gRPC URL (verification keys).
    #[arg(long, env = "TT_IDENTITY_URL", default_value = "")]
    pub identity_url: String,
    /// Analytics' gRPC URL: profile, goal, assessment, skill and completion events are
    /// delivered there from the outbox, with a token of profiles' service account
    /// (TT_SERVICE_CLIENT_ID and its secret). Until it is set, the events wait in the outbox.
    #[arg(long, env = "TT_ANALYTICS_URL", default_value = "")]
    pub analytics_url: String,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub tokens: TokenArgs,
    #[command(flatten)]
    pub profiles: ProfilesArgs,
    #[command(flatten)]
    pub account: ServiceAccountArgs,
}

impl Validate for ProfilesConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        tt_common::config::check_peer_url("TT_IDENTITY_URL", &self.identity_url, true)?;
        tt_common::config::check_peer_url("TT_ANALYTICS_URL", &self.analytics_url, false)?;
        self.server.validate()?;
        self.store.validate()?;
        self.profiles.validate()?;
        // A half-configured account (an id without a secret) is a mistake; none at all means
        // "not yet" (the account is created once identity runs) and events wait.
        self.account.credentials().map(|_| ())
    }
}

/// Runs the standalone profiles service until `shutdown`.
pub async fn run(config: ProfilesConfig, listener: TcpListener, shutdown: Shutdown) -> Result<(), String> {
    let clock: SharedClock = Arc::new(tt_common::clock::SystemClock);
    let (secret, db, cache) = config.store.open()?;
    let profiles = build(db, &cache, &secret, clock.clone(), &config.profiles)?;
    let identity = Peer::connect_lazy(PeerOptions::new(config.identity_url.clone()), Credentials::None)?;
    let analytics = match config.account.credentials().map_err(|e| e.to_string())? {
        Some((id, secret)) if !config.analytics_url.is_empty() => {
            let tokens = ClientCredentials::new(identity.clone(), id, secret, clock.clone());
            let options = PeerOptions::new(config.analytics_url.clone());
            Some(Peer::connect_lazy(options, Credentials::Service(tokens))?)
        }
        None if !config.analytics_url.is_empty() => {
            tracing::error!(
                "TT_ANALYTICS_URL is set but profiles has no service account (TT_SERVICE_CLIENT_ID and \
                 its secret): events wait in the outbox until one is configured"
            );
            None
        }
        _ => None,
    };
    let mut builder = ServerBuilder::new(config.server.clone());
    builder.verifier(remote_verifier(config.tokens.settings(), identity, &secret, clock));
    crate::register(&mut builder, profiles.clone(), analytics);
    let result = builder.serve(listener, shutdown).await.map_err(|e| e.to_string());
    profiles.store.db().close().await;
    result
}

//! Assembly: identity over a database, the shared cache and the process secret, and the
//! standalone `identity` binary's configuration and entry point.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use clap::Parser;
use tokio::net::TcpListener;
use tt_common::{
    auth::{Revocations, SubjectKeys, TokenVerifier},
    cache::Cache,
    clock::SharedClock,
    config::{ConfigError, ServerArgs, StoreArgs, TelemetryArgs, Validate},
    secrets::Secret,
    server::{ServerBuilder, Shutdown},
    storage::{Database, PageTokens},
};

use crate::{Identity, LocalKeySource, config::IdentityArgs, keyring::KeyRing, store::Store};

/// Builds identity on its database, the platform cache (identity keys its own entries under
/// `identity:`) and the secret (which also keys the subjects on the revocation feed).
pub async fn build(
    db: Database,
    cache: &Cache,
    secret: &Secret,
    clock: SharedClock,
    args: IdentityArgs,
) -> Result<Arc<Identity>, String> {
    let store = Store::new(db);
    let pem = match &args.signing_key_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| format!("TT_SIGNING_KEY_FILE {}: {e}", path.display()))?,
        ),
        None => None,
    };
    let publish_for = args.access_token_ttl.0.max(args.service_token_ttl.0) + Duration::from_secs(60);
    let keys = KeyRing::new(store.clone(), secret, pem, publish_for).map_err(|e| e.to_string())?;
    Identity::new(
        store,
        cache.scoped("identity:"),
        SubjectKeys::new(secret),
        keys,
        PageTokens::new(secret),
        clock,
        args,
    )
    .await
}

/// The verifier identity's own binary uses: keys from its store, revocations from its own feed
/// in process.
pub fn local_verifier(identity: &Arc<Identity>, clock: SharedClock) -> Arc<TokenVerifier> {
    let settings = identity.args.tokens.settings();
    let revocations =
        Arc::new(Revocations::with_keys(identity.hub.keys().clone(), settings.max_revocation_staleness));
    identity.hub.attach(revocations.clone());
    Arc::new(TokenVerifier::new(
        settings,
        Arc::new(LocalKeySource(identity.clone())),
        revocations,
        Arc::new(crate::revocations::LocalRevocations(identity.hub.clone())),
        clock,
    ))
}

/// Configuration of the standalone `identity` binary (production: PostgreSQL and Redis).
#[derive(Debug, Clone, Parser)]
#[command(name = "identity", version, about = "TimeTravelers identity service")]
pub struct IdentityConfig {
    /// TOML file with any of these settings (keys are the long flag names).
    #[arg(long, env = "TT_CONFIG")]
    pub config: Option<PathBuf>,
    /// gRPC listen address.
    #[arg(long, env = "TT_LISTEN_ADDR", default_value = "0.0.0.0:50051")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub identity: IdentityArgs,
}

impl Validate for IdentityConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.server.validate()?;
        self.store.validate()?;
        self.identity.validate()
    }
}

/// Runs the standalone identity service until `shutdown`.
pub async fn run(config: IdentityConfig, listener: TcpListener, shutdown: Shutdown) -> Result<(), String> {
    let clock: SharedClock = Arc::new(tt_common::clock::SystemClock);
    let (secret, db, cache) = config.store.open()?;
    let identity = build(db, &cache, &secret, clock.clone(), config.identity.clone()).await?;
    let mut builder = ServerBuilder::new(config.server.clone());
    builder.verifier(local_verifier(&identity, clock));
    crate::register(&mut builder, identity.clone());
    let result = builder.serve(listener, shutdown).await.map_err(|e| e.to_string());
    identity.store.db().close().await;
    result
}

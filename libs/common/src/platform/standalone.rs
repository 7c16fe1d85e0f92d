//! One module as its own process (production: PostgreSQL and Redis): the platform's settings,
//! the module's own, and a `TT_<PEER>_URL` for each peer it reaches.

use std::{
    collections::BTreeMap, ffi::OsString, net::SocketAddr, path::PathBuf, process::ExitCode, sync::Arc,
};

use clap::{CommandFactory, FromArgMatches, Parser};
use tokio::net::TcpListener;

use super::{Assembly, Definition, PlatformError, assemble};
use crate::{
    clock::SharedClock,
    config::{
        ConfigError, LoadError, ServerArgs, ServiceAccountArgs, StoreArgs, TelemetryArgs, TokenArgs,
        check_peer_url,
    },
    outbox::ANALYTICS,
    secrets::Secret,
    server::Shutdown,
    storage::Database,
};

/// The platform's settings of a service binary (each module adds its own beside them).
#[derive(Debug, Clone, Parser)]
#[command(version)]
pub struct ServiceConfig {
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
    pub tokens: TokenArgs,
    #[command(flatten)]
    pub account: ServiceAccountArgs,
}

/// A module's binary, configured.
pub struct Standalone {
    definition: &'static dyn Definition,
    catalog: &'static [&'static dyn Definition],
    pub config: ServiceConfig,
    matches: clap::ArgMatches,
    peers: BTreeMap<String, String>,
    /// The service account's id and secret (read once: the secret may come from a file).
    account: Option<(String, String)>,
}

impl std::fmt::Debug for Standalone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Standalone").field("module", &self.definition.manifest().name).finish()
    }
}

/// The peers `definition` reaches in its own process: identity (keys, revocations), analytics
/// and every consumer of the events it emits, and the peers its manifest names.
pub fn peer_names(definition: &dyn Definition, catalog: &[&'static dyn Definition]) -> Vec<&'static str> {
    let manifest = definition.manifest();
    let mut names: Vec<&'static str> = Vec::new();
    let mut add = |name: &'static str| {
        if name != manifest.name && !names.contains(&name) {
            names.push(name);
        }
    };
    add("identity");
    if !manifest.emits.is_empty() {
        add(ANALYTICS);
    }
    for consumer in catalog {
        let m = consumer.manifest();
        let consumes = m.consumes.is_some_and(|c| manifest.emits.iter().any(|t| c.types.contains(&t.name)));
        if consumes {
            add(m.name);
        }
    }
    for peer in manifest.peers {
        add(peer);
    }
    names
}

fn url_flag(name: &str) -> (String, String) {
    (format!("{name}_url"), format!("TT_{}_URL", name.to_uppercase()))
}

impl Standalone {
    /// The command line of `definition`'s binary.
    pub fn command(
        definition: &'static dyn Definition,
        catalog: &'static [&'static dyn Definition],
    ) -> clap::Command {
        let name = definition.manifest().name;
        let mut command = ServiceConfig::command().name(name).about(format!("TimeTravelers {name} service"));
        for peer in peer_names(definition, catalog) {
            let (id, env) = url_flag(peer);
            command = command.arg(
                clap::Arg::new(id.clone())
                    .long(id.replace('_', "-"))
                    .env(env)
                    .default_value("")
                    .help(format!("{peer}'s gRPC URL (events to it wait in the outbox until it is set)")),
            );
        }
        definition.args(command)
    }

    /// Parses and checks `args` (the program name first) and the environment.
    pub fn from_args<I>(
        definition: &'static dyn Definition,
        catalog: &'static [&'static dyn Definition],
        args: I,
    ) -> Result<Self, LoadError>
    where
        I: IntoIterator,
        I::Item: Into<OsString>,
    {
        let matches = crate::config::matches_from(Self::command(definition, catalog), args)?;
        let config = ServiceConfig::from_arg_matches(&matches)
            .map_err(|e| ConfigError::new("arguments", e.render().to_string()))?;
        let mut peers = BTreeMap::new();
        for peer in peer_names(definition, catalog) {
            let (id, env) = url_flag(peer);
            let url = matches.get_one::<String>(&id).cloned().unwrap_or_default();
            check_peer_url(&env, &url, peer == "identity")?;
            peers.insert(peer.to_owned(), url);
        }
        config.server.validate()?;
        config.store.validate()?;
        // A half-configured account (an id without a secret) is a mistake; none at all means
        // "not yet" (the account is created once identity runs) and calls needing it wait.
        let account = config.account.credentials()?;
        definition.validate(&matches)?;
        Ok(Self { definition, catalog, config, matches, peers, account })
    }

    /// Runs until `shutdown`.
    pub async fn run(self, listener: TcpListener, shutdown: Shutdown) -> Result<(), PlatformError> {
        let store = &self.config.store;
        let secret = Secret::load(&store.secret_key_file, store.create_secret).map_err(|e| {
            PlatformError::io(format!("TT_SECRET_KEY_FILE {}", store.secret_key_file.display()), e)
        })?;
        let db = Database::connect_lazy(&store.database_options()?)?;
        let cache = crate::cache::open(&store.redis_url()?)?;
        let mut peers = self.peers;
        let own = listener.local_addr().map_err(|e| PlatformError::io("TT_LISTEN_ADDR", e))?;
        // Identity verifies its own tokens the way every service does: over gRPC, here itself.
        peers.entry("identity".to_owned()).or_insert_with(|| format!("http://{}", loopback(own)));
        let clock: SharedClock = Arc::new(crate::clock::SystemClock);
        let databases = move |_: &str| Ok(db.clone());
        let assembled = assemble(Assembly {
            catalog: self.catalog,
            modules: &[self.definition],
            settings: &self.matches,
            server: self.config.server.clone(),
            tokens: self.config.tokens.settings(),
            secret,
            clock,
            cache,
            databases: &databases,
            peers,
            account: self.account,
            verify_in_process: true,
        })
        .await?;
        assembled.serve(listener, shutdown).await
    }
}

/// The `main` of a module's binary: configuration (exit 64 when bad), telemetry, signals.
pub fn main(definition: &'static dyn Definition, catalog: &'static [&'static dyn Definition]) -> ExitCode {
    let standalone =
        Standalone::from_args(definition, catalog, std::env::args_os()).unwrap_or_else(|e| e.exit());
    let (telemetry, listen) = (standalone.config.telemetry.clone(), standalone.config.listen);
    crate::server::run_binary(definition.manifest().name, &telemetry, listen, |listener, shutdown| {
        standalone.run(listener, shutdown)
    })
}

/// `addr` with an unspecified IP (`0.0.0.0`) replaced by 127.0.0.1, to call oneself.
pub fn loopback(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() { SocketAddr::from(([127, 0, 0, 1], addr.port())) } else { addr }
}

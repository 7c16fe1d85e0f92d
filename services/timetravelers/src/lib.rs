//! The all-in-one server: every TimeTravelers service on one port, each on its own SQLite file
//! under the data directory, one in-process cache, development keys. Services still reach each
//! other through their gRPC clients over loopback (token verification fetches identity's keys
//! with `ListPublicKeys`), so the path is the production one.

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use clap::Parser;
use tokio::net::TcpListener;
use tt_analytics::config::AnalyticsArgs;
use tt_common::{
    client::{Credentials, Peer, PeerOptions},
    clock::SharedClock,
    config::{ConfigError, ServerArgs, TelemetryArgs, Validate},
    secrets::Secret,
    server::{ServerBuilder, Shutdown},
    storage::{Database, DatabaseOptions},
};
use tt_identity::{Bootstrap, config::IdentityArgs};
use tt_profiles::config::ProfilesArgs;

/// Configuration of the all-in-one server.
#[derive(Debug, Clone, Parser)]
#[command(name = "timetravelers", version, about = "TimeTravelers: every service in one process")]
pub struct Config {
    /// TOML file with any of these settings (keys are the long flag names).
    #[arg(long, env = "TT_CONFIG")]
    pub config: Option<PathBuf>,
    /// gRPC listen address.
    #[arg(long, env = "TT_LISTEN_ADDR", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// Where the SQLite files, the secret and the first admin's password live.
    #[arg(long, env = "TT_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub identity: IdentityArgs,
    #[command(flatten)]
    pub profiles: ProfilesArgs,
    #[command(flatten)]
    pub analytics: AnalyticsArgs,
}

impl Validate for Config {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::new("TT_DATA_DIR", "must not be empty"));
        }
        self.server.validate()?;
        self.identity.validate()?;
        self.profiles.validate()?;
        self.analytics.validate()
    }
}

impl Config {
    /// Settings for tests: a data directory of their own, metrics off, no drain.
    pub fn for_tests(data_dir: PathBuf) -> Self {
        let defaults: Self = tt_common::config::defaults();
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir,
            telemetry: TelemetryArgs { log: "warn".into(), ..defaults.telemetry },
            server: ServerArgs::for_tests(),
            ..defaults
        }
    }
}

/// What a started server tells its operator.
#[derive(Debug, Clone)]
pub struct Started {
    pub addr: SocketAddr,
    pub admin: Bootstrap,
    /// Where the generated admin password was saved, if it was generated at some start.
    pub admin_password_file: PathBuf,
}

/// Opens everything, runs the one-time preparation (so the first admin can be printed), and
/// returns the server ready to serve on the listener bound to `addr`: one SQLite file per
/// service under the data directory and the in-process cache.
pub async fn start(config: Config, addr: SocketAddr) -> Result<(Started, ServerBuilder), String> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| format!("TT_DATA_DIR {}: {e}", config.data_dir.display()))?;
    let dir = config.data_dir.clone();
    let sqlite = move |name: &str| {
        Database::connect_lazy(&DatabaseOptions::new(Database::sqlite_url(&dir.join(format!("{name}.db")))))
            .map_err(|e| e.to_string())
    };
    start_with(config, addr, &sqlite, tt_common::cache::open("")?).await
}

/// [`start`] on databases `open` gives for each service name (`identity`, `profiles`,
/// `analytics`) and the given cache: tests run the all-in-one on PostgreSQL and Redis this way.
pub async fn start_with(
    mut config: Config,
    addr: SocketAddr,
    open: &dyn Fn(&str) -> Result<Database, String>,
    cache: tt_common::cache::Cache,
) -> Result<(Started, ServerBuilder), String> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| format!("TT_DATA_DIR {}: {e}", config.data_dir.display()))?;
    let secret = Secret::load(&config.data_dir.join("secret.key"), true)
        .map_err(|e| format!("{}: {e}", config.data_dir.join("secret.key").display()))?;
    let clock: SharedClock = Arc::new(tt_common::clock::SystemClock);
    // Services reach each other through their gRPC clients on this very server, as across pods.
    let own_url = format!("http://{}", loopback(addr));
    config.identity.profiles_url = own_url.clone();
    config.identity.analytics_url = own_url.clone();
    let identity_db = open("identity")?;
    let identity =
        tt_identity::run::build(identity_db, &cache, &secret, clock.clone(), config.identity.clone()).await?;
    let admin = identity.prepare().await?;
    let password_file = config.data_dir.join("admin-password.txt");
    if let Some(password) = &admin.generated_password {
        let _ = std::fs::remove_file(&password_file);
        tt_common::secrets::write_private(&password_file, &format!("{password}\n"))
            .map_err(|e| format!("{}: {e}", password_file.display()))?;
    }

    let profiles =
        tt_profiles::run::build(open("profiles")?, &cache, &secret, clock.clone(), &config.profiles)?;

    let analytics =
        tt_analytics::run::build(open("analytics")?, &cache, &secret, clock.clone(), &config.analytics);
    // Profiles reports to analytics with a service token identity signs for it in-process (a
    // deployed profiles uses its service account's client credentials instead).
    let profiles_tokens = tt_identity::events::SelfIssued::new(identity.clone(), "profiles");
    let analytics_peer =
        Peer::connect_lazy(PeerOptions::new(own_url.clone()), Credentials::Service(profiles_tokens))?;

    // Keys and revocations come from identity over gRPC, as in every other service's process.
    let identity_peer = Peer::connect_lazy(PeerOptions::new(own_url), Credentials::None)?;
    let verifier =
        tt_common::auth::remote_verifier(config.identity.tokens.settings(), identity_peer, &secret, clock);
    // And directly, so a revocation is honoured before the RPC that made it answers.
    identity.hub.attach(verifier.revocations().clone());

    let mut builder = ServerBuilder::new(config.server.clone());
    builder.verifier(verifier);
    tt_identity::register(&mut builder, identity);
    tt_profiles::register(&mut builder, profiles, Some(analytics_peer));
    tt_analytics::register(&mut builder, analytics);
    Ok((Started { addr, admin, admin_password_file: password_file }, builder))
}

/// Runs the all-in-one server until `shutdown`, printing the start-up banner.
pub async fn run(config: Config, listener: TcpListener, shutdown: Shutdown) -> Result<(), String> {
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (started, builder) = start(config, addr).await?;
    println!("{}", banner(&started));
    builder.serve(listener, shutdown).await.map_err(|e| e.to_string())
}

fn loopback(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() { SocketAddr::from(([127, 0, 0, 1], addr.port())) } else { addr }
}

/// The start-up banner: address, admin login, a grpcurl line to try.
pub fn banner(s: &Started) -> String {
    let addr = loopback(s.addr);
    let password = match &s.admin.generated_password {
        Some(p) => format!("{p}   (generated; also saved in {})", s.admin_password_file.display()),
        None if s.admin_password_file.exists() => format!("see {}", s.admin_password_file.display()),
        None => "as set by TT_BOOTSTRAP_ADMIN_PASSWORD".to_owned(),
    };
    format!(
        "TimeTravelers is serving gRPC on {addr}\n\
         \x20 admin login: {email}\n\
         \x20 password:    {password}\n\
         \x20 try:         grpcurl -plaintext {addr} list\n\
         \x20              grpcurl -plaintext -d '{{\"email\":\"{email}\",\"password\":\"<password>\"}}' {addr} timetravelers.identity.v1.AuthService/Login",
        email = s.admin.email,
    )
}

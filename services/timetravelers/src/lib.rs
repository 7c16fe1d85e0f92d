//! The all-in-one server: every TimeTravelers service on one port, each on its own SQLite file
//! under the data directory, one in-process cache, development keys. Services still reach each
//! other through their gRPC clients over loopback (token verification fetches identity's keys
//! with `ListPublicKeys`), so the path is the production one. [`MODULES`] is the catalog: the
//! per-service binaries (`src/bin/`) mount one of its modules each, with the same wiring.

use std::{collections::BTreeMap, ffi::OsString, net::SocketAddr, path::PathBuf, sync::Arc};

use clap::{CommandFactory, FromArgMatches, Parser};
use tokio::net::TcpListener;
use tt_common::{
    clock::SharedClock,
    config::{ConfigError, LoadError, ServerArgs, TelemetryArgs, TokenArgs},
    platform::{Assembled, Assembly, Definition, PlatformError, assemble, standalone::loopback},
    secrets::Secret,
    server::Shutdown,
    storage::{Database, DatabaseOptions},
};
use tt_identity::{Bootstrap, Identity};

/// The allocator of every binary built on this crate (the all-in-one, the per-service binaries
/// and the load generator that measures them): mimalloc keeps allocation per thread, where
/// glibc's malloc spent about a quarter of FindMatches' CPU time in its arena locks and
/// consolidation (docs/performance.md). Built without transparent huge pages (the workspace's
/// `no_thp`), which held the idle all-in-one above its memory budget.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Every module of this build, in mount order (identity first: it signs the service tokens of
/// the modules beside it). Adding a module to the platform is one line here.
pub static MODULES: &[&dyn Definition] =
    &[&tt_identity::MODULE, &tt_profiles::MODULE, &tt_analytics::MODULE, &tt_matching::MODULE];

/// Configuration of the all-in-one server: the platform's settings here, every module's own
/// beside them (added to the command line at run time).
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
    pub tokens: TokenArgs,
    /// The arguments the modules' settings are read from.
    #[arg(skip)]
    modules: ModuleArgs,
}

/// Where the modules' settings come from: the process's arguments and environment, or (tests)
/// only the flags set on the configuration.
#[derive(Debug, Clone, Default)]
struct ModuleArgs {
    args: Vec<OsString>,
    env: bool,
}

impl Config {
    /// The whole command line: the platform's settings and every module's.
    pub fn command() -> clap::Command {
        MODULES.iter().fold(<Self as CommandFactory>::command(), |command, m| m.args(command))
    }

    /// Parses the process arguments and environment, or exits (64 naming the bad key).
    pub fn load() -> Self {
        Self::load_from(std::env::args_os(), true).unwrap_or_else(|e| e.exit())
    }

    fn load_from(args: impl IntoIterator<Item = OsString>, env: bool) -> Result<Self, LoadError> {
        let args: Vec<OsString> = args.into_iter().collect();
        let command = if env { Self::command() } else { tt_common::config::without_env(Self::command()) };
        let matches = tt_common::config::matches_from(command, args.clone())?;
        let mut config = Self::from_arg_matches(&matches)
            .map_err(|e| ConfigError::new("arguments", e.render().to_string()))?;
        config.modules = ModuleArgs { args, env };
        config.validate(&matches)?;
        Ok(config)
    }

    fn validate(&self, matches: &clap::ArgMatches) -> Result<(), ConfigError> {
        if self.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::new("TT_DATA_DIR", "must not be empty"));
        }
        self.server.validate()?;
        MODULES.iter().try_for_each(|m| m.validate(matches))
    }

    /// Settings for tests: a data directory of their own, metrics off, no drain, the
    /// environment ignored.
    pub fn for_tests(data_dir: PathBuf) -> Self {
        let mut config = match Self::load_from([OsString::from("timetravelers")], false) {
            Ok(config) => config,
            Err(e) => e.exit(),
        };
        config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.data_dir = data_dir;
        config.telemetry.log = "warn".into();
        config.server = ServerArgs::for_tests();
        config
    }

    /// Sets a module's setting by its long flag (`signin-rate-per-minute`), as on the command
    /// line; checked when the server starts.
    pub fn set(&mut self, flag: &str, value: &str) -> &mut Self {
        self.modules.args.push(format!("--{flag}={value}").into());
        self
    }

    /// The modules' settings.
    fn module_settings(&self) -> Result<clap::ArgMatches, LoadError> {
        let command =
            if self.modules.env { Self::command() } else { tt_common::config::without_env(Self::command()) };
        let matches = tt_common::config::matches_from(command, self.modules.args.clone())?;
        MODULES.iter().try_for_each(|m| m.validate(&matches))?;
        Ok(matches)
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

/// Opens everything, prepares every module (so the first admin can be printed), and returns
/// the server ready to serve on the listener bound to `addr`: one SQLite file per module under
/// the data directory and the in-process cache.
pub async fn start(config: Config, addr: SocketAddr) -> Result<(Started, Assembled), PlatformError> {
    let dir = config.data_dir.clone();
    let sqlite = move |name: &str| {
        let url = Database::sqlite_url(&dir.join(format!("{name}.db")));
        Ok(Database::connect_lazy(&DatabaseOptions::new(url))?)
    };
    start_with(config, addr, &sqlite, tt_common::cache::open("")?).await
}

/// [`start`] on databases `open` gives for each module name and the given cache: tests run the
/// all-in-one on PostgreSQL and Redis this way.
pub async fn start_with(
    config: Config,
    addr: SocketAddr,
    open: &(dyn Fn(&str) -> Result<Database, PlatformError> + Sync),
    cache: tt_common::cache::Cache,
) -> Result<(Started, Assembled), PlatformError> {
    let settings = config.module_settings().map_err(|e| match e {
        LoadError::Invalid(e) => PlatformError::Config(e),
        LoadError::Exit(e) => PlatformError::Config(ConfigError::new("arguments", e.to_string())),
    })?;
    let data_dir = &config.data_dir;
    std::fs::create_dir_all(data_dir)
        .map_err(|e| PlatformError::io(format!("TT_DATA_DIR {}", data_dir.display()), e))?;
    let secret_file = data_dir.join("secret.key");
    let secret = Secret::load(&secret_file, true)
        .map_err(|e| PlatformError::io(secret_file.display().to_string(), e))?;
    let clock: SharedClock = Arc::new(tt_common::clock::SystemClock);
    // Modules reach each other through their gRPC clients on this very server, as across pods.
    let own_url = format!("http://{}", loopback(addr));
    let peers: BTreeMap<String, String> =
        MODULES.iter().map(|m| (m.manifest().name.to_owned(), own_url.clone())).collect();
    let assembled = assemble(Assembly {
        catalog: MODULES,
        modules: MODULES,
        settings: &settings,
        server: config.server.clone(),
        tokens: config.tokens.settings(),
        secret,
        clock,
        cache,
        databases: open,
        peers,
        account: None,
        // Services reach identity's keys and revocations over gRPC here too.
        verify_in_process: false,
    })
    .await?;
    let identity = assembled
        .module::<Identity>()
        .ok_or_else(|| ConfigError::new("modules", "the all-in-one mounts identity"))?;
    // The banner shows a generated password instead of identity's console line.
    identity.announce.store(false, std::sync::atomic::Ordering::Relaxed);
    assembled.prepare().await?;
    let admin = identity.bootstrap().cloned().ok_or_else(|| ConfigError::new("identity", "not prepared"))?;
    let password_file = data_dir.join("admin-password.txt");
    if let Some(password) = &admin.generated_password {
        let _ = std::fs::remove_file(&password_file);
        tt_common::secrets::write_private(&password_file, &format!("{password}\n"))
            .map_err(|e| PlatformError::io(password_file.display().to_string(), e))?;
    }
    Ok((Started { addr, admin, admin_password_file: password_file }, assembled))
}

/// Runs the all-in-one server until `shutdown`, printing the start-up banner.
pub async fn run(config: Config, listener: TcpListener, shutdown: Shutdown) -> Result<(), PlatformError> {
    let addr = listener.local_addr().map_err(|e| PlatformError::io("TT_LISTEN_ADDR", e))?;
    let (started, assembled) = start(config, addr).await?;
    println!("{}", banner(&started));
    assembled.serve(listener, shutdown).await
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

#[cfg(test)]
mod tests {
    use tt_common::outbox::schema::is_type_name;

    use super::MODULES;

    /// Resident memory of this process in bytes (Linux).
    fn resident() -> usize {
        let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
        let pages: usize =
            statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).expect("resident pages");
        pages * 4096
    }

    /// The allocator returns a large block to the system when it is freed (`.cargo/config.toml`
    /// builds mimalloc so): an idle server keeps none of the password hashes' 19 MiB buffers.
    #[test]
    fn large_blocks_go_back_to_the_system() {
        const MIB: usize = 1 << 20;
        // Two password hashes' buffers at once.
        let before = resident();
        let blocks = [vec![1u8; 19 * MIB], vec![2u8; 19 * MIB]];
        let held = resident();
        assert!(held >= before + 32 * MIB, "the blocks were not resident: {before} -> {held}");
        assert_eq!(blocks.iter().flatten().map(|b| usize::from(*b)).sum::<usize>(), 57 * MIB);
        drop(blocks);
        let after = resident();
        assert!(after < held - 32 * MIB, "38 MiB freed but still resident: {before} -> {held} -> {after}");
    }

    #[test]
    fn the_catalog_declares_valid_unique_events_that_someone_emits() {
        let names: Vec<&str> = MODULES.iter().map(|m| m.manifest().name).collect();
        for (i, name) in names.iter().enumerate() {
            assert!(name.chars().all(|c| c.is_ascii_lowercase()), "{name}");
            assert!(!names[..i].contains(name), "two modules named {name}");
        }
        let emitted: Vec<_> =
            MODULES.iter().flat_map(|m| m.manifest().emits.iter().map(move |t| (m, t))).collect();
        for (i, (module, t)) in emitted.iter().enumerate() {
            assert!(is_type_name(t.name), "{}", t.name);
            assert_eq!(
                t.name.split('.').next(),
                Some(module.manifest().name),
                "{} is named after its emitter",
                t.name
            );
            assert!(
                emitted[..i].iter().all(|(_, o)| (o.name, o.version) != (t.name, t.version)),
                "{}",
                t.name
            );
        }
        for module in MODULES {
            for consumed in module.manifest().consumes.iter().flat_map(|c| c.types) {
                assert!(
                    emitted.iter().any(|(_, t)| t.name == *consumed),
                    "{consumed} is emitted by no module"
                );
            }
        }
    }

    /// Modules' flags share one command line in the all-in-one and one with the platform's in
    /// each binary: clap's own checks (unique ids and long flags, among others) hold for all.
    #[test]
    fn every_command_line_has_unique_flags() {
        super::Config::command().debug_assert();
        for module in MODULES {
            tt_common::platform::standalone::Standalone::command(*module, MODULES).debug_assert();
        }
    }
}

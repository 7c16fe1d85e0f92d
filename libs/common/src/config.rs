//! Layered configuration: defaults < optional TOML file < `TT_...` environment < CLI flags.
//!
//! Each binary declares one `clap::Parser` struct (flattening the shared sections below); every
//! field has a long flag and an environment variable. [`load`] reads the file named by `--config`
//! or `TT_CONFIG`, turns its keys into the flags' defaults (so env and CLI still win), parses,
//! and validates once. Invalid configuration exits with code 64 (EX_USAGE) and a message that
//! names the bad key.

use std::{ffi::OsString, net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

use clap::{Args, Parser};

/// Exit code for bad configuration (sysexits EX_USAGE).
pub const EXIT_CONFIG: i32 = 64;

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self { key: key.into(), message: message.into() }
    }
}

/// Semantic checks that clap's parsing cannot express.
pub trait Validate {
    fn validate(&self) -> Result<(), ConfigError>;
}

/// Parses the process arguments and environment, or exits 64 naming the bad key.
pub fn load<T: Parser + Validate>() -> T {
    load_from(std::env::args_os()).unwrap_or_else(|e| e.exit())
}

/// Why loading stopped.
#[derive(Debug)]
pub enum LoadError {
    /// `--help` or `--version`: print and exit 0.
    Exit(clap::Error),
    Invalid(ConfigError),
}

impl LoadError {
    /// Prints and exits: 0 for `--help` and `--version`, 64 naming the bad key otherwise.
    pub fn exit(self) -> ! {
        match self {
            LoadError::Exit(e) => e.exit(),
            LoadError::Invalid(e) => {
                eprintln!("{e}");
                std::process::exit(EXIT_CONFIG);
            }
        }
    }
}

impl From<ConfigError> for LoadError {
    fn from(e: ConfigError) -> Self {
        Self::Invalid(e)
    }
}

/// [`load`] without exiting, for tests.
pub fn load_from<T, I>(args: I) -> Result<T, LoadError>
where
    T: Parser + Validate,
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    let matches = matches_from(T::command(), args)?;
    let config = T::from_arg_matches(&matches)
        .map_err(|e| LoadError::Invalid(ConfigError::new("arguments", e.render().to_string())))?;
    config.validate().map_err(LoadError::Invalid)?;
    Ok(config)
}

/// Parses `args` against `command` (built at run time: the platform adds the settings of the
/// modules it mounts), the TOML file named by `--config` or `TT_CONFIG` giving the defaults.
pub fn matches_from<I>(mut command: clap::Command, args: I) -> Result<clap::ArgMatches, LoadError>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    if let Some(path) = config_file(&args) {
        let text = std::fs::read_to_string(&path).map_err(|e| {
            LoadError::Invalid(ConfigError::new("config", format!("{}: {e}", path.display())))
        })?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| {
            LoadError::Invalid(ConfigError::new("config", format!("{}: {e}", path.display())))
        })?;
        for (key, value) in table {
            let id = key.replace('-', "_");
            if !command.get_arguments().any(|a| a.get_id().as_str() == id) || id == "config" {
                return Err(LoadError::Invalid(ConfigError::new(
                    key,
                    format!("unknown key in {}", path.display()),
                )));
            }
            let text = match value {
                toml::Value::String(s) => s,
                other => other.to_string(),
            };
            command = command.mut_arg(id, |a| a.default_value(text).required(false));
        }
    }
    command.try_get_matches_from(args).map_err(|e| match e.kind() {
        clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => LoadError::Exit(e),
        _ => LoadError::Invalid(ConfigError::new("arguments", e.render().to_string())),
    })
}

/// `command` with every environment variable ignored (tests and embedding: defaults and the
/// arguments given, nothing else).
pub fn without_env(command: clap::Command) -> clap::Command {
    command.mut_args(|a| a.env(None::<&str>))
}

/// The defaults of a settings group, ignoring the environment and any file (tests and
/// embedding start from these and override what they need).
pub fn defaults<T: Args + clap::FromArgMatches>() -> T {
    let command = without_env(T::augment_args(clap::Command::new("defaults")));
    // Every field has a default, so parsing no arguments cannot fail; if a field ever lacks one,
    // the clap error names it and exits.
    match command.try_get_matches_from(["defaults"]).and_then(|m| T::from_arg_matches(&m)) {
        Ok(value) => value,
        Err(e) => e.exit(),
    }
}

fn config_file(args: &[OsString]) -> Option<PathBuf> {
    let mut iter = args.iter().skip(1);
    while let Some(arg) = iter.next() {
        let arg = arg.to_string_lossy();
        if arg == "--config" {
            return iter.next().map(PathBuf::from);
        }
        if let Some(path) = arg.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
    }
    std::env::var_os("TT_CONFIG").map(PathBuf::from)
}

/// A duration written as `250ms`, `30s`, `15m`, `12h` or `7d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl FromStr for HumanDuration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (digits, unit) = s.split_at(split);
        let n: u64 = digits.parse().map_err(|_| format!("{s:?} is not a duration like 30s"))?;
        let d = match unit {
            "ms" => Duration::from_millis(n),
            "s" | "" => Duration::from_secs(n),
            "m" => Duration::from_secs(n * 60),
            "h" => Duration::from_secs(n * 3600),
            "d" => Duration::from_secs(n * 86_400),
            _ => return Err(format!("{s:?}: unit must be ms, s, m, h or d")),
        };
        Ok(Self(d))
    }
}

impl std::fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}ms", self.0.as_millis())
    }
}

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

/// What access tokens carry and verifiers check (`iss`, `aud`): the same on every service.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// `iss` of access tokens.
    #[arg(long, env = "TT_TOKEN_ISSUER", default_value = "timetravelers-identity")]
    pub token_issuer: String,
    /// `aud` of access tokens.
    #[arg(long, env = "TT_TOKEN_AUDIENCE", default_value = "timetravelers")]
    pub token_audience: String,
    /// How long a service may go without hearing from identity's revocation feed before it
    /// refuses every token (UNAVAILABLE) rather than risk honouring a revoked one.
    #[arg(long, env = "TT_REVOCATION_MAX_STALENESS", default_value = "60s")]
    pub revocation_max_staleness: HumanDuration,
}

impl TokenArgs {
    pub fn settings(&self) -> crate::auth::TokenSettings {
        crate::auth::TokenSettings {
            issuer: self.token_issuer.clone(),
            audience: self.token_audience.clone(),
            max_revocation_staleness: self.revocation_max_staleness.0,
            ..crate::auth::TokenSettings::default()
        }
    }
}

/// Database and cache settings for a service binary.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// `sqlite://path?mode=rwc` or `postgres://user@host/db`.
    #[arg(long, env = "DATABASE_URL", default_value = "", hide_env_values = true)]
    pub database_url: String,
    /// A file holding the database URL (a mounted Secret); takes the place of DATABASE_URL.
    #[arg(long, env = "TT_DATABASE_URL_FILE")]
    pub database_url_file: Option<PathBuf>,
    /// Largest number of pooled database connections.
    #[arg(long, env = "TT_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,
    /// How long a call waits for a pooled connection before UNAVAILABLE.
    #[arg(long, env = "TT_DB_ACQUIRE_TIMEOUT", default_value = "3s")]
    pub db_acquire_timeout: HumanDuration,
    /// PostgreSQL statement_timeout.
    #[arg(long, env = "TT_DB_STATEMENT_TIMEOUT", default_value = "10s")]
    pub db_statement_timeout: HumanDuration,
    /// `redis://host:6379`; the in-process cache when empty.
    #[arg(long, env = "REDIS_URL", default_value = "", hide_env_values = true)]
    pub redis_url: String,
    /// A file holding the Redis URL (a mounted Secret); takes the place of REDIS_URL.
    #[arg(long, env = "TT_REDIS_URL_FILE")]
    pub redis_url_file: Option<PathBuf>,
    /// File holding the process secret (64 hex digits). Created when missing only with
    /// `--create-secret`.
    #[arg(long, env = "TT_SECRET_KEY_FILE", default_value = "./data/secret.key")]
    pub secret_key_file: PathBuf,
    /// Create the secret file when it does not exist (development).
    #[arg(long, env = "TT_CREATE_SECRET", default_value_t = false)]
    pub create_secret: bool,
}

/// Checks a peer's gRPC URL setting (`key` names it in the error); empty passes unless required.
pub fn check_peer_url(key: &str, url: &str, required: bool) -> Result<(), ConfigError> {
    if url.is_empty() && !required {
        return Ok(());
    }
    if url.starts_with("http://") || url.starts_with("https://") {
        return Ok(());
    }
    Err(ConfigError::new(key, "must be the peer's http:// or https:// URL"))
}

/// The service account a service signs in with (client credentials, at identity) to call peers
/// that accept only service tokens, such as analytics' ingestion.
#[derive(Debug, Clone, Args)]
pub struct ServiceAccountArgs {
    /// Client id of the service account (created with identity's CreateServiceAccount).
    #[arg(long, env = "TT_SERVICE_CLIENT_ID", default_value = "")]
    pub service_client_id: String,
    /// Its client secret.
    #[arg(long, env = "TT_SERVICE_CLIENT_SECRET", default_value = "", hide_env_values = true)]
    pub service_client_secret: String,
    /// A file holding the client secret (a mounted Secret); takes the place of the value above.
    #[arg(long, env = "TT_SERVICE_CLIENT_SECRET_FILE")]
    pub service_client_secret_file: Option<PathBuf>,
}

impl ServiceAccountArgs {
    /// The client id and secret, when configured.
    pub fn credentials(&self) -> Result<Option<(String, String)>, ConfigError> {
        let secret = inline_or_file(
            &self.service_client_secret,
            self.service_client_secret_file.as_ref(),
            "TT_SERVICE_CLIENT_SECRET_FILE",
        )?;
        match (self.service_client_id.is_empty(), secret.is_empty()) {
            (true, true) => Ok(None),
            (false, false) => Ok(Some((self.service_client_id.clone(), secret))),
            (true, false) => {
                Err(ConfigError::new("TT_SERVICE_CLIENT_ID", "is required with a client secret"))
            }
            (false, true) => {
                Err(ConfigError::new("TT_SERVICE_CLIENT_SECRET", "is required with a client id"))
            }
        }
    }
}

/// A value given inline or, for secrets, as a file (`<key>_FILE`); the file wins.
pub fn inline_or_file(inline: &str, file: Option<&PathBuf>, file_key: &str) -> Result<String, ConfigError> {
    match file {
        Some(path) => std::fs::read_to_string(path)
            .map(|s| s.trim().to_owned())
            .map_err(|e| ConfigError::new(file_key, format!("{}: {e}", path.display()))),
        None => Ok(inline.to_owned()),
    }
}

impl StoreArgs {
    /// The database URL, read from its file when one is given.
    pub fn database_url(&self) -> Result<String, ConfigError> {
        inline_or_file(&self.database_url, self.database_url_file.as_ref(), "TT_DATABASE_URL_FILE")
    }

    /// The Redis URL (empty: in-process cache), read from its file when one is given.
    pub fn redis_url(&self) -> Result<String, ConfigError> {
        inline_or_file(&self.redis_url, self.redis_url_file.as_ref(), "TT_REDIS_URL_FILE")
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let url = self.database_url()?;
        if crate::storage::Backend::of_url(&url).is_none() {
            return Err(ConfigError::new(
                "DATABASE_URL",
                "must be set (or TT_DATABASE_URL_FILE) and start with sqlite: or postgres://",
            ));
        }
        let redis = self.redis_url()?;
        let redis_ok = redis.is_empty() || redis.starts_with("redis://") || redis.starts_with("rediss://");
        if !redis_ok {
            return Err(ConfigError::new("REDIS_URL", "must start with redis:// or rediss://"));
        }
        if self.db_max_connections == 0 {
            return Err(ConfigError::new("TT_DB_MAX_CONNECTIONS", "must be at least 1"));
        }
        if !self.create_secret && !self.secret_key_file.is_file() {
            return Err(ConfigError::new(
                "TT_SECRET_KEY_FILE",
                format!(
                    "{} does not exist (mount it, or pass --create-secret in development)",
                    self.secret_key_file.display()
                ),
            ));
        }
        Ok(())
    }

    pub fn database_options(&self) -> Result<crate::storage::DatabaseOptions, ConfigError> {
        Ok(crate::storage::DatabaseOptions {
            url: self.database_url()?,
            max_connections: self.db_max_connections,
            acquire_timeout: self.db_acquire_timeout.0,
            statement_timeout: self.db_statement_timeout.0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Parser)]
    struct Demo {
        #[arg(long, env = "TT_DEMO_PORT_NOT_SET_ANYWHERE", default_value_t = 1)]
        port: u16,
        #[arg(long, default_value = "a")]
        name: String,
        #[arg(long)]
        config: Option<PathBuf>,
    }

    impl Validate for Demo {
        fn validate(&self) -> Result<(), ConfigError> {
            if self.name == "bad" {
                return Err(ConfigError::new("name", "is bad"));
            }
            Ok(())
        }
    }

    fn parse(args: &[&str]) -> Result<Demo, LoadError> {
        load_from(std::iter::once("demo").chain(args.iter().copied()))
    }

    #[test]
    fn file_sits_between_defaults_and_flags() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "port = 7\nname = \"from-file\"\n").expect("write");
        let path = file.to_string_lossy().to_string();
        let d = parse(&["--config", &path]).expect("file");
        assert_eq!((d.port, d.name.as_str()), (7, "from-file"));
        let d = parse(&["--config", &path, "--port", "9"]).expect("cli wins");
        assert_eq!(d.port, 9);
        assert_eq!(parse(&[]).expect("defaults").port, 1);
    }

    #[test]
    fn bad_values_name_their_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "prot = 7\n").expect("write");
        let path = file.to_string_lossy().to_string();
        match parse(&["--config", &path]) {
            Err(LoadError::Invalid(e)) => assert_eq!(e.key, "prot"),
            other => panic!("expected invalid, got {other:?}"),
        }
        match parse(&["--port", "x"]) {
            Err(LoadError::Invalid(e)) => assert!(e.message.contains("--port"), "{}", e.message),
            other => panic!("expected invalid, got {other:?}"),
        }
        match parse(&["--name", "bad"]) {
            Err(LoadError::Invalid(e)) => assert_eq!(e.key, "name"),
            other => panic!("expected invalid, got {other:?}"),
        }
    }

    #[test]
    fn durations_parse() {
        assert_eq!("250ms".parse(), Ok(HumanDuration(Duration::from_millis(250))));
        assert_eq!("15m".parse(), Ok(HumanDuration(Duration::from_secs(900))));
        assert!("5 parsecs".parse::<HumanDuration>().is_err());
    }
}

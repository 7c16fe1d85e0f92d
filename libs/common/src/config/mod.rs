//! Layered configuration: defaults < optional TOML file < `TT_...` environment < CLI flags.
//!
//! The sections every binary shares live by subsystem (`telemetry`, `server`, `store`, `auth`);
//! the platform's command line flattens them and adds each mounted module's own group at run
//! time (`platform::standalone`, the all-in-one). Every field has a long flag and an environment
//! variable. [`matches_from`] reads the file named by `--config` or `TT_CONFIG`, turns its keys
//! into the flags' defaults (so env and CLI still win) and parses; invalid configuration exits
//! with code 64 (EX_USAGE) and a message that names the bad key. Opening what the settings name
//! (secret, database, cache) is the bootstrap's (`platform`), not configuration's.

use std::{ffi::OsString, path::PathBuf, str::FromStr, time::Duration};

use clap::Args;

mod auth;
mod server;
mod store;
mod telemetry;

pub use self::{
    auth::{ServiceAccountArgs, TokenArgs},
    server::ServerArgs,
    store::StoreArgs,
    telemetry::{LogFormat, TelemetryArgs},
};

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
    type Err = crate::error::Invalid;

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
            _ => return Err(format!("{s:?}: unit must be ms, s, m, h or d").into()),
        };
        Ok(Self(d))
    }
}

impl std::fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}ms", self.0.as_millis())
    }
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

/// A value given inline or, for secrets, as a file (`<key>_FILE`, a mounted Secret); the file
/// wins, its text trimmed, and an empty file is refused (a secret that was never written).
pub fn inline_or_file(inline: &str, file: Option<&PathBuf>, file_key: &str) -> Result<String, ConfigError> {
    let Some(path) = file else { return Ok(inline.to_owned()) };
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(file_key, format!("{}: {e}", path.display())))?;
    let value = text.trim();
    if value.is_empty() {
        return Err(ConfigError::new(file_key, format!("{} is empty", path.display())));
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches, Parser};

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
        let matches = matches_from(Demo::command(), std::iter::once("demo").chain(args.iter().copied()))?;
        let config = Demo::from_arg_matches(&matches)
            .map_err(|e| LoadError::Invalid(ConfigError::new("arguments", e.render().to_string())))?;
        config.validate().map_err(LoadError::Invalid)?;
        Ok(config)
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

    #[test]
    fn a_secret_file_wins_trimmed_and_an_empty_or_missing_one_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("key");
        std::fs::write(&file, "  sk-from-file\n").expect("write");
        assert_eq!(inline_or_file("inline", Some(&file), "TT_K_FILE").expect("file"), "sk-from-file");
        assert_eq!(inline_or_file("inline", None, "TT_K_FILE").expect("inline"), "inline");
        std::fs::write(&file, "\n").expect("write");
        let empty = inline_or_file("inline", Some(&file), "TT_K_FILE").expect_err("empty");
        assert_eq!(empty.key, "TT_K_FILE");
        assert!(empty.to_string().contains("is empty"), "{empty}");
        let missing = inline_or_file("", Some(&dir.path().join("absent")), "TT_K_FILE").expect_err("missing");
        assert_eq!(missing.key, "TT_K_FILE");
    }
}

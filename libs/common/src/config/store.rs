//! Database, cache and secret settings of a service binary (the platform bootstrap opens them).

use std::path::PathBuf;

use clap::Args;

use super::{ConfigError, HumanDuration, inline_or_file};

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

//! Identity's own settings (flattened into the binaries' configs).

use std::path::PathBuf;

use clap::Args;
use tt_common::config::{ConfigError, HumanDuration, Validate};

/// Identity settings.
#[derive(Debug, Clone, Args)]
pub struct IdentityArgs {
    /// Lifetime of access tokens.
    #[arg(long, env = "TT_ACCESS_TOKEN_TTL", default_value = "15m")]
    pub access_token_ttl: HumanDuration,
    /// Lifetime of service tokens.
    #[arg(long, env = "TT_SERVICE_TOKEN_TTL", default_value = "15m")]
    pub service_token_ttl: HumanDuration,
    /// A session ends after this long without a refresh.
    #[arg(long, env = "TT_REFRESH_IDLE_TTL", default_value = "7d")]
    pub refresh_idle_ttl: HumanDuration,
    /// A session ends this long after sign-in, whatever happens.
    #[arg(long, env = "TT_REFRESH_ABSOLUTE_TTL", default_value = "30d")]
    pub refresh_absolute_ttl: HumanDuration,
    /// PKCS#8 PEM Ed25519 private key (production, mounted from a Secret). Without it a key is
    /// generated on first start and kept encrypted in the database.
    #[arg(long, env = "TT_SIGNING_KEY_FILE")]
    pub signing_key_file: Option<PathBuf>,
    /// Email of the admin created on first start.
    #[arg(long, env = "TT_BOOTSTRAP_ADMIN_EMAIL", default_value = "admin@timetravelers.local")]
    pub bootstrap_admin_email: String,
    /// Password of that admin; generated and printed once when empty.
    #[arg(long, env = "TT_BOOTSTRAP_ADMIN_PASSWORD", default_value = "", hide_env_values = true)]
    pub bootstrap_admin_password: String,
    /// A file holding that password (a mounted Secret); takes the place of the value above.
    #[arg(long, env = "TT_BOOTSTRAP_ADMIN_PASSWORD_FILE")]
    pub bootstrap_admin_password_file: Option<PathBuf>,
    /// How often the revocation feed reads new revocations (other replicas' among them; this
    /// process's own reach its subscribers at once).
    #[arg(long, env = "TT_REVOCATION_POLL", default_value = "250ms")]
    pub revocation_poll: HumanDuration,
    /// Password hashes computed at once, on threads at the lowest CPU priority, each keeping a
    /// 19 MiB buffer (0: one per CPU, at most four).
    #[arg(long, env = "TT_HASH_PARALLELISM", default_value_t = 0)]
    pub hash_parallelism: usize,
    /// Sign-in attempts (login, register, service token) per client address per minute.
    #[arg(long, env = "TT_SIGNIN_RATE_PER_MINUTE", default_value_t = 60)]
    pub signin_rate_per_minute: u32,
}

impl Validate for IdentityArgs {
    fn validate(&self) -> Result<(), ConfigError> {
        let minutes = |d: &HumanDuration| d.0.as_secs() / 60;
        if !(1..=60).contains(&minutes(&self.access_token_ttl)) {
            return Err(ConfigError::new("TT_ACCESS_TOKEN_TTL", "must be between 1m and 60m"));
        }
        if !(1..=60).contains(&minutes(&self.service_token_ttl)) {
            return Err(ConfigError::new("TT_SERVICE_TOKEN_TTL", "must be between 1m and 60m"));
        }
        if self.refresh_idle_ttl.0 > self.refresh_absolute_ttl.0 {
            return Err(ConfigError::new("TT_REFRESH_IDLE_TTL", "must not exceed TT_REFRESH_ABSOLUTE_TTL"));
        }
        if crate::domain::email::Email::parse(&self.bootstrap_admin_email).is_err() {
            return Err(ConfigError::new("TT_BOOTSTRAP_ADMIN_EMAIL", "is not an email address"));
        }
        let password = self.bootstrap_admin_password()?;
        if !password.is_empty()
            && let Err(e) = crate::domain::password::check_new_password(&password)
        {
            return Err(ConfigError::new("TT_BOOTSTRAP_ADMIN_PASSWORD", e));
        }
        if let Some(path) = &self.signing_key_file
            && !path.is_file()
        {
            return Err(ConfigError::new(
                "TT_SIGNING_KEY_FILE",
                format!("{} does not exist", path.display()),
            ));
        }
        if self.signin_rate_per_minute == 0 {
            return Err(ConfigError::new("TT_SIGNIN_RATE_PER_MINUTE", "must be at least 1"));
        }
        Ok(())
    }
}

impl IdentityArgs {
    /// The first admin's password, read from its file when one is given (empty: generate one).
    pub fn bootstrap_admin_password(&self) -> Result<String, ConfigError> {
        tt_common::config::inline_or_file(
            &self.bootstrap_admin_password,
            self.bootstrap_admin_password_file.as_ref(),
            "TT_BOOTSTRAP_ADMIN_PASSWORD_FILE",
        )
    }

    /// Defaults, for tests and embedding.
    pub fn defaults() -> Self {
        tt_common::config::defaults()
    }
}

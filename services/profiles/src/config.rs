//! Profiles' own settings (flattened into the binaries' configs).

use clap::Args;
use tt_common::config::{ConfigError, HumanDuration, Validate};

/// Profiles settings.
#[derive(Debug, Clone, Args)]
pub struct ProfilesArgs {
    /// How long cached views (profile, completion, learner view) live; every write invalidates
    /// them at once. 0s turns the cache off.
    #[arg(long, env = "TT_PROFILES_CACHE_TTL", default_value = "5m")]
    pub profiles_cache_ttl: HumanDuration,
}

impl Validate for ProfilesArgs {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.profiles_cache_ttl.0 > std::time::Duration::from_secs(24 * 3600) {
            return Err(ConfigError::new("TT_PROFILES_CACHE_TTL", "must be at most 24h"));
        }
        Ok(())
    }
}

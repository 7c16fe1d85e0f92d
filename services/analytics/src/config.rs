//! Analytics' own settings (flattened into the binaries' configs).

use clap::Args;
use tt_common::config::{ConfigError, HumanDuration, Validate};

/// Analytics settings.
#[derive(Debug, Clone, Args)]
pub struct AnalyticsArgs {
    /// How long a computed dashboard is served from the cache (figures are at most this old).
    /// 0s turns the cache off.
    #[arg(long, env = "TT_ANALYTICS_DASHBOARD_TTL", default_value = "60s")]
    pub analytics_dashboard_ttl: HumanDuration,
}

impl Validate for AnalyticsArgs {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.analytics_dashboard_ttl.0 > std::time::Duration::from_secs(3600) {
            return Err(ConfigError::new("TT_ANALYTICS_DASHBOARD_TTL", "must be at most 1h"));
        }
        Ok(())
    }
}

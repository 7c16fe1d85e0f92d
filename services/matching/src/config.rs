//! Matching's own settings (flattened into the binaries' configs).

use clap::Args;
use tt_ai::AiArgs;
use tt_common::config::{ConfigError, HumanDuration, Validate};

/// Matching settings.
#[derive(Debug, Clone, Args)]
pub struct MatchingArgs {
    /// How long a copy of a learner's view (from profiles, with its goals embedded) is kept;
    /// profiles' change notices drop it at once. 0s turns the cache off.
    #[arg(long, env = "TT_MATCHING_VIEW_TTL", default_value = "10m")]
    pub matching_view_ttl: HumanDuration,
    /// How often the seats taken of every mentor are read again (writes in this process
    /// update them at once; this catches the other replicas' writes).
    #[arg(long, env = "TT_MATCHING_SEATS_REFRESH", default_value = "5s")]
    pub matching_seats_refresh: HumanDuration,
    /// The models matching embeds with (the offline provider in the embedded default).
    #[command(flatten)]
    pub ai: AiArgs,
}

impl Validate for MatchingArgs {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.matching_view_ttl.0 > std::time::Duration::from_secs(24 * 3600) {
            return Err(ConfigError::new("TT_MATCHING_VIEW_TTL", "must be at most 24h"));
        }
        let refresh = self.matching_seats_refresh.0;
        if refresh < std::time::Duration::from_millis(100) || refresh > std::time::Duration::from_secs(3600) {
            return Err(ConfigError::new("TT_MATCHING_SEATS_REFRESH", "must be 100ms to 1h"));
        }
        self.ai.validate()
    }
}

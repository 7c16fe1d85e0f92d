//! Token settings every verifier shares, and the service account a service calls peers with.

use std::path::PathBuf;

use clap::Args;

use super::{ConfigError, HumanDuration, inline_or_file};

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

//! The access-token format identity signs and every service verifies.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The JWT `typ` header of access tokens (RFC 9068).
pub const JWT_HEADER_TYPE: &str = "at+jwt";
/// The `typ` claim of access tokens; anything else (refresh tokens are opaque) is refused.
pub const ACCESS_TOKEN_TYPE: &str = "access";

/// Claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    /// User id or service-account id.
    pub sub: String,
    /// Expiry, unix seconds.
    pub exp: i64,
    /// Not before, unix seconds.
    pub nbf: i64,
    /// Issued at, unix seconds.
    pub iat: i64,
    /// Issued at, unix millis: compared with revocation marks, which need sub-second order.
    pub iat_ms: i64,
    /// Token id.
    pub jti: String,
    /// Always [`ACCESS_TOKEN_TYPE`].
    pub typ: String,
    /// Role names (`learner`, `admin`, `service`, `content_editor`).
    pub roles: Vec<String>,
    /// The session (refresh-token family) a user token belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

/// What verifiers check and issuers stamp.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    pub issuer: String,
    pub audience: String,
    /// Clock skew tolerated on `exp` and `nbf` (at most 30 s).
    pub leeway: Duration,
    /// How long a verifier may go without hearing from identity's revocation feed before it
    /// refuses every token (UNAVAILABLE).
    pub max_revocation_staleness: Duration,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            issuer: "timetravelers-identity".into(),
            audience: "timetravelers".into(),
            leeway: Duration::from_secs(30),
            max_revocation_staleness: Duration::from_secs(60),
        }
    }
}

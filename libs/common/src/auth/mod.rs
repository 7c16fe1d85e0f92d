//! Authentication and authorization shared by every service.
//!
//! identity signs short-lived EdDSA access tokens; every service verifies them locally with
//! [`TokenVerifier`] (keys fetched from identity and cached, refreshed on an unknown `kid`,
//! revocation marks honoured within seconds). The server stack puts the resulting [`Principal`]
//! into request extensions; handlers call the checks below and never parse headers.

mod claims;
mod principal;
mod remote;
mod verifier;

pub use claims::{ACCESS_TOKEN_TYPE, AccessClaims, JWT_HEADER_TYPE, TokenSettings};
pub use principal::{
    Principal, PrincipalKind, Role, principal, read_target, require_admin, require_admin_or_service,
    require_self_or_admin, require_service, require_user,
};
pub use remote::{ClientCredentials, GrpcKeySource, RenewingToken, remote_verifier};
pub use verifier::{AuthError, KeySource, Revocations, TokenVerifier, VerifyingKey, revocation_key};

/// How soon a revocation mark is noticed by a verifier that has seen the subject recently.
pub const REVOCATION_MEMO: std::time::Duration = std::time::Duration::from_secs(2);

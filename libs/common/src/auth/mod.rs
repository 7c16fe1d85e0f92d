//! Authentication and authorization shared by every service.
//!
//! identity signs short-lived EdDSA access tokens; every service verifies them locally with
//! [`TokenVerifier`] (keys fetched from identity and cached, refreshed on an unknown `kid`,
//! revocations learned from identity's feed within moments, see [`revocations`]). The server
//! stack puts the resulting [`Principal`] into request extensions; handlers call the checks
//! below and never parse headers.

mod claims;
mod principal;
mod remote;
pub mod revocations;
mod verifier;

pub use claims::{ACCESS_TOKEN_TYPE, AccessClaims, JWT_HEADER_TYPE, TokenSettings};
pub use principal::{
    Principal, PrincipalKind, Role, principal, read_target, require_admin, require_admin_or_service,
    require_self_or_admin, require_service, require_user,
};
pub use remote::{ClientCredentials, GrpcKeySource, RenewingToken};
pub use revocations::{GrpcRevocationSource, RevocationSource, Revocations, SubjectKeys};
pub use verifier::{AuthError, KeySource, TokenVerifier, VerifyingKey};

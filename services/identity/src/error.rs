//! Identity's one error type and its one mapping to a status. Storage errors in handlers become
//! statuses by `?` on their own (`tt_common::storage`); these are identity's other failures.

use tonic::{Code, Status};
use tt_common::{
    error::{Domain, Reason},
    storage::StorageError,
};

/// The `ErrorInfo` domain of identity's errors.
pub const DOMAIN: Domain = Domain::new("identity.timetravelers.dev");

/// What can fail in identity besides a refused request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The signing keys: a corrupt stored key, a failed signature, no active key.
    #[error("signing key: {0}")]
    Key(String),
    #[error("keys are loaded from a file; rotate by replacing the mounted key")]
    KeysFileManaged,
    /// Hashing failed (not a wrong password: that is `Ok(false)`).
    #[error("password hashing failed: {0}")]
    Hashing(String),
    #[error("system random source: {0}")]
    Random(#[from] std::io::Error),
}

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        match e {
            Error::Storage(e) => e.to_status(DOMAIN),
            Error::KeysFileManaged => {
                DOMAIN.status(Code::FailedPrecondition, Reason::new("KEYS_FILE_MANAGED"), e.to_string())
            }
            other => DOMAIN.internal(&other),
        }
    }
}

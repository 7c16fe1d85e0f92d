//! The tonic handlers: thin adapters that validate input into domain values, call the store
//! and map rows to messages. One file per gRPC service.

pub mod assessment;
pub mod experience;
pub mod goals;
pub mod integration;
pub mod profile;
pub mod skills;

use std::{ops::Deref, sync::Arc};

use tt_common::error::Violations;

use crate::{DOMAIN, service::Profiles};

/// The handlers of every profiles gRPC service (one shared core).
#[derive(Debug, Clone)]
pub struct Api(pub Arc<Profiles>);

impl Deref for Api {
    type Target = Profiles;
    fn deref(&self) -> &Profiles {
        &self.0
    }
}

/// The id a request names in `field`, or INVALID_ARGUMENT.
pub fn checked_id(field: &str, id: String) -> Result<String, tonic::Status> {
    let mut v = violations();
    v.check_id(field, &id);
    v.into_result()?;
    Ok(id)
}

/// Stores a checked value, if the check passed (the failure is in the violations).
pub fn set<T>(target: &mut T, checked: Option<T>) {
    if let Some(value) = checked {
        *target = value;
    }
}

/// Checks an optional idempotency key.
pub fn request_id(v: &mut Violations, id: &str) -> Option<String> {
    v.check(
        id.len() <= 64 && id.chars().all(|c| c.is_ascii_graphic()),
        "request_id",
        "at most 64 printable characters",
    );
    (!id.is_empty()).then(|| id.to_owned())
}

/// A fresh violations list in profiles' error domain.
pub fn violations() -> Violations {
    Violations::new(DOMAIN)
}

//! The tonic handlers: thin adapters that validate input into domain values, call the store
//! and map rows to messages. One file per gRPC service.

pub mod assessment;
pub mod convert;
pub mod experience;
pub mod goals;
pub mod integration;
pub mod profile;
pub mod skills;

use std::{ops::Deref, sync::Arc};

use tonic::Status;
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

/// The version an etag names: None for no etag; ABORTED for one this service never issued.
pub fn expected_version(etag: &str, kind: &str) -> Result<Option<i64>, Status> {
    if etag.is_empty() {
        return Ok(None);
    }
    etag.strip_prefix('v').and_then(|v| v.parse().ok()).map(Some).ok_or_else(|| crate::service::stale(kind))
}

/// Checks an id field (UUIDv7 text) of a request.
pub fn check_id(v: &mut Violations, field: &str, id: &str) {
    v.check(tt_common::is_id(id), field, "must be an id");
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

//! Profiles' one error type and its one mapping to a status. Storage errors in handlers become
//! statuses by `?` on their own (`tt_common::storage`); a refused write of a learner's resource
//! carries which resource it was.

use tonic::{Code, Status};
use tt_common::error::{Domain, Reason};

use crate::store::WriteError;

/// The `ErrorInfo` domain of profiles' errors.
pub const DOMAIN: Domain = Domain::new("profiles.timetravelers.dev");

/// The resources a learner writes one by one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Goal,
    Position,
    Skill,
    Assessment,
}

impl Resource {
    /// Its name in messages and reasons (`goal`, `GOAL_NOT_FOUND`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Goal => "goal",
            Self::Position => "position",
            Self::Skill => "skill",
            Self::Assessment => "assessment",
        }
    }
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What can fail in profiles besides a refused request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A write of `resource` `id` the store refused.
    #[error("{resource} {id:?}: {source}")]
    Write { resource: Resource, id: String, source: WriteError },
}

impl Error {
    /// Maps a store refusal of a write of `resource` `id`: `.map_err(Error::write(Resource::Goal, &id))?`.
    pub fn write(resource: Resource, id: &str) -> impl FnOnce(WriteError) -> Self + '_ {
        move |source| Self::Write { resource, id: id.to_owned(), source }
    }
}

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        let Error::Write { resource, id, source } = e;
        let kind = resource.name();
        match source {
            WriteError::Storage(e) => e.to_status(DOMAIN),
            WriteError::NoProfile => DOMAIN.not_found("profile", ""),
            WriteError::Limit(message) => DOMAIN.status(
                Code::FailedPrecondition,
                Reason::owned(format!("{}_LIMIT_REACHED", kind.to_ascii_uppercase())),
                message,
            ),
            WriteError::NotFound => DOMAIN.not_found(kind, &id),
            WriteError::Stale => DOMAIN.etag_mismatch(kind),
            WriteError::Invalid(message) => {
                DOMAIN.status(Code::InvalidArgument, Reason::new("INVALID_ARGUMENT"), message)
            }
        }
    }
}

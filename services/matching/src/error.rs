//! Matching's one error type and its one mapping to a status. Storage errors in handlers become
//! statuses by `?` on their own (`tt_common::storage`).

use tonic::{Code, Status};
use tt_common::error::{Domain, Reason};

use crate::store::{CatalogError, MentorshipError};

/// The `ErrorInfo` domain of matching's errors.
pub const DOMAIN: Domain = Domain::new("matching.timetravelers.dev");

/// What can fail in matching besides a refused request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A mentorship write the store refused.
    #[error(transparent)]
    Mentorship(#[from] MentorshipError),
    /// A catalog write the store refused.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// Profiles could not give the learner's view.
    #[error("profiles: {0}")]
    Profiles(Status),
    /// The embedder failed.
    #[error("embedding: {0}")]
    Embedding(#[from] tt_ai::AiError),
}

fn not_found(reason: &'static str, message: &str) -> Status {
    DOMAIN.status(Code::NotFound, Reason::new(reason), message)
}

fn failed(reason: &'static str, message: impl Into<String>) -> Status {
    DOMAIN.status(Code::FailedPrecondition, Reason::new(reason), message)
}

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        match e {
            Error::Mentorship(e) => match e {
                MentorshipError::Storage(e) => e.to_status(DOMAIN),
                MentorshipError::MentorNotFound => not_found("MENTOR_NOT_FOUND", "no such mentor"),
                MentorshipError::MentorNotActive => {
                    failed("MENTOR_NOT_ACTIVE", "the mentor takes no new mentees")
                }
                MentorshipError::MentorFull => {
                    failed("MENTOR_FULL", "the mentor has no free seat; choose another")
                }
                MentorshipError::Exists(id) => failed(
                    "MENTORSHIP_EXISTS",
                    match id {
                        Some(id) => format!("mentorship {id} is running; end it or use Rematch"),
                        None => "a mentorship is running; end it or use Rematch".to_owned(),
                    },
                ),
                MentorshipError::NotFound => not_found("MENTORSHIP_NOT_FOUND", "no such mentorship of yours"),
                MentorshipError::WrongState(state) => failed(
                    "MENTORSHIP_NOT_ACTIVE",
                    format!(
                        "the mentorship is {}",
                        state.trim_start_matches("MENTORSHIP_STATE_").to_ascii_lowercase()
                    ),
                ),
                MentorshipError::Expired(_) => {
                    failed("PROPOSAL_EXPIRED", "the proposal expired; its seat was released")
                }
                MentorshipError::SameMentor => {
                    DOMAIN.invalid_field("mentor_id", "must be another mentor than the one being left")
                }
            },
            Error::Catalog(e) => match e {
                CatalogError::Storage(e) => e.to_status(DOMAIN),
                CatalogError::Exists => {
                    DOMAIN.status(Code::AlreadyExists, Reason::new("MENTOR_EXISTS"), "the mentor id is taken")
                }
                CatalogError::NotFound => not_found("MENTOR_NOT_FOUND", "no such mentor"),
                CatalogError::Stale => DOMAIN.etag_mismatch("mentor"),
                CatalogError::WrongStatus(status) => failed(
                    "MENTOR_NOT_ACTIVE",
                    format!(
                        "the mentor is {}",
                        status.trim_start_matches("MENTOR_STATUS_").to_ascii_lowercase()
                    ),
                ),
            },
            Error::Profiles(status) => match status.code() {
                Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted | Code::Unknown => {
                    DOMAIN.unavailable("profiles", &status.message())
                }
                _ => DOMAIN.internal(&format!("profiles answered {:?}: {}", status.code(), status.message())),
            },
            Error::Embedding(e) => DOMAIN.unavailable("embeddings", &e),
        }
    }
}

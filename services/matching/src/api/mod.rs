//! The tonic handlers: thin adapters that validate input into domain values, call the store or
//! the catalog, and map results to messages. One file per gRPC service.

pub mod admin;
pub mod drafts;
pub mod integration;
pub mod matches;
pub mod mentors;
pub mod mentorships;

use std::{ops::Deref, sync::Arc};

use tt_common::error::Violations;

use crate::{DOMAIN, domain::catalog, service::Matching};

/// The handlers of every matching gRPC service (one shared core).
#[derive(Debug, Clone)]
pub struct Api(pub Arc<Matching>);

impl Deref for Api {
    type Target = Matching;
    fn deref(&self) -> &Matching {
        &self.0
    }
}

/// A fresh violations list in matching's error domain.
pub fn violations() -> Violations {
    Violations::new(DOMAIN)
}

/// Checks a mentor id in `field`.
pub fn check_mentor_id(v: &mut Violations, field: &str, id: &str) {
    v.check(
        catalog::is_mentor_id(id),
        field,
        format!("must be a mentor id (kebab-case, at most {} characters)", catalog::MAX_ID),
    );
}

/// Checks an optional idempotency key.
pub fn request_id<'a>(v: &mut Violations, id: &'a str) -> Option<&'a str> {
    v.check(
        id.len() <= 64 && id.chars().all(|c| c.is_ascii_graphic()),
        "request_id",
        "at most 64 printable characters",
    );
    (!id.is_empty()).then_some(id)
}

/// Checks the browsing filters shared by ListMentors and FindMatches: a track id, a language
/// tag and a stage (UNSPECIFIED: any).
pub fn check_filters(
    v: &mut Violations,
    field: &str,
    language: &str,
    stage: i32,
) -> Option<crate::domain::score::Stage> {
    use tt_proto::profiles::v1::CareerStage;
    v.check(field.is_empty() || catalog::is_mentor_id(field), "field", "must be a track id, e.g. software");
    v.check(
        language.is_empty() || catalog::is_language(language),
        "language",
        "must be a BCP 47 language tag",
    );
    match CareerStage::try_from(stage) {
        Ok(CareerStage::Unspecified) => None,
        Ok(s) => Some(s),
        Err(_) => {
            v.add("stage", "must be a CAREER_STAGE_ value");
            None
        }
    }
}

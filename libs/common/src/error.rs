//! `Status` builders: every error carries one `ErrorInfo` (reason in UPPER_SNAKE_CASE, domain =
//! the service), field problems carry a `BadRequest` listing every violation, and internal causes
//! are logged here and never returned to the caller.

use std::{fmt::Display, time::Duration};

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

/// Builds a status with an `ErrorInfo` detail.
pub fn status(code: Code, domain: &str, reason: &str, message: impl Into<String>) -> Status {
    let details = ErrorDetails::with_error_info(reason, domain, std::collections::HashMap::new());
    Status::with_error_details(code, message, details)
}

/// NOT_FOUND for a resource kind and id.
pub fn not_found(domain: &str, what: &str, id: &str) -> Status {
    status(
        Code::NotFound,
        domain,
        &format!("{}_NOT_FOUND", what.to_ascii_uppercase().replace([' ', '-'], "_")),
        format!("{what} {id:?} not found"),
    )
}

/// PERMISSION_DENIED with a reason.
pub fn permission_denied(domain: &str, message: impl Into<String>) -> Status {
    status(Code::PermissionDenied, domain, "PERMISSION_DENIED", message)
}

/// UNAUTHENTICATED with a reason.
pub fn unauthenticated(domain: &str, reason: &str, message: impl Into<String>) -> Status {
    status(Code::Unauthenticated, domain, reason, message)
}

/// RESOURCE_EXHAUSTED with a `RetryInfo` telling when to try again.
pub fn exhausted(domain: &str, reason: &str, message: impl Into<String>, retry: Duration) -> Status {
    let mut details = ErrorDetails::with_error_info(reason, domain, std::collections::HashMap::new());
    details.set_retry_info(Some(retry));
    Status::with_error_details(Code::ResourceExhausted, message, details)
}

/// ABORTED `ETAG_MISMATCH`: the `what` changed since the caller read it.
pub fn etag_mismatch(domain: &str, what: &str) -> Status {
    status(
        Code::Aborted,
        domain,
        "ETAG_MISMATCH",
        format!("the {what} changed since it was read; read it again"),
    )
}

/// INTERNAL with a generic message; the cause is logged, never returned.
pub fn internal(domain: &str, cause: &dyn Display) -> Status {
    tracing::error!(domain, error = %cause, "internal error");
    status(Code::Internal, domain, "INTERNAL", "internal error")
}

/// UNAVAILABLE for a dependency that could not be reached; the cause is logged.
pub fn unavailable(domain: &str, what: &str, cause: &dyn Display) -> Status {
    tracing::warn!(domain, dependency = what, error = %cause, "dependency unavailable");
    status(Code::Unavailable, domain, "DEPENDENCY_UNAVAILABLE", format!("{what} is unavailable, retry later"))
}

/// Collects every field violation of a request, then fails once with all of them.
///
/// ```
/// # use tt_common::error::Violations;
/// let mut v = Violations::new("identity.timetravelers.dev");
/// v.check(false, "email", "must not be empty");
/// v.check(true, "password", "unused");
/// let status = v.into_result().unwrap_err();
/// assert_eq!(status.code(), tonic::Code::InvalidArgument);
/// ```
#[derive(Debug)]
pub struct Violations {
    domain: String,
    fields: Vec<FieldViolation>,
}

impl Violations {
    pub fn new(domain: &str) -> Self {
        Self { domain: domain.to_owned(), fields: Vec::new() }
    }

    /// Records a violation of `field` unless `ok`.
    pub fn check(&mut self, ok: bool, field: &str, description: impl Into<String>) -> &mut Self {
        if !ok {
            self.add(field, description);
        }
        self
    }

    /// Records a violation of `field`.
    pub fn add(&mut self, field: &str, description: impl Into<String>) -> &mut Self {
        self.fields.push(FieldViolation::new(field, description));
        self
    }

    /// Records a violation of `field` unless `value` is an id as [`crate::new_id`] makes.
    pub fn check_id(&mut self, field: &str, value: &str) -> &mut Self {
        self.check(crate::is_id(value), field, "must be an id (a lower-case UUID)")
    }

    /// Takes the value of a fallible parse, recording its error under `field`.
    pub fn take<T, E: Display>(&mut self, field: &str, parsed: Result<T, E>) -> Option<T> {
        match parsed {
            Ok(v) => Some(v),
            Err(e) => {
                self.add(field, e.to_string());
                None
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// `Ok(())` when nothing was recorded, else INVALID_ARGUMENT listing every violation.
    pub fn into_result(self) -> Result<(), Status> {
        if self.fields.is_empty() {
            return Ok(());
        }
        Err(bad_request(&self.domain, self.fields))
    }
}

/// INVALID_ARGUMENT naming every violated field.
fn bad_request(domain: &str, fields: Vec<FieldViolation>) -> Status {
    let names: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
    let message = format!("invalid request: {}", names.join(", "));
    let mut details =
        ErrorDetails::with_error_info("INVALID_ARGUMENT", domain, std::collections::HashMap::new());
    details.set_bad_request(fields);
    Status::with_error_details(Code::InvalidArgument, message, details)
}

/// A single-field INVALID_ARGUMENT.
pub fn invalid_field(domain: &str, field: &str, description: impl Into<String>) -> Status {
    bad_request(domain, vec![FieldViolation::new(field, description)])
}

/// Reads the `ErrorInfo` reason of a status, for tests and clients.
pub fn reason(status: &Status) -> Option<String> {
    status.get_details_error_info().map(|i| i.reason)
}

/// Reads the fields named in a status's `BadRequest`, for tests and clients.
pub fn bad_fields(status: &Status) -> Vec<String> {
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|f| f.field).collect())
        .unwrap_or_default()
}

//! `Status` builders: every error carries one `ErrorInfo` (reason in UPPER_SNAKE_CASE, domain =
//! the service), field problems carry a `BadRequest` listing every violation, and internal causes
//! are logged here and never returned to the caller.

use std::{fmt::Display, time::Duration};

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

/// Whose error it is: the `ErrorInfo` domain (`profiles.timetravelers.dev`). Every status a
/// service builds starts from its domain value, so no builder takes the domain as one more string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Domain(&'static str);

/// Why, in one UPPER_SNAKE_CASE word (`GOAL_LIMIT_REACHED`): the `ErrorInfo` reason. A type of
/// its own, so a reason and a message cannot be swapped without a compile error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason(std::borrow::Cow<'static, str>);

impl Reason {
    pub const fn new(reason: &'static str) -> Self {
        Self(std::borrow::Cow::Borrowed(reason))
    }

    /// A reason made at run time (`<KIND>_NOT_FOUND`).
    pub fn owned(reason: String) -> Self {
        Self(std::borrow::Cow::Owned(reason))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&'static str> for Domain {
    fn from(domain: &'static str) -> Self {
        Self(domain)
    }
}

impl std::fmt::Display for Domain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl Domain {
    pub const fn new(domain: &'static str) -> Self {
        Self(domain)
    }

    pub const fn as_str(self) -> &'static str {
        self.0
    }

    /// A status with an `ErrorInfo` detail.
    pub fn status(self, code: Code, reason: Reason, message: impl Into<String>) -> Status {
        let details =
            ErrorDetails::with_error_info(reason.as_str(), self.0, std::collections::HashMap::new());
        Status::with_error_details(code, message, details)
    }

    /// NOT_FOUND `<WHAT>_NOT_FOUND` for a resource kind and id.
    pub fn not_found(self, what: &str, id: &str) -> Status {
        let reason = format!("{}_NOT_FOUND", what.to_ascii_uppercase().replace([' ', '-'], "_"));
        self.status(Code::NotFound, Reason::owned(reason), format!("{what} {} not found", quote(id)))
    }

    /// PERMISSION_DENIED.
    pub fn permission_denied(self, message: impl Into<String>) -> Status {
        self.status(Code::PermissionDenied, Reason::new("PERMISSION_DENIED"), message)
    }

    /// UNAUTHENTICATED with a reason.
    pub fn unauthenticated(self, reason: Reason, message: impl Into<String>) -> Status {
        self.status(Code::Unauthenticated, reason, message)
    }

    /// RESOURCE_EXHAUSTED with a `RetryInfo` telling when to try again.
    pub fn exhausted(self, reason: Reason, message: impl Into<String>, retry: Duration) -> Status {
        let mut details =
            ErrorDetails::with_error_info(reason.as_str(), self.0, std::collections::HashMap::new());
        details.set_retry_info(Some(retry));
        Status::with_error_details(Code::ResourceExhausted, message, details)
    }

    /// RESOURCE_EXHAUSTED for a spent quota: a `QuotaFailure` naming it (`subject`, what was
    /// exceeded) and a `RetryInfo` telling when it refills.
    pub fn quota_exhausted(
        self,
        reason: Reason,
        message: impl Into<String>,
        subject: &str,
        description: &str,
        retry: Duration,
    ) -> Status {
        let mut details =
            ErrorDetails::with_error_info(reason.as_str(), self.0, std::collections::HashMap::new());
        details.add_quota_failure_violation(subject, description);
        details.set_retry_info(Some(retry));
        Status::with_error_details(Code::ResourceExhausted, message, details)
    }

    /// ABORTED `ETAG_MISMATCH`: the `what` changed since the caller read it.
    pub fn etag_mismatch(self, what: &str) -> Status {
        let message = format!("the {what} changed since it was read; read it again");
        self.status(Code::Aborted, Reason::new("ETAG_MISMATCH"), message)
    }

    /// INTERNAL with a generic message; the cause is logged, never returned.
    pub fn internal(self, cause: &dyn Display) -> Status {
        tracing::error!(domain = self.0, error = %cause, "internal error");
        self.status(Code::Internal, Reason::new("INTERNAL"), "internal error")
    }

    /// UNAVAILABLE for a dependency that could not be reached; the cause is logged.
    pub fn unavailable(self, what: &str, cause: &dyn Display) -> Status {
        tracing::warn!(domain = self.0, dependency = what, error = %cause, "dependency unavailable");
        let message = format!("{what} is unavailable, retry later");
        self.status(Code::Unavailable, Reason::new("DEPENDENCY_UNAVAILABLE"), message)
    }

    /// A single-field INVALID_ARGUMENT.
    pub fn invalid_field(self, field: &str, description: impl Into<String>) -> Status {
        let mut v = Violations::new(self);
        v.add(field, description);
        v.into_result().err().unwrap_or_else(|| self.internal(&"an empty violation list"))
    }

    /// Collects the violations of one request.
    pub fn violations(self) -> Violations {
        Violations::new(self)
    }
}

/// Any error, boxed: what a module's build and prepare steps and key sources return (their own
/// types, each with its source chain).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a value is refused, in the words a field violation carries (`must be 1 to 5`): what
/// validators return instead of a bare string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub std::borrow::Cow<'static, str>);

impl From<&'static str> for Invalid {
    fn from(why: &'static str) -> Self {
        Self(std::borrow::Cow::Borrowed(why))
    }
}

impl From<String> for Invalid {
    fn from(why: String) -> Self {
        Self(std::borrow::Cow::Owned(why))
    }
}

impl std::ops::Deref for Invalid {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<&str> for Invalid {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl From<Invalid> for String {
    fn from(why: Invalid) -> Self {
        why.0.into_owned()
    }
}

/// Violations one status lists at most; the rest are counted (`omitted_violations` in the
/// `ErrorInfo` metadata and in the message), so a status stays well under what gRPC clients
/// accept in trailers (see [`crate::server::edge`]).
pub const MAX_VIOLATIONS: usize = 20;

/// Paths one update mask names at most.
pub const MAX_MASK_PATHS: usize = 32;

/// The longest field violation description kept.
const MAX_DESCRIPTION: usize = 200;

/// The longest field path kept.
const MAX_FIELD: usize = 100;

/// Bytes of field paths and descriptions one status lists at most (about 2.7 KiB once base64
/// encoded in the trailers); violations past it are counted like those past the count cap.
const VIOLATION_BYTES: usize = 2000;

/// `s` cut to at most `max` bytes at a character boundary, with an ellipsis when cut.
pub fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// A caller's value quoted for a message: Debug-escaped and cut to 64 characters, so an error
/// about a megabyte of input is not itself a megabyte.
pub fn quote(value: &str) -> String {
    const MAX: usize = 64;
    if value.chars().count() <= MAX {
        return format!("{value:?}");
    }
    let head: String = value.chars().take(MAX).collect();
    format!("{head:?}… ({} bytes)", value.len())
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
    domain: Domain,
    fields: Vec<FieldViolation>,
    /// Bytes of the listed violations.
    bytes: usize,
    /// Violations past [`MAX_VIOLATIONS`] or [`VIOLATION_BYTES`], counted only.
    omitted: usize,
}

impl Violations {
    pub fn new(domain: impl Into<Domain>) -> Self {
        Self { domain: domain.into(), fields: Vec::new(), bytes: 0, omitted: 0 }
    }

    /// The domain of the status these violations become.
    pub fn domain(&self) -> Domain {
        self.domain
    }

    /// Records a violation of `field` unless `ok`.
    pub fn check(&mut self, ok: bool, field: &str, description: impl Into<String>) -> &mut Self {
        if !ok {
            self.add(field, description);
        }
        self
    }

    /// Records a violation of `field` (past [`MAX_VIOLATIONS`], only counted; long fields and
    /// descriptions are cut).
    pub fn add(&mut self, field: &str, description: impl Into<String>) -> &mut Self {
        let (field, description) = (clip(field, MAX_FIELD), clip(&description.into(), MAX_DESCRIPTION));
        let bytes = field.len() + description.len();
        if self.fields.len() >= MAX_VIOLATIONS || self.bytes + bytes > VIOLATION_BYTES {
            self.omitted += 1;
            return self;
        }
        self.bytes += bytes;
        self.fields.push(FieldViolation::new(field, description));
        self
    }

    /// Records a violation of `field` unless `value` is at most `max` characters without
    /// control characters (which PostgreSQL's text cannot hold, in NUL's case, and no one means).
    pub fn check_text(&mut self, field: &str, value: &str, max: usize) -> bool {
        if value.chars().count() > max {
            self.add(field, format!("must be at most {max} characters"));
            false
        } else if value.chars().any(char::is_control) {
            self.add(field, "must not contain control characters");
            false
        } else {
            true
        }
    }

    /// Checks that a repeated field has at most `max` elements. Returns whether its elements
    /// are worth checking one by one: a list over its limit is reported once, not per element.
    pub fn check_count(&mut self, field: &str, len: usize, max: usize) -> bool {
        self.check(len <= max, field, format!("must have at most {max} elements (got {len})"));
        len <= max
    }

    /// The paths of an update's `FieldMask`: at least one, at most [`MAX_MASK_PATHS`], none
    /// twice (`hint` completes "must name the fields to change"). Empty when over the limit,
    /// so the paths are not checked one by one.
    pub fn mask_paths(&mut self, mask: Option<prost_types::FieldMask>, hint: &str) -> Vec<String> {
        let paths = mask.map(|m| m.paths).unwrap_or_default();
        self.check(!paths.is_empty(), "update_mask", format!("must name the fields to change{hint}"));
        if !self.check_count("update_mask.paths", paths.len(), MAX_MASK_PATHS) {
            return Vec::new();
        }
        self.check_unique("update_mask.paths", &paths);
        paths
    }

    /// Checks a list of ids: at most `max` (counted once, the elements then skipped), each an
    /// id as [`crate::new_id`] makes, none repeated.
    pub fn check_ids(&mut self, field: &str, ids: &[String], max: usize) -> &mut Self {
        if self.check_count(field, ids.len(), max) {
            for (i, id) in ids.iter().enumerate() {
                self.check_id(&format!("{field}[{i}]"), id);
            }
            self.check_unique(field, ids);
        }
        self
    }

    /// Records a violation of `field` for each element of `values` that repeats an earlier one.
    pub fn check_unique<'a, T: PartialEq + 'a>(
        &mut self,
        field: &str,
        values: impl IntoIterator<Item = &'a T>,
    ) -> &mut Self {
        let values: Vec<&T> = values.into_iter().collect();
        for (i, value) in values.iter().enumerate() {
            if values[..i].contains(value) {
                self.add(&format!("{field}[{i}]"), "repeats an earlier element");
            }
        }
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
        Err(bad_request(self.domain, self.fields, self.omitted))
    }

    /// `Ok(())` when nothing was recorded, else FAILED_PRECONDITION with `reason` and a
    /// BadRequest listing every violation: for a stored resource that cannot take a step as it
    /// is (a draft that cannot be published), rather than for a bad request.
    pub fn into_failed_precondition(self, reason: Reason, message: &str) -> Result<(), Status> {
        if self.fields.is_empty() {
            return Ok(());
        }
        Err(listed(
            self.domain,
            self.fields,
            self.omitted,
            (Code::FailedPrecondition, reason.as_str()),
            message,
        ))
    }
}

/// INVALID_ARGUMENT naming every violated field (and counting those past the cap).
fn bad_request(domain: Domain, fields: Vec<FieldViolation>, omitted: usize) -> Status {
    listed(domain, fields, omitted, (Code::InvalidArgument, "INVALID_ARGUMENT"), "invalid request")
}

/// A status of `code` and `reason` whose BadRequest names every violated field.
fn listed(
    domain: Domain,
    fields: Vec<FieldViolation>,
    omitted: usize,
    (code, reason): (Code, &str),
    message: &str,
) -> Status {
    let names: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
    let mut message = clip(&format!("{message}: {}", names.join(", ")), 1024);
    let mut metadata = std::collections::HashMap::new();
    if omitted > 0 {
        message.push_str(&format!(" (and {omitted} more)"));
        metadata.insert("omitted_violations".to_owned(), omitted.to_string());
    }
    let mut details = ErrorDetails::with_error_info(reason, domain.0, metadata);
    details.set_bad_request(fields);
    Status::with_error_details(code, message, details)
}

/// Reads the `ErrorInfo` reason of a status, for tests and clients.
pub fn reason(status: &Status) -> Option<String> {
    status.get_details_error_info().map(|i| i.reason)
}

/// How many violations a status counted past [`MAX_VIOLATIONS`] without listing them.
pub fn omitted_violations(status: &Status) -> usize {
    status
        .get_details_error_info()
        .and_then(|i| i.metadata.get("omitted_violations").and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

/// Reads the fields named in a status's `BadRequest`, for tests and clients.
pub fn bad_fields(status: &Status) -> Vec<String> {
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|f| f.field).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn violations_are_capped_and_counted() {
        let mut v = Violations::new("d");
        for i in 0..1000 {
            v.add(&format!("skill_ids[{i}]"), "x".repeat(10_000));
        }
        let status = v.into_result().expect_err("invalid");
        let listed = bad_fields(&status).len();
        assert!((1..=MAX_VIOLATIONS).contains(&listed), "{listed}");
        assert_eq!(listed + omitted_violations(&status), 1000);
        let more = format!("(and {} more)", 1000 - listed);
        assert!(status.message().ends_with(&more), "{}", status.message());
        let sent = status.message().len() + status.details().len().div_ceil(3) * 4;
        assert!(sent <= crate::server::edge::MAX_STATUS_BYTES, "{sent}");

        let mut few = Violations::new("d");
        for i in 0..30 {
            few.add(&format!("answers[{i}]"), "unknown option");
        }
        let status = few.into_result().expect_err("invalid");
        assert_eq!(bad_fields(&status).len(), MAX_VIOLATIONS);
        assert_eq!(omitted_violations(&status), 10);
    }

    #[test]
    fn counts_stop_element_checks_and_duplicates_are_named() {
        let mut v = Violations::new("d");
        assert!(!v.check_count("series", 10_000, 10));
        assert!(v.check_count("tags", 2, 10));
        v.check_unique("tags", ["a".to_owned(), "b".to_owned(), "a".to_owned()].iter());
        let status = v.into_result().expect_err("invalid");
        assert_eq!(bad_fields(&status), ["series", "tags[2]"]);
    }

    #[test]
    fn quotes_and_clips_are_bounded() {
        assert_eq!(quote("abc"), "\"abc\"");
        let long = quote(&"é".repeat(100_000));
        assert!(long.len() < 200 && long.ends_with("(200000 bytes)"), "{long}");
        assert_eq!(clip("héllo", 4), "h…");
        assert_eq!(clip("héllo", 5), "h…");
        assert!(clip(&"x".repeat(300), 256).len() <= 256);
    }
}

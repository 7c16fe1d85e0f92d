//! The authenticated caller, as handlers see it.

use crate::error::Reason;
use tonic::{Request, Status};

const DOMAIN: crate::error::Domain = crate::error::Domain::new("auth.timetravelers.dev");

/// A role a principal holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Learner,
    Admin,
    Service,
    ContentEditor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Learner => "learner",
            Self::Admin => "admin",
            Self::Service => "service",
            Self::ContentEditor => "content_editor",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "learner" => Self::Learner,
            "admin" => Self::Admin,
            "service" => Self::Service,
            "content_editor" => Self::ContentEditor,
            _ => return None,
        })
    }
}

/// Whether the caller is a person or a machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    User,
    Service,
}

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// User id or service-account id.
    pub subject: String,
    pub kind: PrincipalKind,
    pub roles: Vec<Role>,
    /// The session of a user token.
    pub session_id: Option<String>,
    /// The raw bearer token, for forwarding to peers on the caller's behalf.
    pub token: String,
    /// Token expiry, unix millis.
    pub expires_at_ms: i64,
}

impl Principal {
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    pub fn is_admin(&self) -> bool {
        self.kind == PrincipalKind::User && self.has_role(Role::Admin)
    }

    pub fn is_service(&self) -> bool {
        self.kind == PrincipalKind::Service && self.has_role(Role::Service)
    }
}

/// The caller, or UNAUTHENTICATED when the method was reached without a verified token.
pub fn principal<T>(request: &Request<T>) -> Result<&Principal, Status> {
    request.extensions().get::<Principal>().ok_or_else(|| {
        DOMAIN.unauthenticated(Reason::new("MISSING_TOKEN"), "this method needs a bearer access token")
    })
}

/// A signed-in person (not a service account).
pub fn require_user<T>(request: &Request<T>) -> Result<&Principal, Status> {
    let p = principal(request)?;
    if p.kind != PrincipalKind::User {
        return Err(DOMAIN.permission_denied("this method is for signed-in users"));
    }
    Ok(p)
}

/// An administrator.
pub fn require_admin<T>(request: &Request<T>) -> Result<&Principal, Status> {
    let p = principal(request)?;
    if !p.is_admin() {
        return Err(DOMAIN.permission_denied("this method needs the admin role"));
    }
    Ok(p)
}

/// A service account.
pub fn require_service<T>(request: &Request<T>) -> Result<&Principal, Status> {
    let p = principal(request)?;
    if !p.is_service() {
        return Err(DOMAIN.permission_denied("this method needs a service token"));
    }
    Ok(p)
}

/// An administrator or a service account.
pub fn require_admin_or_service<T>(request: &Request<T>) -> Result<&Principal, Status> {
    let p = principal(request)?;
    if !(p.is_admin() || p.is_service()) {
        return Err(DOMAIN.permission_denied("this method needs the admin role or a service token"));
    }
    Ok(p)
}

/// The user `user_id` themself, or an administrator.
pub fn require_self_or_admin<'a, T>(request: &'a Request<T>, user_id: &str) -> Result<&'a Principal, Status> {
    let p = principal(request)?;
    if !((p.kind == PrincipalKind::User && p.subject == user_id) || p.is_admin()) {
        return Err(DOMAIN.permission_denied("only the owner or an admin may do this"));
    }
    Ok(p)
}

/// Whose data a read names: `user_id`, or the caller when it is empty; reading someone else's
/// needs the admin role (PERMISSION_DENIED), and their id must look like one (INVALID_ARGUMENT
/// in `domain`). Returns the user and whether it is the caller. Services are refused.
pub fn read_target<T>(
    request: &Request<T>,
    user_id: &str,
    domain: crate::error::Domain,
) -> Result<(String, bool), Status> {
    let me = require_user(request)?;
    if user_id.is_empty() || me.subject == user_id {
        return Ok((me.subject.clone(), true));
    }
    require_self_or_admin(request, user_id)?;
    let mut v = crate::error::Violations::new(domain);
    v.check_id("user_id", user_id);
    v.into_result()?;
    Ok((user_id.to_owned(), false))
}

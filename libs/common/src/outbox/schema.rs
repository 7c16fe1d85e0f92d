//! The schema of an event type: its name, version and typed attributes. A module declares the
//! types it emits with its manifest; analytics accepts exactly the declared ones.

/// An attribute's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrKind {
    String,
    Int,
    Double,
    Bool,
}

/// One declared attribute.
#[derive(Debug, Clone, Copy)]
pub struct Attr {
    pub name: &'static str,
    pub kind: AttrKind,
    pub required: bool,
}

impl Attr {
    /// An attribute every event of the type carries.
    pub const fn required(name: &'static str, kind: AttrKind) -> Self {
        Self { name, kind, required: true }
    }

    /// An attribute an event may carry.
    pub const fn optional(name: &'static str, kind: AttrKind) -> Self {
        Self { name, kind, required: false }
    }
}

/// One event type and version.
#[derive(Debug, Clone, Copy)]
pub struct EventType {
    /// Dotted and lower case; the first part is the emitting module (`profiles.goal.created`).
    pub name: &'static str,
    pub version: u32,
    pub attributes: &'static [Attr],
    /// Whether analytics hears it (every event but a notice).
    pub analytics: bool,
}

impl EventType {
    /// Version 1 of `name` with `attributes`.
    pub const fn v1(name: &'static str, attributes: &'static [Attr]) -> Self {
        Self { name, version: 1, attributes, analytics: true }
    }

    /// Version 1 of a notice: an event for the modules that consume it only (a cache of one
    /// service's data kept by another told to refresh), not a fact analytics counts.
    pub const fn notice(name: &'static str, attributes: &'static [Attr]) -> Self {
        Self { name, version: 1, attributes, analytics: false }
    }
}

/// True for a dotted lower-case name of at least two parts, each starting with a letter
/// (`identity.user.deleted`), of at most 100 characters.
pub fn is_type_name(s: &str) -> bool {
    s.len() <= 100
        && s.split('.').count() >= 2
        && s.split('.').all(|part| {
            part.starts_with(|c: char| c.is_ascii_lowercase())
                && part.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
}

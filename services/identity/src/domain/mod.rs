//! Identity's domain types and rules: parsing at the edge, no I/O.

pub mod email;
pub mod password;
pub mod roles;
pub mod settings;

/// Whether an account may sign in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserStatus {
    Active,
    Suspended,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "suspended" => Some(Self::Suspended),
            _ => None,
        }
    }
}

/// A display name: 1 to 100 characters, no control characters, trimmed.
pub fn parse_display_name(raw: &str) -> Result<String, &'static str> {
    let name = raw.trim();
    if name.is_empty() {
        return Err("must not be empty");
    }
    if name.chars().count() > 100 {
        return Err("must be at most 100 characters");
    }
    if name.chars().any(char::is_control) {
        return Err("must not contain control characters");
    }
    Ok(name.to_owned())
}

/// A service-account name: 3 to 64 of `a-z`, `0-9` and `-`, starting with a letter.
pub fn parse_account_name(raw: &str) -> Result<String, &'static str> {
    let ok_len = (3..=64).contains(&raw.len());
    let ok_chars = raw.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let ok_start = raw.bytes().next().is_some_and(|b| b.is_ascii_lowercase());
    if ok_len && ok_chars && ok_start {
        Ok(raw.to_owned())
    } else {
        Err("must be 3 to 64 characters of a-z, 0-9 and '-', starting with a letter")
    }
}

//! Password policy (NIST SP 800-63B): 8 to 128 characters of any kind, never truncated, no
//! composition rules, and not one of the 10,000 most common passwords.

use std::{collections::HashSet, sync::OnceLock};

const COMMON: &str = include_str!("../../data/common-passwords.txt");

fn common() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| COMMON.lines().map(str::trim).filter(|l| !l.is_empty()).collect())
}

/// Checks a new password. Length counts Unicode scalar values.
pub fn check_new_password(password: &str) -> Result<(), &'static str> {
    let len = password.chars().count();
    if len < 8 {
        return Err("must be at least 8 characters");
    }
    if len > 128 {
        return Err("must be at most 128 characters");
    }
    if common().contains(password.to_lowercase().as_str()) {
        return Err("is one of the most common passwords; choose another");
    }
    Ok(())
}

/// Bounds a password presented at login (no policy, only a size cap against abuse).
pub fn check_presented_password(password: &str) -> Result<(), &'static str> {
    if password.is_empty() {
        return Err("must not be empty");
    }
    if password.chars().count() > 128 {
        return Err("must be at most 128 characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy() {
        assert_eq!(common().len(), 10_000);
        assert!(check_new_password("password1").is_err());
        assert!(check_new_password("PassWord1").is_err(), "case-insensitive");
        assert!(check_new_password("short").is_err());
        assert!(check_new_password(&"x".repeat(129)).is_err());
        assert!(check_new_password("correct horse battery staple").is_ok());
        // Eight characters of any script are enough; nothing is truncated.
        assert!(check_new_password("пароль🙂日本語字").is_ok());
        assert!(check_new_password(&"é".repeat(128)).is_ok());
    }
}

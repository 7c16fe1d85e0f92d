//! Password policy (NIST SP 800-63B): 8 to 128 characters of any kind, never truncated, no
//! composition rules; not one of the 10,000 most common passwords, and not repetitive
//! (`aaaaaaaa`, `abababab`), sequential (`abcdefgh`, `87654321`, `qwertyui`) or only spaces.

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
    if password.chars().all(char::is_whitespace) {
        return Err("must not be only spaces");
    }
    let lower: Vec<char> = password.to_lowercase().chars().collect();
    if is_repetitive(&lower) {
        return Err("is too repetitive (a few characters repeated); choose another");
    }
    if is_sequential(&lower) {
        return Err("is a sequence (like abcdefgh, 12345678 or qwertyui); choose another");
    }
    if common().contains(password.to_lowercase().as_str()) {
        return Err("is one of the most common passwords; choose another");
    }
    Ok(())
}

/// At most two distinct characters, or a unit of up to four characters repeated.
fn is_repetitive(chars: &[char]) -> bool {
    let mut distinct: Vec<char> = chars.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() <= 2 {
        return true;
    }
    (1..=4)
        .any(|unit| chars.len() >= 2 * unit && chars.iter().enumerate().all(|(i, c)| *c == chars[i % unit]))
}

/// One or two runs of characters each one step up (or down) from the previous (`abcdefgh`,
/// `1234abcd`), or a run of a keyboard row.
fn is_sequential(chars: &[char]) -> bool {
    const ROWS: [&str; 4] = ["1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm"];
    let code = |c: char| i64::from(u32::from(c));
    let mut runs = Vec::new();
    let (mut start, mut step) = (0, 0);
    for i in 1..=chars.len() {
        let d = chars.get(i).map(|c| code(*c) - code(chars[i - 1]));
        let continues = matches!(d, Some(1 | -1)) && (i - start == 1 || d == Some(step));
        if continues {
            step = d.unwrap_or(0);
        } else {
            runs.push(i - start);
            start = i;
        }
    }
    if runs.len() <= 2 && runs.iter().all(|n| *n >= 3) {
        return true;
    }
    let text: String = chars.iter().collect();
    let reversed: String = chars.iter().rev().collect();
    ROWS.iter().any(|row| row.contains(text.as_str()) || row.contains(reversed.as_str()))
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
        assert!(check_new_password(&"é".repeat(127)).is_err(), "repetitive");
        assert!(check_new_password("éàüöçñßø").is_ok());
    }

    #[test]
    fn repetitive_sequential_and_blank_passwords_are_refused_with_the_reason() {
        for (bad, why) in [
            ("aaaaaaaa", "repetitive"),
            ("abababab", "repetitive"),
            ("abcabcabc", "repetitive"),
            ("xyzwxyzw", "repetitive"),
            ("aaaaaaab", "repetitive"),
            ("abcdefgh", "sequence"),
            ("ABCDEFGHI", "sequence"),
            ("87654321", "sequence"),
            ("1234abcd", "sequence"),
            ("qwertyui", "sequence"),
            ("lkjhgfds", "sequence"),
            ("        ", "spaces"),
            ("\t\t\t\t\t\t\t\t", "spaces"),
        ] {
            let refused = check_new_password(bad).expect_err(bad);
            assert!(refused.contains(why), "{bad:?}: {refused}");
        }
        for good in ["correct horse battery", "matrix passphrase", "abcdefgh1", "tr0ub4dor&3x"] {
            assert!(check_new_password(good).is_ok(), "{good:?}");
        }
    }
}

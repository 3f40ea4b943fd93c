//! Password rules shared by every place that accepts one, and the one way
//! passwords are hashed and checked.
//!
//! bcrypt reads at most 72 bytes of its input, so a long password hashed
//! directly could be matched by any string sharing its first 72 bytes. Every
//! password is therefore pre-hashed first — BLAKE3 of all of its bytes,
//! base64-encoded (44 bytes, never a NUL) — and the pre-hash is what bcrypt
//! hashes. The pre-hash needs no key, so no server secret can be lost with
//! the passwords. Hashes stored before this scheme (plain `$2…$` bcrypt) are
//! still accepted and reported as needing an upgrade, which the login path
//! does on the next successful check.

use base64::Engine;

pub const MIN_PASSWORD_LEN: usize = 8;
pub const MAX_PASSWORD_LEN: usize = 256;

pub fn validate_password(password: &str) -> Result<(), String> {
    let n = password.chars().count();
    if !(MIN_PASSWORD_LEN..=MAX_PASSWORD_LEN).contains(&n) {
        return Err(format!(
            "Passwords must be {MIN_PASSWORD_LEN} to {MAX_PASSWORD_LEN} characters long"
        ));
    }
    Ok(())
}

/// A secret string that never shows in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Marks a hash made from the password's pre-hash (the rest is bcrypt).
const PREHASHED: &str = "$kdb-b3$";

fn prehash(password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(blake3::hash(password.as_bytes()).as_bytes())
}

/// The stored form of `password` at bcrypt `cost` (slow: call off the async
/// threads).
pub fn hash_password(password: &str, cost: u32) -> Result<String, String> {
    bcrypt::hash(prehash(password), cost)
        .map(|h| format!("{PREHASHED}{h}"))
        .map_err(|e| e.to_string())
}

/// The outcome of checking a password against its stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordCheck {
    Mismatch,
    Match,
    /// Right, but stored in the old scheme: store [`hash_password`] anew.
    MatchNeedsUpgrade,
}

/// Checks `password` against `stored` (slow, like hashing).
pub fn verify_password(password: &str, stored: &str) -> PasswordCheck {
    match stored.strip_prefix(PREHASHED) {
        Some(hash) => match bcrypt::verify(prehash(password), hash) {
            Ok(true) => PasswordCheck::Match,
            _ => PasswordCheck::Mismatch,
        },
        None => match bcrypt::verify(password, stored) {
            Ok(true) => PasswordCheck::MatchNeedsUpgrade,
            _ => PasswordCheck::Mismatch,
        },
    }
}

/// The bcrypt cost `stored` was made with, if it is a bcrypt hash.
pub fn hash_cost(stored: &str) -> Option<u32> {
    let hash = stored.strip_prefix(PREHASHED).unwrap_or(stored);
    hash.split('$').nth(2)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_of_a_long_password_counts() {
        for len in [71usize, 72, 73, 256] {
            let password = "p".repeat(len);
            let stored = hash_password(&password, 4).unwrap();
            assert_eq!(verify_password(&password, &stored), PasswordCheck::Match);
            // same first 72 bytes, different rest: refused
            let mut other = password.clone();
            other.push('x');
            assert_eq!(verify_password(&other, &stored), PasswordCheck::Mismatch);
            if len > 72 {
                let mut changed = password[..72].to_string();
                changed.push_str(&"q".repeat(len - 72));
                assert_eq!(verify_password(&changed, &stored), PasswordCheck::Mismatch);
            }
            assert_eq!(hash_cost(&stored), Some(4));
        }
    }

    #[test]
    fn old_plain_bcrypt_hashes_still_verify_and_ask_for_an_upgrade() {
        let legacy = bcrypt::hash("old-password", 4).unwrap();
        assert_eq!(
            verify_password("old-password", &legacy),
            PasswordCheck::MatchNeedsUpgrade
        );
        assert_eq!(
            verify_password("wrong-one", &legacy),
            PasswordCheck::Mismatch
        );
        assert_eq!(verify_password("x", "not a hash"), PasswordCheck::Mismatch);
        assert_eq!(hash_cost(&legacy), Some(4));
    }

    #[test]
    fn rules_and_masking() {
        assert!(validate_password("short").is_err());
        assert!(validate_password("long enough").is_ok());
        assert!(validate_password(&"x".repeat(257)).is_err());
        assert_eq!(format!("{:?}", Secret("hunter22".into())), "Secret(***)");
    }
}

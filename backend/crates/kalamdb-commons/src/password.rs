//! Password rules shared by every place that accepts one.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_and_masking() {
        assert!(validate_password("short").is_err());
        assert!(validate_password("long enough").is_ok());
        assert!(validate_password(&"x".repeat(257)).is_err());
        assert_eq!(format!("{:?}", Secret("hunter22".into())), "Secret(***)");
    }
}

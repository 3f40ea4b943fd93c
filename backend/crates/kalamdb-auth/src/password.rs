//! Password rules (shared with the SQL layer) and bcrypt hashing.

use crate::error::AuthError;
pub use kalamdb_commons::password::{MAX_PASSWORD_LEN, MIN_PASSWORD_LEN, validate_password};

pub fn hash_password(password: &str, cost: u32) -> Result<String, AuthError> {
    bcrypt::hash(password, cost).map_err(|e| AuthError::Internal(e.to_string()))
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    bcrypt::verify(password, hash).unwrap_or(false)
}

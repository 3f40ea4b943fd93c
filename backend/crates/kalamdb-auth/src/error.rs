use kalamdb_commons::error_code::{ErrorCode, HasErrorCode};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("Authentication required: send HTTP Basic credentials or a Bearer token")]
    MissingCredentials,
    #[error("Malformed Authorization header: {0}")]
    Malformed(String),
    #[error("Invalid token: {0}")]
    InvalidToken(String),
    #[error("Invalid username or password")]
    InvalidCredentials,
    #[error(
        "Logins as '{user}' from this address are locked after too many failed attempts; try again in {seconds} s"
    )]
    Locked { user: String, seconds: u64 },
    #[error("User '{0}' may only log in from localhost")]
    LocalhostOnly(String),
    #[error("authentication failed: {0}")]
    Internal(String),
}

impl HasErrorCode for AuthError {
    fn error_code(&self) -> ErrorCode {
        match self {
            AuthError::LocalhostOnly(_) => ErrorCode::PermissionDenied,
            AuthError::Internal(_) => ErrorCode::InternalError,
            AuthError::Locked { .. } => ErrorCode::RateLimitExceeded,
            _ => ErrorCode::Unauthorized,
        }
    }
}

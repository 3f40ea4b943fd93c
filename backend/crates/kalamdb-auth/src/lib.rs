//! Authentication: who a request is. Verifies HTTP Basic credentials against
//! `system.users` (bcrypt) with a verified-credential cache so a request does
//! not pay bcrypt's cost, signs and verifies HS256 access/refresh tokens, and
//! enforces where each account may log in from.

pub mod authenticator;
pub mod error;
pub mod jwt;
pub mod password;

pub use authenticator::{AuthConfig, AuthenticatedUser, Authenticator, LockoutPolicy, is_local};
pub use error::AuthError;
pub use jwt::{DEV_JWT_SECRET, JwtConfig, TokenPair, TokenType};

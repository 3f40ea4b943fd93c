//! Authentication: who a request is. Verifies HTTP Basic credentials against
//! `system.users` (bcrypt), with a verified-credential cache so a request
//! does not pay bcrypt's cost, and enforces where each account may log in
//! from.

pub mod basic;
pub mod error;
pub mod password;

pub use basic::{AuthenticatedUser, Authenticator, LockoutPolicy};
pub use error::AuthError;

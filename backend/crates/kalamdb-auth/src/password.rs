//! Password rules and hashing live in kalamdb-commons (the SQL layer hashes
//! too); re-exported here for the server and tests.

pub use kalamdb_commons::password::{
    MAX_PASSWORD_LEN, MIN_PASSWORD_LEN, PasswordCheck, hash_password, validate_password,
    verify_password,
};

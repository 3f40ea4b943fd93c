//! One file per job type that runs for real today. Flush, Retention,
//! Compact, Backup and Restore arrive with the cold tier; StreamEviction with
//! STREAM table storage.

pub mod cleanup;
pub mod user_cleanup;

pub use cleanup::CleanupExecutor;
pub use user_cleanup::UserCleanupExecutor;

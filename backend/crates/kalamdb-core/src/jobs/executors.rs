//! One file per job type that runs for real today. Flush, Retention,
//! Compact, Backup and Restore arrive with the cold tier.

pub mod cleanup;
pub mod stream_eviction;
pub mod user_cleanup;

pub use cleanup::CleanupExecutor;
pub use stream_eviction::StreamEvictionExecutor;
pub use user_cleanup::UserCleanupExecutor;

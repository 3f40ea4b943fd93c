//! Background jobs: one [`UnifiedJobManager`] runs every job type through the
//! [`JobExecutor`] registered for it (one file per executor under
//! `jobs/executors/`). See `docs/architecture/job-management.md`.

pub mod executor;
pub mod executors;
pub mod manager;
pub mod model;

pub use executor::{
    Clock, JOBS_LOG_TARGET, JobContext, JobDecision, JobExecutor, JobRegistry, SystemClock,
};
pub use manager::{JobsConfig, Schedule, UnifiedJobManager};
pub use model::{Job, JobOptions, JobStatus, JobType};

#[cfg(test)]
mod tests;

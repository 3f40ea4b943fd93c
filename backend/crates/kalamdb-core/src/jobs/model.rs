//! What a job is: its type, id, status and persisted record.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// The job types and their id prefixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobType {
    Flush,
    Cleanup,
    Retention,
    StreamEviction,
    UserCleanup,
    Compact,
    Backup,
    Restore,
    /// Builds a new index over a table's existing rows.
    IndexBuild,
}

impl JobType {
    pub const ALL: [JobType; 9] = [
        JobType::Flush,
        JobType::Cleanup,
        JobType::Retention,
        JobType::StreamEviction,
        JobType::UserCleanup,
        JobType::Compact,
        JobType::Backup,
        JobType::Restore,
        JobType::IndexBuild,
    ];

    pub fn short_prefix(self) -> &'static str {
        match self {
            JobType::Flush => "FL",
            JobType::Cleanup => "CL",
            JobType::Retention => "RT",
            JobType::StreamEviction => "SE",
            JobType::UserCleanup => "UC",
            JobType::Compact => "CO",
            JobType::Backup => "BK",
            JobType::Restore => "RS",
            JobType::IndexBuild => "IX",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobType::Flush => "Flush",
            JobType::Cleanup => "Cleanup",
            JobType::Retention => "Retention",
            JobType::StreamEviction => "StreamEviction",
            JobType::UserCleanup => "UserCleanup",
            JobType::Compact => "Compact",
            JobType::Backup => "Backup",
            JobType::Restore => "Restore",
            JobType::IndexBuild => "IndexBuild",
        }
    }
}

impl std::fmt::Display for JobType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Characters after the prefix: 62^8 ≈ 2·10^14 ids per type.
pub const JOB_ID_CHARS: usize = 8;

/// A new random `<PREFIX>-<base62>` id (11 characters).
pub fn new_job_id(job_type: JobType) -> String {
    let mut id = String::with_capacity(3 + JOB_ID_CHARS);
    id.push_str(job_type.short_prefix());
    id.push('-');
    for _ in 0..JOB_ID_CHARS {
        id.push(BASE62[rand::random_range(0..BASE62.len())] as char);
    }
    id
}

/// Whether `id` has the shape of a job id (for `KILL JOB` input).
pub fn is_job_id(id: &str) -> bool {
    let Some((prefix, rest)) = id.split_once('-') else {
        return false;
    };
    JobType::ALL.iter().any(|t| t.short_prefix() == prefix)
        && (6..=10).contains(&rest.len())
        && rest.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobStatus {
    New,
    Queued,
    Running,
    Retrying,
    Completed,
    Failed,
    Cancelled,
}

impl JobStatus {
    /// New, Queued, Running or Retrying: the job holds its idempotency key.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            JobStatus::New | JobStatus::Queued | JobStatus::Running | JobStatus::Retrying
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::New => "New",
            JobStatus::Queued => "Queued",
            JobStatus::Running => "Running",
            JobStatus::Retrying => "Retrying",
            JobStatus::Completed => "Completed",
            JobStatus::Failed => "Failed",
            JobStatus::Cancelled => "Cancelled",
        }
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of `system.jobs`, persisted on every transition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub job_id: String,
    pub job_type: JobType,
    pub status: JobStatus,
    pub namespace_id: Option<String>,
    pub table_name: Option<String>,
    /// Always a JSON object (legacy arrays are mapped on creation).
    pub parameters: Json,
    /// The one human-readable outcome: success summary or error.
    pub message: Option<String>,
    /// The error chain of the last failure; cleared on success.
    pub exception_trace: Option<String>,
    pub idempotency_key: Option<String>,
    pub retry_count: u32,
    pub max_retries: u32,
    pub queue: String,
    /// Higher runs first.
    pub priority: i32,
    /// Epoch milliseconds.
    pub created_at: i64,
    pub updated_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// When a Retrying job runs again (epoch milliseconds).
    pub next_attempt_at: Option<i64>,
    pub node_id: u16,
}

/// Legacy array parameters `["a", "b"]` read as `{"arg0": "a", "arg1": "b"}`;
/// no parameters read as `{}`.
pub fn normalize_parameters(params: Json) -> Result<Json, String> {
    match params {
        Json::Null => Ok(Json::Object(Default::default())),
        Json::Object(_) => Ok(params),
        Json::Array(items) => Ok(Json::Object(
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| (format!("arg{i}"), v))
                .collect(),
        )),
        other => Err(format!(
            "Job parameters must be a JSON object (or a legacy array), got {other}"
        )),
    }
}

/// How to create a job.
#[derive(Debug, Clone, Default)]
pub struct JobOptions {
    pub parameters: Json,
    pub idempotency_key: Option<String>,
    /// Defaults to the manager's `max_retries`.
    pub max_retries: Option<u32>,
    pub priority: i32,
    pub namespace_id: Option<String>,
    pub table_name: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_have_the_prefix_of_their_type() {
        let prefixes: std::collections::HashSet<_> =
            JobType::ALL.iter().map(|t| t.short_prefix()).collect();
        assert_eq!(prefixes.len(), JobType::ALL.len(), "prefixes are distinct");
        for t in JobType::ALL {
            let id = new_job_id(t);
            assert!(id.starts_with(&format!("{}-", t.short_prefix())), "{id}");
            assert!(id.len() <= 16);
            assert!(is_job_id(&id), "{id}");
        }
        assert_eq!(JobType::Flush.short_prefix(), "FL");
        assert_eq!(JobType::UserCleanup.short_prefix(), "UC");
        assert!(!is_job_id("XX-abcdef"));
        assert!(!is_job_id("FL-abc"));
        assert!(!is_job_id("FL-abc$def"));
        assert!(!is_job_id("FLabcdef"));
        let ids: std::collections::HashSet<_> =
            (0..10_000).map(|_| new_job_id(JobType::Flush)).collect();
        assert_eq!(ids.len(), 10_000);
    }

    #[test]
    fn parameters_as_json_object_and_legacy_array() {
        assert_eq!(
            normalize_parameters(json!({"table": "t"})).unwrap(),
            json!({"table": "t"})
        );
        assert_eq!(
            normalize_parameters(json!(["a", "b"])).unwrap(),
            json!({"arg0": "a", "arg1": "b"})
        );
        assert_eq!(normalize_parameters(Json::Null).unwrap(), json!({}));
        assert!(normalize_parameters(json!("text")).is_err());
    }
}

//! Errors of the execution layer, each mapped to one stable API code.

use datafusion::error::DataFusionError;
use kalamdb_commons::error_code::{ErrorCode, HasErrorCode};
use kalamdb_sql::SqlParseError;
use kalamdb_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error(transparent)]
    Parse(#[from] SqlParseError),
    #[error("{0}")]
    InvalidSql(String),
    #[error("Table '{0}' does not exist")]
    TableNotFound(String),
    #[error("Namespace '{0}' does not exist")]
    NamespaceNotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    /// A job with the same idempotency key is still active.
    #[error("{0}")]
    IdempotentConflict(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    UniqueViolation(String),
    #[error("{0}")]
    NotNullViolation(String),
    #[error("{0}")]
    TypeMismatch(String),
    #[error("{0}")]
    InvalidParameter(String),
    #[error("{0}")]
    NotSupported(String),
    #[error("{0}")]
    Execution(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reading or writing the cold tier's files failed.
    #[error("cold tier: {0}")]
    ColdTier(#[from] kalamdb_filestore::FileStoreError),
    #[error("SQL is empty")]
    EmptySql,
    #[error("params may only be used with a single statement")]
    ParamsWithBatch,
    #[error("{0}")]
    QueryTimeout(String),
    #[error("{0}")]
    MemoryLimitExceeded(String),
    /// Something named by id (a live query, …) does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A row a write was computed from changed before it committed.
    #[error("{0}")]
    WriteConflict(String),
    /// A read went for a segment a compaction replaced and deleted; it
    /// looks up the row's place again (never reaches a client).
    #[error("cold tier: segment {0} was replaced by a compaction")]
    SegmentRetired(u64),
    #[error("{0}")]
    Internal(String),
}

pub type CoreResult<T> = Result<T, CoreError>;

impl HasErrorCode for CoreError {
    fn error_code(&self) -> ErrorCode {
        match self {
            CoreError::Parse(e) => e.error_code(),
            CoreError::InvalidSql(_) => ErrorCode::InvalidSql,
            CoreError::TableNotFound(_) => ErrorCode::TableNotFound,
            CoreError::NamespaceNotFound(_) => ErrorCode::NamespaceNotFound,
            CoreError::AlreadyExists(_) | CoreError::IdempotentConflict(_) => {
                ErrorCode::AlreadyExists
            }
            CoreError::PermissionDenied(_) => ErrorCode::PermissionDenied,
            CoreError::UniqueViolation(_) => ErrorCode::UniqueViolation,
            CoreError::NotNullViolation(_) => ErrorCode::NotNullViolation,
            CoreError::TypeMismatch(_) => ErrorCode::TypeMismatch,
            CoreError::InvalidParameter(_) => ErrorCode::InvalidParameter,
            CoreError::NotSupported(_) => ErrorCode::NotSupported,
            CoreError::Execution(_) => ErrorCode::SqlExecutionError,
            CoreError::Store(e) => e.error_code(),
            CoreError::EmptySql => ErrorCode::EmptySql,
            CoreError::ParamsWithBatch => ErrorCode::ParamsWithBatch,
            CoreError::QueryTimeout(_) => ErrorCode::QueryTimeout,
            CoreError::MemoryLimitExceeded(_) => ErrorCode::MemoryLimitExceeded,
            CoreError::WriteConflict(_) => ErrorCode::WriteConflict,
            CoreError::NotFound(_) => ErrorCode::NotFound,
            CoreError::Internal(_) | CoreError::ColdTier(_) | CoreError::SegmentRetired(_) => {
                ErrorCode::InternalError
            }
        }
    }
}

impl From<DataFusionError> for CoreError {
    /// Planning and execution errors are the user's (bad column, bad cast,
    /// division by zero); resource and I/O errors are ours.
    fn from(e: DataFusionError) -> Self {
        if let DataFusionError::ResourcesExhausted(m) = e.find_root() {
            return CoreError::MemoryLimitExceeded(format!(
                "The query needs more memory than its limit allows: {m}"
            ));
        }
        match e {
            DataFusionError::Diagnostic(_, inner) => CoreError::from(*inner),
            DataFusionError::SQL(e, _) => CoreError::InvalidSql(e.to_string()),
            DataFusionError::External(inner) => match inner.downcast::<CoreError>() {
                Ok(core) => *core,
                Err(other) => CoreError::Internal(other.to_string()),
            },
            DataFusionError::Context(ctx, inner) => match CoreError::from(*inner) {
                CoreError::Internal(m) => CoreError::Internal(format!("{ctx}: {m}")),
                other => other,
            },
            DataFusionError::Shared(inner) => {
                CoreError::Execution(strip_prefixes(&inner.to_string()))
            }
            DataFusionError::IoError(_)
            | DataFusionError::ObjectStore(_)
            | DataFusionError::ResourcesExhausted(_)
            | DataFusionError::Internal(_) => CoreError::Internal(e.to_string()),
            other => CoreError::Execution(strip_prefixes(&other.to_string())),
        }
    }
}

/// DataFusion's messages start with "Error during planning: " and the like;
/// the code already says what kind of error it is.
fn strip_prefixes(message: &str) -> String {
    let mut m = message;
    for prefix in [
        "Error during planning: ",
        "Arrow error: ",
        "Execution error: ",
        "Optimizer rule ",
        "This feature is not implemented: ",
        "Schema error: ",
    ] {
        if let Some(rest) = m.strip_prefix(prefix) {
            m = rest;
        }
    }
    m.trim().to_string()
}

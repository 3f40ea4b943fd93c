//! The stable error codes of the public API and the one place that maps each
//! to an HTTP status. Every crate's error type says which code it is; the API
//! layer never invents codes of its own.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    InvalidSql,
    EmptySql,
    BatchParseError,
    ParamsWithBatch,
    InvalidParameter,
    TableNotFound,
    NamespaceNotFound,
    /// No such route.
    NotFound,
    AlreadyExists,
    PermissionDenied,
    Unauthorized,
    UniqueViolation,
    NotNullViolation,
    TypeMismatch,
    SqlExecutionError,
    NotSupported,
    RequestTooLarge,
    /// The request (its head or body) did not arrive in time.
    RequestTimeout,
    /// A statement exceeds a structural limit (expression depth, query depth).
    QueryTooComplex,
    /// A statement ran past its time limit and was cancelled.
    QueryTimeout,
    /// A statement needed more memory than its limit allows.
    MemoryLimitExceeded,
    RateLimitExceeded,
    /// A row a write was computed from changed before it committed: retry.
    WriteConflict,
    InternalError,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidSql => "INVALID_SQL",
            ErrorCode::EmptySql => "EMPTY_SQL",
            ErrorCode::BatchParseError => "BATCH_PARSE_ERROR",
            ErrorCode::ParamsWithBatch => "PARAMS_WITH_BATCH",
            ErrorCode::InvalidParameter => "INVALID_PARAMETER",
            ErrorCode::TableNotFound => "TABLE_NOT_FOUND",
            ErrorCode::NamespaceNotFound => "NAMESPACE_NOT_FOUND",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::AlreadyExists => "ALREADY_EXISTS",
            ErrorCode::PermissionDenied => "PERMISSION_DENIED",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::UniqueViolation => "UNIQUE_VIOLATION",
            ErrorCode::NotNullViolation => "NOT_NULL_VIOLATION",
            ErrorCode::TypeMismatch => "TYPE_MISMATCH",
            ErrorCode::SqlExecutionError => "SQL_EXECUTION_ERROR",
            ErrorCode::NotSupported => "NOT_SUPPORTED",
            ErrorCode::RequestTooLarge => "REQUEST_TOO_LARGE",
            ErrorCode::RequestTimeout => "REQUEST_TIMEOUT",
            ErrorCode::QueryTooComplex => "QUERY_TOO_COMPLEX",
            ErrorCode::QueryTimeout => "QUERY_TIMEOUT",
            ErrorCode::MemoryLimitExceeded => "MEMORY_LIMIT_EXCEEDED",
            ErrorCode::RateLimitExceeded => "RATE_LIMIT_EXCEEDED",
            ErrorCode::WriteConflict => "WRITE_CONFLICT",
            ErrorCode::InternalError => "INTERNAL_ERROR",
        }
    }

    /// The HTTP status a response carrying this code uses.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::TableNotFound | ErrorCode::NamespaceNotFound | ErrorCode::NotFound => 404,
            ErrorCode::AlreadyExists | ErrorCode::UniqueViolation | ErrorCode::WriteConflict => 409,
            ErrorCode::Unauthorized => 401,
            ErrorCode::PermissionDenied => 403,
            ErrorCode::RequestTooLarge => 413,
            ErrorCode::RequestTimeout => 408,
            ErrorCode::RateLimitExceeded => 429,
            ErrorCode::InternalError => 500,
            ErrorCode::InvalidSql
            | ErrorCode::EmptySql
            | ErrorCode::BatchParseError
            | ErrorCode::ParamsWithBatch
            | ErrorCode::InvalidParameter
            | ErrorCode::NotNullViolation
            | ErrorCode::TypeMismatch
            | ErrorCode::SqlExecutionError
            | ErrorCode::NotSupported
            | ErrorCode::QueryTooComplex
            | ErrorCode::QueryTimeout
            | ErrorCode::MemoryLimitExceeded => 400,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Implemented by every crate's error type: which stable code it reports.
pub trait HasErrorCode {
    fn error_code(&self) -> ErrorCode;
}

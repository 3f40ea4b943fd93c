//! What goes wrong with a subscription, with the protocol's error code
//! (`PROTOCOL.md`, WebSocket): the code a client acts on, and a message.

use kalamdb_commons::ErrorCode;
use kalamdb_commons::error_code::HasErrorCode;
use kalamdb_core::CoreError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct LiveError {
    /// `INVALID_SQL`, `UNSUPPORTED`, `NOT_FOUND`, `UNAUTHORIZED`,
    /// `SUBSCRIPTION_FAILED`, …
    pub code: &'static str,
    pub message: String,
    /// A missing table or namespace, by name: SQL's `SUBSCRIBE TO` reports
    /// it with its own code (TABLE_NOT_FOUND / NAMESPACE_NOT_FOUND).
    missing: Option<Missing>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Missing {
    Table(String),
    Namespace(String),
}

impl LiveError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            missing: None,
        }
    }

    pub fn invalid_sql(message: impl Into<String>) -> Self {
        Self::new("INVALID_SQL", message)
    }

    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new("UNSUPPORTED", message)
    }

    pub fn failed(message: impl Into<String>) -> Self {
        Self::new("SUBSCRIPTION_FAILED", message)
    }

    /// As an SQL statement's error (`SUBSCRIBE TO` over HTTP).
    pub fn into_core(self) -> CoreError {
        match self.missing {
            Some(Missing::Table(name)) => return CoreError::TableNotFound(name),
            Some(Missing::Namespace(name)) => return CoreError::NamespaceNotFound(name),
            None => {}
        }
        match self.code {
            "UNSUPPORTED" => CoreError::NotSupported(self.message),
            "UNAUTHORIZED" => CoreError::PermissionDenied(self.message),
            "NOT_FOUND" => CoreError::NotFound(self.message),
            "INVALID_SQL" => CoreError::InvalidSql(self.message),
            _ => CoreError::Execution(self.message),
        }
    }
}

impl From<CoreError> for LiveError {
    fn from(e: CoreError) -> Self {
        let code = match e.error_code() {
            ErrorCode::TableNotFound | ErrorCode::NamespaceNotFound => "NOT_FOUND",
            ErrorCode::PermissionDenied => "UNAUTHORIZED",
            ErrorCode::NotSupported => "UNSUPPORTED",
            ErrorCode::InvalidSql
            | ErrorCode::BatchParseError
            | ErrorCode::QueryTooComplex
            | ErrorCode::TypeMismatch
            | ErrorCode::SqlExecutionError => "INVALID_SQL",
            _ => "SUBSCRIPTION_FAILED",
        };
        let missing = match &e {
            CoreError::TableNotFound(name) => Some(Missing::Table(name.clone())),
            CoreError::NamespaceNotFound(name) => Some(Missing::Namespace(name.clone())),
            _ => None,
        };
        Self {
            missing,
            ..Self::new(code, e.to_string())
        }
    }
}

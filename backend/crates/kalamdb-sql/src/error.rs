use kalamdb_commons::error_code::{ErrorCode, HasErrorCode};

/// A statement that could not be parsed. `message` includes the line and
/// column where parsing stopped.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct SqlParseError {
    pub message: String,
    /// 1-based index of the statement in a `;`-separated batch.
    pub statement_index: usize,
    /// Whether the input held more than one statement.
    pub in_batch: bool,
    /// The statement parsed but passes a structural limit (`limits.rs`).
    pub too_complex: bool,
}

impl HasErrorCode for SqlParseError {
    fn error_code(&self) -> ErrorCode {
        if self.too_complex {
            ErrorCode::QueryTooComplex
        } else if self.in_batch {
            ErrorCode::BatchParseError
        } else {
            ErrorCode::InvalidSql
        }
    }
}

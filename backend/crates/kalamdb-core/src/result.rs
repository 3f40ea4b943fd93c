//! What running SQL gives back: a [`StatementResult`] per statement, or the
//! [`ExecutionError`] that stopped the request.

use crate::error::CoreError;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

/// What one statement produced.
#[derive(Debug, Clone, Default)]
pub struct StatementResult {
    /// Present for statements that return rows.
    pub schema: Option<SchemaRef>,
    pub batches: Vec<RecordBatch>,
    /// Rows returned, or rows affected for DML.
    pub row_count: usize,
    pub message: Option<String>,
    /// The user the statement ran as, when not the caller (EXECUTE AS USER).
    pub as_user: Option<String>,
}

impl StatementResult {
    pub fn message(message: impl Into<String>) -> Self {
        Self {
            message: Some(message.into()),
            ..Self::default()
        }
    }

    pub fn affected(rows: usize, message: impl Into<String>) -> Self {
        Self {
            row_count: rows,
            message: Some(message.into()),
            ..Self::default()
        }
    }

    pub fn rows(schema: SchemaRef, batches: Vec<RecordBatch>) -> Self {
        let row_count = batches.iter().map(RecordBatch::num_rows).sum();
        Self {
            schema: Some(schema),
            batches,
            row_count,
            message: None,
            as_user: None,
        }
    }
}

/// A failed request: the error and, in a batch, which statement failed.
#[derive(Debug)]
pub struct ExecutionError {
    pub error: CoreError,
    /// 1-based, when the request held more than one statement.
    pub statement_index: Option<usize>,
}

impl std::fmt::Display for ExecutionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.statement_index {
            Some(i) => write!(f, "Statement {i} failed: {}", self.error),
            None => write!(f, "{}", self.error),
        }
    }
}

impl From<CoreError> for ExecutionError {
    fn from(error: CoreError) -> Self {
        Self {
            error,
            statement_index: None,
        }
    }
}

use kalamdb_commons::error_code::{ErrorCode, HasErrorCode};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage engine error: {0}")]
    Engine(String),
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    #[error("unsupported storage format version {found} (this build reads {supported})")]
    UnsupportedFormat { found: u8, supported: u8 },
}

pub type StoreResult<T> = Result<T, StoreError>;

impl From<rocksdb::Error> for StoreError {
    fn from(e: rocksdb::Error) -> Self {
        StoreError::Engine(e.into_string())
    }
}

impl HasErrorCode for StoreError {
    fn error_code(&self) -> ErrorCode {
        ErrorCode::InternalError
    }
}

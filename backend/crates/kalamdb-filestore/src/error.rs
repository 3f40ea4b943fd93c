use thiserror::Error;

#[derive(Debug, Error)]
pub enum FileStoreError {
    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),
    #[error("parquet: {0}")]
    Parquet(#[from] datafusion::parquet::errors::ParquetError),
    #[error("arrow: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("segment {path}: {message}")]
    Corrupt { path: String, message: String },
    #[error("{0}")]
    Invalid(String),
}

pub type FileStoreResult<T> = Result<T, FileStoreError>;

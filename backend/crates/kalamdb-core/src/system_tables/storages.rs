//! `system.storages`: where cold data goes. The built-in `local` storage
//! (the filesystem under the data directory) always exists; CREATE STORAGE
//! arrives with the cold tier. Its directory is shown to dba and system only.

use super::{SystemTable, ms_to_micros};
use crate::error::{CoreError, CoreResult};
use crate::query_scope::QueryScope;
use datafusion::arrow::array::{StringArray, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use kalamdb_commons::LOCAL_STORAGE_ID;
use std::sync::{Arc, LazyLock};

pub const NAME: &str = "storages";

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("storage_id", DataType::Utf8, false),
        Field::new("storage_name", DataType::Utf8, false),
        Field::new("description", DataType::Utf8, true),
        Field::new("storage_type", DataType::Utf8, false),
        Field::new("base_directory", DataType::Utf8, true),
        Field::new("shared_tables_template", DataType::Utf8, false),
        Field::new("user_tables_template", DataType::Utf8, false),
        Field::new(
            "created_at",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
        ),
    ]))
});

#[derive(Debug)]
pub struct StoragesTable {
    /// The local storage's directory as configured (e.g. `./data/storage`).
    base_directory: String,
}

impl StoragesTable {
    pub fn new(base_directory: String) -> Self {
        Self { base_directory }
    }
}

impl SystemTable for StoragesTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&SCHEMA)
    }

    fn scan(&self, scope: &QueryScope) -> CoreResult<RecordBatch> {
        let text = |s: &str| Arc::new(StringArray::from(vec![s.to_string()])) as _;
        let directory = scope.role.is_admin().then(|| self.base_directory.clone());
        RecordBatch::try_new(
            self.schema(),
            vec![
                text(LOCAL_STORAGE_ID),
                text("Local storage"),
                text("The filesystem under the server's data directory"),
                text("filesystem"),
                Arc::new(StringArray::from(vec![directory])),
                text("{namespace}/{tableName}"),
                text("{namespace}/{tableName}/{userId}"),
                Arc::new(TimestampMicrosecondArray::from(vec![ms_to_micros(0)])),
            ],
        )
        .map_err(|e| CoreError::Internal(e.to_string()))
    }
}

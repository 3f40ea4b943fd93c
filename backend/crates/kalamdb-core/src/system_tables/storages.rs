//! `system.storages`: where cold data goes — the built-in `local` storage
//! (the filesystem under the data directory) and those CREATE STORAGE
//! made. PATH and CONFIG are shown to dba and system only; credentials are
//! never shown to anyone (`has_credentials` says whether there are any).

use super::{SystemTable, ms_to_micros};
use crate::error::{CoreError, CoreResult};
use crate::query_scope::QueryScope;
use crate::storages::StorageRegistry;
use datafusion::arrow::array::{ArrayRef, BooleanArray, StringArray, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use std::sync::{Arc, LazyLock};

pub const NAME: &str = "storages";

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let time = || DataType::Timestamp(TimeUnit::Microsecond, None);
    Arc::new(Schema::new(vec![
        Field::new("storage_id", DataType::Utf8, false),
        Field::new("storage_name", DataType::Utf8, false),
        Field::new("description", DataType::Utf8, true),
        Field::new("storage_type", DataType::Utf8, false),
        Field::new("base_directory", DataType::Utf8, true),
        Field::new("shared_tables_template", DataType::Utf8, false),
        Field::new("user_tables_template", DataType::Utf8, false),
        Field::new("config", DataType::Utf8, true),
        Field::new("has_credentials", DataType::Boolean, false),
        Field::new("created_at", time(), false),
        Field::new("updated_at", time(), false),
    ]))
});

#[derive(Debug)]
pub struct StoragesTable {
    storages: Arc<StorageRegistry>,
}

impl StoragesTable {
    pub fn new(storages: Arc<StorageRegistry>) -> Self {
        Self { storages }
    }
}

impl SystemTable for StoragesTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&SCHEMA)
    }

    fn scan(&self, scope: &QueryScope) -> CoreResult<RecordBatch> {
        let all = self.storages.all();
        let admin = scope.role.is_admin();
        let text = |f: &dyn Fn(&kalamdb_commons::StorageDefinition) -> Option<String>| {
            Arc::new(all.iter().map(f).collect::<StringArray>()) as ArrayRef
        };
        let time = |f: &dyn Fn(&kalamdb_commons::StorageDefinition) -> i64| {
            Arc::new(TimestampMicrosecondArray::from(
                all.iter().map(|d| ms_to_micros(f(d))).collect::<Vec<_>>(),
            )) as ArrayRef
        };
        RecordBatch::try_new(
            self.schema(),
            vec![
                text(&|d| Some(d.storage_id.clone())),
                text(&|d| Some(d.name.clone())),
                text(&|d| d.description.clone()),
                text(&|d| Some(d.storage_type.as_str().to_string())),
                text(&|d| admin.then(|| d.base_directory.clone())),
                text(&|d| Some(d.shared_tables_template.clone())),
                text(&|d| Some(d.user_tables_template.clone())),
                text(&|d| {
                    (admin && !d.config.is_empty())
                        .then(|| serde_json::to_string(&d.config).expect("strings serialise"))
                }),
                Arc::new(BooleanArray::from(
                    all.iter()
                        .map(|d| !d.credentials.0.is_empty())
                        .collect::<Vec<_>>(),
                )),
                time(&|d| d.created_at),
                time(&|d| d.updated_at),
            ],
        )
        .map_err(|e| CoreError::Internal(e.to_string()))
    }
}

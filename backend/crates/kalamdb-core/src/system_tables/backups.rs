//! `system.backups`: every finished BACKUP DATABASE (SHOW BACKUPS reads it).
//! dba and system see every backup; other roles see none.

use super::{SystemTable, ms_to_micros};
use crate::error::{CoreError, CoreResult};
use crate::query_scope::QueryScope;
use crate::schema::SchemaRegistry;
use datafusion::arrow::array::{Int64Array, StringArray, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use std::sync::{Arc, LazyLock};

pub const NAME: &str = "backups";

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let time = || DataType::Timestamp(TimeUnit::Microsecond, None);
    Arc::new(Schema::new(vec![
        Field::new("backup_id", DataType::Utf8, false),
        Field::new("namespace_id", DataType::Utf8, true),
        Field::new("path", DataType::Utf8, false),
        Field::new("tables", DataType::Int64, false),
        Field::new("segments", DataType::Int64, false),
        Field::new("bytes", DataType::Int64, false),
        Field::new("created_at", time(), false),
        Field::new("finished_at", time(), false),
    ]))
});

#[derive(Debug)]
pub struct BackupsTable {
    registry: Arc<SchemaRegistry>,
}

impl BackupsTable {
    pub fn new(registry: Arc<SchemaRegistry>) -> Self {
        Self { registry }
    }
}

impl SystemTable for BackupsTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&SCHEMA)
    }

    fn scan(&self, scope: &QueryScope) -> CoreResult<RecordBatch> {
        let backups = if scope.role.is_admin() {
            self.registry.meta().backups()?
        } else {
            Vec::new()
        };
        let int = |f: fn(&crate::meta_store::BackupRecord) -> u64| {
            Arc::new(Int64Array::from_iter_values(
                backups
                    .iter()
                    .map(|b| i64::try_from(f(b)).unwrap_or(i64::MAX)),
            ))
        };
        RecordBatch::try_new(
            self.schema(),
            vec![
                Arc::new(StringArray::from_iter_values(
                    backups.iter().map(|b| b.backup_id.as_str()),
                )),
                Arc::new(StringArray::from_iter(
                    backups.iter().map(|b| b.namespace.as_deref()),
                )),
                Arc::new(StringArray::from_iter_values(
                    backups.iter().map(|b| b.path.as_str()),
                )),
                int(|b| b.tables),
                int(|b| b.segments),
                int(|b| b.bytes),
                Arc::new(TimestampMicrosecondArray::from_iter_values(
                    backups.iter().map(|b| ms_to_micros(b.created_at)),
                )),
                Arc::new(TimestampMicrosecondArray::from_iter_values(
                    backups.iter().map(|b| ms_to_micros(b.finished_at)),
                )),
            ],
        )
        .map_err(|e| CoreError::Internal(e.to_string()))
    }
}

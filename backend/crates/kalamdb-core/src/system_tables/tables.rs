//! `system.tables`: one row per USER/SHARED/STREAM table.

use super::{SystemTable, ms_to_micros};
use crate::error::{CoreError, CoreResult};
use crate::query_scope::QueryScope;
use crate::schema::SchemaRegistry;
use crate::table_access::may_access_table;
use datafusion::arrow::array::{Int32Array, Int64Array, StringArray, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use std::sync::{Arc, LazyLock};

pub const NAME: &str = "tables";

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("table_id", DataType::Int64, false),
        Field::new("namespace_id", DataType::Utf8, false),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("table_type", DataType::Utf8, false),
        Field::new("schema_version", DataType::Int32, false),
        Field::new("storage_id", DataType::Utf8, false),
        Field::new("access_level", DataType::Utf8, true),
        Field::new("flush_policy", DataType::Utf8, true),
        Field::new("ttl_seconds", DataType::Int64, true),
        Field::new(
            "created_at",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
        ),
    ]))
});

#[derive(Debug)]
pub struct TablesTable {
    registry: Arc<SchemaRegistry>,
}

impl TablesTable {
    pub fn new(registry: Arc<SchemaRegistry>) -> Self {
        Self { registry }
    }
}

impl SystemTable for TablesTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&SCHEMA)
    }

    fn scan(&self, scope: &QueryScope) -> CoreResult<RecordBatch> {
        let mut tables = self.registry.tables(None);
        // Only what the caller may read is listed.
        tables.retain(|t| may_access_table(scope.role, &t.definition, false));
        let defs: Vec<_> = tables.iter().map(|t| &t.definition).collect();
        RecordBatch::try_new(
            self.schema(),
            vec![
                Arc::new(Int64Array::from_iter_values(
                    defs.iter().map(|d| d.table_id.0 as i64),
                )),
                Arc::new(StringArray::from_iter_values(
                    defs.iter().map(|d| d.namespace.as_str()),
                )),
                Arc::new(StringArray::from_iter_values(
                    defs.iter().map(|d| d.name.as_str()),
                )),
                Arc::new(StringArray::from_iter_values(
                    defs.iter().map(|d| d.table_type.as_str()),
                )),
                Arc::new(Int32Array::from_iter_values(
                    defs.iter().map(|d| d.schema_version as i32),
                )),
                Arc::new(StringArray::from_iter_values(
                    defs.iter().map(|d| d.options.storage_id.as_str()),
                )),
                Arc::new(StringArray::from_iter(
                    defs.iter()
                        .map(|d| d.options.access_level.map(|a| a.as_str())),
                )),
                Arc::new(StringArray::from_iter(
                    defs.iter()
                        .map(|d| d.options.flush_policy.map(|p| p.to_string())),
                )),
                Arc::new(Int64Array::from_iter(
                    defs.iter().map(|d| d.options.ttl_seconds.map(|t| t as i64)),
                )),
                Arc::new(TimestampMicrosecondArray::from_iter_values(
                    defs.iter().map(|d| ms_to_micros(d.created_at)),
                )),
            ],
        )
        .map_err(|e| CoreError::Internal(e.to_string()))
    }
}

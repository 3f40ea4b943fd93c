//! `system.namespaces`: one row per namespace.

use super::{SystemTable, ms_to_micros};
use crate::error::{CoreError, CoreResult};
use crate::query_scope::QueryScope;
use crate::schema::SchemaRegistry;
use datafusion::arrow::array::{Int32Array, StringArray, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use std::sync::{Arc, LazyLock};

pub const NAME: &str = "namespaces";

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("namespace_id", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("table_count", DataType::Int32, false),
        Field::new(
            "created_at",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
        ),
    ]))
});

#[derive(Debug)]
pub struct NamespacesTable {
    registry: Arc<SchemaRegistry>,
}

impl NamespacesTable {
    pub fn new(registry: Arc<SchemaRegistry>) -> Self {
        Self { registry }
    }
}

impl SystemTable for NamespacesTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&SCHEMA)
    }

    fn scan(&self, _scope: &QueryScope) -> CoreResult<RecordBatch> {
        let namespaces = self.registry.namespaces();
        let names: Vec<&str> = namespaces.iter().map(|n| n.name.as_str()).collect();
        let counts: Vec<i32> = names
            .iter()
            .map(|n| self.registry.table_names(n).len() as i32)
            .collect();
        let created: Vec<i64> = namespaces
            .iter()
            .map(|n| ms_to_micros(n.created_at))
            .collect();
        RecordBatch::try_new(
            self.schema(),
            vec![
                Arc::new(StringArray::from(names.clone())),
                Arc::new(StringArray::from(names)),
                Arc::new(Int32Array::from(counts)),
                Arc::new(TimestampMicrosecondArray::from(created)),
            ],
        )
        .map_err(|e| CoreError::Internal(e.to_string()))
    }
}

//! `system.indexes`: one row per secondary index (UNIQUE constraints
//! included), of the tables the caller may read.

use super::{SystemTable, ms_to_micros};
use crate::error::{CoreError, CoreResult};
use crate::query_scope::QueryScope;
use crate::schema::SchemaRegistry;
use crate::table_access::may_access_table;
use datafusion::arrow::array::{BooleanArray, Int64Array, StringArray, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use std::sync::{Arc, LazyLock};

pub const NAME: &str = "indexes";

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("namespace_id", DataType::Utf8, false),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("index_name", DataType::Utf8, false),
        Field::new("columns", DataType::Utf8, false),
        Field::new("is_unique", DataType::Boolean, false),
        Field::new("state", DataType::Utf8, false),
        Field::new("index_id", DataType::Int64, false),
        Field::new(
            "created_at",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
        ),
    ]))
});

#[derive(Debug)]
pub struct IndexesTable {
    registry: Arc<SchemaRegistry>,
}

impl IndexesTable {
    pub fn new(registry: Arc<SchemaRegistry>) -> Self {
        Self { registry }
    }
}

impl SystemTable for IndexesTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&SCHEMA)
    }

    fn scan(&self, scope: &QueryScope) -> CoreResult<RecordBatch> {
        let mut tables = self.registry.tables(None);
        tables.retain(|t| may_access_table(scope.role, &t.definition, false));
        let rows: Vec<_> = tables
            .iter()
            .flat_map(|t| t.definition.indexes.iter().map(move |i| (&t.definition, i)))
            .collect();
        RecordBatch::try_new(
            self.schema(),
            vec![
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|(d, _)| d.namespace.as_str()),
                )),
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|(d, _)| d.name.as_str()),
                )),
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|(_, i)| i.name.as_str()),
                )),
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|(d, i)| d.index_column_names(i).join(", ")),
                )),
                Arc::new(BooleanArray::from_iter(
                    rows.iter().map(|(_, i)| Some(i.unique)),
                )),
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|(_, i)| i.state.as_str()),
                )),
                Arc::new(Int64Array::from_iter_values(
                    rows.iter().map(|(_, i)| i64::from(i.index_id)),
                )),
                Arc::new(TimestampMicrosecondArray::from_iter_values(
                    rows.iter().map(|(_, i)| ms_to_micros(i.created_at)),
                )),
            ],
        )
        .map_err(|e| CoreError::Internal(e.to_string()))
    }
}

//! `system.columns`: one row per declared column of every table.

use super::SystemTable;
use crate::error::{CoreError, CoreResult};
use crate::query_scope::QueryScope;
use crate::schema::SchemaRegistry;
use crate::table_access::may_access_table;
use datafusion::arrow::array::{BooleanArray, Int32Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use std::sync::{Arc, LazyLock};

pub const NAME: &str = "columns";

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("namespace_id", DataType::Utf8, false),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("column_name", DataType::Utf8, false),
        Field::new("ordinal_position", DataType::Int32, false),
        Field::new("column_id", DataType::Int32, false),
        Field::new("data_type", DataType::Utf8, false),
        Field::new("is_nullable", DataType::Boolean, false),
        Field::new("is_primary_key", DataType::Boolean, false),
        Field::new("default_expression", DataType::Utf8, true),
    ]))
});

#[derive(Debug)]
pub struct ColumnsTable {
    registry: Arc<SchemaRegistry>,
}

impl ColumnsTable {
    pub fn new(registry: Arc<SchemaRegistry>) -> Self {
        Self { registry }
    }
}

impl SystemTable for ColumnsTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&SCHEMA)
    }

    fn scan(&self, scope: &QueryScope) -> CoreResult<RecordBatch> {
        let mut tables = self.registry.tables(None);
        // Only what the caller may read is listed.
        tables.retain(|t| may_access_table(scope.role, &t.definition, false));
        let rows: Vec<_> = tables
            .iter()
            .flat_map(|t| {
                t.definition
                    .columns
                    .iter()
                    .enumerate()
                    .map(move |(i, c)| (&t.definition, i, c))
            })
            .collect();
        RecordBatch::try_new(
            self.schema(),
            vec![
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|(d, _, _)| d.namespace.as_str()),
                )),
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|(d, _, _)| d.name.as_str()),
                )),
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|(_, _, c)| c.name.as_str()),
                )),
                Arc::new(Int32Array::from_iter_values(
                    rows.iter().map(|(_, i, _)| *i as i32 + 1),
                )),
                Arc::new(Int32Array::from_iter_values(
                    rows.iter().map(|(_, _, c)| c.column_id as i32),
                )),
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|(_, _, c)| c.data_type.to_string()),
                )),
                Arc::new(BooleanArray::from_iter(
                    rows.iter().map(|(_, _, c)| Some(c.nullable)),
                )),
                Arc::new(BooleanArray::from_iter(
                    rows.iter().map(|(_, _, c)| Some(c.primary_key)),
                )),
                Arc::new(StringArray::from_iter(
                    rows.iter().map(|(_, _, c)| c.default.as_deref()),
                )),
            ],
        )
        .map_err(|e| CoreError::Internal(e.to_string()))
    }
}

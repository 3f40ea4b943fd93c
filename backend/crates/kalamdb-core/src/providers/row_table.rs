//! The DataFusion `TableProvider` of USER and SHARED tables, bound to one
//! caller's [`RowScope`] when the catalog hands it out.

use super::scan::{RowScan, ScanTarget};
use crate::error::CoreError;
use crate::row_reader::RowReader;
use crate::rows::OutputColumn;
use crate::rows::coerce::Literal;
use crate::schema::CachedTable;
use crate::table_store::{RowScope, TableStore};
use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::ScalarValue;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::streaming::StreamingTableExec;
use kalamdb_commons::Value;
use std::sync::Arc;

#[derive(Debug)]
pub struct RowTableProvider {
    table: Arc<CachedTable>,
    store: TableStore,
    /// `None` when resolved outside a query scope: schema only, no rows.
    scope: Option<RowScope>,
    with_system_columns: bool,
    /// Set when the caller may not read this table: scans fail with it.
    denied: Option<Arc<CoreError>>,
}

impl std::fmt::Debug for TableStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TableStore")
    }
}

impl RowTableProvider {
    pub fn new(
        table: Arc<CachedTable>,
        store: TableStore,
        scope: Option<RowScope>,
        with_system_columns: bool,
    ) -> Self {
        Self {
            table,
            store,
            scope,
            with_system_columns,
            denied: None,
        }
    }

    /// This provider, refusing every scan with `reason` (permission denied,
    /// or not supported); it still describes its schema.
    pub fn denied(mut self, reason: CoreError) -> Self {
        self.denied = Some(Arc::new(reason));
        self
    }

    /// Whether `filter` is a predicate on `_deleted`: only a query that asks
    /// about deletion explicitly sees soft-deleted rows (naming `_seq` or
    /// projecting `_deleted` does not).
    fn asks_for_deleted(&self, filter: &Expr) -> bool {
        self.with_system_columns
            && filter
                .column_refs()
                .iter()
                .any(|c| c.name == kalamdb_commons::DELETED_COLUMN)
    }

    /// The primary-key value `expr` pins, if it is `pk = literal`
    /// ([`CachedTable::pinned_key`]: the fast path's rule too).
    fn pinned_key(&self, expr: &Expr) -> Option<Value> {
        let Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) = expr
        else {
            return None;
        };
        let (column, literal) = match (left.as_ref(), right.as_ref()) {
            (Expr::Column(c), Expr::Literal(v, _)) | (Expr::Literal(v, _), Expr::Column(c)) => {
                (c, v)
            }
            _ => return None,
        };
        self.table
            .pinned_key(&column.name, &scalar_literal(literal)?)
    }
}

/// A DataFusion literal as SQL text would have written it; `None` for kinds
/// no key column takes.
fn scalar_literal(v: &ScalarValue) -> Option<Literal<'_>> {
    let number = |n: &dyn std::fmt::Display| Some(Literal::Number(n.to_string().into()));
    match v {
        v if v.is_null() => Some(Literal::Null),
        ScalarValue::Int8(Some(i)) => number(i),
        ScalarValue::Int16(Some(i)) => number(i),
        ScalarValue::Int32(Some(i)) => number(i),
        ScalarValue::Int64(Some(i)) => number(i),
        ScalarValue::UInt8(Some(i)) => number(i),
        ScalarValue::UInt16(Some(i)) => number(i),
        ScalarValue::UInt32(Some(i)) => number(i),
        ScalarValue::UInt64(Some(i)) => number(i),
        ScalarValue::Utf8(Some(s))
        | ScalarValue::Utf8View(Some(s))
        | ScalarValue::LargeUtf8(Some(s)) => Some(Literal::Text(s.as_str().into())),
        ScalarValue::Boolean(Some(b)) => Some(Literal::Bool(*b)),
        ScalarValue::Date32(Some(d)) => {
            let date = chrono::DateTime::from_timestamp(i64::from(*d) * 86_400, 0)?.date_naive();
            Some(Literal::Text(date.to_string().into()))
        }
        ScalarValue::TimestampMicrosecond(Some(t), None) => {
            let at = chrono::DateTime::from_timestamp_micros(*t)?.naive_utc();
            Some(Literal::Text(
                at.format("%Y-%m-%dT%H:%M:%S%.6f").to_string().into(),
            ))
        }
        _ => None,
    }
}

#[async_trait]
impl TableProvider for RowTableProvider {
    fn schema(&self) -> SchemaRef {
        if self.with_system_columns {
            Arc::clone(&self.table.schema_with_system)
        } else {
            Arc::clone(&self.table.schema)
        }
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if self.pinned_key(f).is_some() || self.asks_for_deleted(f) {
                    // DataFusion still applies the filter; we only narrow the read.
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if let Some(reason) = &self.denied {
            let refusal = match reason.as_ref() {
                CoreError::NotSupported(m) => CoreError::NotSupported(m.clone()),
                other => CoreError::PermissionDenied(other.to_string()),
            };
            return Err(DataFusionError::External(Box::new(refusal)));
        }
        let scope = self.scope.as_ref().ok_or_else(|| {
            DataFusionError::External(Box::new(CoreError::Internal(
                "table scanned outside a query scope".into(),
            )))
        })?;
        let schema = self.schema();
        let declared = self.table.definition.columns.len();
        let indices: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..schema.fields().len()).collect(),
        };
        let columns = indices
            .iter()
            .map(|&i| match i {
                i if i < declared => OutputColumn::declared(&self.table.definition.columns[i]),
                i if i == declared => OutputColumn::Seq,
                _ => OutputColumn::Deleted,
            })
            .collect();
        let missing = indices
            .iter()
            .map(|&i| self.table.backfill.get(i).cloned().flatten())
            .collect();
        let projected = Arc::new(schema.project(&indices)?);
        let reader = RowReader::new(Arc::clone(&self.table), self.store.clone(), scope);
        let target = match filters.iter().find_map(|f| self.pinned_key(f)) {
            Some(pk) => ScanTarget::Key(
                reader
                    .key_of(&pk)
                    .map_err(|e| DataFusionError::External(Box::new(e)))?,
            ),
            None => ScanTarget::Partition,
        };
        let scan = RowScan {
            schema: Arc::clone(&projected),
            columns,
            reader,
            target,
            include_deleted: filters.iter().any(|f| self.asks_for_deleted(f)),
            limit,
            missing,
        };
        Ok(Arc::new(StreamingTableExec::try_new(
            projected,
            vec![Arc::new(scan)],
            None,
            Vec::new(),
            false,
            limit,
        )?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kalamdb_commons::{
        ColumnDefinition, KalamDataType, NamespaceId, TableDefinition, TableId, TableOptions,
        TableType,
    };

    fn keyed_by(data_type: KalamDataType) -> CachedTable {
        CachedTable::new(TableDefinition {
            table_id: TableId(1),
            namespace: NamespaceId::new("app"),
            name: "t".into(),
            table_type: TableType::Shared,
            columns: vec![ColumnDefinition {
                column_id: 1,
                name: "k".into(),
                data_type,
                nullable: false,
                primary_key: true,
                default: None,
                backfill: None,
            }],
            schema_version: 1,
            options: TableOptions::default(),
            created_at: 0,
        })
    }

    fn pinned(table: &CachedTable, v: ScalarValue) -> Option<Value> {
        table.pinned_key("k", &scalar_literal(&v)?)
    }

    #[test]
    fn datafusion_literals_pin_keys_as_sql_text_would() {
        let int = keyed_by(KalamDataType::Int);
        assert_eq!(
            pinned(&int, ScalarValue::Int64(Some(7))),
            Some(Value::Int32(7))
        );
        assert_eq!(pinned(&int, ScalarValue::Int64(Some(1 << 40))), None);
        // As INSERT takes it: '7' is 7, 'x' is no INT.
        assert_eq!(
            pinned(&int, ScalarValue::Utf8(Some("7".into()))),
            Some(Value::Int32(7))
        );
        assert_eq!(pinned(&int, ScalarValue::Utf8(Some("x".into()))), None);
        assert_eq!(pinned(&int, ScalarValue::Int32(None)), None);
        let text = keyed_by(KalamDataType::Text);
        assert_eq!(
            pinned(&text, ScalarValue::Utf8View(Some("a".into()))),
            Some(Value::Text("a".into()))
        );
        let date = keyed_by(KalamDataType::Date);
        assert_eq!(
            pinned(&date, ScalarValue::Date32(Some(19_000))),
            Some(Value::Date32(19_000))
        );
        let ts = keyed_by(KalamDataType::Timestamp);
        let micros = 1_700_000_000_123_456;
        assert_eq!(
            pinned(&ts, ScalarValue::TimestampMicrosecond(Some(micros), None)),
            Some(Value::TimestampMicros(micros))
        );
        assert_eq!(
            pinned(&ts, ScalarValue::TimestampMicrosecond(Some(-1), None)),
            Some(Value::TimestampMicros(-1))
        );
    }
}

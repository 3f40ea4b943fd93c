//! The DataFusion `TableProvider` of USER and SHARED tables, bound to one
//! caller's [`RowScope`] when the catalog hands it out.

use super::scan::{RowScan, ScanTarget};
use crate::error::CoreError;
use crate::row_reader::RowReader;
use crate::rows::OutputColumn;
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
use kalamdb_commons::{KalamDataType, Value};
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

    /// The primary-key value `expr` pins, if it is `pk = literal`.
    fn pinned_key(&self, expr: &Expr) -> Option<Value> {
        let pk = self.table.primary_key?;
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
        let def = &self.table.definition.columns[pk];
        if column.name != def.name {
            return None;
        }
        scalar_as_key(literal, def.data_type)
    }
}

/// A literal as a key value of `data_type`, when it converts exactly.
fn scalar_as_key(v: &ScalarValue, data_type: KalamDataType) -> Option<Value> {
    use KalamDataType as T;
    let int = match v {
        ScalarValue::Int8(Some(i)) => Some(i64::from(*i)),
        ScalarValue::Int16(Some(i)) => Some(i64::from(*i)),
        ScalarValue::Int32(Some(i)) => Some(i64::from(*i)),
        ScalarValue::Int64(Some(i)) => Some(*i),
        ScalarValue::UInt8(Some(i)) => Some(i64::from(*i)),
        ScalarValue::UInt16(Some(i)) => Some(i64::from(*i)),
        ScalarValue::UInt32(Some(i)) => Some(i64::from(*i)),
        ScalarValue::UInt64(Some(i)) => i64::try_from(*i).ok(),
        _ => None,
    };
    match (data_type, v) {
        (T::SmallInt, _) => int.and_then(|i| i16::try_from(i).ok()).map(Value::Int16),
        (T::Int, _) => int.and_then(|i| i32::try_from(i).ok()).map(Value::Int32),
        (T::BigInt, _) => int.map(Value::Int64),
        (
            T::Text | T::Uuid,
            ScalarValue::Utf8(Some(s))
            | ScalarValue::Utf8View(Some(s))
            | ScalarValue::LargeUtf8(Some(s)),
        ) => Some(Value::Text(s.clone())),
        (T::Boolean, ScalarValue::Boolean(Some(b))) => Some(Value::Boolean(*b)),
        (T::Date, ScalarValue::Date32(Some(d))) => Some(Value::Date32(*d)),
        (T::Timestamp | T::DateTime, ScalarValue::TimestampMicrosecond(Some(t), None)) => {
            Some(Value::TimestampMicros(*t))
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

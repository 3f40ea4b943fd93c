//! The DataFusion `TableProvider` of USER and SHARED tables, bound to one
//! caller's [`RowScope`] when the catalog hands it out.

use super::key_range::{KeyPlan, KeyPredicate, KeyRead, KeySet, Keys, table_keys};
use super::scan::{RowScan, RowScanExec, ScanTarget};
use crate::error::CoreError;
use crate::indexes::ready;
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
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use kalamdb_commons::ColumnDefinition;
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

    /// How `filters` read the primary key ([`table_keys`]).
    fn key_plan(&self, filters: &[&Expr]) -> KeyPlan {
        table_keys(&self.table, filters, &scalar_literal)
    }

    /// What a scan with `filters` reads: the keys they pin, the key ranges
    /// they bound, the entries of an index whose first column they
    /// restrict, or the whole partition; and how many leading key columns
    /// the read pins to one value.
    fn target(&self, reader: &RowReader, filters: &[Expr]) -> (ScanTarget, usize) {
        let filters: Vec<&Expr> = filters.iter().collect();
        let plan = self.key_plan(&filters);
        if plan.read == KeyRead::All
            && !filters.iter().any(|f| self.asks_for_deleted(f))
            && let Some(target) = self.index_target(reader, &filters)
        {
            return (target, 0);
        }
        (ScanTarget::of(plan.read, reader), plan.pinned)
    }

    /// The values of `column` the filters can match (in the key encoding).
    fn column_values(&self, column: &ColumnDefinition, filter: &Expr) -> Keys {
        KeyPredicate::on_column(&column.name, filter, &scalar_literal).values_of(column)
    }

    /// The first built index whose leading column `filters` restrict, with
    /// the ranges of its entries (in the reader's partition) they match.
    fn index_target(&self, reader: &RowReader, filters: &[&Expr]) -> Option<ScanTarget> {
        let def = &self.table.definition;
        def.indexes.iter().filter(|i| ready(i)).find_map(|index| {
            let column = &def.columns[def.column_position_of(*index.column_ids.first()?)?];
            let values = filters.iter().fold(KeySet::All, |values, f| {
                values.and(self.column_values(column, f).set)
            });
            ScanTarget::of_index(index, values, reader)
        })
    }

    /// Whether `filter` restricts one of the primary key's columns.
    fn restricts_key(&self, filter: &Expr) -> bool {
        self.table.key.iter().any(|&k| {
            let column = &self.table.definition.columns[k];
            self.column_values(column, filter).set != KeySet::All
        })
    }

    /// Whether `filter` restricts the leading column of a built index.
    fn restricts_index(&self, filter: &Expr) -> bool {
        let def = &self.table.definition;
        def.indexes.iter().filter(|i| ready(i)).any(|index| {
            index
                .column_ids
                .first()
                .and_then(|id| def.column_position_of(*id))
                .is_some_and(|p| self.column_values(&def.columns[p], filter).set != KeySet::All)
        })
    }

    /// Where each of the primary key's columns is among the output's
    /// `indices`, in key order.
    fn key_columns(&self, indices: &[usize]) -> Vec<Option<usize>> {
        self.table
            .key
            .iter()
            .map(|k| indices.iter().position(|i| i == k))
            .collect()
    }
}

/// The keys of `table` a row matching `filter` (a DataFusion expression
/// over its columns; its top-level AND terms read by the key rule) can
/// have: always a superset of them. For readers outside a query plan, e.g.
/// a live query's initial rows.
pub fn key_read_of(table: &CachedTable, filter: &Expr) -> KeyRead {
    let conjuncts = datafusion::logical_expr::utils::split_conjunction(filter);
    table_keys(table, &conjuncts, &scalar_literal).read
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
        let plan = self.key_plan(filters);
        Ok(filters
            .iter()
            .enumerate()
            .map(|(i, f)| {
                if plan.exact[i] && !self.asks_for_deleted(f) {
                    // the read itself is the filter
                    TableProviderFilterPushDown::Exact
                } else if self.restricts_key(f)
                    || self.asks_for_deleted(f)
                    || self.restricts_index(f)
                {
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
        let (target, pinned) = self.target(&reader, filters);
        let key_columns = self.key_columns(&indices);
        let scan = RowScan {
            schema: projected,
            columns,
            reader,
            target,
            include_deleted: filters.iter().any(|f| self.asks_for_deleted(f)),
            limit,
            reverse: false,
            missing,
        };
        Ok(Arc::new(RowScanExec::new(
            scan,
            self.table.definition.table_ref().to_string(),
            key_columns,
            pinned,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kalamdb_commons::{
        ColumnDefinition, KalamDataType, NamespaceId, TableDefinition, TableId, TableOptions,
        TableType, Value,
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
            indexes: Vec::new(),
            next_index_id: 1,
            key_columns: Vec::new(),
        })
    }

    fn pinned(table: &CachedTable, v: ScalarValue) -> Option<Value> {
        table.pinned_key("k", &scalar_literal(&v)?).map(|(_, v)| v)
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

#[cfg(test)]
mod composite_plan_tests;

#[cfg(test)]
mod plan_tests {
    //! What a scan reads for a query's key predicates, and that its
    //! primary-key order spares ORDER BY pk a sort.

    use super::*;
    use crate::write_set::{ChangeOp, Read, RowChange, WriteSet};
    use datafusion::common::tree_node::TreeNode;
    use datafusion::physical_plan::displayable;
    use datafusion::prelude::SessionContext;
    use kalamdb_commons::{
        ColumnDefinition, KalamDataType, NamespaceId, TableDefinition, TableId, TableOptions,
        TableType, Value,
    };
    use kalamdb_store::{RocksDbBackend, RocksDbOptions};

    pub(super) fn column(
        id: u32,
        name: &str,
        data_type: KalamDataType,
        primary_key: bool,
    ) -> ColumnDefinition {
        ColumnDefinition {
            column_id: id,
            name: name.into(),
            data_type,
            nullable: !primary_key,
            primary_key,
            default: None,
            backfill: None,
        }
    }

    /// The SHARED table `t (k BIGINT PRIMARY KEY, v TEXT)`.
    fn keyed_table() -> Arc<CachedTable> {
        Arc::new(CachedTable::new(TableDefinition {
            table_id: TableId(9),
            namespace: NamespaceId::new("app"),
            name: "t".into(),
            table_type: TableType::Shared,
            columns: vec![
                column(1, "k", KalamDataType::BigInt, true),
                column(2, "v", KalamDataType::Text, false),
            ],
            schema_version: 1,
            options: TableOptions::default(),
            created_at: 0,
            indexes: Vec::new(),
            next_index_id: 1,
            key_columns: Vec::new(),
        }))
    }

    /// Writes `(k, v)` rows into `table` in one batch.
    fn write_rows(
        store: &TableStore,
        table: &CachedTable,
        rows: impl IntoIterator<Item = (i64, String)>,
    ) {
        let mut set = WriteSet::new(&table.definition, RowScope::Shared);
        for (i, (k, v)) in rows.into_iter().enumerate() {
            let values = vec![Value::Int64(k), Value::Text(v)];
            set.push(RowChange {
                op: ChangeOp::Insert,
                key: set.key_of_row(&values).unwrap(),
                moved_from: None,
                seq: 1000 + i as i64,
                values,
                old_values: None,
                read: Read::Nothing,
            });
        }
        let mut batch = kalamdb_store::Batch::new();
        set.to_batch(&mut batch, &Default::default()).unwrap();
        store.write(batch).unwrap();
    }

    /// A DataFusion context as the server's (two partitions, our rules)
    /// with `t` registered.
    pub(super) fn context_with(provider: RowTableProvider) -> SessionContext {
        let state = datafusion::execution::SessionStateBuilder::new()
            .with_config(datafusion::prelude::SessionConfig::new().with_target_partitions(2))
            .with_default_features()
            .with_physical_optimizer_rules(crate::providers::key_order::physical_rules())
            .build();
        let ctx = SessionContext::new_with_state(state);
        ctx.register_table("t", Arc::new(provider)).unwrap();
        ctx
    }

    /// `t` holding k = 0..100, v = "v{k}".
    async fn fixture() -> (tempfile::TempDir, SessionContext, RowTableProvider) {
        let dir = tempfile::tempdir().unwrap();
        let backend =
            Arc::new(RocksDbBackend::open(dir.path(), &RocksDbOptions::default()).unwrap());
        let store = TableStore::new(backend);
        let table = keyed_table();
        write_rows(&store, &table, (0..100).map(|k| (k, format!("v{k}"))));
        let provider =
            |store| RowTableProvider::new(Arc::clone(&table), store, Some(RowScope::Shared), false);
        let ctx = context_with(provider(store.clone()));
        (dir, ctx, provider(store))
    }

    pub(super) async fn plan_of(ctx: &SessionContext, sql: &str) -> String {
        let plan = ctx
            .sql(sql)
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        displayable(plan.as_ref()).indent(true).to_string()
    }

    pub(super) async fn keys_of(ctx: &SessionContext, sql: &str) -> Vec<i64> {
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let mut out = Vec::new();
        for b in &batches {
            let col = b
                .column(0)
                .as_any()
                .downcast_ref::<datafusion::arrow::array::Int64Array>()
                .unwrap();
            out.extend(col.values().iter().copied());
        }
        out
    }

    #[tokio::test]
    async fn key_predicates_become_point_reads_or_one_range() {
        let (_dir, ctx, provider) = fixture().await;
        let reader = RowReader::new(
            Arc::clone(&provider.table),
            provider.store.clone(),
            &RowScope::Shared,
        );
        let target = |sql: &str| {
            let ctx = ctx.clone();
            let sql = sql.to_string();
            async move {
                let df = ctx
                    .sql(&format!("SELECT k FROM t WHERE {sql}"))
                    .await
                    .unwrap();
                let plan = df.logical_plan().clone();
                let mut filters = Vec::new();
                plan.apply(|node| {
                    if let datafusion::logical_expr::LogicalPlan::Filter(f) = node {
                        filters.extend(
                            datafusion::logical_expr::utils::split_conjunction(&f.predicate)
                                .into_iter()
                                .cloned(),
                        );
                    }
                    Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
                })
                .unwrap();
                filters
            }
        };
        let key = |k: i64| reader.key_of(&[Value::Int64(k)]).unwrap();
        let after = |k: i64| {
            // the first key past k: k + 1 for an integer key
            key(k + 1)
        };
        let filters = target("k = 7").await;
        assert!(
            matches!(provider.target(&reader, &filters).0, ScanTarget::Keys(keys) if keys == vec![key(7)])
        );
        let filters = target("k IN (9, 3, 3)").await;
        assert!(
            matches!(provider.target(&reader, &filters).0, ScanTarget::Keys(keys) if keys == vec![key(3), key(9)])
        );
        let filters = target("k > 10 AND k <= 20").await;
        assert!(matches!(
            provider.target(&reader, &filters).0,
            ScanTarget::Ranges(r) if r == [(after(10), after(20))]
        ));
        let filters = target("k BETWEEN 5 AND 6 OR k = 50").await;
        assert!(matches!(
            provider.target(&reader, &filters).0,
            ScanTarget::Ranges(r) if r == [(key(5), after(50))]
        ));
        let filters = target("k < 0 AND k > 5").await;
        assert!(
            matches!(provider.target(&reader, &filters).0, ScanTarget::Keys(keys) if keys.is_empty())
        );
        let filters = target("v = 'v1' OR k = 3").await;
        assert!(matches!(
            provider.target(&reader, &filters).0,
            ScanTarget::Partition
        ));
    }

    #[tokio::test]
    async fn order_by_the_primary_key_needs_no_sort() {
        let (_dir, ctx, _provider) = fixture().await;
        // a key range answers its filter: the LIMIT reaches the scan
        let sql = "SELECT k, v FROM t WHERE k > 10 ORDER BY k LIMIT 3";
        let plan = plan_of(&ctx, sql).await;
        assert_eq!(
            plan.trim(),
            "RowScanExec: table=app.t, read=range, projection=[k, v], fetch=3, \
             output_ordering=[k@0 ASC NULLS LAST]"
        );
        assert_eq!(keys_of(&ctx, sql).await, vec![11, 12, 13]);
        // without the key in the output there is no order to offer
        let plan = plan_of(&ctx, "SELECT v FROM t").await;
        assert!(!plan.contains("output_ordering"), "{plan}");
        assert!(plan.contains("read=full"), "{plan}");
    }

    #[tokio::test]
    async fn descending_order_reads_backward_and_never_sorts() {
        let (_dir, ctx, _provider) = fixture().await;
        let sql = "SELECT k FROM t WHERE k < 50 ORDER BY k DESC LIMIT 2";
        let plan = plan_of(&ctx, sql).await;
        assert_eq!(
            plan.trim(),
            "RowScanExec: table=app.t, read=range, projection=[k], reverse, fetch=2, \
             output_ordering=[k@0 DESC]"
        );
        assert_eq!(keys_of(&ctx, sql).await, vec![49, 48]);
        // the whole table, a key list, a sort that continues after the key
        for (sql, keys) in [
            ("SELECT k FROM t ORDER BY k DESC LIMIT 3", vec![99, 98, 97]),
            (
                "SELECT k FROM t WHERE k IN (3, 7, 5) ORDER BY k DESC",
                vec![7, 5, 3],
            ),
            (
                "SELECT k, v FROM t ORDER BY k DESC, v LIMIT 2",
                vec![99, 98],
            ),
        ] {
            let plan = plan_of(&ctx, sql).await;
            assert!(!plan.contains("SortExec"), "{sql}: {plan}");
            assert!(plan.contains("reverse"), "{sql}: {plan}");
            assert_eq!(keys_of(&ctx, sql).await, keys, "{sql}");
        }
        // another filter between: the scan still reads backward, the
        // filter takes the LIMIT, and no sort runs
        let sql = "SELECT k, v FROM t WHERE v > 'v5' ORDER BY k DESC LIMIT 3";
        let plan = plan_of(&ctx, sql).await;
        assert!(!plan.contains("SortExec"), "{plan}");
        assert!(plan.contains("FilterExec: v@1 > v5, fetch=3"), "{plan}");
        // one scan, not two partitions each reading for the whole LIMIT
        assert!(!plan.contains("RepartitionExec"), "{plan}");
        assert!(
            plan.contains("read=full, projection=[k, v], reverse"),
            "{plan}"
        );
        assert_eq!(keys_of(&ctx, sql).await, vec![99, 98, 97]);
        // a limited scan is not turned around: it would keep other rows
        let sql = "SELECT k FROM (SELECT k FROM t LIMIT 3) ORDER BY k DESC";
        let plan = plan_of(&ctx, sql).await;
        assert!(plan.contains("SortExec"), "{plan}");
        assert_eq!(keys_of(&ctx, sql).await, vec![2, 1, 0]);
    }

    #[tokio::test]
    async fn filters_the_key_read_answers_exactly_are_not_applied_again() {
        let (_dir, ctx, _provider) = fixture().await;
        for sql in [
            "SELECT k FROM t WHERE k = 3",
            "SELECT k FROM t WHERE k IN (1, 2) OR k = 9",
            "SELECT k FROM t WHERE k BETWEEN 3 AND 9 AND k <> 5",
            "SELECT k FROM t WHERE k >= 3 AND k < 9",
        ] {
            let plan = plan_of(&ctx, sql).await;
            let exact = !plan.contains("FilterExec");
            // `k <> 5` is no key range: it still runs as a filter
            assert_eq!(exact, !sql.contains("<>"), "{sql}: {plan}");
        }
        assert_eq!(
            keys_of(
                &ctx,
                "SELECT k FROM t WHERE k BETWEEN 3 AND 9 AND k <> 5 ORDER BY k"
            )
            .await,
            vec![3, 4, 6, 7, 8, 9]
        );
        // a union the read widens to one range keeps its filter
        let sql = "SELECT k FROM t WHERE k < 2 OR k > 97 ORDER BY k";
        let plan = plan_of(&ctx, sql).await;
        assert!(plan.contains("FilterExec"), "{plan}");
        assert_eq!(keys_of(&ctx, sql).await, vec![0, 1, 98, 99]);
        let sql = "SELECT k FROM t WHERE k = 4 OR (k > 10 AND k < 13) ORDER BY k";
        let plan = plan_of(&ctx, sql).await;
        assert!(plan.contains("FilterExec"), "{plan}");
        assert_eq!(keys_of(&ctx, sql).await, vec![4, 11, 12]);
    }

    #[tokio::test]
    async fn a_large_read_without_order_or_limit_is_split_across_partitions() {
        let dir = tempfile::tempdir().unwrap();
        let backend =
            Arc::new(RocksDbBackend::open(dir.path(), &RocksDbOptions::default()).unwrap());
        let store = TableStore::new(Arc::clone(&backend) as Arc<dyn kalamdb_store::StorageBackend>);
        let table = keyed_table();
        let n = 30_000i64;
        // text that does not compress, so the table's files pass the split size
        let mut noise = 0x2545_f491_4f6c_dd1du64;
        let mut text = move || -> String {
            (0..8)
                .map(|_| {
                    noise ^= noise << 13;
                    noise ^= noise >> 7;
                    noise ^= noise << 17;
                    format!("{noise:016x}")
                })
                .collect()
        };
        write_rows(&store, &table, (0..n).map(|k| (k * 3 - 1000, text())));
        backend.flush_all().unwrap();
        let ctx = context_with(RowTableProvider::new(
            table,
            store,
            Some(RowScope::Shared),
            false,
        ));

        let sql = "SELECT count(*), sum(k), min(k), max(k) FROM t";
        let plan = plan_of(&ctx, sql).await;
        assert!(
            plan.contains("read=full, projection=[k], split=2"),
            "{plan}"
        );
        let sum: i64 = (0..n).map(|k| k * 3 - 1000).sum();
        let check = format!(
            "SELECT count(*) = {n} AND sum(k) = {sum} AND min(k) = -1000 AND max(k) = {} FROM t",
            (n - 1) * 3 - 1000
        );
        let batches = ctx.sql(&check).await.unwrap().collect().await.unwrap();
        let shown = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string();
        assert!(shown.contains("| true "), "{shown}");
        // a range is split too; every row once
        let keys = keys_of(&ctx, "SELECT k FROM t WHERE k >= 0 AND v <> ''").await;
        assert_eq!(
            keys.len() as i64,
            (0..n).filter(|k| k * 3 - 1000 >= 0).count() as i64
        );
        // an order on the key merges the parts in order; a LIMIT reads one
        let sorted = keys_of(&ctx, "SELECT k FROM t WHERE v <> '' ORDER BY k").await;
        assert_eq!(sorted, (0..n).map(|k| k * 3 - 1000).collect::<Vec<_>>());
        let sql = "SELECT k FROM t WHERE v <> '' ORDER BY k DESC LIMIT 2";
        let plan = plan_of(&ctx, sql).await;
        assert!(!plan.contains("split="), "{plan}");
        assert_eq!(
            keys_of(&ctx, sql).await,
            vec![(n - 1) * 3 - 1000, (n - 2) * 3 - 1000]
        );
        // a LIMIT without order under a filter: each part stops at it
        let plan = plan_of(&ctx, "SELECT k FROM t WHERE v <> '' LIMIT 5").await;
        assert!(plan.contains("fetch=5"), "{plan}");
        assert_eq!(
            keys_of(&ctx, "SELECT k FROM t WHERE v <> '' LIMIT 5")
                .await
                .len(),
            5
        );
    }
}

#[cfg(test)]
mod index_plan_tests {
    //! Reads through a secondary index: which predicates use it, what
    //! `EXPLAIN` shows, and `ORDER BY` its column under a LIMIT without a
    //! sort.

    use super::plan_tests::{column, context_with, keys_of, plan_of};
    use super::*;
    use crate::indexes::IndexCatalog;
    use crate::write_set::{ChangeOp, Read, RowChange, WriteSet};
    use datafusion::prelude::SessionContext;
    use kalamdb_commons::{
        IndexDefinition, IndexState, KalamDataType, NamespaceId, TableDefinition, TableId,
        TableOptions, TableType, Value,
    };
    use kalamdb_store::{RocksDbBackend, RocksDbOptions};

    /// `t (k BIGINT PRIMARY KEY, g INT, v TEXT)`, index `by_g` on g, with
    /// k = 0..100, g = k % 10 (NULL where k % 25 = 0).
    async fn fixture() -> (tempfile::TempDir, SessionContext) {
        let def = TableDefinition {
            table_id: TableId(11),
            namespace: NamespaceId::new("app"),
            name: "t".into(),
            table_type: TableType::Shared,
            columns: vec![
                column(1, "k", KalamDataType::BigInt, true),
                column(2, "g", KalamDataType::Int, false),
                column(3, "v", KalamDataType::Text, false),
            ],
            schema_version: 1,
            options: TableOptions::default(),
            created_at: 0,
            indexes: vec![IndexDefinition {
                index_id: 1,
                name: "by_g".into(),
                column_ids: vec![2],
                unique: false,
                state: IndexState::Ready,
                created_at: 0,
            }],
            next_index_id: 2,
            key_columns: Vec::new(),
        };
        let dir = tempfile::tempdir().unwrap();
        let backend =
            Arc::new(RocksDbBackend::open(dir.path(), &RocksDbOptions::default()).unwrap());
        let store = TableStore::new(backend);
        let mut set = WriteSet::new(&def, RowScope::Shared);
        for k in 0..100i64 {
            let g = if k % 25 == 0 {
                Value::Null
            } else {
                Value::Int32((k % 10) as i32)
            };
            let values = vec![Value::Int64(k), g, Value::Text(format!("v{k}"))];
            set.push(RowChange {
                op: ChangeOp::Insert,
                key: set.key_of_row(&values).unwrap(),
                moved_from: None,
                seq: 1000 + k,
                values,
                old_values: None,
                read: Read::Nothing,
            });
        }
        let catalog = IndexCatalog::default();
        catalog.set(&def);
        let mut batch = kalamdb_store::Batch::new();
        set.to_batch(&mut batch, &catalog).unwrap();
        store.write(batch).unwrap();
        let table = Arc::new(CachedTable::new(def));
        let provider = RowTableProvider::new(table, store, Some(RowScope::Shared), false);
        (dir, context_with(provider))
    }

    #[tokio::test]
    async fn predicates_on_the_indexed_column_read_its_entries() {
        let (_dir, ctx) = fixture().await;
        for (sql, read, keys) in [
            (
                "SELECT k FROM t WHERE g = 3 ORDER BY k",
                "read=index(by_g)",
                (0..100)
                    .filter(|k| k % 10 == 3 && k % 25 != 0)
                    .collect::<Vec<_>>(),
            ),
            (
                "SELECT k FROM t WHERE g IN (1, 2) ORDER BY k",
                "read=index(by_g, ranges=2)",
                (0..100)
                    .filter(|k| (k % 10 == 1 || k % 10 == 2) && k % 25 != 0)
                    .collect(),
            ),
            (
                "SELECT k FROM t WHERE g > 7 AND v <> 'v99' ORDER BY k",
                "read=index(by_g)",
                (0..99).filter(|k| k % 10 > 7 && k % 25 != 0).collect(),
            ),
            (
                "SELECT k FROM t WHERE g < 0 ORDER BY k",
                "read=index(by_g)",
                Vec::new(),
            ),
        ] {
            let plan = plan_of(&ctx, sql).await;
            assert!(plan.contains(read), "{sql}: {plan}");
            assert_eq!(keys_of(&ctx, sql).await, keys, "{sql}");
        }
        // a key predicate reads the key instead; IS NULL reads everything
        let plan = plan_of(&ctx, "SELECT k FROM t WHERE g = 3 AND k = 13").await;
        assert!(plan.contains("read=point"), "{plan}");
        let plan = plan_of(&ctx, "SELECT k FROM t WHERE g IS NULL").await;
        assert!(plan.contains("read=full"), "{plan}");
    }

    #[tokio::test]
    async fn order_by_the_indexed_column_under_a_limit_reads_the_index_in_order() {
        let (_dir, ctx) = fixture().await;
        for (sql, same_as) in [
            (
                "SELECT k FROM t ORDER BY g LIMIT 5",
                "SELECT k FROM t ORDER BY g + 0, k LIMIT 5",
            ),
            (
                "SELECT k FROM t ORDER BY g DESC, k DESC LIMIT 6",
                "SELECT k FROM t ORDER BY g + 0 DESC NULLS FIRST, k DESC LIMIT 6",
            ),
            (
                "SELECT k FROM t WHERE v <> 'v79' ORDER BY g DESC, k DESC LIMIT 8",
                "SELECT k FROM t WHERE v <> 'v79' ORDER BY g + 0 DESC NULLS FIRST, k DESC LIMIT 8",
            ),
            (
                "SELECT k FROM t WHERE g >= 4 ORDER BY g, k LIMIT 4",
                "SELECT k FROM t WHERE g + 0 >= 4 ORDER BY g + 0, k LIMIT 4",
            ),
        ] {
            let plan = plan_of(&ctx, sql).await;
            assert!(!plan.contains("SortExec"), "{sql}: {plan}");
            assert!(plan.contains("read=index(by_g)"), "{sql}: {plan}");
            assert_eq!(
                keys_of(&ctx, sql).await,
                keys_of(&ctx, same_as).await,
                "{sql}"
            );
        }
        // NULLs come first descending, as SQL sorts them
        assert_eq!(
            keys_of(&ctx, "SELECT k FROM t ORDER BY g DESC, k DESC LIMIT 3").await,
            vec![75, 50, 25]
        );
        // without a LIMIT a sort of the scan is cheaper than a point read
        // per row; NULLS FIRST ascending is not the index's order
        for sql in [
            "SELECT k FROM t ORDER BY g",
            "SELECT k FROM t ORDER BY g NULLS FIRST LIMIT 3",
            "SELECT k FROM t ORDER BY g, v LIMIT 3",
        ] {
            let plan = plan_of(&ctx, sql).await;
            assert!(plan.contains("SortExec"), "{sql}: {plan}");
        }
    }
}

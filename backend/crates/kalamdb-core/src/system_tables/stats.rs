//! `system.stats`: one row per metric — per table: hot rows (all users) and
//! hot bytes on disk, cold files/rows/bytes (0 until the cold tier); for the
//! server: memtable and block-cache memory, namespaces, tables, users,
//! running jobs. dba and system only (row counts of USER tables span every
//! user). Row counts are exact: a table's rows are counted by a streaming
//! key scan, so reading this table costs a pass over the data.

use super::{SystemTable, pinned_text};
use crate::error::{CoreError, CoreResult};
use crate::query_scope::QueryScope;
use crate::schema::SchemaRegistry;
use crate::table_store::table_range;
use datafusion::arrow::array::{Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::logical_expr::Expr;
use kalamdb_commons::TableType;
use kalamdb_store::Partition;
use std::sync::{Arc, LazyLock};

pub const NAME: &str = "stats";

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("namespace_id", DataType::Utf8, true),
        Field::new("table_name", DataType::Utf8, true),
        Field::new("metric_name", DataType::Utf8, false),
        Field::new("metric_value", DataType::Int64, false),
    ]))
});

#[derive(Debug)]
pub struct StatsTable {
    registry: Arc<SchemaRegistry>,
}

impl StatsTable {
    pub fn new(registry: Arc<SchemaRegistry>) -> Self {
        Self { registry }
    }
}

struct Rows {
    namespace: Vec<Option<String>>,
    table: Vec<Option<String>>,
    metric: Vec<&'static str>,
    value: Vec<i64>,
}

impl Rows {
    fn push(&mut self, ns: Option<&str>, table: Option<&str>, metric: &'static str, value: u64) {
        self.namespace.push(ns.map(str::to_string));
        self.table.push(table.map(str::to_string));
        self.metric.push(metric);
        self.value.push(i64::try_from(value).unwrap_or(i64::MAX));
    }
}

impl SystemTable for StatsTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&SCHEMA)
    }

    fn scan(&self, scope: &QueryScope) -> CoreResult<RecordBatch> {
        self.scan_filtered(scope, &[])
    }

    /// `namespace_id = '…'` and `table_name = '…'` narrow which tables are
    /// counted (SHOW STATS FOR TABLE reads one table, not all).
    fn narrows_by(&self, filter: &Expr) -> bool {
        pinned_text(filter, "namespace_id").is_some() || pinned_text(filter, "table_name").is_some()
    }

    fn scan_filtered(&self, scope: &QueryScope, filters: &[Expr]) -> CoreResult<RecordBatch> {
        let namespace = filters.iter().find_map(|f| pinned_text(f, "namespace_id"));
        let table = filters.iter().find_map(|f| pinned_text(f, "table_name"));
        let mut rows = Rows {
            namespace: Vec::new(),
            table: Vec::new(),
            metric: Vec::new(),
            value: Vec::new(),
        };
        if scope.role.is_admin() {
            let meta = self.registry.meta();
            let backend = meta.backend();
            let tables = self.registry.tables(None);
            for t in &tables {
                let def = &t.definition;
                if def.table_type == TableType::Stream
                    || namespace.is_some_and(|n| n != def.namespace.as_str())
                    || table.is_some_and(|n| n != def.name)
                {
                    continue;
                }
                let (ns, name) = (Some(def.namespace.as_str()), Some(def.name.as_str()));
                let (start, end) = table_range(def.table_id);
                // the hot tier's live rows (the cold tier's are below)
                let mut live = 0u64;
                backend.scan(Partition::Data, &start, &end, &mut |_, bytes| {
                    if !kalamdb_store::row::RowView::decode(bytes)?.deleted {
                        live += 1;
                    }
                    Ok(true)
                })?;
                rows.push(ns, name, "hot_rows", live);
                rows.push(
                    ns,
                    name,
                    "hot_bytes_on_disk",
                    backend.approximate_size(Partition::Data, &start, &end),
                );
                let manifests = crate::cold::manifests_of(backend.as_ref(), def.table_id.0)?;
                let segments = manifests.iter().flat_map(|m| &m.segments);
                rows.push(ns, name, "cold_files", segments.clone().count() as u64);
                rows.push(
                    ns,
                    name,
                    "cold_rows",
                    segments.clone().map(|s| s.rows).sum(),
                );
                rows.push(
                    ns,
                    name,
                    "cold_bytes",
                    segments.clone().map(|s| s.bytes).sum(),
                );
                rows.push(
                    ns,
                    name,
                    "last_flush_at_ms",
                    segments
                        .map(|s| u64::try_from(s.created_at_ms).unwrap_or(0))
                        .max()
                        .unwrap_or(0),
                );
            }
            let (memtables, cache) = backend.memory_usage();
            rows.push(None, None, "memtable_bytes", memtables);
            rows.push(None, None, "block_cache_bytes", cache);
            rows.push(
                None,
                None,
                "namespaces",
                self.registry.namespaces().len() as u64,
            );
            rows.push(None, None, "tables", tables.len() as u64);
            rows.push(
                None,
                None,
                "users",
                meta.users()?
                    .iter()
                    .filter(|u| u.deleted_at.is_none())
                    .count() as u64,
            );
            rows.push(
                None,
                None,
                "jobs_active",
                meta.jobs()?.iter().filter(|j| j.status.is_active()).count() as u64,
            );
        }
        RecordBatch::try_new(
            self.schema(),
            vec![
                Arc::new(StringArray::from(rows.namespace)),
                Arc::new(StringArray::from(rows.table)),
                Arc::new(StringArray::from(rows.metric)),
                Arc::new(Int64Array::from(rows.value)),
            ],
        )
        .map_err(|e| CoreError::Internal(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use crate::query_scope::QueryScope;
    use crate::{AppContext, CoreOptions, ExecutionContext};
    use datafusion::arrow::array::{Array, StringArray};
    use datafusion::logical_expr::{col, lit};
    use kalamdb_commons::{Role, UserId};
    use std::sync::Arc;

    #[tokio::test]
    async fn a_table_name_filter_narrows_what_is_counted() {
        let dir = tempfile::tempdir().unwrap();
        let backend =
            Arc::new(kalamdb_store::RocksDbBackend::open(dir.path(), &Default::default()).unwrap());
        let app = AppContext::open(backend, &CoreOptions::default()).unwrap();
        let mut root = ExecutionContext::new(UserId::new("root"), "root", Role::System);
        app.execute(
            &mut root,
            "CREATE NAMESPACE s; CREATE SHARED TABLE s.a (id INT PRIMARY KEY); \
                 CREATE SHARED TABLE s.b (id INT PRIMARY KEY); INSERT INTO s.b VALUES (1), (2)",
            &[],
        )
        .await
        .unwrap();
        let stats = app.system_tables.get(super::NAME).unwrap();
        let scope = QueryScope {
            user_id: UserId::new("root"),
            role: Role::System,
            include_system_columns: false,
        };
        let filter = col("table_name").eq(lit("b"));
        assert!(stats.narrows_by(&filter));
        let tables_in = |batch: &datafusion::arrow::record_batch::RecordBatch| {
            let names = batch
                .column(1)
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .clone();
            let mut seen: Vec<String> = (0..names.len())
                .filter(|&i| names.is_valid(i))
                .map(|i| names.value(i).to_string())
                .collect();
            seen.dedup();
            seen
        };
        let all = stats.scan(&scope).unwrap();
        assert_eq!(tables_in(&all), ["a", "b"]);
        let narrowed = stats.scan_filtered(&scope, &[filter]).unwrap();
        assert_eq!(tables_in(&narrowed), ["b"]);
    }
}

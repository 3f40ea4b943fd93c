//! The server's own tables (`system.*`), one file per table, registered by
//! name in the [`SystemTablesRegistry`]. Each builds its rows from the
//! registry or metadata store at scan time, filtered by the caller's role.

pub mod audit_log;
pub mod backups;
pub mod columns;
pub mod indexes;
pub mod jobs;
pub mod live_queries;
pub mod namespaces;
pub mod stats;
pub mod storages;
pub mod tables;
pub mod users;

use crate::error::CoreResult;
use crate::query_scope::QueryScope;
use crate::schema::SchemaRegistry;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;

pub trait SystemTable: Send + Sync + Debug {
    fn schema(&self) -> SchemaRef;
    /// The rows `scope` may see.
    fn scan(&self, scope: &QueryScope) -> CoreResult<RecordBatch>;
    /// Whether the table can narrow what it builds by `filter` (DataFusion
    /// still applies every filter to what comes back).
    fn narrows_by(&self, _filter: &datafusion::logical_expr::Expr) -> bool {
        false
    }
    /// The rows `scope` may see, built only as far as `filters` (those
    /// [`SystemTable::narrows_by`] accepted) require.
    fn scan_filtered(
        &self,
        scope: &QueryScope,
        _filters: &[datafusion::logical_expr::Expr],
    ) -> CoreResult<RecordBatch> {
        self.scan(scope)
    }
}

/// The literal text `filter` pins `column` to (`column = 'text'`, either
/// side), for tables that narrow by a name.
pub fn pinned_text<'a>(
    filter: &'a datafusion::logical_expr::Expr,
    column: &str,
) -> Option<&'a str> {
    use datafusion::common::ScalarValue;
    use datafusion::logical_expr::{BinaryExpr, Expr, Operator};
    let Expr::BinaryExpr(BinaryExpr {
        left,
        op: Operator::Eq,
        right,
    }) = filter
    else {
        return None;
    };
    match (left.as_ref(), right.as_ref()) {
        (Expr::Column(c), Expr::Literal(v, _)) | (Expr::Literal(v, _), Expr::Column(c))
            if c.name == column =>
        {
            match v {
                ScalarValue::Utf8(Some(s))
                | ScalarValue::Utf8View(Some(s))
                | ScalarValue::LargeUtf8(Some(s)) => Some(s.as_str()),
                _ => None,
            }
        }
        _ => None,
    }
}

pub struct SystemTablesRegistry {
    tables: BTreeMap<&'static str, Arc<dyn SystemTable>>,
    live: Arc<live_queries::LiveQueriesTable>,
}

impl SystemTablesRegistry {
    pub fn new(
        registry: Arc<SchemaRegistry>,
        storages: Arc<crate::storages::StorageRegistry>,
    ) -> Self {
        let mut tables: BTreeMap<&'static str, Arc<dyn SystemTable>> = BTreeMap::new();
        tables.insert(
            namespaces::NAME,
            Arc::new(namespaces::NamespacesTable::new(Arc::clone(&registry))),
        );
        tables.insert(
            tables::NAME,
            Arc::new(tables::TablesTable::new(Arc::clone(&registry))),
        );
        tables.insert(
            indexes::NAME,
            Arc::new(indexes::IndexesTable::new(Arc::clone(&registry))),
        );
        tables.insert(
            columns::NAME,
            Arc::new(columns::ColumnsTable::new(Arc::clone(&registry))),
        );
        tables.insert(
            audit_log::NAME,
            Arc::new(audit_log::AuditLogTable::new(Arc::clone(&registry))),
        );
        tables.insert(
            backups::NAME,
            Arc::new(backups::BackupsTable::new(Arc::clone(&registry))),
        );
        tables.insert(
            jobs::NAME,
            Arc::new(jobs::JobsTable::new(Arc::clone(&registry))),
        );
        tables.insert(
            stats::NAME,
            Arc::new(stats::StatsTable::new(Arc::clone(&registry))),
        );
        tables.insert(
            storages::NAME,
            Arc::new(storages::StoragesTable::new(storages)),
        );
        tables.insert(users::NAME, Arc::new(users::UsersTable::new(registry)));
        let live = Arc::new(live_queries::LiveQueriesTable::default());
        tables.insert(
            live_queries::NAME,
            Arc::clone(&live) as Arc<dyn SystemTable>,
        );
        tables.insert(
            live_queries::ALIAS,
            Arc::clone(&live) as Arc<dyn SystemTable>,
        );
        Self { tables, live }
    }

    /// Plugs in where `system.live_queries` reads the active subscriptions
    /// (once, at start-up); `false` if a source was set already.
    pub fn set_live_queries(&self, source: Arc<dyn live_queries::LiveQueries>) -> bool {
        self.live.set_source(source)
    }

    /// The live-query manager, when this process serves live queries.
    pub fn live_queries(&self) -> Option<Arc<dyn live_queries::LiveQueries>> {
        self.live.source()
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn SystemTable>> {
        self.tables.get(name).cloned()
    }

    pub fn names(&self) -> Vec<String> {
        self.tables.keys().map(|k| k.to_string()).collect()
    }
}

/// Epoch milliseconds to the microsecond timestamps system tables use.
pub(crate) fn ms_to_micros(ms: i64) -> i64 {
    ms.saturating_mul(1000)
}

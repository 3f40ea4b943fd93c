//! `system.live_queries` (also `system.live`, KalamDB's name): every active
//! subscription. The live-query manager sits above kalamdb-core, so it is
//! plugged in at start-up as a [`LiveQueries`] source. Users see their own
//! subscriptions, dba and system all of them.

use super::{SystemTable, ms_to_micros};
use crate::context::ExecutionContext;
use crate::error::{CoreError, CoreResult};
use crate::query_scope::QueryScope;
use datafusion::arrow::array::{Int64Array, StringArray, TimestampMicrosecondArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use kalamdb_commons::UserId;
use std::sync::{Arc, LazyLock, OnceLock};

pub const NAME: &str = "live_queries";
/// The name KalamDB's own tools read.
pub const ALIAS: &str = "live";

/// One active subscription, as `system.live_queries` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveQueryInfo {
    pub live_id: String,
    pub connection_id: String,
    pub subscription_id: String,
    pub namespace: String,
    pub table: String,
    pub user_id: UserId,
    pub username: String,
    pub query: String,
    /// The subscribe options as JSON.
    pub options: String,
    pub created_at_ms: i64,
    /// When a change was last queued for it.
    pub last_update_ms: Option<i64>,
    pub changes_delivered: u64,
    /// Change messages queued and not yet taken by its connection.
    pub queue_depth: u64,
    /// Change messages it lost to an overflow (it ends then).
    pub dropped: u64,
    /// The highest `_seq` handed to it.
    pub last_seq: i64,
    /// How long its oldest undelivered change has waited (0 when none).
    pub lag_ms: i64,
}

/// Where the active subscriptions come from (the live-query manager).
pub trait LiveQueries: Send + Sync {
    fn live_queries(&self) -> Vec<LiveQueryInfo>;
    /// Checks `sql` as a subscription of `ctx` is checked at subscribe.
    fn check(&self, ctx: &ExecutionContext, sql: &str) -> CoreResult<()>;
    /// Ends subscription `live_id` (its owner, or dba/system, may).
    fn kill(&self, ctx: &ExecutionContext, live_id: &str) -> CoreResult<()>;
}

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let ts = |name: &str, nullable: bool| {
        Field::new(
            name,
            DataType::Timestamp(TimeUnit::Microsecond, None),
            nullable,
        )
    };
    Arc::new(Schema::new(vec![
        Field::new("live_id", DataType::Utf8, false),
        Field::new("connection_id", DataType::Utf8, false),
        Field::new("subscription_id", DataType::Utf8, false),
        Field::new("namespace_id", DataType::Utf8, false),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("user_id", DataType::Utf8, false),
        Field::new("username", DataType::Utf8, false),
        Field::new("query", DataType::Utf8, false),
        Field::new("options", DataType::Utf8, false),
        ts("created_at", false),
        ts("last_update", true),
        Field::new("changes", DataType::UInt64, false),
        Field::new("queue_depth", DataType::UInt64, false),
        Field::new("dropped", DataType::UInt64, false),
        Field::new("last_seq", DataType::Int64, false),
        Field::new("lag_ms", DataType::Int64, false),
    ]))
});

#[derive(Default)]
pub struct LiveQueriesTable {
    source: OnceLock<Arc<dyn LiveQueries>>,
}

impl std::fmt::Debug for LiveQueriesTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LiveQueriesTable")
    }
}

impl LiveQueriesTable {
    /// Plugs in the live-query manager (once); `false` if one was set.
    pub fn set_source(&self, source: Arc<dyn LiveQueries>) -> bool {
        self.source.set(source).is_ok()
    }

    pub fn source(&self) -> Option<Arc<dyn LiveQueries>> {
        self.source.get().cloned()
    }
}

impl SystemTable for LiveQueriesTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&SCHEMA)
    }

    fn scan(&self, scope: &QueryScope) -> CoreResult<RecordBatch> {
        let mut rows = self
            .source
            .get()
            .map(|s| s.live_queries())
            .unwrap_or_default();
        if !scope.role.is_admin() {
            rows.retain(|r| r.user_id == scope.user_id);
        }
        rows.sort_by(|a, b| a.live_id.cmp(&b.live_id));
        let text = |f: &dyn Fn(&LiveQueryInfo) -> &str| {
            Arc::new(StringArray::from_iter_values(rows.iter().map(f))) as _
        };
        let count = |f: &dyn Fn(&LiveQueryInfo) -> u64| {
            Arc::new(UInt64Array::from_iter_values(rows.iter().map(f))) as _
        };
        RecordBatch::try_new(
            self.schema(),
            vec![
                text(&|r| &r.live_id),
                text(&|r| &r.connection_id),
                text(&|r| &r.subscription_id),
                text(&|r| &r.namespace),
                text(&|r| &r.table),
                text(&|r| r.user_id.as_str()),
                text(&|r| &r.username),
                text(&|r| &r.query),
                text(&|r| &r.options),
                Arc::new(TimestampMicrosecondArray::from_iter_values(
                    rows.iter().map(|r| ms_to_micros(r.created_at_ms)),
                )),
                Arc::new(TimestampMicrosecondArray::from_iter(
                    rows.iter().map(|r| r.last_update_ms.map(ms_to_micros)),
                )),
                count(&|r| r.changes_delivered),
                count(&|r| r.queue_depth),
                count(&|r| r.dropped),
                Arc::new(Int64Array::from_iter_values(
                    rows.iter().map(|r| r.last_seq),
                )),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.lag_ms))),
            ],
        )
        .map_err(|e| CoreError::Internal(e.to_string()))
    }
}

//! `system.audit_log`: DDL, user management, EXECUTE AS USER and failed
//! logins — who, what, when, from where. dba and system see every entry;
//! other roles see none.

use super::{SystemTable, ms_to_micros};
use crate::error::{CoreError, CoreResult};
use crate::query_scope::QueryScope;
use crate::schema::SchemaRegistry;
use datafusion::arrow::array::{Int64Array, StringArray, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use std::sync::{Arc, LazyLock};

pub const NAME: &str = "audit_log";

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("audit_id", DataType::Int64, false),
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
        ),
        Field::new("actor", DataType::Utf8, false),
        Field::new("action", DataType::Utf8, false),
        Field::new("details", DataType::Utf8, false),
        Field::new("client_addr", DataType::Utf8, true),
        Field::new("as_user", DataType::Utf8, true),
    ]))
});

#[derive(Debug)]
pub struct AuditLogTable {
    registry: Arc<SchemaRegistry>,
}

impl AuditLogTable {
    pub fn new(registry: Arc<SchemaRegistry>) -> Self {
        Self { registry }
    }
}

impl SystemTable for AuditLogTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&SCHEMA)
    }

    fn scan(&self, scope: &QueryScope) -> CoreResult<RecordBatch> {
        let entries = if scope.role.is_admin() {
            self.registry.meta().audit_entries()?
        } else {
            Vec::new()
        };
        RecordBatch::try_new(
            self.schema(),
            vec![
                Arc::new(Int64Array::from_iter_values(
                    entries.iter().map(|e| e.audit_id),
                )),
                Arc::new(TimestampMicrosecondArray::from_iter_values(
                    entries.iter().map(|e| ms_to_micros(e.timestamp)),
                )),
                Arc::new(StringArray::from_iter_values(
                    entries.iter().map(|e| e.actor.as_str()),
                )),
                Arc::new(StringArray::from_iter_values(
                    entries.iter().map(|e| e.action.as_str()),
                )),
                Arc::new(StringArray::from_iter_values(
                    entries.iter().map(|e| e.details.as_str()),
                )),
                Arc::new(StringArray::from_iter(
                    entries.iter().map(|e| e.client_addr.as_deref()),
                )),
                Arc::new(StringArray::from_iter(
                    entries.iter().map(|e| e.as_user.as_deref()),
                )),
            ],
        )
        .map_err(|e| CoreError::Internal(e.to_string()))
    }
}

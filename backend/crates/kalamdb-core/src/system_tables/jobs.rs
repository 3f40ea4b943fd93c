//! `system.jobs`: every job with its status, outcome and timestamps, read
//! from the persisted records (written on each transition). dba and system
//! see every job; other roles see none.

use super::{SystemTable, ms_to_micros};
use crate::error::{CoreError, CoreResult};
use crate::query_scope::QueryScope;
use crate::schema::SchemaRegistry;
use datafusion::arrow::array::{
    Int32Array, Int64Array, StringArray, TimestampMicrosecondArray, UInt32Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use std::sync::{Arc, LazyLock};

pub const NAME: &str = "jobs";

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let ts = |name: &str, nullable: bool| {
        Field::new(
            name,
            DataType::Timestamp(TimeUnit::Microsecond, None),
            nullable,
        )
    };
    Arc::new(Schema::new(vec![
        Field::new("job_id", DataType::Utf8, false),
        Field::new("job_type", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("namespace_id", DataType::Utf8, true),
        Field::new("table_name", DataType::Utf8, true),
        Field::new("parameters", DataType::Utf8, false),
        Field::new("message", DataType::Utf8, true),
        Field::new("exception_trace", DataType::Utf8, true),
        Field::new("idempotency_key", DataType::Utf8, true),
        Field::new("retry_count", DataType::UInt32, false),
        Field::new("max_retries", DataType::UInt32, false),
        Field::new("queue", DataType::Utf8, false),
        Field::new("priority", DataType::Int32, false),
        ts("created_at", false),
        ts("updated_at", false),
        ts("started_at", true),
        ts("finished_at", true),
        Field::new("node_id", DataType::Int64, false),
    ]))
});

#[derive(Debug)]
pub struct JobsTable {
    registry: Arc<SchemaRegistry>,
}

impl JobsTable {
    pub fn new(registry: Arc<SchemaRegistry>) -> Self {
        Self { registry }
    }
}

impl SystemTable for JobsTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&SCHEMA)
    }

    fn scan(&self, scope: &QueryScope) -> CoreResult<RecordBatch> {
        let jobs = if scope.role.is_admin() {
            self.registry.meta().jobs()?
        } else {
            Vec::new()
        };
        let text = |f: &dyn Fn(&crate::jobs::Job) -> Option<String>| {
            Arc::new(StringArray::from_iter(jobs.iter().map(f))) as _
        };
        let time = |f: &dyn Fn(&crate::jobs::Job) -> Option<i64>| {
            Arc::new(TimestampMicrosecondArray::from_iter(
                jobs.iter().map(|j| f(j).map(ms_to_micros)),
            )) as _
        };
        RecordBatch::try_new(
            self.schema(),
            vec![
                text(&|j| Some(j.job_id.clone())),
                text(&|j| Some(j.job_type.to_string())),
                text(&|j| Some(j.status.to_string())),
                text(&|j| j.namespace_id.clone()),
                text(&|j| j.table_name.clone()),
                text(&|j| Some(j.parameters.to_string())),
                text(&|j| j.message.clone()),
                text(&|j| j.exception_trace.clone()),
                text(&|j| j.idempotency_key.clone()),
                Arc::new(UInt32Array::from_iter_values(
                    jobs.iter().map(|j| j.retry_count),
                )),
                Arc::new(UInt32Array::from_iter_values(
                    jobs.iter().map(|j| j.max_retries),
                )),
                text(&|j| Some(j.queue.clone())),
                Arc::new(Int32Array::from_iter_values(
                    jobs.iter().map(|j| j.priority),
                )),
                time(&|j| Some(j.created_at)),
                time(&|j| Some(j.updated_at)),
                time(&|j| j.started_at),
                time(&|j| j.finished_at),
                Arc::new(Int64Array::from_iter_values(
                    jobs.iter().map(|j| i64::from(j.node_id)),
                )),
            ],
        )
        .map_err(|e| CoreError::Internal(e.to_string()))
    }
}

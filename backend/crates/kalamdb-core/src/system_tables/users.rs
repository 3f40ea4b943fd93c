//! `system.users`: accounts. Password hashes are never exposed here; a
//! `user`/`service` caller sees only its own row.

use super::{SystemTable, ms_to_micros};
use crate::error::{CoreError, CoreResult};
use crate::query_scope::QueryScope;
use crate::schema::SchemaRegistry;
use datafusion::arrow::array::{BooleanArray, StringArray, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use std::sync::{Arc, LazyLock};

pub const NAME: &str = "users";

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let ts = || DataType::Timestamp(TimeUnit::Microsecond, None);
    Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Utf8, false),
        Field::new("username", DataType::Utf8, false),
        Field::new("role", DataType::Utf8, false),
        Field::new("email", DataType::Utf8, true),
        Field::new("auth_type", DataType::Utf8, false),
        Field::new("allow_remote", DataType::Boolean, false),
        Field::new("created_at", ts(), false),
        Field::new("updated_at", ts(), false),
        Field::new("deleted_at", ts(), true),
    ]))
});

#[derive(Debug)]
pub struct UsersTable {
    registry: Arc<SchemaRegistry>,
}

impl UsersTable {
    pub fn new(registry: Arc<SchemaRegistry>) -> Self {
        Self { registry }
    }
}

impl SystemTable for UsersTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&SCHEMA)
    }

    fn scan(&self, scope: &QueryScope) -> CoreResult<RecordBatch> {
        let users: Vec<_> = self
            .registry
            .meta()
            .users()?
            .into_iter()
            .filter(|u| scope.role.is_admin() || u.user_id == scope.user_id)
            .collect();
        RecordBatch::try_new(
            self.schema(),
            vec![
                Arc::new(StringArray::from_iter_values(
                    users.iter().map(|u| u.user_id.as_str()),
                )),
                Arc::new(StringArray::from_iter_values(
                    users.iter().map(|u| u.username.as_str()),
                )),
                Arc::new(StringArray::from_iter_values(
                    users.iter().map(|u| u.role.as_str()),
                )),
                Arc::new(StringArray::from_iter(
                    users.iter().map(|u| u.email.as_deref()),
                )),
                Arc::new(StringArray::from_iter_values(users.iter().map(|u| {
                    if u.password_hash.is_some() {
                        "password"
                    } else {
                        "internal"
                    }
                }))),
                Arc::new(BooleanArray::from_iter(
                    users.iter().map(|u| Some(u.allow_remote)),
                )),
                Arc::new(TimestampMicrosecondArray::from_iter_values(
                    users.iter().map(|u| ms_to_micros(u.created_at)),
                )),
                Arc::new(TimestampMicrosecondArray::from_iter_values(
                    users.iter().map(|u| ms_to_micros(u.updated_at)),
                )),
                Arc::new(TimestampMicrosecondArray::from_iter(
                    users.iter().map(|u| u.deleted_at.map(ms_to_micros)),
                )),
            ],
        )
        .map_err(|e| CoreError::Internal(e.to_string()))
    }
}

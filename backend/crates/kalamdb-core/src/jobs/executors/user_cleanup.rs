//! UserCleanup (`UC`): purges a dropped user's rows from every USER table
//! once `auth.user_deletion_grace_days` have passed since DROP USER.
//!
//! DROP USER leaves the account soft-deleted and records it under the
//! dropped-users list (by user id, so re-creating the name later does not
//! hide it). Each due user is purged in one atomic batch: a range delete of
//! its partition in each USER table, the dropped-users entry, and the
//! soft-deleted account record (when the name was not taken again).
//! Parameters: `{}` (every due user) or `{"user_id": "u_…"}` (that one, if
//! due).

use crate::app_context::AppContext;
use crate::error::{CoreError, CoreResult};
use crate::jobs::executor::{JobContext, JobDecision, JobExecutor};
use crate::jobs::model::{Job, JobType};
use crate::table_store::delete_user_rows;
use async_trait::async_trait;
use kalamdb_commons::TableType;
use kalamdb_store::Batch;
use serde_json::Value as Json;

pub struct UserCleanupExecutor {
    /// How long a dropped user's rows are kept.
    pub grace_ms: i64,
}

impl UserCleanupExecutor {
    fn purge(&self, ctx: &JobContext<AppContext>, job: &Job) -> CoreResult<Option<(usize, usize)>> {
        let app = &ctx.app;
        let only = job.parameters.get("user_id").and_then(Json::as_str);
        let now = ctx.clock.now_ms();
        let due: Vec<_> = app
            .meta
            .dropped_users()?
            .into_iter()
            .filter(|u| u.deleted_at.is_some_and(|at| at + self.grace_ms <= now))
            .filter(|u| only.is_none_or(|id| u.user_id.as_str() == id))
            .collect();
        let tables: Vec<_> = app
            .schema_registry
            .tables(None)
            .into_iter()
            .filter(|t| t.definition.table_type == TableType::User)
            .collect();
        for user in &due {
            if ctx.is_cancelled() {
                return Ok(None);
            }
            let mut batch = Batch::new();
            for table in &tables {
                delete_user_rows(&mut batch, &table.definition, &user.user_id)?;
            }
            app.meta.forget_dropped_user(&mut batch, &user.user_id);
            if app
                .meta
                .user(&user.username)?
                .is_some_and(|u| u.user_id == user.user_id && u.deleted_at.is_some())
            {
                app.meta.delete_user(&mut batch, &user.username);
            }
            app.meta.backend().write(batch)?;
            for table in &tables {
                app.table_store
                    .cold()
                    .forget(&crate::table_store::partition_prefix(
                        table.definition.table_id,
                        &crate::table_store::RowScope::User(user.user_id.clone()),
                    ));
            }
            app.meta.users_changed();
            ctx.info(&format!(
                "purged user '{}' ({}) from {} USER table(s)",
                user.username,
                user.user_id,
                tables.len()
            ));
        }
        Ok(Some((due.len(), tables.len())))
    }
}

#[async_trait]
impl JobExecutor<AppContext> for UserCleanupExecutor {
    fn job_type(&self) -> JobType {
        JobType::UserCleanup
    }

    fn name(&self) -> &'static str {
        "UserCleanup"
    }

    fn validate_params(&self, params: &Json) -> CoreResult<()> {
        match params.get("user_id") {
            None | Some(Json::String(_)) => Ok(()),
            Some(other) => Err(CoreError::InvalidParameter(format!(
                "UserCleanup: 'user_id' must be a string, got {other}"
            ))),
        }
    }

    async fn execute(&self, ctx: &JobContext<AppContext>, job: &Job) -> JobDecision {
        let outcome = self.purge(ctx, job).map(|done| {
            done.map(|(users, tables)| {
                format!("Purged {users} dropped user(s) from {tables} USER table(s)")
            })
        });
        JobDecision::of_run(self.name(), outcome)
    }

    /// Each user is purged in one batch, so running again is harmless.
    fn safe_to_resume(&self) -> bool {
        true
    }
}

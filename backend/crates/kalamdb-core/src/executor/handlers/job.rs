//! KILL JOB / CANCEL JOB; BACKUP DATABASE and RESTORE DATABASE (each starts
//! a job: `jobs/executors/backup.rs`, `restore.rs`).

use super::{StatementHandler, StatementOptions, unexpected};
use crate::app_context::AppContext;
use crate::context::ExecutionContext;
use crate::error::{CoreError, CoreResult};
use crate::jobs::executors::{backup, restore};
use crate::jobs::model::is_job_id;
use crate::result::StatementResult;
use async_trait::async_trait;
use kalamdb_sql::SqlStatement;

pub struct JobHandler;

#[async_trait]
impl StatementHandler for JobHandler {
    async fn execute(
        &self,
        app: &AppContext,
        ctx: &mut ExecutionContext,
        statement: SqlStatement,
        _options: &StatementOptions<'_>,
    ) -> CoreResult<StatementResult> {
        let job_id = match statement {
            SqlStatement::KillJob { job_id } => job_id,
            SqlStatement::BackupDatabase { namespace, path } => {
                let what = namespace
                    .as_deref()
                    .map_or("the database".to_string(), |ns| format!("namespace '{ns}'"));
                let job_id = backup::create_backup_job(app, namespace, &path)?;
                return Ok(StatementResult::message(format!(
                    "Backup of {what} to '{path}' started. Job ID: {job_id}"
                )));
            }
            SqlStatement::RestoreDatabase {
                namespace,
                path,
                overwrite,
            } => {
                let job_id =
                    restore::create_restore_job(app, namespace, &path, overwrite, ctx.role)?;
                return Ok(StatementResult::message(format!(
                    "Restore from '{path}' started. Job ID: {job_id}"
                )));
            }
            other => return Err(unexpected(&other)),
        };
        if !is_job_id(&job_id) {
            return Err(CoreError::InvalidParameter(format!(
                "'{job_id}' is not a job id (expected e.g. 'FL-4fT9a2xQ')"
            )));
        }
        let message = app.job_manager.cancel_job(&job_id).await?;
        Ok(StatementResult::message(message))
    }
}

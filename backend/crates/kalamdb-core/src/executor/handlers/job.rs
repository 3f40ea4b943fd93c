//! KILL JOB / CANCEL JOB.

use super::{StatementHandler, StatementOptions, unexpected};
use crate::app_context::AppContext;
use crate::context::ExecutionContext;
use crate::error::{CoreError, CoreResult};
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
        _ctx: &mut ExecutionContext,
        statement: SqlStatement,
        _options: &StatementOptions<'_>,
    ) -> CoreResult<StatementResult> {
        let SqlStatement::KillJob { job_id } = statement else {
            return Err(unexpected(&statement));
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

//! INSERT, UPDATE and DELETE: the family's handler routes each to its file.

use super::{StatementHandler, StatementOptions, unexpected};
use crate::app_context::AppContext;
use crate::context::ExecutionContext;
use crate::error::CoreResult;
use crate::result::StatementResult;
use async_trait::async_trait;
use kalamdb_sql::SqlStatement;
use kalamdb_sql::sqlparser::ast::Statement;

pub struct DmlHandler;

#[async_trait]
impl StatementHandler for DmlHandler {
    async fn execute(
        &self,
        app: &AppContext,
        ctx: &mut ExecutionContext,
        statement: SqlStatement,
        options: &StatementOptions<'_>,
    ) -> CoreResult<StatementResult> {
        match statement {
            SqlStatement::Standard(s) => match *s {
                Statement::Insert(insert) => {
                    super::insert::execute_insert(app, ctx, &insert, options.params).await
                }
                Statement::Update(update) => {
                    super::update_delete::execute_update(app, ctx, &update, options.params).await
                }
                Statement::Delete(delete) => {
                    super::update_delete::execute_delete(app, ctx, &delete, options.params).await
                }
                other => Err(unexpected(&SqlStatement::Standard(Box::new(other)))),
            },
            other => Err(unexpected(&other)),
        }
    }
}

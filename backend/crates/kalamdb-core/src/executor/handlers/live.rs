//! `SUBSCRIBE TO <select>` / `LIVE SELECT …` over HTTP (live queries run
//! over the WebSocket: the answer says how to subscribe there) and
//! `KILL LIVE QUERY 'id'`. The live layer, plugged in at start-up, checks
//! the SELECT and who may end a subscription.

use super::{StatementHandler, StatementOptions, unexpected};
use crate::app_context::AppContext;
use crate::context::ExecutionContext;
use crate::error::{CoreError, CoreResult};
use crate::result::StatementResult;
use async_trait::async_trait;
use datafusion::arrow::array::StringArray;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use kalamdb_sql::SqlStatement;
use std::sync::Arc;

/// Where live queries are served.
pub const WS_PATH: &str = "/v1/ws";

pub struct LiveHandler;

#[async_trait]
impl StatementHandler for LiveHandler {
    async fn execute(
        &self,
        app: &AppContext,
        ctx: &mut ExecutionContext,
        statement: SqlStatement,
        _options: &StatementOptions<'_>,
    ) -> CoreResult<StatementResult> {
        let live = app.system_tables.live_queries().ok_or_else(|| {
            CoreError::NotSupported("Live queries are not served by this process".into())
        })?;
        match statement {
            SqlStatement::Subscribe { select } => {
                live.check(ctx, &select)?;
                let message = serde_json::json!({
                    "type": "subscribe",
                    "subscription": {"id": "s1", "sql": select},
                })
                .to_string();
                let schema = Arc::new(Schema::new(vec![
                    Field::new("ws_path", DataType::Utf8, false),
                    Field::new("subscribe_message", DataType::Utf8, false),
                ]));
                let batch = RecordBatch::try_new(
                    Arc::clone(&schema),
                    vec![
                        Arc::new(StringArray::from(vec![WS_PATH])),
                        Arc::new(StringArray::from(vec![message])),
                    ],
                )
                .map_err(|e| CoreError::Internal(e.to_string()))?;
                let mut result = StatementResult::rows(schema, vec![batch]);
                result.message = Some(format!(
                    "Live queries run over the WebSocket: connect to {WS_PATH}, authenticate, \
                     then send subscribe_message"
                ));
                Ok(result)
            }
            SqlStatement::KillLiveQuery { live_id } => {
                live.kill(ctx, &live_id)?;
                Ok(StatementResult::message(format!(
                    "Live query '{live_id}' ended"
                )))
            }
            other => Err(unexpected(&other)),
        }
    }
}

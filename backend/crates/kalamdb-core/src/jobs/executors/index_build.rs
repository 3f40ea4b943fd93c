//! IndexBuild (`IX`): indexes the rows a table already holds when
//! `CREATE INDEX` adds an index to it. Parameters:
//! `{"table_id": n, "index_id": n}`.
//!
//! The index is `building` from the moment it is created: every commit
//! after that maintains it (the write funnel reads a table's indexes at its
//! commit point). The job walks the table in key order, [`CHUNK`] rows at a
//! time; each chunk is read and its entries written at the commit point,
//! between two commits, so an entry is written from the row as it is then,
//! and every later change of the row maintains that entry. Writers wait for
//! one chunk at most; the table stays writable throughout. A unique index
//! is checked chunk by chunk against every entry already there; a duplicate
//! fails the job and drops the index. Then the index is `ready` and
//! queries use it. Running again after a crash rewrites the same entries.

use crate::app_context::AppContext;
use crate::error::{CoreError, CoreResult};
use crate::indexes::{index_range, indexed_values, row_entry};
use crate::jobs::executor::{JobContext, JobDecision, JobExecutor};
use crate::jobs::model::{Job, JobType};
use crate::row_reader::RowReader;
use crate::table_store::table_range;
use async_trait::async_trait;
use kalamdb_commons::{IndexDefinition, IndexState, TableId};
use kalamdb_store::backend::prefix_end;
use kalamdb_store::{Batch, Partition};
use serde_json::Value as Json;
use std::sync::Arc;

/// Rows indexed per visit of the commit point.
pub const CHUNK: usize = 2048;

pub struct IndexBuildExecutor;

fn params(params: &Json) -> CoreResult<(TableId, u32)> {
    let table = params.get("table_id").and_then(Json::as_u64);
    let index = params
        .get("index_id")
        .and_then(Json::as_u64)
        .and_then(|i| u32::try_from(i).ok());
    match (table, index) {
        (Some(table), Some(index)) => Ok((TableId(table), index)),
        _ => Err(CoreError::InvalidParameter(
            "IndexBuild: expected {\"table_id\": n, \"index_id\": n}".into(),
        )),
    }
}

/// Indexes the rows of `[from, end)` of the table, up to [`CHUNK`] of
/// them, at the commit point. Returns where the next chunk starts (`None`:
/// done) and how many rows this one indexed.
fn build_chunk(
    app: &AppContext,
    reader: &RowReader,
    index: &IndexDefinition,
    from: &[u8],
    end: &[u8],
) -> CoreResult<(Option<Vec<u8>>, usize)> {
    let def = &reader.table().definition;
    app.writes.at_commit_point(|_| {
        let mut rows: Vec<(Vec<u8>, Vec<kalamdb_commons::Value>)> = Vec::with_capacity(CHUNK);
        reader.scan_range(from, end, false, false, &mut |key, row| {
            rows.push((key.to_vec(), indexed_values(reader.table(), index, row)?));
            Ok(rows.len() < CHUNK)
        })?;
        let backend = app.table_store.backend();
        let mut batch = Batch::with_capacity(rows.len());
        let mut claimed: std::collections::HashMap<Vec<u8>, Vec<u8>> = Default::default();
        for (key, values) in &rows {
            let (entry, tail, unique) = row_entry(def, index, key, values)?;
            if let Some(len) = unique {
                let prefix = entry[..len].to_vec();
                let mut other = claimed.get(&prefix).filter(|e| **e != entry).is_some();
                if !other {
                    let end = prefix_end(&prefix).unwrap_or_else(|| vec![0xFF; len + 1]);
                    backend.scan(Partition::Index, &prefix, &end, &mut |k, _| {
                        other = k != entry.as_slice();
                        Ok(!other)
                    })?;
                }
                if other {
                    let shown: Vec<String> = index
                        .column_ids
                        .iter()
                        .filter_map(|id| def.column_position_of(*id))
                        .map(|p| crate::indexes::show_value(&values[p]))
                        .collect();
                    return Err(CoreError::UniqueViolation(format!(
                        "Cannot create unique index '{}': ({}) is held by more than one row",
                        index.name,
                        shown.join(", ")
                    )));
                }
                claimed.insert(prefix, entry.clone());
            }
            batch.put(Partition::Index, entry, tail);
        }
        if !batch.is_empty() {
            backend.write(batch)?;
        }
        let next = (rows.len() == CHUNK).then(|| {
            let mut next = rows.last().map(|(k, _)| k.clone()).unwrap_or_default();
            next.push(0);
            next
        });
        Ok((next, rows.len()))
    })
}

impl IndexBuildExecutor {
    async fn build(&self, ctx: &JobContext<AppContext>, job: &Job) -> CoreResult<Option<String>> {
        let app = &ctx.app;
        let (table_id, index_id) = params(&job.parameters)?;
        let Some(table) = app.schema_registry.table_by_id(table_id) else {
            return Ok(Some("The table was dropped: nothing to build".into()));
        };
        let Some(index) = table
            .definition
            .indexes
            .iter()
            .find(|i| i.index_id == index_id)
            .cloned()
        else {
            return Ok(Some("The index was dropped: nothing to build".into()));
        };
        if index.state == IndexState::Ready {
            return Ok(Some(format!("Index '{}' is built already", index.name)));
        }
        let reader = RowReader::all_partitions(Arc::clone(&table), app.table_store.clone());
        let (mut from, end) = table_range(table_id);
        let mut rows = 0usize;
        loop {
            if ctx.is_cancelled() {
                // a half-built index would never be used: it goes
                drop_index(app, table_id, index_id).await?;
                return Ok(None);
            }
            let built = build_chunk(app, &reader, &index, &from, &end);
            let (next, n) = match built {
                Ok(done) => done,
                Err(e @ CoreError::UniqueViolation(_)) => {
                    drop_index(app, table_id, index_id).await?;
                    return Err(e);
                }
                Err(e) => return Err(e),
            };
            rows += n;
            match next {
                Some(next) => from = next,
                None => break,
            }
            tokio::task::yield_now().await;
        }
        mark_ready(app, table_id, index_id).await?;
        Ok(Some(format!(
            "Index '{}' built over {rows} row(s)",
            index.name
        )))
    }
}

/// Marks the index built, so queries read it.
async fn mark_ready(app: &AppContext, table: TableId, index_id: u32) -> CoreResult<()> {
    let _ddl = app.ddl_lock.lock().await;
    let Some(current) = app.schema_registry.table_by_id(table) else {
        return Ok(());
    };
    let mut def = current.definition.clone();
    let Some(index) = def.indexes.iter_mut().find(|i| i.index_id == index_id) else {
        return Ok(());
    };
    index.state = IndexState::Ready;
    let mut batch = Batch::new();
    app.meta.put_table(&mut batch, &def)?;
    app.schema_registry.commit_table(batch, def)?;
    Ok(())
}

/// Removes an index from its table and deletes its entries (at the commit
/// point, after no commit maintains it any more).
pub async fn drop_index(app: &AppContext, table: TableId, index_id: u32) -> CoreResult<()> {
    {
        let _ddl = app.ddl_lock.lock().await;
        let Some(current) = app.schema_registry.table_by_id(table) else {
            return Ok(());
        };
        let mut def = current.definition.clone();
        def.indexes.retain(|i| i.index_id != index_id);
        let mut batch = Batch::new();
        app.meta.put_table(&mut batch, &def)?;
        app.schema_registry.commit_table(batch, def)?;
    }
    delete_entries(app, table, index_id)
}

/// Deletes every entry of an index no commit maintains any more.
pub fn delete_entries(app: &AppContext, table: TableId, index_id: u32) -> CoreResult<()> {
    let (start, end) = index_range(table, index_id);
    app.writes.at_commit_point(|_| {
        let mut batch = Batch::new();
        batch.delete_range(Partition::Index, start.clone(), end.clone());
        app.table_store.write(batch)
    })?;
    app.table_store
        .backend()
        .compact_range(Partition::Index, &start, &end)?;
    Ok(())
}

#[async_trait]
impl JobExecutor<AppContext> for IndexBuildExecutor {
    fn job_type(&self) -> JobType {
        JobType::IndexBuild
    }

    fn name(&self) -> &'static str {
        "IndexBuild"
    }

    fn validate_params(&self, params: &Json) -> CoreResult<()> {
        self::params(params).map(drop)
    }

    async fn execute(&self, ctx: &JobContext<AppContext>, job: &Job) -> JobDecision {
        JobDecision::of_run(self.name(), self.build(ctx, job).await)
    }

    /// Writing the same entries again is harmless.
    fn safe_to_resume(&self) -> bool {
        true
    }
}

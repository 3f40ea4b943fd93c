//! Compact (`CO`): merges a partition's small segments into few large ones
//! (`STORAGE COMPACT TABLE t`, `STORAGE COMPACT ALL [IN ns]`, and every
//! `jobs.compaction_interval_secs`). Parameters: `{"table_id": n}`, or
//! none (every table with a cold tier).
//!
//! The inputs of a partition are its small segments (under
//! [`SMALL_ROWS`] rows) and those holding tombstones the table's resume
//! horizon has passed. They are merged in key order exactly as a query
//! merges them — of a key's versions the highest `_seq` wins — and the
//! winners are written, converted to the table's current schema, into new
//! segments of at most [`SEGMENT_ROWS`] rows. On the way:
//! - a version whose key's newest cold version lies in a segment outside
//!   the inputs (the cold index says where) is superseded: dropped;
//! - a tombstone under the resume horizon ([`super::retention`] moves it)
//!   is dropped with its cold index entry, unless a segment outside the
//!   inputs may hold an older version of its key (the tombstone still
//!   hides that one).
//!
//! One batch at the write funnel's commit point then swaps the manifest
//! (inputs out, outputs in) and repoints the cold index of every key kept —
//! only if the manifest is still the one the compaction read. Rows read the
//! same before and after. The inputs' files are deleted once no query reads
//! them any more ([`crate::cold::ColdTier::reap`]); a crash before the
//! commit leaves unreferenced outputs, swept at the next start. A flush and
//! a compaction of one table never interleave (the table's maintenance
//! lock).

use super::flush::{CHUNK, SEGMENT_ROWS, export_manifest, segment_columns, segment_dir};
use crate::app_context::AppContext;
use crate::cold::{cold_index_key, encode_cold_row, manifest_key, partitions_of};
use crate::error::{CoreError, CoreResult};
use crate::jobs::executor::{JobContext, JobDecision, JobExecutor};
use crate::jobs::model::{Job, JobType};
use crate::rows::arrow_builder::{BatchBuilder, OutputColumn};
use crate::schema::CachedTable;
use crate::table_store::partition_end;
use async_trait::async_trait;
use kalamdb_commons::{TableId, TableType};
use kalamdb_filestore::{Manifest, SegmentCursor, SegmentMeta, SegmentWriter};
use kalamdb_store::row::{RowView, encode_cold_stub};
use kalamdb_store::{Batch, Partition};
use serde_json::Value as Json;
use std::collections::HashSet;
use std::sync::Arc;

/// A segment with fewer rows than this is merged with the partition's
/// other small ones.
pub const SMALL_ROWS: u64 = SEGMENT_ROWS / 2;
/// Rows one compaction commit reads at most (its inputs are taken oldest
/// first up to this; the rest wait for the next run).
pub const MAX_INPUT_ROWS: u64 = 4 * SEGMENT_ROWS;

#[derive(Default)]
pub struct CompactExecutor {
    /// Where a test holds a compaction between writing its segments and
    /// its commit.
    #[cfg(test)]
    pub pause: Option<Arc<super::flush::FlushPause>>,
}

fn params(params: &Json) -> CoreResult<Option<TableId>> {
    match params.get("table_id") {
        None => Ok(None),
        Some(id) => id.as_u64().map(|id| Some(TableId(id))).ok_or_else(|| {
            CoreError::InvalidParameter(
                "Compact: expected {\"table_id\": n} or no parameters".into(),
            )
        }),
    }
}

/// Why `table` cannot be compacted, if it cannot.
pub fn refusal(table: &CachedTable) -> Option<String> {
    let def = &table.definition;
    match def.table_type {
        TableType::Stream => Some(format!(
            "STREAM table '{}' has no cold tier to compact",
            def.table_ref()
        )),
        TableType::System => Some(format!(
            "System table '{}' cannot be compacted",
            def.table_ref()
        )),
        _ => None,
    }
}

/// Whether segment `s` holds tombstones a compaction can drop now.
fn has_due_tombstones(s: &SegmentMeta, horizon: i64) -> bool {
    s.deleted > 0 && s.min_seq < horizon && s.purged_below < horizon
}

/// Whether any segment of `manifest` holds tombstones a compaction can
/// drop under `horizon`.
pub fn tombstones_due(manifest: &Manifest, horizon: i64) -> bool {
    manifest
        .segments
        .iter()
        .any(|s| has_due_tombstones(s, horizon))
}

/// The segments of `manifest` one compaction merges, oldest first, if it
/// has anything to do: two small segments or more, or tombstones due.
pub fn inputs(manifest: &Manifest, horizon: i64) -> Option<Vec<SegmentMeta>> {
    let mut picked = Vec::new();
    let mut rows = 0;
    for s in &manifest.segments {
        if s.rows >= SMALL_ROWS && !has_due_tombstones(s, horizon) {
            continue;
        }
        if !picked.is_empty() && rows + s.rows > MAX_INPUT_ROWS {
            break;
        }
        rows += s.rows;
        picked.push(s.clone());
    }
    let worth = picked.len() >= 2 || picked.iter().any(|s| has_due_tombstones(s, horizon));
    worth.then_some(picked)
}

/// What one compaction did.
#[derive(Default)]
struct Compacted {
    partitions: u64,
    inputs: u64,
    outputs: u64,
    rows_in: u64,
    rows_out: u64,
    superseded: u64,
    tombstones: u64,
}

impl CompactExecutor {
    async fn run(&self, ctx: &JobContext<AppContext>, job: &Job) -> CoreResult<Option<String>> {
        let app = &ctx.app;
        let tables = match params(&job.parameters)? {
            Some(id) => vec![app.schema_registry.table_by_id(id).ok_or_else(|| {
                CoreError::NotFound(format!("Compact: table {} no longer exists", id.0))
            })?],
            None => app
                .schema_registry
                .tables(None)
                .into_iter()
                .filter(|t| refusal(t).is_none())
                .collect(),
        };
        let mut done = Compacted::default();
        for table in &tables {
            if let Some(why) = refusal(table) {
                return Err(CoreError::NotSupported(why));
            }
            let id = table.definition.table_id;
            let backend = app.table_store.backend();
            if !app.table_store.cold().has_cold(backend.as_ref(), id.0)? {
                continue;
            }
            let lock = app.table_store.cold().maintenance_lock(id.0);
            let _maintenance = lock.lock().await;
            let horizon = app.meta.resume_horizon(id)?;
            for prefix in partitions_of(backend.as_ref(), id.0)? {
                if ctx.is_cancelled() {
                    return Ok(None);
                }
                // a partition may take several commits (MAX_INPUT_ROWS each)
                while compact_partition(self, app, table, &prefix, horizon, &mut done).await? {
                    if ctx.is_cancelled() {
                        return Ok(None);
                    }
                }
            }
        }
        app.table_store.cold().reap().await;
        let what = match tables.as_slice() {
            [one] => one.definition.table_ref().to_string(),
            all => format!("{} table(s)", all.len()),
        };
        Ok(Some(format!(
            "Compacted {what}: {} segment(s) of {} partition(s) into {}; {} row(s) read, {} written ({} superseded version(s) and {} tombstone(s) dropped)",
            done.inputs,
            done.partitions,
            done.outputs,
            done.rows_in,
            done.rows_out,
            done.superseded,
            done.tombstones,
        )))
    }
}

/// One merged row: the winning version of its key.
struct Winner {
    key: Vec<u8>,
    seq: i64,
    deleted: bool,
    /// The row in the stored row format.
    row: Vec<u8>,
}

/// Up to `limit` winners of the merge of `cursors` (each with its
/// segment's schema version), in key order.
fn next_winners(
    cursors: &mut [(SegmentCursor, u32)],
    limit: usize,
    rows_in: &mut u64,
) -> CoreResult<Vec<Winner>> {
    let mut out = Vec::new();
    while out.len() < limit {
        let mut best: Option<usize> = None;
        for i in 0..cursors.len() {
            if !cursors[i].0.fill()? {
                continue;
            }
            best = match best {
                None => Some(i),
                Some(b) => {
                    let (c, w) = (&cursors[i].0, &cursors[b].0);
                    let better = c.key() < w.key() || (c.key() == w.key() && c.seq() > w.seq());
                    Some(if better { i } else { b })
                }
            };
        }
        let Some(b) = best else {
            break;
        };
        let (cursor, version) = &cursors[b];
        let (batch, at) = cursor.row();
        let winner = Winner {
            key: cursor.key().to_vec(),
            seq: cursor.seq(),
            deleted: cursor.deleted(),
            row: encode_cold_row(cursor.file(), batch, at, *version)?,
        };
        for (cursor, _) in cursors.iter_mut() {
            if cursor.fill()? && cursor.key() == winner.key.as_slice() {
                cursor.advance();
                *rows_in += 1;
            }
        }
        out.push(winner);
    }
    Ok(out)
}

/// Compacts one partition once; false when it had nothing to do (or lost
/// its manifest to a concurrent purge meanwhile).
async fn compact_partition(
    #[allow(unused_variables)] executor: &CompactExecutor,
    app: &AppContext,
    table: &Arc<CachedTable>,
    prefix: &[u8],
    horizon: i64,
    done: &mut Compacted,
) -> CoreResult<bool> {
    let def = &table.definition;
    let cold = app.table_store.cold();
    let backend = app.table_store.backend();
    let read_manifest = || -> CoreResult<Option<Manifest>> {
        backend
            .get(Partition::Index, &manifest_key(prefix))?
            .map(|bytes| Manifest::decode(&bytes).map_err(CoreError::from))
            .transpose()
    };
    let Some(manifest) = read_manifest()? else {
        return Ok(false);
    };
    let Some(inputs) = inputs(&manifest, horizon) else {
        return Ok(false);
    };
    let input_ids: HashSet<u64> = inputs.iter().map(|s| s.id).collect();
    // the segments left as they are, which may hold older versions of an
    // input's keys
    let others: Vec<&SegmentMeta> = manifest
        .segments
        .iter()
        .filter(|s| !input_ids.contains(&s.id))
        .collect();
    let end = partition_end(prefix);
    let mut cursors = Vec::with_capacity(inputs.len());
    for meta in &inputs {
        let file = cold.file(meta)?;
        cursors.push((file.cursor(prefix, &end, false), meta.schema_version));
    }

    let storage_id = &def.options.storage_id;
    let storage = cold.storage(storage_id)?;
    let layout = cold
        .storages()
        .definition(storage_id)
        .ok_or_else(|| CoreError::NotFound(format!("Storage '{storage_id}' does not exist")))?;
    let dir = segment_dir(&layout, table, prefix)?;
    let columns = segment_columns(table);
    let mut outputs: Vec<SegmentMeta> = Vec::new();
    let mut writer: Option<SegmentWriter> = None;
    let mut stubs = Batch::new();
    let mut partial = Compacted::default();
    let written = async {
        loop {
            let winners = next_winners(&mut cursors, CHUNK, &mut partial.rows_in)?;
            if winners.is_empty() {
                break;
            }
            // where each key's newest cold version is
            let stub_keys: Vec<Vec<u8>> = winners.iter().map(|w| cold_index_key(&w.key)).collect();
            let mut newest: Vec<Option<u64>> = vec![None; winners.len()];
            backend.get_many_with(Partition::Index, &stub_keys, &mut |i, bytes| {
                if let Some(bytes) = bytes {
                    newest[i] = RowView::decode(bytes)?.cold().map(|(segment, _)| segment);
                }
                Ok(())
            })?;
            let mut builder = BatchBuilder::new(
                Arc::clone(&table.schema),
                def.columns.iter().map(OutputColumn::declared).collect(),
                winners.len(),
            )?
            .with_missing(table.backfill.clone());
            let (mut keys, mut seqs, mut deleted) = (Vec::new(), Vec::new(), Vec::new());
            for (w, (newest, stub_key)) in
                winners.into_iter().zip(newest.into_iter().zip(stub_keys))
            {
                if newest.is_some_and(|s| !input_ids.contains(&s)) {
                    continue; // a newer version is in a segment kept
                }
                if w.deleted
                    && w.seq < horizon
                    && !others.iter().any(|s| {
                        s.min_seq < w.seq
                            && s.min_key.as_slice() <= w.key.as_slice()
                            && w.key.as_slice() <= s.max_key.as_slice()
                    })
                {
                    partial.tombstones += 1;
                    stubs.delete(Partition::Index, stub_key);
                    continue;
                }
                if writer.as_ref().is_none_or(|w| w.rows() >= SEGMENT_ROWS) {
                    if let Some(full) = writer.take() {
                        outputs.push(full.finish().await?);
                    }
                    let id = app.snowflake.next_id() as u64;
                    writer = Some(SegmentWriter::create(
                        &storage,
                        format!("{dir}/seg-{id}.parquet"),
                        id,
                        def.schema_version,
                        &columns,
                        kalamdb_commons::now_ms(),
                    )?);
                }
                let writer = writer.as_mut().expect("just created");
                // the chunk's rows pending for this segment are written
                // before it fills
                let ordinal = writer.rows() + keys.len() as u64;
                let segment_id = writer.id();
                stubs.put(
                    Partition::Index,
                    stub_key,
                    encode_cold_stub(def.schema_version, w.seq, w.deleted, segment_id, ordinal),
                );
                builder.push(&RowView::decode(&w.row)?)?;
                keys.push(w.key);
                seqs.push(w.seq);
                deleted.push(w.deleted);
                if writer.rows() + keys.len() as u64 == SEGMENT_ROWS {
                    let mut batch = std::mem::replace(
                        &mut builder,
                        BatchBuilder::new(
                            Arc::clone(&table.schema),
                            def.columns.iter().map(OutputColumn::declared).collect(),
                            CHUNK,
                        )?
                        .with_missing(table.backfill.clone()),
                    );
                    writer
                        .write(
                            &std::mem::take(&mut keys),
                            &std::mem::take(&mut seqs),
                            &std::mem::take(&mut deleted),
                            batch.finish()?.columns().to_vec(),
                        )
                        .await?;
                }
            }
            if !keys.is_empty() {
                let writer = writer.as_mut().expect("a row was placed in a segment");
                writer
                    .write(&keys, &seqs, &deleted, builder.finish()?.columns().to_vec())
                    .await?;
            }
        }
        if let Some(last) = writer.take() {
            outputs.push(last.finish().await?);
        }
        Ok::<_, CoreError>(())
    }
    .await;
    drop(cursors);
    if let Err(e) = written {
        discard(&storage, outputs).await;
        return Err(e);
    }
    #[cfg(test)]
    if let Some(pause) = &executor.pause {
        pause.uploaded.notify_one();
        pause.resume.notified().await;
    }
    for meta in &mut outputs {
        meta.purged_below = horizon;
    }
    let mut next = manifest.clone();
    next.generation += 1;
    next.segments.retain(|s| !input_ids.contains(&s.id));
    next.segments.extend(outputs.iter().cloned());
    let next = Arc::new(next);
    stubs.put(Partition::Index, manifest_key(prefix), next.encode());
    let committed = app.writes.commit_cold(
        stubs,
        || Ok(read_manifest()?.is_some_and(|m| m.generation == manifest.generation)),
        || cold.install(prefix, Arc::clone(&next)),
    )?;
    if !committed {
        discard(&storage, outputs).await;
        return Ok(false);
    }
    export_manifest(&storage, &dir, &next).await;
    cold.retire(inputs.iter().cloned());
    done.partitions += 1;
    done.inputs += inputs.len() as u64;
    done.outputs += outputs.len() as u64;
    done.rows_in += partial.rows_in;
    let rows_out: u64 = outputs.iter().map(|s| s.rows).sum();
    done.rows_out += rows_out;
    done.superseded += partial.rows_in - rows_out - partial.tombstones;
    done.tombstones += partial.tombstones;
    metrics::counter!("kalamdb_compactions_total").increment(1);
    Ok(true)
}

/// Removes the segments of a compaction that did not commit.
async fn discard(storage: &kalamdb_filestore::Storage, outputs: Vec<SegmentMeta>) {
    for meta in outputs {
        if let Err(e) = storage.delete(&meta.path).await {
            tracing::warn!(
                "cold tier: cannot remove '{}' (swept at the next start): {e}",
                meta.path
            );
        }
    }
}

/// Creates the Compact job of `table`; one already active is an
/// `IdempotentConflict` naming it.
pub fn create_compact_job(app: &AppContext, table: &CachedTable) -> CoreResult<String> {
    super::create_table_job(app, JobType::Compact, "compact", table)
}

#[async_trait]
impl JobExecutor<AppContext> for CompactExecutor {
    fn job_type(&self) -> JobType {
        JobType::Compact
    }

    fn name(&self) -> &'static str {
        "Compact"
    }

    fn validate_params(&self, params: &Json) -> CoreResult<()> {
        self::params(params).map(drop)
    }

    async fn execute(&self, ctx: &JobContext<AppContext>, job: &Job) -> JobDecision {
        let outcome = self.run(ctx, job).await;
        JobDecision::of_run(self.name(), outcome)
    }

    /// A compaction begun again starts from the committed manifest.
    fn safe_to_resume(&self) -> bool {
        true
    }
}

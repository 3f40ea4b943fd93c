//! Flush (`FL`): moves a table's hot rows into Parquet segments on its
//! storage, one partition at a time (each user of a USER table, or the
//! SHARED table). Parameters: `{"table_id": n}`.
//!
//! A partition's hot rows are read in key order, [`CHUNK`] at a time, and
//! streamed into a segment (one row per key: the hot row is the newest
//! version; tombstones included, they hide older cold versions) of at most
//! [`SEGMENT_ROWS`] rows. Then, at the write funnel's commit point, one
//! batch adds the segment to the partition's manifest, points the cold
//! index at each row's place in it, and removes each copied hot row whose
//! `_seq` is still the one copied — a row updated during the upload stays
//! hot, newer than its copy. A crash before that commit leaves an
//! unreferenced file and every row hot; after it, the new state. Running
//! the job again flushes what is hot then.
//!
//! Tables keyed by `_seq` (no PRIMARY KEY) flush too: an UPDATE moves
//! such a row to a new key and leaves a tombstone at the old one, which
//! hides its cold copy.

use crate::app_context::AppContext;
use crate::cold::{cold_index_key, manifest_key};
use crate::error::{CoreError, CoreResult};
use crate::jobs::executor::{JobContext, JobDecision, JobExecutor};
use crate::jobs::model::{Job, JobType};
use crate::rows::arrow_builder::{BatchBuilder, OutputColumn};
use crate::schema::CachedTable;
use crate::table_store::{partition_end, table_range};
use async_trait::async_trait;
use kalamdb_commons::{TableId, TableType};
use kalamdb_filestore::{MANIFEST_FILE, Manifest, SegmentColumn, SegmentWriter, Storage};
use kalamdb_store::row::{RowView, encode_cold_stub};
use kalamdb_store::{Batch, Partition};
use serde_json::Value as Json;
use std::sync::Arc;

/// Hot rows read per step.
pub const CHUNK: usize = 8192;
/// Rows per segment at most (and so per flush commit).
pub const SEGMENT_ROWS: u64 = 128 * 1024;

#[derive(Default)]
pub struct FlushExecutor {
    /// Where a test holds a flush between its upload and its commit.
    #[cfg(test)]
    pub pause: Option<Arc<FlushPause>>,
}

/// A test's hold on a flush: `uploaded` is signalled once a segment is
/// written, and the flush commits it after `resume`.
#[cfg(test)]
#[derive(Default)]
pub struct FlushPause {
    pub uploaded: tokio::sync::Notify,
    pub resume: tokio::sync::Notify,
}

fn params(params: &Json) -> CoreResult<TableId> {
    params
        .get("table_id")
        .and_then(Json::as_u64)
        .map(TableId)
        .ok_or_else(|| CoreError::InvalidParameter("Flush: expected {\"table_id\": n}".into()))
}

/// Why `table` cannot be flushed, if it cannot.
pub fn refusal(table: &CachedTable) -> Option<String> {
    let def = &table.definition;
    match def.table_type {
        TableType::Stream => Some(format!(
            "STREAM table '{}' cannot be flushed: its rows live in memory only and expire after TTL_SECONDS",
            def.table_ref()
        )),
        TableType::System => Some(format!(
            "System table '{}' cannot be flushed",
            def.table_ref()
        )),
        _ => None,
    }
}

/// What one flush did.
#[derive(Default)]
struct Flushed {
    rows: u64,
    moved: u64,
    segments: u64,
    bytes: u64,
    partitions: u64,
}

/// The partitions of `table` that hold hot rows: their key prefixes.
fn hot_partitions(app: &AppContext, table: &CachedTable) -> CoreResult<Vec<Vec<u8>>> {
    let (start, end) = table_range(table.definition.table_id);
    if table.definition.table_type != TableType::User {
        return Ok(vec![start]);
    }
    let backend = app.table_store.backend();
    let mut partitions = Vec::new();
    let mut from = start;
    loop {
        let mut found = None;
        backend.scan(Partition::Data, &from, &end, &mut |key, _| {
            found = Some(key.to_vec());
            Ok(false)
        })?;
        let Some(key) = found else {
            return Ok(partitions);
        };
        let (_, used) = kalamdb_store::keys::decode_str(&key[8..])
            .ok_or_else(|| CoreError::Internal("a USER table row key without a user".into()))?;
        let prefix = key[..8 + used].to_vec();
        from = partition_end(&prefix);
        partitions.push(prefix);
    }
}

/// The directory of the partition's segments on the table's storage: the
/// storage's path template for the table (and the partition's user).
pub(crate) fn segment_dir(
    storage: &kalamdb_commons::StorageDefinition,
    table: &CachedTable,
    prefix: &[u8],
) -> CoreResult<String> {
    let def = &table.definition;
    let user = match def.table_type {
        TableType::User => Some(
            kalamdb_store::keys::decode_str(&prefix[8..])
                .ok_or_else(|| CoreError::Internal("a USER partition without a user".into()))?
                .0,
        ),
        _ => None,
    };
    Ok(storage.segment_dir(def.namespace.as_str(), &def.name, user.as_deref()))
}

impl FlushExecutor {
    async fn run(&self, ctx: &JobContext<AppContext>, job: &Job) -> CoreResult<Option<String>> {
        let app = &ctx.app;
        let table_id = params(&job.parameters)?;
        let table = app.schema_registry.table_by_id(table_id).ok_or_else(|| {
            CoreError::NotFound(format!("Flush: table {} no longer exists", table_id.0))
        })?;
        if let Some(why) = refusal(&table) {
            return Err(CoreError::NotSupported(why));
        }
        app.table_store.cold().expect(table_id.0);
        // no compaction of the table rewrites its cold index meanwhile
        let lock = app.table_store.cold().maintenance_lock(table_id.0);
        let _maintenance = lock.lock().await;
        let mut done = Flushed::default();
        for prefix in hot_partitions(app, &table)? {
            if ctx.is_cancelled() {
                return Ok(None);
            }
            flush_partition(self, app, &table, &prefix, &mut done).await?;
            done.partitions += 1;
        }
        Ok(Some(format!(
            "Flushed {} row(s) of {} from {} partition(s) into {} segment(s), {} bytes; {} hot row(s) removed ({} changed during the flush and stay hot)",
            done.rows,
            table.definition.table_ref(),
            done.partitions,
            done.segments,
            done.bytes,
            done.moved,
            done.rows - done.moved,
        )))
    }
}

/// One chunk of hot rows, in key order.
struct Chunk {
    keys: Vec<Vec<u8>>,
    seqs: Vec<i64>,
    deleted: Vec<bool>,
    columns: Vec<datafusion::arrow::array::ArrayRef>,
}

fn read_chunk(
    app: &AppContext,
    table: &CachedTable,
    from: &[u8],
    end: &[u8],
    limit: usize,
) -> CoreResult<Chunk> {
    let def = &table.definition;
    let columns = def.columns.iter().map(OutputColumn::declared).collect();
    let mut builder = BatchBuilder::new(Arc::clone(&table.schema), columns, limit)?
        .with_missing(table.backfill.clone());
    let mut chunk = Chunk {
        keys: Vec::new(),
        seqs: Vec::new(),
        deleted: Vec::new(),
        columns: Vec::new(),
    };
    // the hot tier only: what is already cold stays where it is
    app.table_store
        .scan_between(from, end, false, &mut |key, bytes| {
            let row = RowView::decode(bytes)?;
            builder.push(&row)?;
            chunk.keys.push(key.to_vec());
            chunk.seqs.push(row.seq);
            chunk.deleted.push(row.deleted);
            Ok(chunk.keys.len() < limit)
        })?;
    chunk.columns = builder.finish()?.columns().to_vec();
    Ok(chunk)
}

/// The columns of a segment written now for `table`: its current schema.
pub(crate) fn segment_columns(table: &CachedTable) -> Vec<SegmentColumn> {
    table
        .definition
        .columns
        .iter()
        .zip(table.schema.fields())
        .map(|(c, f)| SegmentColumn {
            id: c.column_id,
            name: c.name.clone(),
            data_type: f.data_type().clone(),
        })
        .collect()
}

async fn flush_partition(
    #[allow(unused_variables)] executor: &FlushExecutor,
    app: &AppContext,
    table: &Arc<CachedTable>,
    prefix: &[u8],
    done: &mut Flushed,
) -> CoreResult<()> {
    let def = &table.definition;
    let cold = app.table_store.cold();
    let storage_id = &def.options.storage_id;
    let storage = cold.storage(storage_id)?;
    let layout = cold
        .storages()
        .definition(storage_id)
        .ok_or_else(|| CoreError::NotFound(format!("Storage '{storage_id}' does not exist")))?;
    let segment_columns = segment_columns(table);
    let dir = segment_dir(&layout, table, prefix)?;
    let end = partition_end(prefix);
    let mut from = prefix.to_vec();
    let mut moved_here = 0u64;
    loop {
        // one segment
        let id = app.snowflake.next_id() as u64;
        let mut writer = None;
        let mut flushed: Vec<(Vec<u8>, i64)> = Vec::new();
        let mut stubs = Batch::new();
        let mut exhausted = false;
        while (flushed.len() as u64) < SEGMENT_ROWS {
            let want = CHUNK.min((SEGMENT_ROWS - flushed.len() as u64) as usize);
            let chunk = read_chunk(app, table, &from, &end, want)?;
            if chunk.keys.len() < want {
                exhausted = true;
            }
            let Some(last) = chunk.keys.last() else {
                break;
            };
            from = last.clone();
            from.push(0);
            let writer = match &mut writer {
                Some(w) => w,
                None => writer.insert(SegmentWriter::create(
                    &storage,
                    format!("{dir}/seg-{id}.parquet"),
                    id,
                    def.schema_version,
                    &segment_columns,
                    kalamdb_commons::now_ms(),
                )?),
            };
            writer
                .write(&chunk.keys, &chunk.seqs, &chunk.deleted, chunk.columns)
                .await?;
            for ((key, seq), deleted) in chunk.keys.into_iter().zip(chunk.seqs).zip(chunk.deleted) {
                let ordinal = flushed.len() as u64;
                stubs.put(
                    Partition::Index,
                    cold_index_key(&key),
                    encode_cold_stub(def.schema_version, seq, deleted, id, ordinal),
                );
                flushed.push((key, seq));
            }
            if exhausted {
                break;
            }
        }
        let Some(writer) = writer else {
            return drop_tombstones(app, prefix, &end, moved_here).await;
        };
        let meta = writer.finish().await?;
        #[cfg(test)]
        if let Some(pause) = &executor.pause {
            pause.uploaded.notify_one();
            pause.resume.notified().await;
        }
        let manifest = Arc::new(
            cold.manifest(app.table_store.backend().as_ref(), prefix)?
                .with(meta.clone()),
        );
        let mut extra = stubs;
        extra.put(Partition::Index, manifest_key(prefix), manifest.encode());
        let moved = app.writes.move_to_cold(&flushed, extra, || {
            cold.install(prefix, Arc::clone(&manifest));
        })?;
        export_manifest(&storage, &dir, &manifest).await;
        done.rows += meta.rows;
        done.moved += moved as u64;
        moved_here += moved as u64;
        done.segments += 1;
        done.bytes += meta.bytes;
        metrics::counter!("kalamdb_flushed_rows_total").increment(meta.rows);
        metrics::counter!("kalamdb_flushed_bytes_total").increment(meta.bytes);
        if exhausted {
            return drop_tombstones(app, prefix, &end, moved_here).await;
        }
    }
}

/// Hot rows a flush of one partition removes from which on it compacts the
/// partition's key range in RocksDB.
const COMPACT_AFTER: u64 = 10_000;

/// Compacts the partition `[prefix, end)` in RocksDB once a flush removed
/// `moved` of its hot rows, if that is many: the removals are tombstones
/// there until a compaction drops them, and every read that seeks into the
/// partition's hot rows — each scan looking for where its cold stretches
/// end — would step over all of them.
async fn drop_tombstones(
    app: &AppContext,
    prefix: &[u8],
    end: &[u8],
    moved: u64,
) -> CoreResult<()> {
    if moved < COMPACT_AFTER {
        return Ok(());
    }
    let backend = Arc::clone(app.table_store.backend());
    let (start, end) = (prefix.to_vec(), end.to_vec());
    tokio::task::spawn_blocking(move || backend.compact_range(Partition::Data, &start, &end))
        .await
        .map_err(|e| CoreError::Internal(format!("compacting after a flush: {e}")))??;
    Ok(())
}

/// Writes the exported copy of a committed manifest next to its segments.
/// The flush has committed by then (RocksDB's copy is the authority), so a
/// storage refusing the write is logged, not a failure: the next change of
/// the partition writes the copy again.
pub(crate) async fn export_manifest(storage: &Storage, dir: &str, manifest: &Manifest) {
    let path = format!("{dir}/{MANIFEST_FILE}");
    if let Err(e) = storage.put(&path, manifest.encode()).await {
        tracing::warn!(
            "cold tier: could not export the manifest to '{path}' on storage '{}': {e}",
            storage.id()
        );
    }
}

/// Creates the Flush job of `table`; one already active is an
/// `IdempotentConflict` naming it (two flushes of a table never run at
/// once).
pub fn create_flush_job(app: &AppContext, table: &CachedTable) -> CoreResult<String> {
    super::create_table_job(app, JobType::Flush, "flush", table)
}

/// How often [`run_policies`] looks at the tables' FLUSH_POLICYs.
pub const POLICY_TICK_MS: u64 = 1000;

/// The tables' `FLUSH_POLICY`s: `rows:N` starts a flush once N rows were
/// committed to the table since its last policy flush, `interval:S` once S
/// seconds passed since then and anything was committed. The row counts
/// are kept in memory (`WriteFunnel::written`): after a restart they start
/// from zero, and the interval catches up.
#[derive(Default)]
pub struct FlushPolicies {
    /// When each table's interval started (its last policy flush, or when
    /// it was first seen).
    since: dashmap::DashMap<u64, i64>,
}

impl FlushPolicies {
    /// Starts the flushes the policies call for at `now_ms`; returns their
    /// job ids. A table whose flush is still running is left for the next
    /// tick.
    pub fn tick(&self, app: &AppContext, now_ms: i64) -> Vec<String> {
        let mut started = Vec::new();
        for table in app.schema_registry.tables(None) {
            let def = &table.definition;
            let Some(policy) = def.options.flush_policy else {
                continue;
            };
            if refusal(&table).is_some() {
                continue;
            }
            let id = def.table_id.0;
            let since = *self.since.entry(id).or_insert(now_ms);
            let written = app.writes.written(id);
            let by_rows = policy.rows.is_some_and(|n| written >= n);
            let by_time = policy.interval_seconds.is_some_and(|secs| {
                written > 0 && now_ms.saturating_sub(since) >= (secs as i64).saturating_mul(1000)
            });
            if !(by_rows || by_time) {
                continue;
            }
            match create_flush_job(app, &table) {
                Ok(job) => {
                    app.writes.take_written(id, written);
                    self.since.insert(id, now_ms);
                    started.push(job);
                }
                Err(CoreError::IdempotentConflict(_)) => {}
                Err(e) => tracing::warn!("flush policy of {}: {e}", def.table_ref()),
            }
        }
        started
    }
}

/// Applies the FLUSH_POLICYs every [`POLICY_TICK_MS`] until `shutdown`, and
/// deletes replaced segments nothing reads any more.
pub async fn run_policies(app: Arc<AppContext>, shutdown: tokio::sync::watch::Receiver<bool>) {
    let mut shutdown = shutdown;
    let policies = FlushPolicies::default();
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(POLICY_TICK_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        policies.tick(&app, kalamdb_commons::now_ms());
        // segments a compaction replaced go once their last reader is done
        app.table_store.cold().reap().await;
    }
}

#[async_trait]
impl JobExecutor<AppContext> for FlushExecutor {
    fn job_type(&self) -> JobType {
        JobType::Flush
    }

    fn name(&self) -> &'static str {
        "Flush"
    }

    fn validate_params(&self, params: &Json) -> CoreResult<()> {
        self::params(params).map(drop)
    }

    async fn execute(&self, ctx: &JobContext<AppContext>, job: &Job) -> JobDecision {
        let outcome = self.run(ctx, job).await;
        let label = if outcome.is_ok() { "ok" } else { "error" };
        metrics::counter!("kalamdb_flushes_total", "outcome" => label).increment(1);
        JobDecision::of_run(self.name(), outcome)
    }

    /// A flush begun again copies what is hot then.
    fn safe_to_resume(&self) -> bool {
        true
    }
}

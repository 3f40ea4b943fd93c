//! Streams a table partition out of its [`RowReader`] as Arrow batches: at
//! most `batch_size` rows in memory at a time, re-seeking after the last key
//! for the next batch, so memory does not grow with the table.
//!
//! [`RowScanExec`] is the scan's node in a DataFusion plan. It tells the
//! planner its rows come in primary-key order, answers a sort on the key in
//! either direction by iterating forward or backward (so `ORDER BY pk DESC
//! LIMIT n` reads n rows and no sort runs), takes a LIMIT, and shows in
//! `EXPLAIN` which read it does: point, points, range or full.

use super::key_range::{KeyRead, KeySet};
use super::segment_scan::SegmentRun;
use crate::error::CoreError;
use crate::row_reader::{RowReader, Stretch};
use crate::rows::{BatchBuilder, OutputColumn};
use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::config::ConfigOptions;
use datafusion::common::internal_err;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{
    AcrossPartitions, ConstExpr, EquivalenceProperties, LexOrdering, PhysicalExpr, PhysicalSortExpr,
};
use datafusion::physical_plan::coop::make_cooperative;
use datafusion::physical_plan::execution_plan::{
    Boundedness, ChildrenPropertiesMode, EmissionType, ReplaceChildrenOptions, SchedulingType,
};
use datafusion::physical_plan::metrics::{
    BaselineMetrics, Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    SortOrderPushdownResult,
};
use kalamdb_commons::IndexDefinition;
use kalamdb_store::backend::prefix_end;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub enum ScanTarget {
    /// Every row under the prefix.
    Partition,
    /// These rows' keys, in key order (primary-key equalities or IN).
    Keys(Vec<Vec<u8>>),
    /// The rows with keys in these `[start, end)` ranges, ascending and
    /// disjoint (a primary-key range; under each combination of pinned
    /// leading columns for a key of several columns).
    Ranges(Vec<(Vec<u8>, Vec<u8>)>),
    /// The rows the entries of a secondary index in these `[start, end)`
    /// ranges of the `index` partition point to, in entry order (the
    /// indexed values, then the primary key).
    Index {
        index: IndexDefinition,
        ranges: Vec<(Vec<u8>, Vec<u8>)>,
    },
}

impl ScanTarget {
    /// What reading `keys` (in the key encoding, without the partition
    /// prefix) of `reader`'s partition reads; no key reads nothing.
    pub fn of(keys: KeyRead, reader: &RowReader) -> Self {
        match keys {
            KeyRead::All => ScanTarget::Partition,
            KeyRead::Points(points) => {
                ScanTarget::Keys(points.iter().map(|k| reader.key_with(k)).collect())
            }
            KeyRead::Ranges(ranges) => ScanTarget::Ranges(
                ranges
                    .iter()
                    .map(|(start, end)| {
                        (
                            reader.key_with(start),
                            end.as_ref()
                                .map_or_else(|| reader.end(), |e| reader.key_with(e)),
                        )
                    })
                    .collect(),
            ),
        }
    }
}

impl ScanTarget {
    /// What reading the entries of `index` (in `reader`'s partition) whose
    /// leading value is in `values` (key-encoded) reads; `None` for every
    /// value ([`KeySet::All`]: a full scan is cheaper than the index).
    pub fn of_index(index: &IndexDefinition, values: KeySet, reader: &RowReader) -> Option<Self> {
        let def = &reader.table().definition;
        let base = crate::indexes::index_base(def.table_id, index.index_id);
        let prefix = crate::indexes::index_prefix(&base, reader.start());
        let ranges = match values {
            KeySet::All => return None,
            _ if values.is_empty() => Vec::new(),
            KeySet::Points(points) => points
                .iter()
                .map(|p| crate::indexes::value_range(&prefix, p, prefix_end(p).as_deref()))
                .collect(),
            KeySet::Range { start, end } => {
                vec![crate::indexes::value_range(&prefix, &start, end.as_deref())]
            }
        };
        Some(ScanTarget::Index {
            index: index.clone(),
            ranges,
        })
    }

    /// Every entry of `index` in `reader`'s partition, NULLs included.
    pub fn whole_index(index: &IndexDefinition, reader: &RowReader) -> Self {
        let def = &reader.table().definition;
        let base = crate::indexes::index_base(def.table_id, index.index_id);
        let prefix = crate::indexes::index_prefix(&base, reader.start());
        let end = crate::table_store::partition_end(&prefix);
        ScanTarget::Index {
            index: index.clone(),
            ranges: vec![(prefix, end)],
        }
    }
}

#[derive(Clone)]
pub struct RowScan {
    pub schema: SchemaRef,
    pub columns: Vec<OutputColumn>,
    pub reader: RowReader,
    pub target: ScanTarget,
    pub include_deleted: bool,
    pub limit: Option<usize>,
    /// Rows in descending key order.
    pub reverse: bool,
    /// Per output column: what rows written before the column existed read
    /// as (see `CachedTable::backfill`).
    pub missing: Vec<Option<kalamdb_commons::Value>>,
}

impl std::fmt::Debug for RowScan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowScan")
            .field("target", &self.target)
            .field("limit", &self.limit)
            .field("reverse", &self.reverse)
            .finish()
    }
}

struct ScanState {
    scan: RowScan,
    /// Where the next batch reads from: in a range, the first key of the
    /// rest (or, reversed, the exclusive end of the rest); in a key list,
    /// the index of the next key (big-endian bytes). `None` once done.
    next_start: Option<Vec<u8>>,
    remaining: usize,
    batch_size: usize,
    /// The next batch's size: small first, growing to `batch_size`, so a
    /// query that stops early (`ORDER BY pk LIMIT n`, keyset pages) reads
    /// few rows past what it needs, and a long scan soon reads full batches.
    next_size: usize,
    /// Where a forward read of one key range ends, while it may take rows
    /// straight from a segment's columns (see [`SegmentRun`]); `None` once
    /// it may not (reversed, a key list, an index read, or a run came out
    /// too short: segments overlap or hot rows interleave densely).
    columnar_end: Option<Vec<u8>>,
    /// The stretch being read from one segment, if any.
    run: Option<SegmentRun>,
    /// Set when the columnar path found the read must merge where it is:
    /// the next row-path batch is kept short ([`MERGE_ROWS`]), so the
    /// read is soon back on a segment's columns.
    merge_here: bool,
    /// Merges and short runs since the last long run: past
    /// [`MAX_MISSES`], the columnar path is off for the rest of the scan
    /// (segments overlap throughout, or hot rows interleave densely).
    misses: usize,
    /// Counts the rows taken straight from segments (`EXPLAIN ANALYZE`'s
    /// `segment_rows`).
    segment_rows: Option<Count>,
}

/// A run of rows from one segment shorter than this is a miss (opening a
/// run costs a seek and a reader: not worth it for a handful of rows).
const SHORT_RUN: usize = 256;

/// Misses in a row after which a scan stops looking for runs.
const MAX_MISSES: usize = 8;

/// Rows of a row-path batch read where the read must merge, while the
/// columnar path is on.
const MERGE_ROWS: usize = 64;

/// Stored bytes (compressed, in the engine's files) below which a read is
/// not split across partitions: small reads stay one stream.
const SPLIT_BYTES: u64 = 1 << 20;

/// Rows in a scan's first batch.
const FIRST_BATCH: usize = 64;

impl RowScan {
    /// Where a scan of this target starts (see `ScanState::next_start`).
    fn first(&self) -> Vec<u8> {
        let ranges = match &self.target {
            ScanTarget::Keys(_) => return 0usize.to_be_bytes().to_vec(),
            ScanTarget::Index { ranges, .. } => std::borrow::Cow::Borrowed(ranges.as_slice()),
            _ => self.key_ranges(),
        };
        let mut at = 0usize.to_be_bytes().to_vec();
        let bound = if self.reverse {
            ranges.last().map(|r| &r.1)
        } else {
            ranges.first().map(|r| &r.0)
        };
        at.extend_from_slice(bound.map_or(&[][..], |b| b.as_slice()));
        at
    }

    /// The `[start, end)` ranges of the keys a whole-partition or range read
    /// reads, ascending.
    fn key_ranges(&self) -> std::borrow::Cow<'_, [(Vec<u8>, Vec<u8>)]> {
        match &self.target {
            ScanTarget::Ranges(ranges) => std::borrow::Cow::Borrowed(ranges),
            _ => std::borrow::Cow::Owned(vec![(self.reader.start().to_vec(), self.reader.end())]),
        }
    }

    /// The `[start, end)` of a read of one range of keys (or the whole
    /// partition); `None` for any other.
    fn bounds(&self) -> Option<(Vec<u8>, Vec<u8>)> {
        match &self.target {
            ScanTarget::Partition => Some((self.reader.start().to_vec(), self.reader.end())),
            ScanTarget::Ranges(ranges) if ranges.len() == 1 => Some(ranges[0].clone()),
            _ => None,
        }
    }

    /// What `EXPLAIN` shows of the read.
    fn path(&self) -> String {
        match &self.target {
            ScanTarget::Partition => "full".into(),
            ScanTarget::Keys(keys) if keys.len() == 1 => "point".into(),
            ScanTarget::Keys(keys) => format!("points({})", keys.len()),
            ScanTarget::Ranges(ranges) if ranges.len() == 1 => "range".into(),
            ScanTarget::Ranges(ranges) => format!("ranges({})", ranges.len()),
            ScanTarget::Index { index, ranges } if ranges.len() == 1 => {
                format!("index({})", index.name)
            }
            ScanTarget::Index { index, ranges } => {
                format!("index({}, ranges={})", index.name, ranges.len())
            }
        }
    }
}

impl RowScan {
    /// Reads every matching row into batches of at most `batch_size` rows;
    /// used where a whole (small) result is wanted at once.
    pub fn collect(&self, batch_size: usize) -> std::result::Result<Vec<RecordBatch>, CoreError> {
        let mut state = ScanState::new(self.clone(), batch_size);
        let mut out = Vec::new();
        while let Some(batch) = state.next_batch()? {
            out.push(batch);
        }
        Ok(out)
    }
}

impl ScanState {
    fn new(scan: RowScan, batch_size: usize) -> Self {
        let batch_size = batch_size.max(1);
        let columnar_end = if scan.reverse {
            None
        } else {
            scan.bounds().map(|(_, end)| end)
        };
        Self {
            next_start: Some(scan.first()),
            remaining: scan.limit.unwrap_or(usize::MAX),
            batch_size,
            next_size: FIRST_BATCH.min(batch_size),
            columnar_end,
            run: None,
            merge_here: false,
            misses: 0,
            segment_rows: None,
            scan,
        }
    }

    fn next_batch(&mut self) -> std::result::Result<Option<RecordBatch>, CoreError> {
        if self.remaining == 0 {
            return Ok(None);
        }
        if self.columnar_end.is_some()
            && let Some(batch) = self.columnar_batch()?
        {
            return Ok(Some(batch));
        }
        let Some(start) = self.next_start.take() else {
            return Ok(None);
        };
        let mut want = self.next_size.min(self.remaining);
        if std::mem::take(&mut self.merge_here) {
            want = want.min(MERGE_ROWS);
        } else {
            self.next_size = (self.next_size * 4).min(self.batch_size);
        }
        let scan = &self.scan;
        let mut builder = BatchBuilder::new(Arc::clone(&scan.schema), scan.columns.clone(), want)?
            .with_missing(scan.missing.clone());
        match &scan.target {
            ScanTarget::Keys(keys) => {
                // `at` counts keys read, from the end when reversed
                let mut at = usize::from_be_bytes(start.as_slice().try_into().unwrap_or_default());
                while at < keys.len() && builder.len() < want {
                    let key = if scan.reverse {
                        &keys[keys.len() - 1 - at]
                    } else {
                        &keys[at]
                    };
                    scan.reader
                        .get_row(key, scan.include_deleted, &mut |row| builder.push(row))?;
                    at += 1;
                }
                if at < keys.len() {
                    self.next_start = Some(at.to_be_bytes().to_vec());
                }
            }
            ScanTarget::Index { index, ranges } => {
                self.next_start = index_batch(scan, index, ranges, &start, want, &mut builder)?;
            }
            ScanTarget::Partition | ScanTarget::Ranges(_) => {
                let ranges = scan.key_ranges();
                self.next_start = ranges_batch(scan, &ranges, &start, want, &mut builder)?;
            }
        }
        self.remaining -= builder.len();
        if builder.is_empty() {
            return Ok(None);
        }
        builder.finish().map(Some)
    }
}

impl ScanState {
    /// One more merge or short run; too many in a row turn the columnar
    /// path off.
    fn miss(&mut self) {
        self.misses += 1;
        if self.misses > MAX_MISSES {
            self.columnar_end = None;
        }
    }

    /// The next batch straight from a segment's columns, when the read is
    /// at a stretch one segment alone holds; `None` leaves the batch to the
    /// merging row path (which ends the read if `next_start` is `None`).
    fn columnar_batch(&mut self) -> std::result::Result<Option<RecordBatch>, CoreError> {
        loop {
            let Some(end) = self.columnar_end.clone() else {
                return Ok(None);
            };
            if let Some(run) = &mut self.run {
                let want = self.next_size.min(self.remaining);
                if let Some(batch) = run.next(want)? {
                    if let Some(count) = &self.segment_rows {
                        count.add(batch.num_rows());
                    }
                    self.next_size = (self.next_size * 4).min(self.batch_size);
                    self.remaining -= batch.num_rows();
                    return Ok(Some(batch));
                }
                let run = self.run.take().expect("a run");
                // the read goes on where the run ended
                self.next_start = (run.until < end).then(|| resume(0, &run.until));
                if run.rows_out < SHORT_RUN {
                    self.miss();
                } else {
                    self.misses = 0;
                }
                continue;
            }
            let Some(next) = &self.next_start else {
                return Ok(None);
            };
            let (_, from) = cursor(next);
            let run = match self.scan.reader.cold_run(&from, &end)? {
                Stretch::Run(run) => run,
                Stretch::Merge => {
                    self.miss();
                    self.merge_here = self.columnar_end.is_some();
                    return Ok(None);
                }
                Stretch::NoColdTier => {
                    self.columnar_end = None;
                    return Ok(None);
                }
            };
            self.run = Some(SegmentRun::open(&self.scan, *run, &from, self.batch_size)?);
        }
    }
}

/// Splits a cursor of a read of several ranges: how many ranges are done
/// (8 bytes), then the bound to go on from in the next one (forward, its
/// next key; backward, its exclusive end).
fn cursor(start: &[u8]) -> (usize, Vec<u8>) {
    let (done, bound) = start.split_at(8.min(start.len()));
    (
        usize::from_be_bytes(done.try_into().unwrap_or_default()),
        bound.to_vec(),
    )
}

fn resume(done: usize, bound: &[u8]) -> Vec<u8> {
    let mut next = done.to_be_bytes().to_vec();
    next.extend_from_slice(bound);
    next
}

/// Reads up to `want` rows of the key `ranges` (ascending) into `builder`,
/// from cursor `start`, in the scan's direction; returns where the next
/// batch starts.
fn ranges_batch(
    scan: &RowScan,
    ranges: &[(Vec<u8>, Vec<u8>)],
    start: &[u8],
    want: usize,
    builder: &mut BatchBuilder,
) -> std::result::Result<Option<Vec<u8>>, CoreError> {
    let (mut done, mut bound) = cursor(start);
    let reverse = scan.reverse;
    let range_at = |done: usize| {
        &ranges[if reverse {
            ranges.len() - 1 - done
        } else {
            done
        }]
    };
    while done < ranges.len() {
        let (low, high) = range_at(done);
        let (from, to) = if reverse {
            (low.as_slice(), bound.as_slice())
        } else {
            (bound.as_slice(), high.as_slice())
        };
        let mut rest: Option<Vec<u8>> = None;
        scan.reader
            .scan_range(from, to, reverse, scan.include_deleted, &mut |key, row| {
                builder.push(row)?;
                if builder.len() >= want {
                    // forward, the rest starts just after this key;
                    // reversed, it ends (exclusive) at it
                    let mut next = key.to_vec();
                    if !reverse {
                        next.push(0);
                    }
                    rest = Some(next);
                    return Ok(false);
                }
                Ok(true)
            })?;
        if let Some(rest) = rest {
            return Ok(Some(resume(done, &rest)));
        }
        done += 1;
        if done < ranges.len() {
            let (low, high) = range_at(done);
            bound = if reverse { high.clone() } else { low.clone() };
        }
    }
    Ok(None)
}

/// Reads up to `want` rows of an index read into `builder`, from `start`
/// (how many ranges are done, 8 bytes, then the bound to go on from: the
/// next entry forward, the exclusive end backward); returns where the next
/// batch starts. A row is taken only if its entry is still what it holds
/// now: a row changed between reading its entry and reading it is left to
/// the entry it has now (no row twice, none out of place).
fn index_batch(
    scan: &RowScan,
    index: &IndexDefinition,
    ranges: &[(Vec<u8>, Vec<u8>)],
    start: &[u8],
    want: usize,
    builder: &mut BatchBuilder,
) -> std::result::Result<Option<Vec<u8>>, CoreError> {
    let (mut done, mut bound) = cursor(start);
    let reverse = scan.reverse;
    let table = scan.reader.table();
    let def = &table.definition;
    let store = scan.reader.store();
    // the range read `done`-th, and where a read of it starts
    let range_at = |done: usize| {
        let (low, high) = &ranges[if reverse {
            ranges.len() - 1 - done
        } else {
            done
        }];
        let first = if reverse { high.clone() } else { low.clone() };
        (low, high, first)
    };
    while done < ranges.len() {
        let (low, high, _) = range_at(done);
        loop {
            let need = want - builder.len();
            let mut entries: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
            let (from, to) = if reverse {
                (low.as_slice(), bound.as_slice())
            } else {
                (bound.as_slice(), high.as_slice())
            };
            store.scan_index(from, to, reverse, &mut |key, tail| {
                entries.push((key.to_vec(), tail.to_vec()));
                Ok(entries.len() < need)
            })?;
            let keys: Vec<Vec<u8>> = entries
                .iter()
                .map(|(_, tail)| scan.reader.key_with(tail))
                .collect();
            // a multi-get visits the keys in their order: the entries'
            scan.reader
                .get_rows(&keys, scan.include_deleted, &mut |i, row| {
                    let values = crate::indexes::indexed_values(table, index, row)?;
                    let (now, _, _) = crate::indexes::row_entry(def, index, &keys[i], &values)?;
                    if now == entries[i].0 {
                        builder.push(row)?;
                    }
                    Ok(())
                })?;
            if entries.len() < need {
                break;
            }
            // forward, the rest starts just after the last entry; backward,
            // it ends (exclusive) at it
            bound = entries.last().map(|(k, _)| k.clone()).unwrap_or_default();
            if !reverse {
                bound.push(0);
            }
            if builder.len() >= want {
                return Ok(Some(resume(done, &bound)));
            }
        }
        done += 1;
        if done < ranges.len() {
            bound = range_at(done).2;
        }
        if builder.len() >= want {
            return Ok((done < ranges.len()).then(|| resume(done, &bound)));
        }
    }
    Ok(None)
}

impl RowScan {
    /// The scan's rows as a stream of batches of at most the session's
    /// batch size.
    fn stream(&self, ctx: &TaskContext, segment_rows: Count) -> SendableRecordBatchStream {
        let batch_size = ctx.session_config().batch_size().max(1);
        let mut state = ScanState::new(self.clone(), batch_size);
        state.segment_rows = Some(segment_rows);
        let stream = futures::stream::unfold(state, |mut state| async move {
            match state.next_batch() {
                Ok(Some(batch)) => Some((Ok(batch), state)),
                Ok(None) => None,
                Err(e) => {
                    state.next_start = None;
                    Some((Err(DataFusionError::External(Box::new(e))), state))
                }
            }
        });
        Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            stream,
        ))
    }
}

/// A [`RowScan`] as a node of a DataFusion plan: one partition, or — when
/// DataFusion asks for parallelism on a whole read without a LIMIT — the
/// read split into consecutive key ranges, one partition each (every
/// partition in key order, the first's keys below the second's).
#[derive(Debug, Clone)]
pub struct RowScanExec {
    scan: RowScan,
    /// The split parts, or none: the whole scan is the one partition.
    parts: Vec<RowScan>,
    /// The table, for `EXPLAIN`.
    table: String,
    /// Whether the rows come in primary-key order (not so for an index
    /// read).
    key_order: bool,
    /// Where each of the primary key's columns is in the output, in key
    /// order (`None`: not there).
    key_columns: Vec<Option<usize>>,
    /// How many leading key columns hold one value in every row read.
    pinned: usize,
    /// The output columns the rows are sorted on, in order: the key's
    /// columns (past the pinned ones), or an index's leading column and
    /// then the key's.
    sorted_on: Vec<usize>,
    /// The order the rows come out in (by `sorted_on`), as the plan above
    /// last asked for it.
    order: Option<SortOptions>,
    properties: Arc<PlanProperties>,
    /// Rows out and time per partition, for `EXPLAIN ANALYZE`.
    metrics: ExecutionPlanMetricsSet,
}

impl RowScanExec {
    /// A scan whose output holds the primary key's columns at
    /// `key_columns` (in key order; `None` where one is not in the output),
    /// of which the first `pinned` hold one value in every row read. A key
    /// read's rows are declared to come in key order: by the key's columns
    /// past the pinned ones, as far as the output holds them.
    pub fn new(
        scan: RowScan,
        table: String,
        key_columns: Vec<Option<usize>>,
        pinned: usize,
    ) -> Self {
        // an index read yields index order, not key order
        let key_order = !matches!(scan.target, ScanTarget::Index { .. });
        let sorted_on: Vec<usize> = if key_order {
            // one row (every key column pinned) is in any order: the key's
            let from = if pinned >= key_columns.len() {
                0
            } else {
                pinned
            };
            key_columns[from..].iter().map_while(|c| *c).collect()
        } else {
            Vec::new()
        };
        let order = (key_order && !key_columns.is_empty()).then_some(SortOptions {
            descending: scan.reverse,
            nulls_first: false,
        });
        let constants = constants(key_order, &key_columns, pinned);
        let properties = plan_properties(&scan.schema, &sorted_on, &constants, order, 1);
        Self {
            scan,
            parts: Vec::new(),
            table,
            key_order,
            key_columns,
            pinned,
            sorted_on,
            order,
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    fn properties_of(&self, order: Option<SortOptions>, partitions: usize) -> Arc<PlanProperties> {
        let constants = constants(self.key_order, &self.key_columns, self.pinned);
        plan_properties(
            &self.scan.schema,
            &self.sorted_on,
            &constants,
            order,
            partitions,
        )
    }

    /// This scan reading its rows in `options`' direction of the key, as
    /// one partition.
    fn ordered(&self, options: SortOptions) -> Self {
        let mut exec = self.whole();
        exec.scan.reverse = options.descending;
        exec.order = Some(options);
        exec.properties = exec.properties_of(exec.order, 1);
        exec
    }

    /// Whether reading in key order (one direction or the other) yields
    /// the rows in `order`: its expressions, pinned key columns (constant)
    /// skipped, are the key's next columns in one direction — until the
    /// whole key is covered, after which the rest of the sort never
    /// matters (the key is unique). Returns the direction (`None`: any)
    /// and, when the whole key is covered, after how many of `order`'s
    /// expressions (`None`: `order` ends first).
    pub fn key_sort(
        &self,
        order: &[PhysicalSortExpr],
    ) -> Option<(Option<SortOptions>, Option<usize>)> {
        if !self.key_order || self.key_columns.is_empty() {
            return None;
        }
        let n = self.key_columns.len();
        let pinned = &self.key_columns[..self.pinned.min(n)];
        let mut next = self.pinned.min(n);
        let mut descending = None;
        for (i, sort) in order.iter().enumerate() {
            if next == n {
                return Some((descending, Some(i)));
            }
            let at = sort.expr.downcast_ref::<Column>()?.index();
            if pinned.contains(&Some(at)) {
                continue;
            }
            if self.key_columns[next] != Some(at)
                || descending.is_some_and(|d: SortOptions| d.descending != sort.options.descending)
            {
                return None;
            }
            descending = descending.or(Some(sort.options));
            next += 1;
        }
        Some((descending, (next == n).then_some(order.len())))
    }

    /// This scan reading the entries of a built index whose leading column
    /// `order` sorts on (then, for an index of that one column, optionally
    /// on the primary key in the same direction), forward or backward:
    /// `ORDER BY col [DESC] LIMIT n` reads n rows. `None` when no index
    /// gives that order or the scan already reads something narrower. Only
    /// worth it under a LIMIT: a whole table in index order is a point read
    /// per row.
    pub fn in_index_order(&self, order: &[PhysicalSortExpr]) -> Option<Self> {
        let first = order.first()?;
        let at = first.expr.downcast_ref::<Column>()?.index();
        // NULLs sort last ascending, first descending: as SQL's default
        if first.options.descending != first.options.nulls_first {
            return None;
        }
        let name = self.scan.schema.field(at).name();
        let def = &self.scan.reader.table().definition;
        let index = def.indexes.iter().find(|i| {
            crate::indexes::ready(i)
                && i.column_ids
                    .first()
                    .and_then(|id| def.column_position_of(*id))
                    .is_some_and(|p| def.columns[p].name == *name)
        })?;
        // entries sort by the index's columns, then the key's: past a
        // one-column index's column, by the key's columns (as far as the
        // output holds them)
        let key_after: Vec<usize> = if index.column_ids.len() == 1 {
            self.key_columns.iter().map_while(|c| *c).collect()
        } else {
            Vec::new()
        };
        let rest = &order[1..];
        let follows_key = rest.len() <= key_after.len()
            && rest.iter().zip(&key_after).all(|(sort, &key_at)| {
                sort.expr
                    .downcast_ref::<Column>()
                    .is_some_and(|c| c.index() == key_at)
                    && sort.options.descending == first.options.descending
            });
        if !follows_key {
            return None;
        }
        let target = match &self.scan.target {
            ScanTarget::Partition => ScanTarget::whole_index(index, &self.scan.reader),
            ScanTarget::Index { index: read, .. } if read.index_id == index.index_id => {
                self.scan.target.clone()
            }
            _ => return None,
        };
        if self.scan.limit.is_some() && self.scan.reverse != first.options.descending {
            return None;
        }
        let mut exec = self.whole();
        exec.scan.target = target;
        exec.scan.reverse = first.options.descending;
        // no longer in key order: a sort on the key is not ours to take
        exec.key_order = false;
        exec.sorted_on = std::iter::once(at).chain(key_after).collect();
        exec.order = Some(first.options);
        exec.properties = exec.properties_of(exec.order, 1);
        Some(exec)
    }

    pub fn scan(&self) -> &RowScan {
        &self.scan
    }

    /// This scan as one partition again.
    fn whole(&self) -> Self {
        let mut exec = self.clone();
        exec.parts.clear();
        exec.properties = exec.properties_of(self.order, 1);
        exec
    }

    /// The read split into up to `n` consecutive key ranges of about equal
    /// width between its first and last stored keys; `None` when it cannot
    /// or need not be split (a key list, a LIMIT, less than [`SPLIT_BYTES`]
    /// of stored rows, fewer than two keys).
    fn split(&self, n: usize) -> Result<Option<Self>> {
        if n < 2 || self.scan.limit.is_some() {
            return Ok(None);
        }
        let Some((start, end)) = self.scan.bounds() else {
            return Ok(None);
        };
        if self.scan.reader.stored_bytes(&start, &end) < SPLIT_BYTES {
            return Ok(None);
        }
        let edges = self
            .scan
            .reader
            .edge_keys(&start, &end)
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let Some((first, last)) = edges else {
            return Ok(None);
        };
        let mut bounds = vec![start];
        for point in split_points(&first, &last, n) {
            if point > *bounds.last().unwrap_or(&point) && point < end {
                bounds.push(point);
            }
        }
        bounds.push(end);
        if bounds.len() < 3 {
            return Ok(None);
        }
        let parts: Vec<RowScan> = bounds
            .windows(2)
            .map(|w| {
                let mut part = self.scan.clone();
                part.target = ScanTarget::Ranges(vec![(w[0].clone(), w[1].clone())]);
                part
            })
            .collect();
        let mut exec = self.clone();
        exec.properties = exec.properties_of(self.order, parts.len());
        exec.parts = parts;
        Ok(Some(exec))
    }
}

/// The output columns of a key read that hold one value in every row: the
/// pinned key columns the output holds.
fn constants(key_order: bool, key_columns: &[Option<usize>], pinned: usize) -> Vec<usize> {
    // one row (every key column pinned) is declared sorted on its key
    // instead (an ordering on constants would vanish)
    if !key_order || pinned >= key_columns.len() {
        return Vec::new();
    }
    key_columns[..pinned.min(key_columns.len())]
        .iter()
        .flatten()
        .copied()
        .collect()
}

/// A scan's plan properties: sorted on `sorted_on` in `order`'s direction,
/// `constants` constant, in `partitions` partitions.
fn plan_properties(
    schema: &SchemaRef,
    sorted_on: &[usize],
    constants: &[usize],
    order: Option<SortOptions>,
    partitions: usize,
) -> Arc<PlanProperties> {
    let orderings = match order {
        Some(options) if !sorted_on.is_empty() => LexOrdering::new(sorted_on.iter().map(|&at| {
            let column = Column::new(schema.field(at).name(), at);
            PhysicalSortExpr::new(Arc::new(column), options)
        }))
        .into_iter()
        .collect(),
        _ => Vec::new(),
    };
    let mut equivalence = EquivalenceProperties::new_with_orderings(Arc::clone(schema), orderings);
    let constants = constants.iter().map(|&at| {
        let column = Column::new(schema.field(at).name(), at);
        ConstExpr::new(Arc::new(column), AcrossPartitions::Uniform(None))
    });
    // columns of the schema: adding them as constants cannot fail
    let _ = equivalence.add_constants(constants);
    Arc::new(
        PlanProperties::new(
            equivalence,
            Partitioning::UnknownPartitioning(partitions),
            EmissionType::Incremental,
            Boundedness::Bounded,
        )
        .with_scheduling_type(SchedulingType::Cooperative),
    )
}

/// `n - 1` keys spaced evenly between `first` and `last` (their common
/// prefix, then the next eight bytes read as a number and interpolated).
fn split_points(first: &[u8], last: &[u8], n: usize) -> Vec<Vec<u8>> {
    let common = first.iter().zip(last).take_while(|(a, b)| a == b).count();
    let number = |key: &[u8]| {
        let mut bytes = [0u8; 8];
        for (i, b) in key.iter().skip(common).take(8).enumerate() {
            bytes[i] = *b;
        }
        u64::from_be_bytes(bytes)
    };
    let (low, high) = (number(first), number(last));
    if high <= low {
        return Vec::new();
    }
    (1..n as u64)
        .map(|i| {
            let at = low + ((u128::from(high - low) * u128::from(i)) / n as u128) as u64;
            let mut key = first[..common].to_vec();
            key.extend_from_slice(&at.to_be_bytes());
            key
        })
        .collect()
}

impl DisplayAs for RowScanExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let names: Vec<&str> = self
            .scan
            .schema
            .fields()
            .iter()
            .map(|field| field.name().as_str())
            .collect();
        write!(
            f,
            "RowScanExec: table={}, read={}, projection=[{}]",
            self.table,
            self.scan.path(),
            names.join(", ")
        )?;
        if !self.parts.is_empty() {
            write!(f, ", split={}", self.parts.len())?;
        }
        if self.scan.reverse {
            write!(f, ", reverse")?;
        }
        if let Some(limit) = self.scan.limit {
            write!(f, ", fetch={limit}")?;
        }
        if let Some(ordering) = self.properties.output_ordering() {
            write!(f, ", output_ordering=[{ordering}]")?;
        }
        Ok(())
    }
}

/// A partition's stream, counting the rows it yields and the time spent
/// producing them (`output_rows`, `elapsed_compute` in `EXPLAIN ANALYZE`).
struct Observed {
    inner: SendableRecordBatchStream,
    metrics: BaselineMetrics,
}

impl futures::Stream for Observed {
    type Item = Result<RecordBatch>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let this = &mut *self;
        let timer = this.metrics.elapsed_compute().timer();
        let poll = this.inner.as_mut().poll_next(cx);
        timer.done();
        this.metrics.record_poll(poll)
    }
}

impl datafusion::physical_plan::RecordBatchStream for Observed {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}

impl ExecutionPlan for RowScanExec {
    fn name(&self) -> &str {
        "RowScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        _: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.is_empty() {
            Ok(self)
        } else {
            internal_err!("RowScanExec has no children")
        }
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )
    }

    fn execute(
        &self,
        partition: usize,
        ctx: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let scan = match self.parts.get(partition) {
            Some(part) => part,
            None if partition == 0 && self.parts.is_empty() => &self.scan,
            None => return internal_err!("RowScanExec has no partition {partition}"),
        };
        let observed = Observed {
            inner: scan.stream(
                &ctx,
                MetricBuilder::new(&self.metrics).counter("segment_rows", partition),
            ),
            metrics: BaselineMetrics::new(&self.metrics, partition),
        };
        Ok(make_cooperative(Box::pin(observed)))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn repartitioned(
        &self,
        target_partitions: usize,
        _config: &ConfigOptions,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        if !self.parts.is_empty() {
            return Ok(None);
        }
        Ok(self
            .split(target_partitions)?
            .map(|exec| Arc::new(exec) as Arc<dyn ExecutionPlan>))
    }

    /// A LIMIT reads one partition: parts would each read for all of it.
    fn with_fetch(&self, limit: Option<usize>) -> Option<Arc<dyn ExecutionPlan>> {
        let mut exec = self.whole();
        exec.scan.limit = match (limit, self.scan.limit) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Some(Arc::new(exec))
    }

    fn fetch(&self) -> Option<usize> {
        self.scan.limit
    }

    /// A sort on the primary key's columns ([`RowScanExec::key_sort`]) is
    /// what this scan already yields, in one direction or the other.
    fn try_pushdown_sort(
        &self,
        order: &[PhysicalSortExpr],
    ) -> Result<SortOrderPushdownResult<Arc<dyn ExecutionPlan>>> {
        let Some((options, _)) = self.key_sort(order) else {
            return Ok(SortOrderPushdownResult::Unsupported);
        };
        let Some(options) = options.or(self.order) else {
            return Ok(SortOrderPushdownResult::Unsupported);
        };
        if self.order == Some(options) {
            return Ok(SortOrderPushdownResult::Exact {
                inner: Arc::new(self.whole()),
            });
        }
        if self.scan.limit.is_some() && self.order.map(|o| o.descending) != Some(options.descending)
        {
            // a limited scan read the other way would keep other rows
            return Ok(SortOrderPushdownResult::Unsupported);
        }
        Ok(SortOrderPushdownResult::Exact {
            inner: Arc::new(self.ordered(options)),
        })
    }
}

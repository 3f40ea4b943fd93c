//! Reading segments: rows by ordinal (a point read decodes only the pages
//! holding them) and cursors over a key range in either direction, one row
//! group in memory at a time.

use crate::GroupCache;
use crate::manifest::unhex;
use crate::{
    COLUMN_ID_META, FileStoreError, FileStoreResult, META_FIRST_KEYS, META_FORMAT,
    SEGMENT_FORMAT_VERSION,
};
use datafusion::arrow::array::{Array, BinaryArray, BooleanArray, Int64Array};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ProjectionMask;
use datafusion::parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader,
    ParquetRecordBatchReaderBuilder, RowSelection, RowSelector,
};
use datafusion::parquet::file::metadata::PageIndexPolicy;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Rows decoded per batch when reading.
const READ_BATCH_ROWS: usize = 4096;

/// An open segment: its footer, parsed once.
#[derive(Debug)]
pub struct SegmentFile {
    /// The segment's id (its row groups' key in the cache).
    id: u64,
    cache: Option<Arc<GroupCache>>,
    path: PathBuf,
    metadata: ArrowReaderMetadata,
    /// The first storage key of each row group.
    first_keys: Vec<Vec<u8>>,
    /// The ordinal of each row group's first row, and the row count last.
    group_starts: Vec<u64>,
    /// The column id of each field (`None` for `_key`, `_seq`, `_deleted`).
    column_ids: Vec<Option<u32>>,
}

impl SegmentFile {
    /// Opens segment `id` at `path`; its decoded row groups are kept in
    /// `cache`, if given.
    pub fn open(id: u64, path: &Path, cache: Option<Arc<GroupCache>>) -> FileStoreResult<Self> {
        let corrupt = |message: String| FileStoreError::Corrupt {
            path: path.display().to_string(),
            message,
        };
        let file = std::fs::File::open(path)?;
        let metadata = ArrowReaderMetadata::load(
            &file,
            ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required),
        )?;
        let kv = |name: &str| {
            metadata
                .metadata()
                .file_metadata()
                .key_value_metadata()
                .and_then(|kv| kv.iter().find(|e| e.key == name))
                .and_then(|e| e.value.clone())
        };
        let format = kv(META_FORMAT).unwrap_or_default();
        if format != SEGMENT_FORMAT_VERSION.to_string() {
            return Err(corrupt(format!(
                "segment format '{format}' is not supported (this build reads {SEGMENT_FORMAT_VERSION})"
            )));
        }
        let first_keys: Vec<String> =
            serde_json::from_str(&kv(META_FIRST_KEYS).unwrap_or_default())
                .map_err(|e| corrupt(format!("row group keys: {e}")))?;
        let first_keys: Vec<Vec<u8>> = first_keys
            .iter()
            .map(|k| unhex(k).ok_or_else(|| corrupt("row group keys: invalid hex".into())))
            .collect::<FileStoreResult<_>>()?;
        let groups = metadata.metadata().row_groups();
        if groups.len() != first_keys.len() {
            return Err(corrupt(format!(
                "{} row groups but {} first keys",
                groups.len(),
                first_keys.len()
            )));
        }
        let mut group_starts = Vec::with_capacity(groups.len() + 1);
        let mut at = 0u64;
        for group in groups {
            group_starts.push(at);
            at += group.num_rows() as u64;
        }
        group_starts.push(at);
        let column_ids = metadata
            .schema()
            .fields()
            .iter()
            .map(|f| {
                f.metadata()
                    .get(COLUMN_ID_META)
                    .and_then(|id| id.parse().ok())
            })
            .collect();
        Ok(Self {
            id,
            cache,
            path: path.to_path_buf(),
            metadata,
            first_keys,
            group_starts,
            column_ids,
        })
    }

    pub fn rows(&self) -> u64 {
        *self.group_starts.last().unwrap_or(&0)
    }

    /// How many row groups it has.
    pub fn group_count(&self) -> usize {
        self.groups()
    }

    /// Its table columns (the fields after `_key`, `_seq`, `_deleted`).
    pub fn table_columns(&self) -> Vec<crate::SegmentColumn> {
        self.metadata
            .schema()
            .fields()
            .iter()
            .zip(&self.column_ids)
            .filter_map(|(field, id)| {
                id.map(|id| crate::SegmentColumn {
                    id,
                    name: field.name().clone(),
                    data_type: field.data_type().clone(),
                })
            })
            .collect()
    }

    /// The column id of each field of the batches read (`None` for the
    /// system fields).
    pub fn column_ids(&self) -> &[Option<u32>] {
        &self.column_ids
    }

    fn groups(&self) -> usize {
        self.first_keys.len()
    }

    fn group_of(&self, ordinal: u64) -> usize {
        self.group_starts.partition_point(|&s| s <= ordinal) - 1
    }

    /// The row groups that can hold keys in `[start, end)`.
    pub fn groups_between(&self, start: &[u8], end: &[u8]) -> Range<usize> {
        // the last group starting at or before `start`, through the last
        // one starting before `end`
        let first = self
            .first_keys
            .partition_point(|k| k.as_slice() <= start)
            .saturating_sub(1);
        let last = self.first_keys.partition_point(|k| k.as_slice() < end);
        first..last.max(first)
    }

    fn reader(
        &self,
        groups: Vec<usize>,
        selection: Option<RowSelection>,
    ) -> FileStoreResult<Vec<RecordBatch>> {
        let file = std::fs::File::open(&self.path)?;
        let mut builder =
            ParquetRecordBatchReaderBuilder::new_with_metadata(file, self.metadata.clone())
                .with_batch_size(READ_BATCH_ROWS)
                .with_row_groups(groups);
        if let Some(selection) = selection {
            builder = builder.with_row_selection(selection);
        }
        Ok(builder.build()?.collect::<Result<Vec<_>, _>>()?)
    }

    fn one(&self, batches: Vec<RecordBatch>) -> FileStoreResult<RecordBatch> {
        Ok(concat_batches(self.metadata.schema(), &batches)?)
    }

    /// One row group, whole.
    pub fn read_group(&self, group: usize) -> FileStoreResult<RecordBatch> {
        if let Some(batch) = self.cache.as_ref().and_then(|c| c.get(self.id, group)) {
            return Ok(batch);
        }
        let batches = self.reader(vec![group], None)?;
        let batch = self.one(batches)?;
        if let Some(cache) = &self.cache {
            cache.put(self.id, group, &batch);
        }
        Ok(batch)
    }

    /// The rows at `ordinals` (ascending, no repeats), in that order.
    pub fn read_ordinals(&self, ordinals: &[u64]) -> FileStoreResult<RecordBatch> {
        if ordinals.windows(2).any(|w| w[0] >= w[1])
            || ordinals.last().is_some_and(|&o| o >= self.rows())
        {
            return Err(FileStoreError::Invalid(format!(
                "{}: row ordinals out of order or range",
                self.path.display()
            )));
        }
        let mut groups: Vec<usize> = ordinals.iter().map(|&o| self.group_of(o)).collect();
        groups.dedup();
        // rows of row groups already decoded come from there
        if let Some(cache) = &self.cache {
            let cached: Option<Vec<RecordBatch>> =
                groups.iter().map(|&g| cache.get(self.id, g)).collect();
            if let Some(cached) = cached {
                let mut rows = Vec::with_capacity(ordinals.len());
                for &ordinal in ordinals {
                    let g = self.group_of(ordinal);
                    let at = groups.iter().position(|&x| x == g).expect("listed");
                    let offset = (ordinal - self.group_starts[g]) as usize;
                    rows.push(cached[at].slice(offset, 1));
                }
                return self.one(rows);
            }
        }
        // the selection counts rows of the chosen groups only
        let mut selectors = Vec::new();
        let mut at = 0u64; // position in the chosen groups' rows
        let mut base = 0u64; // where the current group starts among them
        let mut current = None;
        for &ordinal in ordinals {
            let group = self.group_of(ordinal);
            if current != Some(group) {
                if let Some(previous) = current {
                    base += self.group_starts[previous + 1] - self.group_starts[previous];
                }
                current = Some(group);
            }
            let position = base + (ordinal - self.group_starts[group]);
            if position > at {
                selectors.push(RowSelector::skip((position - at) as usize));
            }
            selectors.push(RowSelector::select(1));
            at = position + 1;
        }
        let batches = self.reader(groups, Some(RowSelection::from(selectors)))?;
        self.one(batches)
    }

    /// The rows with keys in `[start, end)`, ascending, as batches of at
    /// most `batch_rows` rows holding only the fields at `fields` (indices
    /// into the segment's schema, past `_key`: 1 is `_seq`, 2 `_deleted`,
    /// then the table columns), in schema order. A row group lying wholly
    /// inside the range is read with only those columns decoded; one at an
    /// edge of it is read whole through the cache of decoded groups (a
    /// short range read again decodes nothing) and sliced by key.
    pub fn range_scan(
        self: &Arc<Self>,
        start: &[u8],
        end: &[u8],
        fields: &[usize],
        batch_rows: usize,
    ) -> FileStoreResult<RangeScan> {
        let width = self.metadata.schema().fields().len();
        let mut fields: Vec<usize> = fields.to_vec();
        fields.sort_unstable();
        fields.dedup();
        if fields.iter().any(|&f| f == 0 || f >= width) {
            return Err(FileStoreError::Invalid(format!(
                "{}: no such field to scan",
                self.path.display()
            )));
        }
        // consecutive groups read alike share one reader: those wholly in
        // range without `_key`, each edge group with it
        let groups = self.groups_between(start, end);
        let mut chunks: Vec<(Vec<usize>, bool)> = Vec::new();
        for g in groups {
            let inside = g + 1 < self.groups()
                && self.first_keys[g].as_slice() >= start
                && self.first_keys[g + 1].as_slice() <= end;
            match chunks.last_mut() {
                Some((run, false)) if inside => run.push(g),
                _ => chunks.push((vec![g], !inside)),
            }
        }
        chunks.reverse();
        Ok(RangeScan {
            file: Arc::clone(self),
            start: start.to_vec(),
            end: end.to_vec(),
            fields,
            batch_rows: batch_rows.max(1),
            chunks,
            reader: None,
            edge: None,
        })
    }

    fn projected(
        &self,
        groups: Vec<usize>,
        fields: impl IntoIterator<Item = usize>,
        batch_rows: usize,
    ) -> FileStoreResult<ParquetRecordBatchReader> {
        let file = std::fs::File::open(&self.path)?;
        let mask = ProjectionMask::roots(
            self.metadata.metadata().file_metadata().schema_descr(),
            fields,
        );
        Ok(
            ParquetRecordBatchReaderBuilder::new_with_metadata(file, self.metadata.clone())
                .with_batch_size(batch_rows)
                .with_row_groups(groups)
                .with_projection(mask)
                .build()?,
        )
    }

    /// A cursor over the rows with keys in `[start, end)`, ascending or
    /// (`reverse`) descending.
    pub fn cursor(self: &Arc<Self>, start: &[u8], end: &[u8], reverse: bool) -> SegmentCursor {
        SegmentCursor {
            groups: self.groups_between(start, end),
            file: Arc::clone(self),
            start: start.to_vec(),
            end: end.to_vec(),
            reverse,
            loaded: None,
            done: false,
        }
    }
}

/// The batches of [`SegmentFile::range_scan`].
pub struct RangeScan {
    file: Arc<SegmentFile>,
    start: Vec<u8>,
    end: Vec<u8>,
    fields: Vec<usize>,
    batch_rows: usize,
    /// The row groups still to read (last first): runs of groups wholly in
    /// range, and single edge groups (`true`) whose keys are checked.
    chunks: Vec<(Vec<usize>, bool)>,
    /// The run of inner groups being read.
    reader: Option<ParquetRecordBatchReader>,
    /// An edge group's rows in range (projected), and how many of them
    /// were handed out.
    edge: Option<(RecordBatch, usize)>,
}

impl RangeScan {
    /// The next batch of rows in range; `None` once there are no more.
    pub fn next_batch(&mut self) -> FileStoreResult<Option<RecordBatch>> {
        loop {
            if let Some((rows, at)) = &mut self.edge {
                if *at < rows.num_rows() {
                    let take = self.batch_rows.min(rows.num_rows() - *at);
                    let batch = rows.slice(*at, take);
                    *at += take;
                    return Ok(Some(batch));
                }
                self.edge = None;
            }
            if let Some(reader) = &mut self.reader {
                match reader.next().transpose()? {
                    Some(batch) => return Ok(Some(batch)),
                    None => {
                        self.reader = None;
                        continue;
                    }
                }
            }
            let Some((groups, keyed)) = self.chunks.pop() else {
                return Ok(None);
            };
            if keyed {
                // an edge group: whole, through the cache of decoded groups
                // (a short range read again decodes nothing), then the
                // slice in range
                let group = self.file.read_group(groups[0])?;
                if let Some(rows) = self.in_range(&group)? {
                    let rows = group.slice(rows.start, rows.len()).project(&self.fields)?;
                    self.edge = Some((rows, 0));
                }
                continue;
            }
            let fields = self.fields.iter().copied();
            self.reader = Some(self.file.projected(groups, fields, self.batch_rows)?);
        }
    }

    /// The rows of `group` (a whole row group, `_key` first) with keys in
    /// range: keys ascend, so they are one slice.
    fn in_range(&self, group: &RecordBatch) -> FileStoreResult<Option<Range<usize>>> {
        let keys = group
            .column(0)
            .as_any()
            .downcast_ref::<BinaryArray>()
            .ok_or_else(|| FileStoreError::Corrupt {
                path: self.file.path.display().to_string(),
                message: "_key is not binary".into(),
            })?;
        let position = |bound: &[u8]| {
            let (mut low, mut high) = (0, keys.len());
            while low < high {
                let mid = (low + high) / 2;
                if keys.value(mid) < bound {
                    low = mid + 1;
                } else {
                    high = mid;
                }
            }
            low
        };
        let (from, to) = (position(&self.start), position(&self.end));
        Ok((from < to).then_some(from..to))
    }
}

struct Loaded {
    batch: RecordBatch,
    keys: BinaryArray,
    seqs: Int64Array,
    deleted: BooleanArray,
    /// The current row (counting down when reverse).
    row: usize,
}

/// Rows of one segment in key order within a range. Position it with
/// [`SegmentCursor::fill`], read the current row, then
/// [`SegmentCursor::advance`].
pub struct SegmentCursor {
    file: Arc<SegmentFile>,
    groups: Range<usize>,
    start: Vec<u8>,
    end: Vec<u8>,
    reverse: bool,
    loaded: Option<Loaded>,
    done: bool,
}

impl SegmentCursor {
    pub fn file(&self) -> &Arc<SegmentFile> {
        &self.file
    }

    /// Positions the cursor on a row in range, loading row groups as
    /// needed; false once there is none left.
    pub fn fill(&mut self) -> FileStoreResult<bool> {
        loop {
            if self.done {
                return Ok(false);
            }
            if let Some(loaded) = &self.loaded {
                let key = loaded.keys.value(loaded.row);
                let before = key < self.start.as_slice();
                let after = key >= self.end.as_slice();
                match (self.reverse, before, after) {
                    (_, false, false) => return Ok(true),
                    // not yet in range: step towards it
                    (false, true, _) | (true, _, true) => self.advance(),
                    // past the range: nothing more
                    _ => {
                        self.done = true;
                        self.loaded = None;
                    }
                }
                continue;
            }
            if self.groups.is_empty() {
                self.done = true;
                continue;
            }
            let group = if self.reverse {
                self.groups.end -= 1;
                self.groups.end
            } else {
                self.groups.start += 1;
                self.groups.start - 1
            };
            if group >= self.file.groups() {
                self.done = true;
                continue;
            }
            let batch = self.file.read_group(group)?;
            if batch.num_rows() == 0 {
                continue;
            }
            let keys = batch
                .column(0)
                .as_any()
                .downcast_ref::<BinaryArray>()
                .cloned()
                .ok_or_else(|| self.corrupt("_key is not binary"))?;
            let seqs = batch
                .column(1)
                .as_any()
                .downcast_ref::<Int64Array>()
                .cloned()
                .ok_or_else(|| self.corrupt("_seq is not Int64"))?;
            let deleted = batch
                .column(2)
                .as_any()
                .downcast_ref::<BooleanArray>()
                .cloned()
                .ok_or_else(|| self.corrupt("_deleted is not boolean"))?;
            let row = if self.reverse {
                batch.num_rows() - 1
            } else {
                0
            };
            self.loaded = Some(Loaded {
                batch,
                keys,
                seqs,
                deleted,
                row,
            });
        }
    }

    fn corrupt(&self, message: &str) -> FileStoreError {
        FileStoreError::Corrupt {
            path: self.file.path.display().to_string(),
            message: message.into(),
        }
    }

    fn current(&self) -> &Loaded {
        self.loaded.as_ref().expect("fill() positioned the cursor")
    }

    /// The current row's storage key (after [`SegmentCursor::fill`]).
    pub fn key(&self) -> &[u8] {
        let l = self.current();
        l.keys.value(l.row)
    }

    pub fn seq(&self) -> i64 {
        let l = self.current();
        l.seqs.value(l.row)
    }

    pub fn deleted(&self) -> bool {
        let l = self.current();
        l.deleted.value(l.row)
    }

    /// The batch holding the current row, and its index there.
    pub fn row(&self) -> (&RecordBatch, usize) {
        let l = self.current();
        (&l.batch, l.row)
    }

    /// Moves past the current row.
    pub fn advance(&mut self) {
        let Some(loaded) = &mut self.loaded else {
            return;
        };
        if self.reverse {
            if loaded.row == 0 {
                self.loaded = None;
            } else {
                loaded.row -= 1;
            }
        } else if loaded.row + 1 >= loaded.batch.num_rows() {
            self.loaded = None;
        } else {
            loaded.row += 1;
        }
    }
}

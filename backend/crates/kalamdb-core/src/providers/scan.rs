//! Streams a table partition out of its [`RowReader`] as Arrow batches: at
//! most `batch_size` rows in memory at a time, re-seeking after the last key
//! for the next batch, so memory does not grow with the table.

use crate::error::CoreError;
use crate::row_reader::RowReader;
use crate::rows::{BatchBuilder, OutputColumn};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub enum ScanTarget {
    /// Every row under the prefix.
    Partition,
    /// These rows' keys, in key order (primary-key equalities or IN).
    Keys(Vec<Vec<u8>>),
    /// The rows with keys in `[start, end)` (a primary-key range).
    Range { start: Vec<u8>, end: Vec<u8> },
}

#[derive(Clone)]
pub struct RowScan {
    pub schema: SchemaRef,
    pub columns: Vec<OutputColumn>,
    pub reader: RowReader,
    pub target: ScanTarget,
    pub include_deleted: bool,
    pub limit: Option<usize>,
    /// Per output column: what rows written before the column existed read
    /// as (see `CachedTable::backfill`).
    pub missing: Vec<Option<kalamdb_commons::Value>>,
}

impl std::fmt::Debug for RowScan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowScan")
            .field("target", &self.target)
            .field("limit", &self.limit)
            .finish()
    }
}

struct ScanState {
    scan: RowScan,
    /// The next key to read from (a range), or the index of the next key
    /// to read (a key list, as its big-endian bytes); `None` once done.
    next_start: Option<Vec<u8>>,
    remaining: usize,
    batch_size: usize,
    /// The next batch's size: small first, growing to `batch_size`, so a
    /// query that stops early (`ORDER BY pk LIMIT n`, keyset pages) reads
    /// few rows past what it needs, and a long scan soon reads full batches.
    next_size: usize,
}

/// Rows in a scan's first batch.
const FIRST_BATCH: usize = 64;

impl RowScan {
    /// Where a scan of this target starts.
    fn first(&self) -> Vec<u8> {
        match &self.target {
            ScanTarget::Partition => self.reader.start().to_vec(),
            ScanTarget::Range { start, .. } => start.clone(),
            ScanTarget::Keys(_) => 0usize.to_be_bytes().to_vec(),
        }
    }
}

impl RowScan {
    /// Reads every matching row into batches of at most `batch_size` rows;
    /// used where a whole (small) result is wanted at once.
    pub fn collect(&self, batch_size: usize) -> Result<Vec<RecordBatch>, CoreError> {
        let mut state = ScanState {
            scan: self.clone(),
            next_start: Some(self.first()),
            remaining: self.limit.unwrap_or(usize::MAX),
            batch_size: batch_size.max(1),
            next_size: FIRST_BATCH.min(batch_size.max(1)),
        };
        let mut out = Vec::new();
        while let Some(batch) = state.next_batch()? {
            out.push(batch);
        }
        Ok(out)
    }
}

impl ScanState {
    fn next_batch(&mut self) -> Result<Option<RecordBatch>, CoreError> {
        let Some(start) = self.next_start.take() else {
            return Ok(None);
        };
        if self.remaining == 0 {
            return Ok(None);
        }
        let want = self.next_size.min(self.remaining);
        self.next_size = (self.next_size * 4).min(self.batch_size);
        let scan = &self.scan;
        let mut builder = BatchBuilder::new(Arc::clone(&scan.schema), scan.columns.clone(), want)?
            .with_missing(scan.missing.clone());
        match &scan.target {
            ScanTarget::Keys(keys) => {
                let mut at = usize::from_be_bytes(start.as_slice().try_into().unwrap_or_default());
                while at < keys.len() && builder.len() < want {
                    scan.reader
                        .get_row(&keys[at], scan.include_deleted, &mut |row| {
                            builder.push(row)
                        })?;
                    at += 1;
                }
                if at < keys.len() {
                    self.next_start = Some(at.to_be_bytes().to_vec());
                }
            }
            ScanTarget::Partition | ScanTarget::Range { .. } => {
                let end = match &scan.target {
                    ScanTarget::Range { end, .. } => end.clone(),
                    _ => scan.reader.end(),
                };
                let mut last_key: Option<Vec<u8>> = None;
                let mut full = false;
                scan.reader
                    .scan_range(&start, &end, scan.include_deleted, &mut |key, row| {
                        builder.push(row)?;
                        if builder.len() >= want {
                            let mut next = key.to_vec();
                            next.push(0);
                            last_key = Some(next);
                            full = true;
                            return Ok(false);
                        }
                        Ok(true)
                    })?;
                if full {
                    self.next_start = last_key;
                }
            }
        }
        self.remaining -= builder.len();
        if builder.is_empty() {
            return Ok(None);
        }
        builder.finish().map(Some)
    }
}

impl PartitionStream for RowScan {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let state = ScanState {
            scan: self.clone(),
            next_start: Some(self.first()),
            remaining: self.limit.unwrap_or(usize::MAX),
            batch_size: ctx.session_config().batch_size().max(1),
            next_size: FIRST_BATCH.min(ctx.session_config().batch_size().max(1)),
        };
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

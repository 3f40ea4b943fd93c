//! A scan's rows straight from a segment's columns: where a forward read
//! reaches a stretch of keys that one segment alone holds
//! ([`RowReader::cold_run`]), its batches come from the Parquet reader —
//! only the projected columns decoded, tombstones filtered out, columns
//! the segment predates filled as the row path fills them — with no row
//! decoded one by one and no merge.
//!
//! [`RowReader::cold_run`]: crate::row_reader::RowReader::cold_run

use super::scan::RowScan;
use crate::error::{CoreError, CoreResult};
use crate::row_reader::ColdRun;
use crate::rows::{OutputColumn, constant_array};
use datafusion::arrow::array::{Array, ArrayRef, BooleanArray};
use datafusion::arrow::compute::{cast, filter_record_batch, not};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use kalamdb_commons::{KalamDataType, Value};
use kalamdb_filestore::RangeScan;
use std::sync::Arc;

fn arrow(e: datafusion::arrow::error::ArrowError) -> CoreError {
    CoreError::Internal(format!("cold tier: reading a segment: {e}"))
}

/// Where an output column's values come from.
enum Source {
    /// This column of the batches read.
    Read(usize),
    /// Rows written before the column existed: its backfill or NULL.
    Missing(KalamDataType, Option<Value>),
}

/// The rows of one [`ColdRun`], batch by batch.
pub(super) struct SegmentRun {
    rows: RangeScan,
    sources: Vec<Source>,
    /// The column of `_deleted` in the batches read, when tombstones must
    /// be dropped.
    tombstones: Option<usize>,
    schema: datafusion::arrow::datatypes::SchemaRef,
    /// Rows read and not yet handed out (already converted).
    pending: Option<RecordBatch>,
    /// Where the run ends (exclusive): where the read goes on from after it.
    pub(super) until: Vec<u8>,
    /// Rows handed out so far.
    pub(super) rows_out: usize,
}

impl SegmentRun {
    /// The run `run` of `scan`'s read from `start`, read in batches of
    /// `batch_rows`.
    pub(super) fn open(
        scan: &RowScan,
        run: ColdRun,
        start: &[u8],
        batch_rows: usize,
    ) -> CoreResult<Self> {
        let ids = run.file.column_ids();
        // the segment's fields to read, by their index in it
        let mut fields = Vec::new();
        let mut wanted: Vec<Result<usize, Source>> = Vec::with_capacity(scan.columns.len());
        for (pos, column) in scan.columns.iter().enumerate() {
            wanted.push(match column {
                OutputColumn::Seq => Ok(1),
                OutputColumn::Deleted => Ok(2),
                OutputColumn::Declared {
                    column_id,
                    data_type,
                } => match ids.iter().position(|id| *id == Some(*column_id)) {
                    Some(field) => Ok(field),
                    None => Err(Source::Missing(
                        *data_type,
                        scan.missing.get(pos).cloned().flatten(),
                    )),
                },
            });
        }
        for field in wanted.iter().flatten() {
            fields.push(*field);
        }
        let drop_tombstones = !scan.include_deleted && run.meta.deleted > 0;
        if drop_tombstones {
            fields.push(2);
        }
        fields.sort_unstable();
        fields.dedup();
        let at = |field: usize| fields.binary_search(&field).expect("listed");
        let sources = wanted
            .into_iter()
            .map(|w| match w {
                Ok(field) => Source::Read(at(field)),
                Err(missing) => missing,
            })
            .collect();
        let tombstones = drop_tombstones.then(|| at(2));
        let rows = run
            .file
            .range_scan(start, &run.until, &fields, batch_rows)?;
        Ok(Self {
            rows,
            sources,
            tombstones,
            schema: Arc::clone(&scan.schema),
            pending: None,
            until: run.until,
            rows_out: 0,
        })
    }

    /// Up to `want` more rows of the run; `None` once it is done.
    pub(super) fn next(&mut self, want: usize) -> CoreResult<Option<RecordBatch>> {
        loop {
            if let Some(batch) = self.pending.take() {
                if batch.num_rows() > want {
                    self.pending = Some(batch.slice(want, batch.num_rows() - want));
                    self.rows_out += want;
                    return Ok(Some(batch.slice(0, want)));
                }
                self.rows_out += batch.num_rows();
                return Ok(Some(batch));
            }
            let Some(read) = self.rows.next_batch()? else {
                return Ok(None);
            };
            let read = match self.tombstones {
                Some(at) => {
                    let deleted = read
                        .column(at)
                        .as_any()
                        .downcast_ref::<BooleanArray>()
                        .ok_or_else(|| {
                            CoreError::Internal("segment _deleted is not boolean".into())
                        })?;
                    if deleted.true_count() == 0 {
                        read
                    } else {
                        filter_record_batch(&read, &not(deleted).map_err(arrow)?).map_err(arrow)?
                    }
                }
                None => read,
            };
            if read.num_rows() == 0 {
                continue;
            }
            self.pending = Some(self.output(&read)?);
        }
    }

    /// The read rows as the scan's output columns.
    fn output(&self, read: &RecordBatch) -> CoreResult<RecordBatch> {
        let rows = read.num_rows();
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.sources.len());
        for (source, field) in self.sources.iter().zip(self.schema.fields()) {
            arrays.push(match source {
                Source::Read(at) => {
                    let array = read.column(*at);
                    if array.data_type() == field.data_type() {
                        Arc::clone(array)
                    } else {
                        // a column widened since the segment was written
                        cast(array.as_ref(), field.data_type()).map_err(arrow)?
                    }
                }
                Source::Missing(data_type, value) => {
                    constant_array(*data_type, value.as_ref(), rows)?
                }
            });
        }
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        RecordBatch::try_new_with_options(Arc::clone(&self.schema), arrays, &options)
            .map_err(|e| CoreError::Internal(format!("building a batch: {e}")))
    }
}

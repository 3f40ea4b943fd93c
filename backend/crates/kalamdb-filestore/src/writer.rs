//! Writing one segment: rows arrive in key order, in batches, and stream
//! into a Parquet multipart upload; at most one row group is buffered.

use crate::manifest::{SegmentMeta, hex};
use crate::stats::StatsBuilder;
use crate::storage::Storage;
use crate::{
    COLUMN_ID_META, DELETED_FIELD, FileStoreError, FileStoreResult, KEY_FIELD, META_FIRST_KEYS,
    META_FORMAT, META_SCHEMA_VERSION, PAGE_ROWS, ROW_GROUP_ROWS, SEGMENT_FORMAT_VERSION, SEQ_FIELD,
};
use datafusion::arrow::array::{ArrayRef, BinaryArray, BooleanArray, Int64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::AsyncArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::metadata::KeyValue;
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::parquet::schema::types::ColumnPath;
use object_store::buffered::BufWriter;
use std::collections::HashMap;
use std::sync::Arc;

/// A table column as a segment stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentColumn {
    pub id: u32,
    pub name: String,
    pub data_type: DataType,
}

/// The largest dictionary page a column chunk gets.
const DICTIONARY_BYTES: usize = 16 * 1024;

pub struct SegmentWriter {
    writer: AsyncArrowWriter<BufWriter>,
    schema: SchemaRef,
    storage: Storage,
    meta: SegmentMeta,
    /// Rows in the row group being written.
    in_group: usize,
    first_keys: Vec<Vec<u8>>,
    /// One per column, in order.
    stats: Vec<StatsBuilder>,
}

impl SegmentWriter {
    /// The Arrow schema of a segment of `columns`.
    pub fn schema(columns: &[SegmentColumn]) -> SchemaRef {
        let mut fields = vec![
            Field::new(KEY_FIELD, DataType::Binary, false),
            Field::new(SEQ_FIELD, DataType::Int64, false),
            Field::new(DELETED_FIELD, DataType::Boolean, false),
        ];
        for column in columns {
            fields.push(
                Field::new(&column.name, column.data_type.clone(), true).with_metadata(
                    HashMap::from([(COLUMN_ID_META.to_string(), column.id.to_string())]),
                ),
            );
        }
        Arc::new(Schema::new(fields))
    }

    /// Starts segment `id` at `path` (which must not exist) on `storage`.
    pub fn create(
        storage: &Storage,
        path: String,
        id: u64,
        schema_version: u32,
        columns: &[SegmentColumn],
        created_at_ms: i64,
    ) -> FileStoreResult<Self> {
        let schema = Self::schema(columns);
        let props = WriterProperties::builder()
            // LZ4: a point read decompresses one page per column, and
            // ZSTD's per-page set-up cost more than the page itself
            .set_compression(Compression::LZ4_RAW)
            .set_max_row_group_row_count(None)
            .set_max_row_group_bytes(None)
            .set_data_page_row_count_limit(PAGE_ROWS)
            .set_write_batch_size(PAGE_ROWS)
            // a point read decodes each column's dictionary page with the
            // one page it wants: keys and versions are unique (a dictionary
            // is pure cost), and any other column falls back to plain
            // pages once its dictionary passes 16 KiB
            .set_dictionary_page_size_limit(DICTIONARY_BYTES)
            .set_column_dictionary_enabled(ColumnPath::from(KEY_FIELD), false)
            .set_column_dictionary_enabled(ColumnPath::from(SEQ_FIELD), false)
            .set_column_bloom_filter_enabled(ColumnPath::from(KEY_FIELD), true)
            .set_column_bloom_filter_fpp(ColumnPath::from(KEY_FIELD), 0.01)
            .build();
        let object = BufWriter::new(
            Arc::clone(storage.object_store()),
            Storage::object_path(&path)?,
        );
        let writer = AsyncArrowWriter::try_new(object, Arc::clone(&schema), Some(props))?;
        Ok(Self {
            writer,
            schema,
            storage: storage.clone(),
            meta: SegmentMeta {
                id,
                storage: storage.id().to_string(),
                path,
                rows: 0,
                bytes: 0,
                deleted: 0,
                min_seq: i64::MAX,
                max_seq: i64::MIN,
                min_key: Vec::new(),
                max_key: Vec::new(),
                schema_version,
                created_at_ms,
                purged_below: 0,
                columns: Vec::new(),
            },
            in_group: 0,
            first_keys: Vec::new(),
            stats: columns.iter().map(|c| StatsBuilder::new(c.id)).collect(),
        })
    }

    pub fn rows(&self) -> u64 {
        self.meta.rows
    }

    /// The id of the segment being written.
    pub fn id(&self) -> u64 {
        self.meta.id
    }

    /// Writes a copy of the local segment file `from` as segment `id` at
    /// `path` on `storage`, each storage key mapped by `rekey` (which must
    /// keep their order): same rows, same ordinals, same versions. Used by
    /// RESTORE when a table comes back under another id.
    pub async fn rewrite(
        from: &std::path::Path,
        storage: &Storage,
        path: String,
        id: u64,
        like: &SegmentMeta,
        rekey: impl Fn(&[u8]) -> Vec<u8>,
    ) -> FileStoreResult<SegmentMeta> {
        let source = crate::SegmentFile::open(like.id, from, None)?;
        let mut writer = Self::create(
            storage,
            path,
            id,
            like.schema_version,
            &source.table_columns(),
            like.created_at_ms,
        )?;
        let invalid = |what: &str| FileStoreError::Invalid(format!("segment copy: {what}"));
        for group in 0..source.group_count() {
            let batch = source.read_group(group)?;
            let keys = batch
                .column(0)
                .as_any()
                .downcast_ref::<BinaryArray>()
                .ok_or_else(|| invalid("_key is not binary"))?;
            let keys: Vec<Vec<u8>> = keys.iter().map(|k| rekey(k.unwrap_or_default())).collect();
            let seqs = batch
                .column(1)
                .as_any()
                .downcast_ref::<Int64Array>()
                .ok_or_else(|| invalid("_seq is not Int64"))?;
            let deleted = batch
                .column(2)
                .as_any()
                .downcast_ref::<BooleanArray>()
                .ok_or_else(|| invalid("_deleted is not Boolean"))?;
            let seqs: Vec<i64> = seqs.values().to_vec();
            let deleted: Vec<bool> = (0..deleted.len()).map(|i| deleted.value(i)).collect();
            writer
                .write(&keys, &seqs, &deleted, batch.columns()[3..].to_vec())
                .await?;
        }
        let mut meta = writer.finish().await?;
        meta.purged_below = like.purged_below;
        Ok(meta)
    }

    /// Appends rows: their storage keys (strictly increasing, also across
    /// calls), versions, tombstone flags and the table columns' values.
    pub async fn write(
        &mut self,
        keys: &[Vec<u8>],
        seqs: &[i64],
        deleted: &[bool],
        columns: Vec<ArrayRef>,
    ) -> FileStoreResult<()> {
        let n = keys.len();
        if seqs.len() != n || deleted.len() != n || columns.iter().any(|c| c.len() != n) {
            return Err(FileStoreError::Invalid(
                "segment rows: columns of different lengths".into(),
            ));
        }
        if n == 0 {
            return Ok(());
        }
        let mut previous = (self.meta.rows > 0).then_some(self.meta.max_key.as_slice());
        for key in keys {
            if previous.is_some_and(|p| p >= key.as_slice()) {
                return Err(FileStoreError::Invalid(
                    "segment rows must arrive in strictly increasing key order".into(),
                ));
            }
            previous = Some(key);
        }
        for (stats, column) in self.stats.iter_mut().zip(&columns) {
            stats.update(column);
        }
        let mut arrays: Vec<ArrayRef> = vec![
            Arc::new(BinaryArray::from_iter_values(keys.iter())),
            Arc::new(Int64Array::from(seqs.to_vec())),
            Arc::new(BooleanArray::from(deleted.to_vec())),
        ];
        arrays.extend(columns);
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), arrays)?;
        let mut offset = 0;
        while offset < n {
            if self.in_group == 0 {
                self.first_keys.push(keys[offset].clone());
            }
            let take = (ROW_GROUP_ROWS - self.in_group).min(n - offset);
            self.writer.write(&batch.slice(offset, take)).await?;
            offset += take;
            self.in_group += take;
            if self.in_group == ROW_GROUP_ROWS {
                self.writer.flush().await?;
                self.in_group = 0;
            }
        }
        if self.meta.rows == 0 {
            self.meta.min_key = keys[0].clone();
        }
        self.meta.max_key = keys[n - 1].clone();
        self.meta.rows += n as u64;
        self.meta.deleted += deleted.iter().filter(|d| **d).count() as u64;
        for &seq in seqs {
            self.meta.min_seq = self.meta.min_seq.min(seq);
            self.meta.max_seq = self.meta.max_seq.max(seq);
        }
        Ok(())
    }

    /// Completes the upload, makes it durable and describes the segment.
    pub async fn finish(mut self) -> FileStoreResult<SegmentMeta> {
        let first_keys: Vec<String> = self.first_keys.iter().map(|k| hex(k)).collect();
        for (key, value) in [
            (META_FORMAT, SEGMENT_FORMAT_VERSION.to_string()),
            (META_SCHEMA_VERSION, self.meta.schema_version.to_string()),
            (
                META_FIRST_KEYS,
                serde_json::to_string(&first_keys).expect("strings serialise"),
            ),
        ] {
            self.writer
                .append_key_value_metadata(KeyValue::new(key.to_string(), value));
        }
        self.meta.columns = std::mem::take(&mut self.stats)
            .into_iter()
            .map(StatsBuilder::finish)
            .collect();
        self.writer.close().await?;
        self.storage.sync(&self.meta.path)?;
        self.meta.bytes = self.storage.size(&self.meta.path).await?;
        Ok(self.meta)
    }
}

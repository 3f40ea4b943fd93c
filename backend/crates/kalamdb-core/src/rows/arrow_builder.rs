//! Decodes stored rows straight into Arrow builders: the hot path of every
//! scan. Values are read borrowed from RocksDB's buffers; only the projected
//! columns are built.

use crate::error::{CoreError, CoreResult};
use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder,
    FixedSizeListBuilder, Float32Builder, Float64Builder, Int16Builder, Int32Builder, Int64Builder,
    StringBuilder, Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use kalamdb_commons::{KalamDataType, Value};
use kalamdb_store::row::{RowView, ValueRef};
use std::sync::Arc;

/// What one output column holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OutputColumn {
    Declared {
        column_id: u32,
        data_type: KalamDataType,
    },
    Seq,
    Deleted,
}

impl OutputColumn {
    /// The output column of a declared column.
    pub fn declared(column: &kalamdb_commons::ColumnDefinition) -> Self {
        OutputColumn::Declared {
            column_id: column.column_id,
            data_type: column.data_type,
        }
    }
}

enum ColumnBuilder {
    Boolean(BooleanBuilder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Decimal(Decimal128Builder),
    Text(StringBuilder),
    Bytes(BinaryBuilder),
    Date(Date32Builder),
    Time(Time64MicrosecondBuilder),
    Timestamp(TimestampMicrosecondBuilder),
    Embedding(FixedSizeListBuilder<Float32Builder>),
}

impl ColumnBuilder {
    fn new(data_type: KalamDataType, capacity: usize) -> CoreResult<Self> {
        use KalamDataType as T;
        Ok(match data_type {
            T::Boolean => Self::Boolean(BooleanBuilder::with_capacity(capacity)),
            T::SmallInt => Self::Int16(Int16Builder::with_capacity(capacity)),
            T::Int => Self::Int32(Int32Builder::with_capacity(capacity)),
            T::BigInt => Self::Int64(Int64Builder::with_capacity(capacity)),
            T::Float => Self::Float32(Float32Builder::with_capacity(capacity)),
            T::Double => Self::Float64(Float64Builder::with_capacity(capacity)),
            T::Decimal { precision, scale } => Self::Decimal(
                Decimal128Builder::with_capacity(capacity)
                    .with_precision_and_scale(precision, scale)
                    .map_err(|e| CoreError::Internal(e.to_string()))?,
            ),
            T::Text | T::Json | T::Uuid => {
                Self::Text(StringBuilder::with_capacity(capacity, capacity * 16))
            }
            T::Bytes => Self::Bytes(BinaryBuilder::with_capacity(capacity, capacity * 16)),
            T::Date => Self::Date(Date32Builder::with_capacity(capacity)),
            T::Time => Self::Time(Time64MicrosecondBuilder::with_capacity(capacity)),
            T::Timestamp | T::DateTime => {
                Self::Timestamp(TimestampMicrosecondBuilder::with_capacity(capacity))
            }
            T::Embedding { dimensions } => Self::Embedding(FixedSizeListBuilder::with_capacity(
                Float32Builder::with_capacity(capacity * dimensions as usize),
                dimensions as i32,
                capacity,
            )),
        })
    }

    fn append_null(&mut self) {
        match self {
            Self::Boolean(b) => b.append_null(),
            Self::Int16(b) => b.append_null(),
            Self::Int32(b) => b.append_null(),
            Self::Int64(b) => b.append_null(),
            Self::Float32(b) => b.append_null(),
            Self::Float64(b) => b.append_null(),
            Self::Decimal(b) => b.append_null(),
            Self::Text(b) => b.append_null(),
            Self::Bytes(b) => b.append_null(),
            Self::Date(b) => b.append_null(),
            Self::Time(b) => b.append_null(),
            Self::Timestamp(b) => b.append_null(),
            Self::Embedding(b) => {
                let n = b.value_length() as usize;
                for _ in 0..n {
                    b.values().append_null();
                }
                b.append(false);
            }
        }
    }

    /// Appends a stored value, widening it when the column's type was widened
    /// after the row was written. A value that cannot be read as the column's
    /// type reads as NULL.
    fn append(&mut self, value: ValueRef<'_>) {
        match (self, value) {
            (Self::Boolean(b), ValueRef::Boolean(v)) => b.append_value(v),
            (Self::Int16(b), ValueRef::Int16(v)) => b.append_value(v),
            (Self::Int32(b), ValueRef::Int32(v)) => b.append_value(v),
            (Self::Int32(b), ValueRef::Int16(v)) => b.append_value(v.into()),
            (Self::Int64(b), ValueRef::Int64(v)) => b.append_value(v),
            (Self::Int64(b), ValueRef::Int32(v)) => b.append_value(v.into()),
            (Self::Int64(b), ValueRef::Int16(v)) => b.append_value(v.into()),
            (Self::Float32(b), ValueRef::Float32(v)) => b.append_value(v),
            (Self::Float64(b), ValueRef::Float64(v)) => b.append_value(v),
            (Self::Float64(b), ValueRef::Float32(v)) => b.append_value(v.into()),
            (Self::Float64(b), ValueRef::Int32(v)) => b.append_value(v.into()),
            (Self::Decimal(b), ValueRef::Decimal128(v)) => b.append_value(v),
            (Self::Text(b), ValueRef::Text(v)) => b.append_value(v),
            (Self::Bytes(b), ValueRef::Bytes(v)) => b.append_value(v),
            (Self::Date(b), ValueRef::Date32(v)) => b.append_value(v),
            (Self::Time(b), ValueRef::Time64Micros(v)) => b.append_value(v),
            (Self::Timestamp(b), ValueRef::TimestampMicros(v)) => b.append_value(v),
            (Self::Embedding(b), ValueRef::Embedding(raw))
                if raw.len() == 4 * b.value_length() as usize =>
            {
                for c in raw.chunks_exact(4) {
                    b.values()
                        .append_value(f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
                }
                b.append(true);
            }
            (builder, _) => builder.append_null(),
        }
    }

    fn append_owned(&mut self, value: &Value) {
        let raw: Vec<u8>;
        let r = match value {
            Value::Null => return self.append_null(),
            Value::Boolean(v) => ValueRef::Boolean(*v),
            Value::Int16(v) => ValueRef::Int16(*v),
            Value::Int32(v) => ValueRef::Int32(*v),
            Value::Int64(v) => ValueRef::Int64(*v),
            Value::Float32(v) => ValueRef::Float32(*v),
            Value::Float64(v) => ValueRef::Float64(*v),
            Value::Decimal128(v) => ValueRef::Decimal128(*v),
            Value::Text(v) => ValueRef::Text(v),
            Value::Bytes(v) => ValueRef::Bytes(v),
            Value::Date32(v) => ValueRef::Date32(*v),
            Value::Time64Micros(v) => ValueRef::Time64Micros(*v),
            Value::TimestampMicros(v) => ValueRef::TimestampMicros(*v),
            Value::Embedding(v) => {
                raw = v.iter().flat_map(|f| f.to_le_bytes()).collect();
                ValueRef::Embedding(&raw)
            }
        };
        self.append(r);
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Self::Boolean(b) => Arc::new(b.finish()),
            Self::Int16(b) => Arc::new(b.finish()),
            Self::Int32(b) => Arc::new(b.finish()),
            Self::Int64(b) => Arc::new(b.finish()),
            Self::Float32(b) => Arc::new(b.finish()),
            Self::Float64(b) => Arc::new(b.finish()),
            Self::Decimal(b) => Arc::new(b.finish()),
            Self::Text(b) => Arc::new(b.finish()),
            Self::Bytes(b) => Arc::new(b.finish()),
            Self::Date(b) => Arc::new(b.finish()),
            Self::Time(b) => Arc::new(b.finish()),
            Self::Timestamp(b) => Arc::new(b.finish()),
            Self::Embedding(b) => Arc::new(b.finish()),
        }
    }
}

/// `rows` copies of `value` (NULL for `None`) as an array of `data_type`:
/// what rows that lack a column read as.
pub fn constant_array(
    data_type: KalamDataType,
    value: Option<&Value>,
    rows: usize,
) -> CoreResult<ArrayRef> {
    let mut builder = ColumnBuilder::new(data_type, rows)?;
    for _ in 0..rows {
        match value {
            Some(value) => builder.append_owned(value),
            None => builder.append_null(),
        }
    }
    Ok(builder.finish())
}

/// Builds one RecordBatch from stored rows.
pub struct BatchBuilder {
    schema: SchemaRef,
    columns: Vec<OutputColumn>,
    builders: Vec<ColumnBuilder>,
    /// For each column id, the output position it fills (if projected).
    position_by_id: Vec<Option<usize>>,
    /// How many output columns are declared columns (read from the row).
    declared: usize,
    filled: Vec<bool>,
    /// Per output column: what a row without the column reads as.
    missing: Vec<Option<Value>>,
    rows: usize,
}

impl BatchBuilder {
    pub fn new(schema: SchemaRef, columns: Vec<OutputColumn>, capacity: usize) -> CoreResult<Self> {
        let mut builders = Vec::with_capacity(columns.len());
        let mut position_by_id = Vec::new();
        for (pos, column) in columns.iter().enumerate() {
            let data_type = match column {
                OutputColumn::Declared {
                    column_id,
                    data_type,
                } => {
                    let id = *column_id as usize;
                    if position_by_id.len() <= id {
                        position_by_id.resize(id + 1, None);
                    }
                    position_by_id[id] = Some(pos);
                    *data_type
                }
                OutputColumn::Seq => KalamDataType::BigInt,
                OutputColumn::Deleted => KalamDataType::Boolean,
            };
            builders.push(ColumnBuilder::new(data_type, capacity)?);
        }
        let declared = position_by_id.iter().flatten().count();
        Ok(Self {
            declared,
            missing: vec![None; columns.len()],
            filled: vec![false; columns.len()],
            schema,
            columns,
            builders,
            position_by_id,
            rows: 0,
        })
    }

    /// Values for rows that lack a column (written before it was added).
    pub fn with_missing(mut self, missing: Vec<Option<Value>>) -> Self {
        if missing.len() == self.columns.len() {
            self.missing = missing;
        }
        self
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    pub fn push(&mut self, row: &RowView<'_>) -> CoreResult<()> {
        self.filled.fill(false);
        // only the projected columns are decoded, and reading stops once
        // they are all found (`count(*)` decodes none)
        let mut found = 0;
        let mut columns = row.columns();
        let by_id = &self.position_by_id;
        while found < self.declared {
            let Some(column) =
                columns.next_where(|id| by_id.get(id as usize).is_some_and(Option::is_some))
            else {
                break;
            };
            let (id, value) = column?;
            if let Some(Some(pos)) = by_id.get(id as usize)
                && !self.filled[*pos]
            {
                self.builders[*pos].append(value);
                self.filled[*pos] = true;
                found += 1;
            }
        }
        for (pos, column) in self.columns.iter().enumerate() {
            if self.filled[pos] {
                continue;
            }
            match column {
                OutputColumn::Seq => self.builders[pos].append(ValueRef::Int64(row.seq)),
                OutputColumn::Deleted => self.builders[pos].append(ValueRef::Boolean(row.deleted)),
                OutputColumn::Declared { .. } => match &self.missing[pos] {
                    Some(value) => self.builders[pos].append_owned(value),
                    None => self.builders[pos].append_null(),
                },
            }
        }
        self.rows += 1;
        Ok(())
    }

    /// Takes the rows pushed so far as a batch and starts over.
    pub fn finish(&mut self) -> CoreResult<RecordBatch> {
        let arrays: Vec<ArrayRef> = self
            .builders
            .iter_mut()
            .map(ColumnBuilder::finish)
            .collect();
        let rows = std::mem::take(&mut self.rows);
        let options =
            datafusion::arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(rows));
        RecordBatch::try_new_with_options(Arc::clone(&self.schema), arrays, &options)
            .map_err(|e| CoreError::Internal(format!("building a batch: {e}")))
    }
}

//! Compact binary row encoding (format version 1).
//!
//! ```text
//! u8      format version (1)
//! varint  schema version the row was written under
//! i64 LE  _seq
//! u8      flags (bit 0: _deleted)
//! varint  number of non-NULL columns
//! repeated: varint column_id, u8 tag, payload
//! ```
//! NULL columns are absent. Columns are addressed by id, so a row written
//! under an older schema version reads under a newer one (added columns are
//! absent, dropped ones are skipped by the reader).
//!
//! A **cold stub** ([`encode_cold_stub`]) says where a row that moved to the
//! cold tier is: the same header with flags bit 1 set, no columns, then
//! `u64 LE` segment id and `u64 LE` row ordinal in that segment. It decodes
//! as a row without columns, so whoever only needs `_seq` and `_deleted`
//! reads it like any row; [`RowView::cold`] tells the rest where the values
//! are.

use crate::error::{StoreError, StoreResult};
use kalamdb_commons::Value;

pub const ROW_FORMAT_VERSION: u8 = 1;

const TAG_BOOL: u8 = 1;
const TAG_I16: u8 = 2;
const TAG_I32: u8 = 3;
const TAG_I64: u8 = 4;
const TAG_F32: u8 = 5;
const TAG_F64: u8 = 6;
const TAG_DEC128: u8 = 7;
const TAG_TEXT: u8 = 8;
const TAG_BYTES: u8 = 9;
const TAG_DATE32: u8 = 10;
const TAG_TIME64: u8 = 11;
const TAG_TIMESTAMP: u8 = 12;
const TAG_EMBEDDING: u8 = 13;

/// A stored value, borrowing strings and bytes from the encoded row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    Boolean(bool),
    Int16(i16),
    Int32(i32),
    Int64(i64),
    Float32(f32),
    Float64(f64),
    Decimal128(i128),
    Text(&'a str),
    Bytes(&'a [u8]),
    Date32(i32),
    Time64Micros(i64),
    TimestampMicros(i64),
    /// Little-endian f32s.
    Embedding(&'a [u8]),
}

impl ValueRef<'_> {
    pub fn to_value(self) -> Value {
        match self {
            ValueRef::Boolean(v) => Value::Boolean(v),
            ValueRef::Int16(v) => Value::Int16(v),
            ValueRef::Int32(v) => Value::Int32(v),
            ValueRef::Int64(v) => Value::Int64(v),
            ValueRef::Float32(v) => Value::Float32(v),
            ValueRef::Float64(v) => Value::Float64(v),
            ValueRef::Decimal128(v) => Value::Decimal128(v),
            ValueRef::Text(v) => Value::Text(v.to_string()),
            ValueRef::Bytes(v) => Value::Bytes(v.to_vec()),
            ValueRef::Date32(v) => Value::Date32(v),
            ValueRef::Time64Micros(v) => Value::Time64Micros(v),
            ValueRef::TimestampMicros(v) => Value::TimestampMicros(v),
            ValueRef::Embedding(raw) => Value::Embedding(
                raw.chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
        }
    }
}

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Encodes a row. `columns` pairs column ids with values; NULLs are skipped.
pub fn encode_row<'v>(
    schema_version: u32,
    seq: i64,
    deleted: bool,
    columns: impl IntoIterator<Item = (u32, &'v Value)> + Clone,
) -> Vec<u8> {
    let present = columns
        .clone()
        .into_iter()
        .filter(|(_, v)| !v.is_null())
        .count();
    let mut buf = Vec::with_capacity(16 + present * 10);
    buf.push(ROW_FORMAT_VERSION);
    put_varint(&mut buf, u64::from(schema_version));
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.push(u8::from(deleted));
    put_varint(&mut buf, present as u64);
    for (id, value) in columns {
        if value.is_null() {
            continue;
        }
        put_varint(&mut buf, u64::from(id));
        match value {
            Value::Null => {}
            Value::Boolean(v) => buf.extend_from_slice(&[TAG_BOOL, u8::from(*v)]),
            Value::Int16(v) => {
                buf.push(TAG_I16);
                buf.extend_from_slice(&v.to_le_bytes());
            }
            Value::Int32(v) => {
                buf.push(TAG_I32);
                buf.extend_from_slice(&v.to_le_bytes());
            }
            Value::Int64(v) => {
                buf.push(TAG_I64);
                buf.extend_from_slice(&v.to_le_bytes());
            }
            Value::Float32(v) => {
                buf.push(TAG_F32);
                buf.extend_from_slice(&v.to_le_bytes());
            }
            Value::Float64(v) => {
                buf.push(TAG_F64);
                buf.extend_from_slice(&v.to_le_bytes());
            }
            Value::Decimal128(v) => {
                buf.push(TAG_DEC128);
                buf.extend_from_slice(&v.to_le_bytes());
            }
            Value::Text(v) => {
                buf.push(TAG_TEXT);
                put_varint(&mut buf, v.len() as u64);
                buf.extend_from_slice(v.as_bytes());
            }
            Value::Bytes(v) => {
                buf.push(TAG_BYTES);
                put_varint(&mut buf, v.len() as u64);
                buf.extend_from_slice(v);
            }
            Value::Date32(v) => {
                buf.push(TAG_DATE32);
                buf.extend_from_slice(&v.to_le_bytes());
            }
            Value::Time64Micros(v) => {
                buf.push(TAG_TIME64);
                buf.extend_from_slice(&v.to_le_bytes());
            }
            Value::TimestampMicros(v) => {
                buf.push(TAG_TIMESTAMP);
                buf.extend_from_slice(&v.to_le_bytes());
            }
            Value::Embedding(v) => {
                buf.push(TAG_EMBEDDING);
                put_varint(&mut buf, v.len() as u64);
                for f in v {
                    buf.extend_from_slice(&f.to_le_bytes());
                }
            }
        }
    }
    buf
}

const FLAG_DELETED: u8 = 1;
const FLAG_COLD: u8 = 2;

/// Encodes where the version `seq` of a row lives in the cold tier: row
/// `ordinal` of segment `segment`.
pub fn encode_cold_stub(
    schema_version: u32,
    seq: i64,
    deleted: bool,
    segment: u64,
    ordinal: u64,
) -> Vec<u8> {
    let mut buf = Vec::with_capacity(32);
    buf.push(ROW_FORMAT_VERSION);
    put_varint(&mut buf, u64::from(schema_version));
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.push(if deleted {
        FLAG_DELETED | FLAG_COLD
    } else {
        FLAG_COLD
    });
    put_varint(&mut buf, 0);
    buf.extend_from_slice(&segment.to_le_bytes());
    buf.extend_from_slice(&ordinal.to_le_bytes());
    buf
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> StoreResult<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.buf.len())
            .ok_or_else(|| StoreError::Corrupt("row ends early".into()))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> StoreResult<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> StoreResult<u8> {
        Ok(self.take(1)?[0])
    }

    fn varint(&mut self) -> StoreResult<u64> {
        let mut out = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            out |= u64::from(b & 0x7F) << shift;
            if b < 0x80 {
                return Ok(out);
            }
        }
        Err(StoreError::Corrupt("varint too long".into()))
    }
}

/// A decoded row header plus a cursor over its columns.
#[derive(Debug, Clone, Copy)]
pub struct RowView<'a> {
    pub schema_version: u32,
    pub seq: i64,
    pub deleted: bool,
    cold: bool,
    column_count: usize,
    columns: &'a [u8],
}

impl<'a> RowView<'a> {
    pub fn decode(bytes: &'a [u8]) -> StoreResult<Self> {
        let mut r = Reader { buf: bytes, pos: 0 };
        let version = r.u8()?;
        if version != ROW_FORMAT_VERSION {
            return Err(StoreError::UnsupportedFormat {
                found: version,
                supported: ROW_FORMAT_VERSION,
            });
        }
        let schema_version = u32::try_from(r.varint()?)
            .map_err(|_| StoreError::Corrupt("schema version out of range".into()))?;
        let seq = i64::from_le_bytes(r.array()?);
        let flags = r.u8()?;
        let column_count = r.varint()? as usize;
        let cold = flags & FLAG_COLD != 0;
        if cold && (column_count != 0 || bytes.len() - r.pos != 16) {
            return Err(StoreError::Corrupt("malformed cold stub".into()));
        }
        Ok(Self {
            schema_version,
            seq,
            deleted: flags & FLAG_DELETED != 0,
            cold,
            column_count,
            columns: &bytes[r.pos..],
        })
    }

    /// Where the values of a cold stub are: `(segment id, row ordinal)`;
    /// `None` for a row that holds its values.
    pub fn cold(&self) -> Option<(u64, u64)> {
        self.cold.then(|| {
            let word = |at: usize| {
                u64::from_le_bytes(self.columns[at..at + 8].try_into().expect("checked length"))
            };
            (word(0), word(8))
        })
    }

    /// The non-NULL columns as `(column_id, value)`, in stored order.
    pub fn columns(&self) -> ColumnIter<'a> {
        ColumnIter {
            reader: Reader {
                buf: self.columns,
                pos: 0,
            },
            remaining: self.column_count,
        }
    }
}

pub struct ColumnIter<'a> {
    reader: Reader<'a>,
    remaining: usize,
}

impl<'a> ColumnIter<'a> {
    /// The next column whose id `wanted` accepts; the others are stepped
    /// over without being decoded.
    pub fn next_where(
        &mut self,
        wanted: impl Fn(u32) -> bool,
    ) -> Option<StoreResult<(u32, ValueRef<'a>)>> {
        while self.remaining > 0 {
            self.remaining -= 1;
            let item = self.read_id().and_then(|id| {
                if wanted(id) {
                    self.read_value().map(|v| Some((id, v)))
                } else {
                    self.skip_value().map(|()| None)
                }
            });
            match item {
                Ok(Some(column)) => return Some(Ok(column)),
                Ok(None) => {}
                Err(e) => {
                    self.remaining = 0;
                    return Some(Err(e));
                }
            }
        }
        None
    }

    fn read_id(&mut self) -> StoreResult<u32> {
        u32::try_from(self.reader.varint()?)
            .map_err(|_| StoreError::Corrupt("column id out of range".into()))
    }

    /// Steps over one value.
    fn skip_value(&mut self) -> StoreResult<()> {
        let r = &mut self.reader;
        let len = match r.u8()? {
            TAG_BOOL => 1,
            TAG_I16 => 2,
            TAG_I32 | TAG_F32 | TAG_DATE32 => 4,
            TAG_I64 | TAG_F64 | TAG_TIME64 | TAG_TIMESTAMP => 8,
            TAG_DEC128 => 16,
            TAG_TEXT | TAG_BYTES => r.varint()? as usize,
            TAG_EMBEDDING => (r.varint()? as usize)
                .checked_mul(4)
                .ok_or_else(|| StoreError::Corrupt("embedding too long".into()))?,
            tag => return Err(StoreError::Corrupt(format!("unknown value tag {tag}"))),
        };
        r.take(len).map(drop)
    }

    fn read_one(&mut self) -> StoreResult<(u32, ValueRef<'a>)> {
        let id = self.read_id()?;
        Ok((id, self.read_value()?))
    }

    fn read_value(&mut self) -> StoreResult<ValueRef<'a>> {
        let r = &mut self.reader;
        let value = match r.u8()? {
            TAG_BOOL => ValueRef::Boolean(r.u8()? != 0),
            TAG_I16 => ValueRef::Int16(i16::from_le_bytes(r.array()?)),
            TAG_I32 => ValueRef::Int32(i32::from_le_bytes(r.array()?)),
            TAG_I64 => ValueRef::Int64(i64::from_le_bytes(r.array()?)),
            TAG_F32 => ValueRef::Float32(f32::from_le_bytes(r.array()?)),
            TAG_F64 => ValueRef::Float64(f64::from_le_bytes(r.array()?)),
            TAG_DEC128 => ValueRef::Decimal128(i128::from_le_bytes(r.array()?)),
            TAG_TEXT => {
                let len = r.varint()? as usize;
                let raw = r.take(len)?;
                ValueRef::Text(
                    std::str::from_utf8(raw)
                        .map_err(|_| StoreError::Corrupt("text is not UTF-8".into()))?,
                )
            }
            TAG_BYTES => {
                let len = r.varint()? as usize;
                ValueRef::Bytes(r.take(len)?)
            }
            TAG_DATE32 => ValueRef::Date32(i32::from_le_bytes(r.array()?)),
            TAG_TIME64 => ValueRef::Time64Micros(i64::from_le_bytes(r.array()?)),
            TAG_TIMESTAMP => ValueRef::TimestampMicros(i64::from_le_bytes(r.array()?)),
            TAG_EMBEDDING => {
                let len = r.varint()? as usize;
                let bytes = len
                    .checked_mul(4)
                    .ok_or_else(|| StoreError::Corrupt("embedding too long".into()))?;
                ValueRef::Embedding(r.take(bytes)?)
            }
            tag => return Err(StoreError::Corrupt(format!("unknown value tag {tag}"))),
        };
        Ok(value)
    }
}

impl<'a> Iterator for ColumnIter<'a> {
    type Item = StoreResult<(u32, ValueRef<'a>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let item = self.read_one();
        if item.is_err() {
            self.remaining = 0;
        }
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn value_strategy() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Boolean),
            any::<i16>().prop_map(Value::Int16),
            any::<i32>().prop_map(Value::Int32),
            any::<i64>().prop_map(Value::Int64),
            any::<f32>()
                .prop_filter("nan", |f| !f.is_nan())
                .prop_map(Value::Float32),
            any::<f64>()
                .prop_filter("nan", |f| !f.is_nan())
                .prop_map(Value::Float64),
            any::<i128>().prop_map(Value::Decimal128),
            ".{0,40}".prop_map(Value::Text),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::Bytes),
            any::<i32>().prop_map(Value::Date32),
            any::<i64>().prop_map(Value::Time64Micros),
            any::<i64>().prop_map(Value::TimestampMicros),
            proptest::collection::vec(-1e6f32..1e6, 0..8).prop_map(Value::Embedding),
        ]
    }

    proptest! {
        #[test]
        fn rows_round_trip(
            version in 1u32..100_000,
            seq: i64,
            deleted: bool,
            values in proptest::collection::vec(value_strategy(), 0..12),
        ) {
            let cols: Vec<(u32, Value)> = values.into_iter().enumerate().map(|(i, v)| (i as u32 * 3 + 1, v)).collect();
            let bytes = encode_row(version, seq, deleted, cols.iter().map(|(i, v)| (*i, v)));
            let row = RowView::decode(&bytes).unwrap();
            prop_assert_eq!(row.schema_version, version);
            prop_assert_eq!(row.seq, seq);
            prop_assert_eq!(row.deleted, deleted);
            let decoded: Vec<(u32, Value)> = row.columns().map(|c| c.map(|(i, v)| (i, v.to_value()))).collect::<StoreResult<_>>().unwrap();
            let expected: Vec<(u32, Value)> = cols.into_iter().filter(|(_, v)| !v.is_null()).collect();
            prop_assert_eq!(&decoded, &expected);
            // stepping over the unwanted columns finds the same wanted ones
            let mut some = row.columns();
            let mut picked = Vec::new();
            while let Some(c) = some.next_where(|id| id % 2 == 0) {
                let (i, v) = c.unwrap();
                picked.push((i, v.to_value()));
            }
            let wanted: Vec<(u32, Value)> = expected.into_iter().filter(|(i, _)| i % 2 == 0).collect();
            prop_assert_eq!(picked, wanted);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(row) = RowView::decode(&bytes) {
                for c in row.columns() { let _ = c; }
                let mut skipping = row.columns();
                while skipping.next_where(|id| id == 3).is_some() {}
            }
        }
    }

    #[test]
    fn unknown_format_version_is_reported() {
        let mut bytes = encode_row(1, 1, false, std::iter::empty());
        bytes[0] = 9;
        assert!(matches!(
            RowView::decode(&bytes),
            Err(StoreError::UnsupportedFormat { found: 9, .. })
        ));
    }

    #[test]
    fn a_cold_stub_reads_as_a_row_without_columns_that_says_where_it_is() {
        let stub = encode_cold_stub(3, -7, true, u64::MAX - 1, 42);
        let row = RowView::decode(&stub).unwrap();
        assert_eq!((row.schema_version, row.seq, row.deleted), (3, -7, true));
        assert_eq!(row.cold(), Some((u64::MAX - 1, 42)));
        assert_eq!(row.columns().count(), 0);
        let live = encode_cold_stub(1, 5, false, 1, 0);
        assert!(!RowView::decode(&live).unwrap().deleted);
        let hot = encode_row(1, 5, false, [(1, &Value::Int64(1))]);
        assert_eq!(RowView::decode(&hot).unwrap().cold(), None);
        // a stub cut short is refused, not read past its end
        assert!(RowView::decode(&stub[..stub.len() - 1]).is_err());
    }
}

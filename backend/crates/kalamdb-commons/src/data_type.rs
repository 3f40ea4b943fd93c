//! KalamDB column types and their Arrow representation.
//!
//! Timestamps are stored as microseconds since the Unix epoch in UTC; a
//! `TIMESTAMP` column has no time zone attached and is read as UTC.

use datafusion::arrow::datatypes::{DataType, Field, TimeUnit};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum KalamDataType {
    Boolean,
    SmallInt,
    Int,
    BigInt,
    Float,
    Double,
    Decimal { precision: u8, scale: i8 },
    Text,
    Bytes,
    Json,
    Date,
    Time,
    Timestamp,
    DateTime,
    Uuid,
    Embedding { dimensions: u32 },
}

impl KalamDataType {
    /// The Arrow type a column of this type is read as.
    pub fn to_arrow(self) -> DataType {
        match self {
            KalamDataType::Boolean => DataType::Boolean,
            KalamDataType::SmallInt => DataType::Int16,
            KalamDataType::Int => DataType::Int32,
            KalamDataType::BigInt => DataType::Int64,
            KalamDataType::Float => DataType::Float32,
            KalamDataType::Double => DataType::Float64,
            KalamDataType::Decimal { precision, scale } => DataType::Decimal128(precision, scale),
            KalamDataType::Text | KalamDataType::Json | KalamDataType::Uuid => DataType::Utf8,
            KalamDataType::Bytes => DataType::Binary,
            KalamDataType::Date => DataType::Date32,
            KalamDataType::Time => DataType::Time64(TimeUnit::Microsecond),
            KalamDataType::Timestamp | KalamDataType::DateTime => {
                DataType::Timestamp(TimeUnit::Microsecond, None)
            }
            KalamDataType::Embedding { dimensions } => DataType::FixedSizeList(
                Arc::new(Field::new("item", DataType::Float32, true)),
                dimensions as i32,
            ),
        }
    }

    /// The name used in API responses (`schema[].data_type`).
    pub fn api_name(self) -> &'static str {
        match self {
            KalamDataType::Boolean => "Boolean",
            KalamDataType::SmallInt => "SmallInt",
            KalamDataType::Int => "Int",
            KalamDataType::BigInt => "BigInt",
            KalamDataType::Float => "Float",
            KalamDataType::Double => "Double",
            KalamDataType::Decimal { .. } => "Decimal",
            KalamDataType::Text => "Text",
            KalamDataType::Bytes => "Bytes",
            KalamDataType::Json => "Json",
            KalamDataType::Date => "Date",
            KalamDataType::Time => "Time",
            KalamDataType::Timestamp => "Timestamp",
            KalamDataType::DateTime => "DateTime",
            KalamDataType::Uuid => "Uuid",
            KalamDataType::Embedding { .. } => "Embedding",
        }
    }

    /// Whether values of this type may form a primary key.
    pub fn can_be_primary_key(self) -> bool {
        matches!(
            self,
            KalamDataType::SmallInt
                | KalamDataType::Int
                | KalamDataType::BigInt
                | KalamDataType::Text
                | KalamDataType::Uuid
                | KalamDataType::Bytes
                | KalamDataType::Date
                | KalamDataType::Timestamp
                | KalamDataType::DateTime
                | KalamDataType::Boolean
        )
    }
}

impl fmt::Display for KalamDataType {
    /// SQL spelling, as `DESCRIBE TABLE` shows it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KalamDataType::Decimal { precision, scale } => {
                write!(f, "DECIMAL({precision},{scale})")
            }
            KalamDataType::Embedding { dimensions } => write!(f, "EMBEDDING({dimensions})"),
            other => f.write_str(&other.api_name().to_ascii_uppercase()),
        }
    }
}

/// The API type name for an Arrow type produced by an expression.
pub fn api_name_for_arrow(data_type: &DataType) -> &'static str {
    match data_type {
        DataType::Null => "Null",
        DataType::Boolean => "Boolean",
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => "SmallInt",
        DataType::Int32 | DataType::UInt16 => "Int",
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => "BigInt",
        DataType::Float16 | DataType::Float32 => "Float",
        DataType::Float64 => "Double",
        DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => "Decimal",
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "Text",
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => "Bytes",
        DataType::Date32 | DataType::Date64 => "Date",
        DataType::Time32(_) | DataType::Time64(_) => "Time",
        DataType::Timestamp(..) => "Timestamp",
        DataType::Interval(_) | DataType::Duration(_) => "Interval",
        DataType::FixedSizeList(..) => "Embedding",
        DataType::List(_) | DataType::LargeList(_) | DataType::ListView(_) => "Array",
        DataType::Struct(_) => "Struct",
        DataType::Map(..) => "Map",
        DataType::Dictionary(_, value) => api_name_for_arrow(value),
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_maps_to_arrow_and_back_to_its_api_name() {
        let all = [
            KalamDataType::Boolean,
            KalamDataType::SmallInt,
            KalamDataType::Int,
            KalamDataType::BigInt,
            KalamDataType::Float,
            KalamDataType::Double,
            KalamDataType::Decimal {
                precision: 10,
                scale: 2,
            },
            KalamDataType::Text,
            KalamDataType::Bytes,
            KalamDataType::Date,
            KalamDataType::Time,
            KalamDataType::Timestamp,
            KalamDataType::Embedding { dimensions: 3 },
        ];
        for t in all {
            assert_eq!(api_name_for_arrow(&t.to_arrow()), t.api_name(), "{t:?}");
        }
    }
}

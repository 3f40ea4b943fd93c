//! Row values as written to storage. `Null` is never stored: an absent
//! column id in an encoded row reads as NULL.

use crate::data_type::KalamDataType;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Value {
    Null,
    Boolean(bool),
    Int16(i16),
    Int32(i32),
    Int64(i64),
    Float32(f32),
    Float64(f64),
    /// Unscaled value; precision and scale come from the column type.
    Decimal128(i128),
    Text(String),
    Bytes(Vec<u8>),
    /// Days since the Unix epoch.
    Date32(i32),
    /// Microseconds since midnight.
    Time64Micros(i64),
    /// Microseconds since the Unix epoch, UTC.
    TimestampMicros(i64),
    Embedding(Vec<f32>),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Whether this value has the representation `data_type` stores.
    pub fn fits(&self, data_type: KalamDataType) -> bool {
        use KalamDataType as T;
        matches!(
            (self, data_type),
            (Value::Null, _)
                | (Value::Boolean(_), T::Boolean)
                | (Value::Int16(_), T::SmallInt)
                | (Value::Int32(_), T::Int)
                | (Value::Int64(_), T::BigInt)
                | (Value::Float32(_), T::Float)
                | (Value::Float64(_), T::Double)
                | (Value::Decimal128(_), T::Decimal { .. })
                | (Value::Text(_), T::Text | T::Json | T::Uuid)
                | (Value::Bytes(_), T::Bytes)
                | (Value::Date32(_), T::Date)
                | (Value::Time64Micros(_), T::Time)
                | (Value::TimestampMicros(_), T::Timestamp | T::DateTime)
                | (Value::Embedding(_), T::Embedding { .. })
        )
    }
}

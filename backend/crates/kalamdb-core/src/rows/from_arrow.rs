//! Computed Arrow values (an UPDATE's `SET c = expr`) to stored values of a
//! column's type.
//!
//! Text results are read exactly like a quoted INSERT literal (so dates,
//! timestamps, JSON, UUIDs and bytes follow the same rules whichever way they
//! arrive); everything else is cast by Arrow to the column's type, failing
//! (never silently turning into NULL) when a value does not fit.

use super::coerce::{Literal, coerce};
use crate::error::{CoreError, CoreResult};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Date32Array, Decimal128Array,
    FixedSizeListArray, Float32Array, Float64Array, Int16Array, Int32Array, Int64Array,
    StringArray, Time64MicrosecondArray, TimestampMicrosecondArray,
};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use kalamdb_commons::{ColumnDefinition, KalamDataType, Value};

/// A computed column converted for `column`: one entry per row.
pub enum ColumnValues {
    /// Cast to the column's Arrow type; read with [`stored_value`].
    Cast(ArrayRef),
    /// Already converted row by row (text read as INSERT literals).
    Converted(Vec<Value>),
}

impl ColumnValues {
    pub fn get(&self, row: usize) -> CoreResult<Value> {
        match self {
            ColumnValues::Cast(array) => stored_value(array.as_ref(), row),
            ColumnValues::Converted(values) => Ok(values[row].clone()),
        }
    }
}

fn is_text(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// Converts a computed column for `column`.
pub fn convert_column(array: &ArrayRef, column: &ColumnDefinition) -> CoreResult<ColumnValues> {
    if is_text(array.data_type()) && column.data_type != KalamDataType::Text {
        let text = cast_with_options(array, &DataType::Utf8, &CastOptions::default())
            .map_err(|e| CoreError::Internal(e.to_string()))?;
        let text = text.as_string::<i32>();
        let values = (0..text.len())
            .map(|i| {
                if text.is_null(i) {
                    Ok(Value::Null)
                } else {
                    coerce(&Literal::Text(text.value(i).into()), column)
                }
            })
            .collect::<CoreResult<Vec<_>>>()?;
        return Ok(ColumnValues::Converted(values));
    }
    let target = column.data_type.to_arrow();
    let options = CastOptions {
        safe: false,
        ..CastOptions::default()
    };
    let cast = cast_with_options(array, &target, &options).map_err(|e| {
        CoreError::TypeMismatch(format!(
            "Column '{}' expects {}: {e}",
            column.name, column.data_type
        ))
    })?;
    Ok(ColumnValues::Cast(cast))
}

/// Reads row `row` of an array of one of the stored Arrow types.
pub fn stored_value(array: &dyn Array, row: usize) -> CoreResult<Value> {
    if array.is_null(row) {
        return Ok(Value::Null);
    }
    fn typed<T: 'static>(array: &dyn Array) -> CoreResult<&T> {
        array
            .as_any()
            .downcast_ref::<T>()
            .ok_or_else(|| CoreError::Internal("unexpected array type".into()))
    }
    Ok(match array.data_type() {
        DataType::Boolean => Value::Boolean(typed::<BooleanArray>(array)?.value(row)),
        DataType::Int16 => Value::Int16(typed::<Int16Array>(array)?.value(row)),
        DataType::Int32 => Value::Int32(typed::<Int32Array>(array)?.value(row)),
        DataType::Int64 => Value::Int64(typed::<Int64Array>(array)?.value(row)),
        DataType::Float32 => Value::Float32(typed::<Float32Array>(array)?.value(row)),
        DataType::Float64 => Value::Float64(typed::<Float64Array>(array)?.value(row)),
        DataType::Decimal128(_, _) => {
            Value::Decimal128(typed::<Decimal128Array>(array)?.value(row))
        }
        DataType::Utf8 => Value::Text(typed::<StringArray>(array)?.value(row).to_string()),
        DataType::Binary => Value::Bytes(typed::<BinaryArray>(array)?.value(row).to_vec()),
        DataType::Date32 => Value::Date32(typed::<Date32Array>(array)?.value(row)),
        DataType::Time64(TimeUnit::Microsecond) => {
            Value::Time64Micros(typed::<Time64MicrosecondArray>(array)?.value(row))
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            Value::TimestampMicros(typed::<TimestampMicrosecondArray>(array)?.value(row))
        }
        DataType::FixedSizeList(_, _) => {
            let list = typed::<FixedSizeListArray>(array)?.value(row);
            let items = typed::<Float32Array>(list.as_ref())?;
            if items.null_count() > 0 {
                return Err(CoreError::TypeMismatch(
                    "An embedding cannot contain NULL".into(),
                ));
            }
            Value::Embedding(items.values().to_vec())
        }
        other => {
            return Err(CoreError::Internal(format!(
                "no stored form for Arrow type {other}"
            )));
        }
    })
}

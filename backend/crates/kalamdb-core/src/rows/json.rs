//! Arrow batches to the API's JSON: positional rows, 64-bit integers as
//! strings (JavaScript-safe), timestamps as RFC 3339, bytes as base64, JSON
//! columns as JSON values.

use crate::schema::cached_table::{FLAGS_METADATA_KEY, TYPE_METADATA_KEY};
use base64::Engine;
use chrono::{DateTime, NaiveDate, NaiveTime, SecondsFormat};
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Date64Type, Decimal128Type, Field, Float16Type, Float32Type, Float64Type,
    Int8Type, Int16Type, Int32Type, Int64Type, Schema, Time32MillisecondType, Time32SecondType,
    Time64MicrosecondType, Time64NanosecondType, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use kalamdb_commons::data_type::api_name_for_arrow;
use serde::Serialize;
use serde_json::{Number, Value as Json};

/// One entry of a result's `schema`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnInfo {
    pub name: String,
    pub data_type: String,
    pub index: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
}

pub fn column_infos(schema: &Schema) -> Vec<ColumnInfo> {
    schema
        .fields()
        .iter()
        .enumerate()
        .map(|(index, field)| ColumnInfo {
            name: field.name().clone(),
            data_type: field
                .metadata()
                .get(TYPE_METADATA_KEY)
                .cloned()
                .unwrap_or_else(|| api_name_for_arrow(field.data_type()).to_string()),
            index,
            flags: field
                .metadata()
                .get(FLAGS_METADATA_KEY)
                .map(|f| f.split(',').map(str::to_string).collect())
                .unwrap_or_default(),
        })
        .collect()
}

fn is_json_field(field: &Field) -> bool {
    field.metadata().get(TYPE_METADATA_KEY).map(String::as_str) == Some("Json")
}

/// Appends the rows of `batch` to `out`.
pub fn append_rows(batch: &RecordBatch, out: &mut Vec<Vec<Json>>) {
    let schema = batch.schema();
    let json_columns: Vec<bool> = schema.fields().iter().map(|f| is_json_field(f)).collect();
    out.reserve(batch.num_rows());
    for row in 0..batch.num_rows() {
        out.push(
            batch
                .columns()
                .iter()
                .zip(&json_columns)
                .map(|(array, is_json)| {
                    let v = cell(array.as_ref(), row);
                    match (v, is_json) {
                        (Json::String(s), true) => {
                            serde_json::from_str(&s).unwrap_or(Json::String(s))
                        }
                        (v, _) => v,
                    }
                })
                .collect(),
        );
    }
}

fn float(v: f64) -> Json {
    match Number::from_f64(v) {
        Some(n) => Json::Number(n),
        None if v.is_nan() => Json::String("NaN".into()),
        None if v > 0.0 => Json::String("Infinity".into()),
        None => Json::String("-Infinity".into()),
    }
}

fn timestamp(value: i64, unit: TimeUnit, tz: Option<&str>) -> Json {
    let dt = match unit {
        TimeUnit::Second => DateTime::from_timestamp(value, 0),
        TimeUnit::Millisecond => DateTime::from_timestamp_millis(value),
        TimeUnit::Microsecond => DateTime::from_timestamp_micros(value),
        TimeUnit::Nanosecond => Some(DateTime::from_timestamp_nanos(value)),
    };
    match dt {
        Some(dt) => {
            let text = dt.to_rfc3339_opts(SecondsFormat::AutoSi, true);
            match tz {
                // Stored timestamps are UTC; a zone-less column prints without
                // a zone so it round-trips through INSERT unchanged.
                None => Json::String(text.trim_end_matches('Z').replacen('T', " ", 1)),
                Some(_) => Json::String(text),
            }
        }
        None => Json::Null,
    }
}

/// The JSON form of one value.
pub fn cell(array: &dyn Array, row: usize) -> Json {
    if array.is_null(row) {
        return Json::Null;
    }
    match array.data_type() {
        DataType::Null => Json::Null,
        DataType::Boolean => Json::Bool(array.as_boolean().value(row)),
        DataType::Int8 => Json::from(array.as_primitive::<Int8Type>().value(row)),
        DataType::Int16 => Json::from(array.as_primitive::<Int16Type>().value(row)),
        DataType::Int32 => Json::from(array.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => Json::String(array.as_primitive::<Int64Type>().value(row).to_string()),
        DataType::UInt8 => Json::from(array.as_primitive::<UInt8Type>().value(row)),
        DataType::UInt16 => Json::from(array.as_primitive::<UInt16Type>().value(row)),
        DataType::UInt32 => Json::from(array.as_primitive::<UInt32Type>().value(row)),
        DataType::UInt64 => Json::String(array.as_primitive::<UInt64Type>().value(row).to_string()),
        DataType::Float16 => float(array.as_primitive::<Float16Type>().value(row).to_f64()),
        DataType::Float32 => float(f64::from(array.as_primitive::<Float32Type>().value(row))),
        DataType::Float64 => float(array.as_primitive::<Float64Type>().value(row)),
        DataType::Decimal128(..) => {
            Json::String(array.as_primitive::<Decimal128Type>().value_as_string(row))
        }
        DataType::Utf8 => Json::String(array.as_string::<i32>().value(row).to_string()),
        DataType::LargeUtf8 => Json::String(array.as_string::<i64>().value(row).to_string()),
        DataType::Utf8View => Json::String(array.as_string_view().value(row).to_string()),
        DataType::Binary => base64_json(array.as_binary::<i32>().value(row)),
        DataType::LargeBinary => base64_json(array.as_binary::<i64>().value(row)),
        DataType::BinaryView => base64_json(array.as_binary_view().value(row)),
        DataType::FixedSizeBinary(_) => base64_json(array.as_fixed_size_binary().value(row)),
        DataType::Date32 => {
            let days = array.as_primitive::<Date32Type>().value(row);
            NaiveDate::from_epoch_days(days)
                .map(|d| Json::String(d.format("%Y-%m-%d").to_string()))
                .unwrap_or(Json::Null)
        }
        DataType::Date64 => {
            let ms = array.as_primitive::<Date64Type>().value(row);
            DateTime::from_timestamp_millis(ms)
                .map(|d| Json::String(d.format("%Y-%m-%d").to_string()))
                .unwrap_or(Json::Null)
        }
        DataType::Time32(TimeUnit::Second) => time_json(
            i64::from(array.as_primitive::<Time32SecondType>().value(row)) * 1_000_000_000,
        ),
        DataType::Time32(_) => time_json(
            i64::from(array.as_primitive::<Time32MillisecondType>().value(row)) * 1_000_000,
        ),
        DataType::Time64(TimeUnit::Microsecond) => {
            time_json(array.as_primitive::<Time64MicrosecondType>().value(row) * 1_000)
        }
        DataType::Time64(_) => time_json(array.as_primitive::<Time64NanosecondType>().value(row)),
        DataType::Timestamp(unit, tz) => {
            let v = match unit {
                TimeUnit::Second => array.as_primitive::<TimestampSecondType>().value(row),
                TimeUnit::Millisecond => {
                    array.as_primitive::<TimestampMillisecondType>().value(row)
                }
                TimeUnit::Microsecond => {
                    array.as_primitive::<TimestampMicrosecondType>().value(row)
                }
                TimeUnit::Nanosecond => array.as_primitive::<TimestampNanosecondType>().value(row),
            };
            timestamp(v, *unit, tz.as_deref())
        }
        DataType::List(_) => list_json(array.as_list::<i32>().value(row).as_ref()),
        DataType::LargeList(_) => list_json(array.as_list::<i64>().value(row).as_ref()),
        DataType::FixedSizeList(..) => list_json(array.as_fixed_size_list().value(row).as_ref()),
        _ => formatted(array, row),
    }
}

fn base64_json(bytes: &[u8]) -> Json {
    Json::String(base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn time_json(nanos: i64) -> Json {
    let secs = nanos.div_euclid(1_000_000_000) as u32;
    let frac = nanos.rem_euclid(1_000_000_000) as u32;
    NaiveTime::from_num_seconds_from_midnight_opt(secs, frac)
        .map(|t| Json::String(t.to_string()))
        .unwrap_or(Json::Null)
}

fn list_json(values: &dyn Array) -> Json {
    Json::Array((0..values.len()).map(|i| cell(values, i)).collect())
}

fn formatted(array: &dyn Array, row: usize) -> Json {
    match ArrayFormatter::try_new(array, &FormatOptions::default()) {
        Ok(f) => Json::String(f.value(row).to_string()),
        Err(_) => Json::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{
        BinaryArray, Float64Array, Int32Array, Int64Array, StringArray, TimestampMicrosecondArray,
    };
    use std::sync::Arc;

    #[test]
    fn values_take_their_api_form() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Int32, true),
            Field::new("c", DataType::Utf8, true),
            Field::new("d", DataType::Float64, true),
            Field::new("e", DataType::Binary, true),
            Field::new("f", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![Some(9_007_199_254_740_993), None])),
                Arc::new(Int32Array::from(vec![7, 8])),
                Arc::new(StringArray::from(vec!["x", "y"])),
                Arc::new(Float64Array::from(vec![1.5, f64::NAN])),
                Arc::new(BinaryArray::from(vec![b"hi".as_ref(), b"".as_ref()])),
                Arc::new(TimestampMicrosecondArray::from(vec![
                    1_700_000_000_123_456,
                    0,
                ])),
            ],
        )
        .unwrap();
        let mut rows = Vec::new();
        append_rows(&batch, &mut rows);
        assert_eq!(
            serde_json::to_string(&rows[0]).unwrap(),
            r#"["9007199254740993",7,"x",1.5,"aGk=","2023-11-14 22:13:20.123456"]"#
        );
        assert_eq!(rows[1][0], Json::Null);
        assert_eq!(rows[1][3], Json::String("NaN".into()));
    }
}

//! Per-column statistics of a segment for its manifest entry: null count,
//! and the smallest and largest value (over every row, tombstones
//! included — their columns are null). Kept for the types whose order is
//! plain (integers, floats, dates, timestamps, booleans, text up to
//! [`MAX_TEXT_BOUND`] bytes); other columns carry the null count only.

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::{max, max_boolean, max_string, min, min_boolean, min_string};
use datafusion::arrow::datatypes::*;
use datafusion::common::ScalarValue;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use std::cmp::Ordering;

/// Longer text bounds are left out (a cut maximum would not be an upper
/// bound).
pub const MAX_TEXT_BOUND: usize = 64;

/// One column's statistics as the manifest keeps them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnStats {
    /// The column's id (stable across renames).
    pub column_id: u32,
    pub null_count: u64,
    /// JSON number, string or boolean; absent when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<Json>,
}

/// Accumulates one column's statistics batch by batch.
#[derive(Debug, Clone)]
pub(crate) struct StatsBuilder {
    column_id: u32,
    nulls: u64,
    /// `None` once a batch's bounds could not be taken.
    bounds: Option<Option<(ScalarValue, ScalarValue)>>,
}

impl StatsBuilder {
    pub(crate) fn new(column_id: u32) -> Self {
        Self {
            column_id,
            nulls: 0,
            bounds: Some(None),
        }
    }

    pub(crate) fn update(&mut self, array: &ArrayRef) {
        self.nulls += array.null_count() as u64;
        if array.null_count() == array.len() {
            return;
        }
        let Some(current) = &mut self.bounds else {
            return;
        };
        let Some((lo, hi)) = bounds(array) else {
            self.bounds = None;
            return;
        };
        *current = Some(match current.take() {
            None => (lo, hi),
            Some((a, b)) => (
                if lo.partial_cmp(&a) == Some(Ordering::Less) {
                    lo
                } else {
                    a
                },
                if hi.partial_cmp(&b) == Some(Ordering::Greater) {
                    hi
                } else {
                    b
                },
            ),
        });
    }

    pub(crate) fn finish(self) -> ColumnStats {
        // both bounds or neither
        let (min, max) = match self.bounds.flatten().map(|(lo, hi)| (json(&lo), json(&hi))) {
            Some((Some(lo), Some(hi))) => (Some(lo), Some(hi)),
            _ => (None, None),
        };
        ColumnStats {
            column_id: self.column_id,
            null_count: self.nulls,
            min,
            max,
        }
    }
}

fn json(v: &ScalarValue) -> Option<Json> {
    Some(match v {
        ScalarValue::Boolean(Some(b)) => Json::Bool(*b),
        ScalarValue::Int8(Some(n)) => Json::from(*n),
        ScalarValue::Int16(Some(n)) => Json::from(*n),
        ScalarValue::Int32(Some(n)) => Json::from(*n),
        ScalarValue::Int64(Some(n)) => Json::from(*n),
        ScalarValue::UInt8(Some(n)) => Json::from(*n),
        ScalarValue::UInt16(Some(n)) => Json::from(*n),
        ScalarValue::UInt32(Some(n)) => Json::from(*n),
        ScalarValue::UInt64(Some(n)) => Json::from(*n),
        ScalarValue::Float32(Some(f)) => serde_json::Number::from_f64(f64::from(*f))?.into(),
        ScalarValue::Float64(Some(f)) => serde_json::Number::from_f64(*f)?.into(),
        ScalarValue::Date32(Some(d)) => Json::from(*d),
        ScalarValue::Date64(Some(d)) => Json::from(*d),
        ScalarValue::TimestampSecond(Some(t), _)
        | ScalarValue::TimestampMillisecond(Some(t), _)
        | ScalarValue::TimestampMicrosecond(Some(t), _)
        | ScalarValue::TimestampNanosecond(Some(t), _) => Json::from(*t),
        ScalarValue::Utf8(Some(s)) if s.len() <= MAX_TEXT_BOUND => Json::String(s.clone()),
        _ => return None,
    })
}

/// The batch's smallest and largest non-null value.
fn bounds(array: &ArrayRef) -> Option<(ScalarValue, ScalarValue)> {
    macro_rules! primitive {
        ($t:ty) => {{
            let a = array.as_primitive::<$t>();
            let dt = array.data_type();
            Some((
                ScalarValue::new_primitive::<$t>(min(a), dt).ok()?,
                ScalarValue::new_primitive::<$t>(max(a), dt).ok()?,
            ))
        }};
    }
    match array.data_type() {
        DataType::Int8 => primitive!(Int8Type),
        DataType::Int16 => primitive!(Int16Type),
        DataType::Int32 => primitive!(Int32Type),
        DataType::Int64 => primitive!(Int64Type),
        DataType::UInt8 => primitive!(UInt8Type),
        DataType::UInt16 => primitive!(UInt16Type),
        DataType::UInt32 => primitive!(UInt32Type),
        DataType::UInt64 => primitive!(UInt64Type),
        DataType::Float32 => primitive!(Float32Type),
        DataType::Float64 => primitive!(Float64Type),
        DataType::Date32 => primitive!(Date32Type),
        DataType::Date64 => primitive!(Date64Type),
        DataType::Timestamp(TimeUnit::Second, _) => primitive!(TimestampSecondType),
        DataType::Timestamp(TimeUnit::Millisecond, _) => primitive!(TimestampMillisecondType),
        DataType::Timestamp(TimeUnit::Microsecond, _) => primitive!(TimestampMicrosecondType),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => primitive!(TimestampNanosecondType),
        DataType::Boolean => {
            let a = array.as_boolean();
            Some((
                ScalarValue::Boolean(min_boolean(a)),
                ScalarValue::Boolean(max_boolean(a)),
            ))
        }
        DataType::Utf8 => {
            let a = array.as_string::<i32>();
            let (lo, hi) = (min_string(a)?, max_string(a)?);
            (lo.len() <= MAX_TEXT_BOUND && hi.len() <= MAX_TEXT_BOUND).then(|| {
                (
                    ScalarValue::Utf8(Some(lo.to_string())),
                    ScalarValue::Utf8(Some(hi.to_string())),
                )
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{BinaryArray, BooleanArray, Int64Array, StringArray};
    use std::sync::Arc;

    fn stats(batches: Vec<ArrayRef>) -> ColumnStats {
        let mut b = StatsBuilder::new(7);
        for a in &batches {
            b.update(a);
        }
        b.finish()
    }

    #[test]
    fn bounds_and_nulls_across_batches() {
        let s = stats(vec![
            Arc::new(Int64Array::from(vec![Some(5), None, Some(-3)])),
            Arc::new(Int64Array::from(vec![None, None])),
            Arc::new(Int64Array::from(vec![Some(9_007_199_254_740_993), Some(0)])),
        ]);
        assert_eq!(
            s,
            ColumnStats {
                column_id: 7,
                null_count: 3,
                min: Some(Json::from(-3)),
                max: Some(Json::from(9_007_199_254_740_993i64)),
            }
        );
        let s = stats(vec![
            Arc::new(StringArray::from(vec![Some("pear"), Some("apple")])),
            Arc::new(StringArray::from(vec![None, Some("zebra")])),
        ]);
        assert_eq!(
            (s.min, s.max, s.null_count),
            (Some("apple".into()), Some("zebra".into()), 1)
        );
        let s = stats(vec![Arc::new(BooleanArray::from(vec![true, true]))]);
        assert_eq!(
            (s.min, s.max),
            (Some(Json::Bool(true)), Some(Json::Bool(true)))
        );
    }

    #[test]
    fn unknown_bounds_are_left_out_never_guessed() {
        // text longer than the bound in one batch: no bounds for the segment
        let long = "x".repeat(MAX_TEXT_BOUND + 1);
        let s = stats(vec![
            Arc::new(StringArray::from(vec!["a"])),
            Arc::new(StringArray::from(vec![long.as_str()])),
        ]);
        assert_eq!((s.min, s.max, s.null_count), (None, None, 0));
        // a type without a plain order: null count only
        let s = stats(vec![Arc::new(BinaryArray::from(vec![
            Some(&b"ab"[..]),
            None,
        ]))]);
        assert_eq!((s.min, s.max, s.null_count), (None, None, 1));
        // all null
        let s = stats(vec![Arc::new(Int64Array::from(vec![None, None]))]);
        assert_eq!((s.min, s.max, s.null_count), (None, None, 2));
    }
}

//! SQL literals (and bound `$n` parameters) to stored values of a column's
//! type, with errors that name the column and the offending value.

use crate::error::{CoreError, CoreResult};
use base64::Engine;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use datafusion::sql::sqlparser::ast::{Expr, UnaryOperator, Value as SqlValue};
use kalamdb_commons::{ColumnDefinition, KalamDataType, Value};
use serde_json::Value as Json;

/// A literal as written in SQL or bound as a parameter, before typing.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal<'a> {
    Null,
    Bool(bool),
    /// Numeric text, possibly signed.
    Number(std::borrow::Cow<'a, str>),
    Text(std::borrow::Cow<'a, str>),
    /// `[1, 2, 3]` (for embeddings).
    List(Vec<Literal<'a>>),
}

/// Reads `expr` as a literal; `None` when it is an expression that needs
/// evaluating (a function call, arithmetic, a cast...).
pub fn literal_of<'a>(expr: &'a Expr, params: &'a [Json]) -> CoreResult<Option<Literal<'a>>> {
    Ok(Some(match expr {
        Expr::Value(v) => match &v.value {
            SqlValue::Null => Literal::Null,
            SqlValue::Boolean(b) => Literal::Bool(*b),
            SqlValue::Number(n, _) => Literal::Number(n.as_str().into()),
            SqlValue::SingleQuotedString(s) | SqlValue::DoubleQuotedString(s) => {
                Literal::Text(s.as_str().into())
            }
            SqlValue::Placeholder(p) => return param(p, params).map(Some),
            _ => return Ok(None),
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match literal_of(expr, params)? {
            Some(Literal::Number(n)) if !n.starts_with('-') => {
                Literal::Number(format!("-{n}").into())
            }
            _ => return Ok(None),
        },
        Expr::UnaryOp {
            op: UnaryOperator::Plus,
            expr,
        } => match literal_of(expr, params)? {
            Some(n @ Literal::Number(_)) => n,
            _ => return Ok(None),
        },
        Expr::Array(array) => {
            let mut items = Vec::with_capacity(array.elem.len());
            for e in &array.elem {
                match literal_of(e, params)? {
                    Some(l) => items.push(l),
                    None => return Ok(None),
                }
            }
            Literal::List(items)
        }
        Expr::Nested(inner) => return literal_of(inner, params),
        _ => return Ok(None),
    }))
}

fn param<'a>(placeholder: &str, params: &'a [Json]) -> CoreResult<Literal<'a>> {
    let index: usize = placeholder
        .strip_prefix('$')
        .and_then(|n| n.parse().ok())
        .filter(|n| *n >= 1)
        .ok_or_else(|| {
            CoreError::InvalidParameter(format!(
                "Unsupported placeholder '{placeholder}': use $1, $2, ..."
            ))
        })?;
    let value = params.get(index - 1).ok_or_else(|| {
        CoreError::InvalidParameter(format!(
            "Placeholder {placeholder} has no value: {} parameter(s) given",
            params.len()
        ))
    })?;
    Ok(json_literal(value))
}

fn json_literal(value: &Json) -> Literal<'_> {
    match value {
        Json::Null => Literal::Null,
        Json::Bool(b) => Literal::Bool(*b),
        Json::Number(n) => Literal::Number(n.to_string().into()),
        Json::String(s) => Literal::Text(s.as_str().into()),
        Json::Array(items) => Literal::List(items.iter().map(json_literal).collect()),
        Json::Object(_) => Literal::Text(value.to_string().into()),
    }
}

fn mismatch(column: &ColumnDefinition, shown: &str) -> CoreError {
    CoreError::TypeMismatch(format!(
        "Column '{}' expects {}, got {}",
        column.name, column.data_type, shown
    ))
}

fn show(literal: &Literal<'_>) -> String {
    match literal {
        Literal::Null => "NULL".into(),
        Literal::Bool(b) => b.to_string(),
        Literal::Number(n) => n.to_string(),
        Literal::Text(s) => {
            let mut t: String = s.chars().take(64).collect();
            if s.chars().count() > 64 {
                t.push('…');
            }
            format!("'{t}'")
        }
        Literal::List(_) => "a list".into(),
    }
}

/// Converts a literal to the stored form of `column`'s type.
pub fn coerce(literal: &Literal<'_>, column: &ColumnDefinition) -> CoreResult<Value> {
    use KalamDataType as T;
    let fail = || mismatch(column, &show(literal));
    let text = match literal {
        Literal::Null => return Ok(Value::Null),
        Literal::Number(n) | Literal::Text(n) => Some(n.as_ref()),
        _ => None,
    };
    let is_number = matches!(literal, Literal::Number(_));
    Ok(match column.data_type {
        T::Boolean => match literal {
            Literal::Bool(b) => Value::Boolean(*b),
            Literal::Text(s) => Value::Boolean(parse_bool(s).ok_or_else(fail)?),
            Literal::Number(n) if n == "0" || n == "1" => Value::Boolean(n == "1"),
            _ => return Err(fail()),
        },
        T::SmallInt => Value::Int16(text.and_then(parse_int).ok_or_else(fail)?),
        T::Int => Value::Int32(text.and_then(parse_int).ok_or_else(fail)?),
        T::BigInt => Value::Int64(text.and_then(parse_int).ok_or_else(fail)?),
        T::Float => Value::Float32(text.and_then(parse_float32).ok_or_else(fail)?),
        T::Double => Value::Float64(text.and_then(parse_float).ok_or_else(fail)?),
        T::Decimal { precision, scale } => Value::Decimal128(
            text.and_then(|t| parse_decimal(t, precision, scale))
                .ok_or_else(fail)?,
        ),
        T::Text => match literal {
            Literal::Text(s) | Literal::Number(s) => Value::Text(s.to_string()),
            Literal::Bool(b) => Value::Text(b.to_string()),
            _ => return Err(fail()),
        },
        T::Json => match literal {
            Literal::Text(s) => {
                serde_json::from_str::<Json>(s).map_err(|e| {
                    CoreError::TypeMismatch(format!("Column '{}' expects JSON: {e}", column.name))
                })?;
                Value::Text(s.to_string())
            }
            Literal::Number(n) => Value::Text(n.to_string()),
            Literal::Bool(b) => Value::Text(b.to_string()),
            _ => return Err(fail()),
        },
        T::Uuid => match literal {
            Literal::Text(s) if is_uuid(s) => Value::Text(s.to_ascii_lowercase()),
            _ => return Err(fail()),
        },
        T::Bytes => match literal {
            Literal::Text(s) => Value::Bytes(parse_bytes(s)),
            _ => return Err(fail()),
        },
        T::Date if !is_number => Value::Date32(text.and_then(parse_date).ok_or_else(fail)?),
        T::Time if !is_number => Value::Time64Micros(text.and_then(parse_time).ok_or_else(fail)?),
        T::Timestamp | T::DateTime if !is_number => {
            Value::TimestampMicros(text.and_then(parse_timestamp_micros).ok_or_else(fail)?)
        }
        T::Embedding { dimensions } => {
            let items: Vec<f32> = match literal {
                Literal::List(items) => items
                    .iter()
                    .map(|i| match i {
                        Literal::Number(n) => parse_float32(n),
                        _ => None,
                    })
                    .collect::<Option<_>>()
                    .ok_or_else(fail)?,
                Literal::Text(s) => serde_json::from_str(s).map_err(|_| fail())?,
                _ => return Err(fail()),
            };
            if items.len() != dimensions as usize {
                return Err(CoreError::TypeMismatch(format!(
                    "Column '{}' expects {dimensions} dimensions, got {}",
                    column.name,
                    items.len()
                )));
            }
            Value::Embedding(items)
        }
        T::Date | T::Time | T::Timestamp | T::DateTime => return Err(fail()),
    })
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "t" | "yes" | "y" | "on" | "1" => Some(true),
        "false" | "f" | "no" | "n" | "off" | "0" => Some(false),
        _ => None,
    }
}

fn parse_int<T: TryFrom<i128>>(s: &str) -> Option<T> {
    let v: i128 = s.trim().parse().ok()?;
    T::try_from(v).ok()
}

/// A float literal. Non-finite values only when spelled out ('Infinity',
/// '-Infinity', 'NaN'): a number too large for the type (`1e400`) is an
/// error, as in PostgreSQL, never a silent infinity.
fn parse_float(s: &str) -> Option<f64> {
    let t = s.trim();
    match t.to_ascii_lowercase().as_str() {
        "nan" => Some(f64::NAN),
        "infinity" | "inf" | "+infinity" | "+inf" => Some(f64::INFINITY),
        "-infinity" | "-inf" => Some(f64::NEG_INFINITY),
        _ => t.parse::<f64>().ok().filter(|f| f.is_finite()),
    }
}

fn parse_float32(s: &str) -> Option<f32> {
    let wide = parse_float(s)?;
    let narrow = wide as f32;
    (narrow.is_finite() || !wide.is_finite()).then_some(narrow)
}

/// Parses decimal text to its unscaled value at `scale`, rounding half away
/// from zero; `None` if it does not fit `precision`.
pub fn parse_decimal(s: &str, precision: u8, scale: i8) -> Option<i128> {
    let s = s.trim();
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    if (int_part.is_empty() && frac_part.is_empty())
        || !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let scale = scale.max(0) as usize;
    let mut unscaled: i128 = 0;
    for b in int_part.bytes() {
        unscaled = unscaled
            .checked_mul(10)?
            .checked_add(i128::from(b - b'0'))?;
    }
    let frac = frac_part.as_bytes();
    for i in 0..scale {
        let d = frac.get(i).map_or(0, |b| b - b'0');
        unscaled = unscaled.checked_mul(10)?.checked_add(i128::from(d))?;
    }
    if frac.get(scale).is_some_and(|b| *b >= b'5') {
        unscaled = unscaled.checked_add(1)?;
    }
    if unscaled >= 10i128.checked_pow(u32::from(precision))? {
        return None;
    }
    Some(if negative { -unscaled } else { unscaled })
}

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// `\x...` hex (PostgreSQL's bytea form), else the text's bytes.
fn parse_bytes(s: &str) -> Vec<u8> {
    if let Some(hex) = s.strip_prefix("\\x")
        && hex.len() % 2 == 0
        && let Some(bytes) = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
            .collect::<Option<Vec<u8>>>()
    {
        return bytes;
    }
    if let Some(b64) = s.strip_prefix("base64:")
        && let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(b64)
    {
        return bytes;
    }
    s.as_bytes().to_vec()
}

fn parse_date(s: &str) -> Option<i32> {
    let d = NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()?;
    Some(d.to_epoch_days())
}

fn parse_time(s: &str) -> Option<i64> {
    let t = NaiveTime::parse_from_str(s.trim(), "%H:%M:%S%.f")
        .or_else(|_| NaiveTime::parse_from_str(s.trim(), "%H:%M"))
        .ok()?;
    Some(i64::from(t.num_seconds_from_midnight()) * 1_000_000 + i64::from(t.nanosecond() / 1_000))
}

/// RFC 3339 (any offset, converted to UTC), or `YYYY-MM-DD[ HH:MM:SS[.f]]`
/// read as UTC.
pub fn parse_timestamp_micros(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.timestamp_micros());
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f%#z"] {
        if let Ok(dt) = DateTime::parse_from_str(s, format) {
            return Some(dt.timestamp_micros());
        }
    }
    for format in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(s, format) {
            return Some(dt.and_utc().timestamp_micros());
        }
    }
    let date = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(data_type: KalamDataType) -> ColumnDefinition {
        ColumnDefinition {
            column_id: 1,
            name: "c".into(),
            data_type,
            nullable: true,
            primary_key: false,
            default: None,
            backfill: None,
        }
    }

    fn num(s: &str) -> Literal<'_> {
        Literal::Number(s.into())
    }

    #[test]
    fn integers_are_range_checked() {
        assert_eq!(
            coerce(&num("32767"), &col(KalamDataType::SmallInt)).unwrap(),
            Value::Int16(32767)
        );
        let e = coerce(&num("32768"), &col(KalamDataType::SmallInt)).unwrap_err();
        assert!(
            e.to_string()
                .contains("Column 'c' expects SMALLINT, got 32768"),
            "{e}"
        );
        assert!(coerce(&num("1.5"), &col(KalamDataType::Int)).is_err());
        assert_eq!(
            coerce(&Literal::Text("42".into()), &col(KalamDataType::BigInt)).unwrap(),
            Value::Int64(42)
        );
        assert!(coerce(&Literal::Text("abc".into()), &col(KalamDataType::Int)).is_err());
    }

    #[test]
    fn decimals_round_half_away_from_zero_and_respect_precision() {
        assert_eq!(parse_decimal("12.345", 10, 2), Some(1235));
        assert_eq!(parse_decimal("-12.344", 10, 2), Some(-1234));
        assert_eq!(parse_decimal("999.99", 5, 2), Some(99999));
        assert_eq!(parse_decimal("1000.00", 5, 2), None);
        assert_eq!(parse_decimal("1e5", 10, 2), None);
        assert_eq!(parse_decimal(".5", 3, 1), Some(5));
    }

    #[test]
    fn timestamps_read_as_utc() {
        let a = parse_timestamp_micros("2024-01-02 03:04:05.5").unwrap();
        let b = parse_timestamp_micros("2024-01-02T05:04:05.5+02:00").unwrap();
        assert_eq!(a, b);
        assert_eq!(parse_timestamp_micros("1970-01-01").unwrap(), 0);
        assert!(parse_timestamp_micros("yesterday").is_none());
    }

    #[test]
    fn embeddings_check_dimensions() {
        let c = col(KalamDataType::Embedding { dimensions: 2 });
        let list = Literal::List(vec![num("1"), num("2.5")]);
        assert_eq!(coerce(&list, &c).unwrap(), Value::Embedding(vec![1.0, 2.5]));
        assert!(coerce(&Literal::Text("[1,2,3]".into()), &c).is_err());
    }

    #[test]
    fn other_types() {
        assert_eq!(
            coerce(&Literal::Text("t".into()), &col(KalamDataType::Boolean)).unwrap(),
            Value::Boolean(true)
        );
        assert_eq!(
            coerce(&Literal::Text("\\x6869".into()), &col(KalamDataType::Bytes)).unwrap(),
            Value::Bytes(b"hi".to_vec())
        );
        assert!(coerce(&Literal::Text("{bad".into()), &col(KalamDataType::Json)).is_err());
        assert!(
            coerce(
                &Literal::Text("not-a-uuid".into()),
                &col(KalamDataType::Uuid)
            )
            .is_err()
        );
        assert_eq!(
            coerce(
                &Literal::Text("1970-01-02".into()),
                &col(KalamDataType::Date)
            )
            .unwrap(),
            Value::Date32(1)
        );
        assert_eq!(
            coerce(&Literal::Null, &col(KalamDataType::Int)).unwrap(),
            Value::Null
        );
    }
}

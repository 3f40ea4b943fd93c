//! Column type names (with their PostgreSQL/MySQL aliases) to KalamDB types.

use datafusion::sql::sqlparser::ast::{DataType, ExactNumberInfo, TimezoneInfo};
use kalamdb_commons::KalamDataType;

/// Precision and scale of a bare `DECIMAL`.
const DEFAULT_DECIMAL: (u8, i8) = (38, 10);
/// Largest embedding accepted.
pub const MAX_EMBEDDING_DIMENSIONS: u32 = 65_536;

pub fn kalam_type(data_type: &DataType) -> Result<KalamDataType, String> {
    use KalamDataType as K;
    Ok(match data_type {
        DataType::Boolean | DataType::Bool => K::Boolean,
        DataType::SmallInt(_) | DataType::Int2(_) | DataType::TinyInt(_) | DataType::Int16 => {
            K::SmallInt
        }
        DataType::Int(_)
        | DataType::Integer(_)
        | DataType::Int4(_)
        | DataType::MediumInt(_)
        | DataType::Int32 => K::Int,
        DataType::BigInt(_) | DataType::Int8(_) | DataType::Int64 => K::BigInt,
        DataType::Float4 | DataType::Real | DataType::Float32 => K::Float,
        DataType::Float(info) => match info {
            ExactNumberInfo::Precision(p) if *p > 24 => K::Double,
            _ => K::Float,
        },
        DataType::Float8 | DataType::Float64 | DataType::Double(_) | DataType::DoublePrecision => {
            K::Double
        }
        DataType::Decimal(info) | DataType::Numeric(info) | DataType::Dec(info) => decimal(info)?,
        DataType::Text
        | DataType::String(_)
        | DataType::Varchar(_)
        | DataType::Char(_)
        | DataType::Character(_)
        | DataType::CharacterVarying(_)
        | DataType::CharVarying(_)
        | DataType::Nvarchar(_)
        | DataType::TinyText
        | DataType::MediumText
        | DataType::LongText => K::Text,
        DataType::Bytea
        | DataType::Bytes(_)
        | DataType::Blob(_)
        | DataType::Binary(_)
        | DataType::Varbinary(_) => K::Bytes,
        DataType::JSON | DataType::JSONB => K::Json,
        DataType::Date => K::Date,
        DataType::Time(_, TimezoneInfo::None | TimezoneInfo::WithoutTimeZone) => K::Time,
        DataType::Timestamp(_, _) => K::Timestamp,
        DataType::Datetime(_) => K::DateTime,
        DataType::Uuid => K::Uuid,
        DataType::Custom(name, modifiers) => {
            let name = name.to_string().to_ascii_uppercase();
            match (name.as_str(), modifiers.as_slice()) {
                ("EMBEDDING" | "VECTOR", [n]) => {
                    let dimensions: u32 = n
                        .parse()
                        .map_err(|_| format!("Invalid EMBEDDING dimension '{n}'"))?;
                    if dimensions == 0 || dimensions > MAX_EMBEDDING_DIMENSIONS {
                        return Err(format!(
                            "EMBEDDING dimension must be between 1 and {MAX_EMBEDDING_DIMENSIONS}"
                        ));
                    }
                    K::Embedding { dimensions }
                }
                ("EMBEDDING" | "VECTOR", _) => {
                    return Err("EMBEDDING needs a dimension, e.g. EMBEDDING(384)".to_string());
                }
                ("TIMESTAMPTZ", []) => K::Timestamp,
                ("STRING", []) => K::Text,
                ("BYTES", []) => K::Bytes,
                _ => return Err(format!("Unsupported column type '{data_type}'")),
            }
        }
        other => return Err(format!("Unsupported column type '{other}'")),
    })
}

fn decimal(info: &ExactNumberInfo) -> Result<KalamDataType, String> {
    let (precision, scale) = match info {
        ExactNumberInfo::None => DEFAULT_DECIMAL,
        ExactNumberInfo::Precision(p) => (narrow_precision(*p)?, 0),
        ExactNumberInfo::PrecisionAndScale(p, s) => {
            let p = narrow_precision(*p)?;
            let s = i8::try_from(*s)
                .ok()
                .filter(|s| *s >= 0 && *s as u8 <= p)
                .ok_or_else(|| {
                    format!("DECIMAL scale {s} must be between 0 and the precision {p}")
                })?;
            (p, s)
        }
    };
    Ok(KalamDataType::Decimal { precision, scale })
}

fn narrow_precision(p: u64) -> Result<u8, String> {
    u8::try_from(p)
        .ok()
        .filter(|p| (1..=38).contains(p))
        .ok_or_else(|| format!("DECIMAL precision {p} must be between 1 and 38"))
}

//! KalamDB's SQL functions, callable in any query and (the generators) as
//! column DEFAULTs: `SNOWFLAKE_ID()`, `UUID_V7()`, `ULID()`,
//! `CURRENT_USER()`, `CURRENT_ROLE()` and `COSINE_DISTANCE(a, b)`.
//! `NOW()` is DataFusion's own.

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Float64Builder, Int64Array, StringArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Float64Type};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use kalamdb_commons::snowflake::SnowflakeGenerator;
use std::sync::Arc;

/// A new time-ordered UUID (version 7), lower-case hyphenated.
pub fn uuid_v7() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A new ULID (26 characters, Crockford base32, time-ordered).
pub fn ulid() -> String {
    ulid::Ulid::new().to_string()
}

/// `SNOWFLAKE_ID()`: the server's snowflake generator (the one `_seq` uses),
/// one id per row.
pub struct SnowflakeId {
    generator: Arc<SnowflakeGenerator>,
    signature: Signature,
}

impl std::fmt::Debug for SnowflakeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SnowflakeId")
    }
}

impl PartialEq for SnowflakeId {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.generator, &other.generator)
    }
}
impl Eq for SnowflakeId {}
impl std::hash::Hash for SnowflakeId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        "snowflake_id".hash(state);
    }
}

impl SnowflakeId {
    pub fn new(generator: Arc<SnowflakeGenerator>) -> Self {
        Self {
            generator,
            signature: Signature::nullary(Volatility::Volatile),
        }
    }
}

impl ScalarUDFImpl for SnowflakeId {
    fn name(&self) -> &str {
        "snowflake_id"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let ids: Int64Array = (0..args.number_rows.max(1))
            .map(|_| self.generator.next_id())
            .collect();
        Ok(ColumnarValue::Array(Arc::new(ids)))
    }
}

/// A volatile nullary function producing a new string per row.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Generated {
    kind: GeneratedKind,
    signature: Signature,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum GeneratedKind {
    UuidV7,
    Ulid,
}

impl Generated {
    pub fn uuid_v7() -> Self {
        Self::new(GeneratedKind::UuidV7)
    }

    pub fn ulid() -> Self {
        Self::new(GeneratedKind::Ulid)
    }

    fn new(kind: GeneratedKind) -> Self {
        Self {
            kind,
            signature: Signature::nullary(Volatility::Volatile),
        }
    }

    fn generate(&self) -> String {
        match self.kind {
            GeneratedKind::UuidV7 => uuid_v7(),
            GeneratedKind::Ulid => ulid(),
        }
    }
}

impl ScalarUDFImpl for Generated {
    fn name(&self) -> &str {
        match self.kind {
            GeneratedKind::UuidV7 => "uuid_v7",
            GeneratedKind::Ulid => "ulid",
        }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let values: StringArray = (0..args.number_rows.max(1))
            .map(|_| Some(self.generate()))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(values)))
    }
}

/// `CURRENT_USER()` / `CURRENT_ROLE()`: the caller, fixed for one query.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Caller {
    name: &'static str,
    value: String,
    signature: Signature,
}

impl Caller {
    pub fn user(username: &str) -> Self {
        Self::new("current_user", username)
    }

    pub fn role(role: &str) -> Self {
        Self::new("current_role", role)
    }

    fn new(name: &'static str, value: &str) -> Self {
        Self {
            name,
            value: value.to_string(),
            signature: Signature::nullary(Volatility::Stable),
        }
    }
}

impl ScalarUDFImpl for Caller {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, _: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
            self.value.clone(),
        ))))
    }
}

/// `COSINE_DISTANCE(a, b)` = 1 − cos(a, b) over two numeric vectors
/// (EMBEDDING columns or array literals) of equal length. NULL when either
/// side is NULL; an error when lengths differ or a vector is all zeros.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CosineDistance {
    signature: Signature,
}

impl Default for CosineDistance {
    fn default() -> Self {
        Self {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

fn as_f64_lists(array: &ArrayRef) -> Result<ArrayRef> {
    let target = DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true)));
    match array.data_type() {
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(_, _) => {
            Ok(cast(array, &target)?)
        }
        DataType::Null => Ok(cast(array, &target)?),
        other => exec_err!("cosine_distance expects two vectors, got {other}"),
    }
}

impl ScalarUDFImpl for CosineDistance {
    fn name(&self) -> &str {
        "cosine_distance"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let (a, b) = (as_f64_lists(&arrays[0])?, as_f64_lists(&arrays[1])?);
        let (a, b) = (a.as_list::<i32>(), b.as_list::<i32>());
        let mut out = Float64Builder::with_capacity(n);
        for row in 0..a.len().max(b.len()) {
            let (ra, rb) = (row.min(a.len() - 1), row.min(b.len() - 1));
            if a.is_null(ra) || b.is_null(rb) {
                out.append_null();
                continue;
            }
            let (x, y) = (a.value(ra), b.value(rb));
            let (x, y): (&Float64Array, &Float64Array) = (
                x.as_primitive::<Float64Type>(),
                y.as_primitive::<Float64Type>(),
            );
            if x.len() != y.len() {
                return exec_err!(
                    "cosine_distance: vectors of different lengths ({} and {})",
                    x.len(),
                    y.len()
                );
            }
            let (mut dot, mut nx, mut ny) = (0.0, 0.0, 0.0);
            for (p, q) in x.iter().zip(y.iter()) {
                let (p, q) = (p.unwrap_or(0.0), q.unwrap_or(0.0));
                dot += p * q;
                nx += p * p;
                ny += q * q;
            }
            if nx == 0.0 || ny == 0.0 {
                return exec_err!("cosine_distance: a zero vector has no direction");
            }
            out.append_value(1.0 - dot / (nx.sqrt() * ny.sqrt()));
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// The functions every query has (the caller functions are added per query).
pub fn shared_udfs(snowflake: Arc<SnowflakeGenerator>) -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::from(SnowflakeId::new(snowflake)),
        ScalarUDF::from(Generated::uuid_v7()),
        ScalarUDF::from(Generated::ulid()),
        ScalarUDF::from(CosineDistance::default()),
    ]
}

//! Column DEFAULTs: a literal, or one of the generators `NOW()` (also
//! `CURRENT_TIMESTAMP`), `SNOWFLAKE_ID()`, `UUID_V7()`, `ULID()`,
//! `CURRENT_USER()`, `CURRENT_ROLE()`. Compiled once per statement; a
//! generator is evaluated per row and its result converted to the column's
//! type with the rules of an INSERT literal (so `DEFAULT NOW()` fits a
//! TIMESTAMP, DATE or TEXT column, and CREATE TABLE refuses it for an INT).

use super::coerce::{Literal, coerce, literal_of};
use crate::error::{CoreError, CoreResult};
use datafusion::sql::sqlparser::ast::{Expr, FunctionArguments};
use kalamdb_commons::snowflake::SnowflakeGenerator;
use kalamdb_commons::{ColumnDefinition, KalamDataType, Value};

#[derive(Debug, Clone, PartialEq)]
pub enum ColumnDefault {
    /// No DEFAULT: NULL.
    Null,
    Value(Value),
    Now,
    SnowflakeId,
    UuidV7,
    Ulid,
    CurrentUser,
    CurrentRole,
}

/// What generators read: the statement's time and caller.
pub struct DefaultContext<'a> {
    /// The statement's time (one value for all its rows, as in PostgreSQL).
    pub now: chrono::DateTime<chrono::Utc>,
    pub username: &'a str,
    pub role: &'a str,
    pub snowflake: &'a SnowflakeGenerator,
}

impl<'a> DefaultContext<'a> {
    pub fn new(username: &'a str, role: &'a str, snowflake: &'a SnowflakeGenerator) -> Self {
        Self {
            now: chrono::Utc::now(),
            username,
            role,
            snowflake,
        }
    }
}

fn unsupported(column: &ColumnDefinition, text: &str) -> CoreError {
    CoreError::NotSupported(format!(
        "DEFAULT of '{}': expected a literal, NOW(), SNOWFLAKE_ID(), UUID_V7(), ULID(), \
         CURRENT_USER() or CURRENT_ROLE(), got {text}",
        column.name
    ))
}

/// Reads `column`'s DEFAULT.
pub fn compile_default(column: &ColumnDefinition) -> CoreResult<ColumnDefault> {
    let Some(text) = &column.default else {
        return Ok(ColumnDefault::Null);
    };
    let dialect = datafusion::sql::sqlparser::dialect::GenericDialect {};
    let expr = datafusion::sql::sqlparser::parser::Parser::new(&dialect)
        .try_with_sql(text)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| CoreError::InvalidSql(format!("DEFAULT of '{}': {e}", column.name)))?;
    if let Some(literal) = literal_of(&expr, &[])? {
        return Ok(ColumnDefault::Value(coerce(&literal, column)?));
    }
    let name = match &expr {
        Expr::Function(f) => {
            let no_args = match &f.args {
                FunctionArguments::None => true,
                FunctionArguments::List(list) => list.args.is_empty(),
                FunctionArguments::Subquery(_) => false,
            };
            if !no_args {
                return Err(unsupported(column, text));
            }
            f.name.to_string().to_ascii_lowercase()
        }
        Expr::Identifier(ident) => ident.value.to_ascii_lowercase(),
        _ => return Err(unsupported(column, text)),
    };
    let default = match name.as_str() {
        "now" | "current_timestamp" => ColumnDefault::Now,
        "snowflake_id" => ColumnDefault::SnowflakeId,
        "uuid_v7" => ColumnDefault::UuidV7,
        "ulid" => ColumnDefault::Ulid,
        "current_user" => ColumnDefault::CurrentUser,
        "current_role" => ColumnDefault::CurrentRole,
        _ => return Err(unsupported(column, text)),
    };
    // A generator whose value cannot fit the column fails CREATE TABLE, not
    // every INSERT.
    let probe = SnowflakeGenerator::new(0);
    default.value(column, &DefaultContext::new("user", "user", &probe))?;
    Ok(default)
}

impl ColumnDefault {
    /// The value for one row.
    pub fn value(&self, column: &ColumnDefinition, ctx: &DefaultContext<'_>) -> CoreResult<Value> {
        let literal = match self {
            ColumnDefault::Null => return Ok(Value::Null),
            ColumnDefault::Value(v) => return Ok(v.clone()),
            ColumnDefault::Now => Literal::Text(
                match column.data_type {
                    KalamDataType::Date => ctx.now.format("%Y-%m-%d").to_string(),
                    KalamDataType::Time => ctx.now.format("%H:%M:%S%.6f").to_string(),
                    _ => ctx.now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                }
                .into(),
            ),
            ColumnDefault::SnowflakeId => {
                Literal::Number(ctx.snowflake.next_id().to_string().into())
            }
            ColumnDefault::UuidV7 => Literal::Text(crate::functions::uuid_v7().into()),
            ColumnDefault::Ulid => Literal::Text(crate::functions::ulid().into()),
            ColumnDefault::CurrentUser => Literal::Text(ctx.username.into()),
            ColumnDefault::CurrentRole => Literal::Text(ctx.role.into()),
        };
        coerce(&literal, column)
    }
}

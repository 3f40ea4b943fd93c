//! `CREATE [USER|SHARED|STREAM] TABLE` (both option styles) and `DROP TABLE`.

use super::{normalize, parse_qualified_name, parse_simple_name, parse_word, peek_word};
use crate::statement::{ColumnSpec, CreateTableStatement, SqlStatement, UniqueSpec};
use crate::types::kalam_type;
use datafusion::sql::sqlparser::ast::{
    ColumnDef, ColumnOption, Expr, SqlOption, TableConstraint, Value,
};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::Token;
use kalamdb_commons::definition::{AccessLevel, FlushPolicy, TableOptions};
use kalamdb_commons::{DELETED_COLUMN, SEQ_COLUMN, TableType};

fn err<T>(message: impl Into<String>) -> Result<T, ParserError> {
    Err(ParserError::ParserError(message.into()))
}

fn parse_table_kind(p: &mut Parser<'_>) -> Option<TableType> {
    let kind = match peek_word(p, 0).as_deref() {
        Some("USER") => TableType::User,
        Some("SHARED") => TableType::Shared,
        Some("STREAM") => TableType::Stream,
        _ => return None,
    };
    p.next_token();
    Some(kind)
}

pub fn parse_create(p: &mut Parser<'_>) -> Result<SqlStatement, ParserError> {
    p.expect_keyword(Keyword::CREATE)?;
    let keyword_kind = parse_table_kind(p);
    p.expect_keyword(Keyword::TABLE)?;
    let if_not_exists = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let table = parse_qualified_name(p)?;
    if p.peek_token().token != Token::LParen {
        return p.expected("column list", p.peek_token());
    }
    let (column_defs, constraints) = p.parse_columns()?;
    if column_defs.is_empty() {
        return err(format!("Table '{}' needs at least one column", table.name));
    }

    let mut options = TableOptions::default();
    let mut option_kind = None;
    loop {
        if p.parse_keyword(Keyword::WITH) {
            p.expect_token(&Token::LParen)?;
            let list = p.parse_comma_separated(Parser::parse_sql_option)?;
            p.expect_token(&Token::RParen)?;
            for option in list {
                apply_with_option(&option, &mut options, &mut option_kind)?;
            }
        } else if parse_word(p, "STORAGE") {
            options.storage_id = parse_name_or_string(p)?;
        } else if parse_word(p, "FLUSH") {
            options.flush_policy = Some(parse_flush_clause(p)?);
        } else if parse_word(p, "TTL") {
            options.ttl_seconds = Some(parse_seconds(p)?);
        } else {
            break;
        }
    }

    let table_type = match (keyword_kind, option_kind) {
        (Some(a), Some(b)) if a != b => {
            return err(format!("Table kind {a} conflicts with TYPE = '{b}'"));
        }
        (Some(kind), _) | (None, Some(kind)) => kind,
        (None, None) => TableType::Shared,
    };
    validate_options(table_type, &options)?;
    let (columns, primary_key) = columns(column_defs, &constraints)?;
    let unique = constraint_unique(&constraints, &columns)?;
    if table_type == TableType::Stream && (!unique.is_empty() || columns.iter().any(|c| c.unique)) {
        return err("STREAM tables cannot have UNIQUE constraints: their rows are not indexed");
    }
    Ok(SqlStatement::CreateTable(Box::new(CreateTableStatement {
        table,
        table_type,
        if_not_exists,
        columns,
        primary_key,
        unique,
        options,
    })))
}

pub fn parse_drop(p: &mut Parser<'_>) -> Result<SqlStatement, ParserError> {
    p.expect_keyword(Keyword::DROP)?;
    let table_type = parse_table_kind(p);
    p.expect_keyword(Keyword::TABLE)?;
    let if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
    let table = parse_qualified_name(p)?;
    Ok(SqlStatement::DropTable {
        table,
        table_type,
        if_exists,
    })
}

/// The value of a `KEY = value` option as text: string, number or bare word.
fn option_text(value: &Expr) -> Result<String, ParserError> {
    match value {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => Ok(s.clone()),
            Value::Number(n, _) => Ok(n.clone()),
            Value::Boolean(b) => Ok(b.to_string()),
            other => err(format!("Unsupported option value {other}")),
        },
        Expr::Identifier(ident) => Ok(ident.value.clone()),
        other => err(format!("Unsupported option value {other}")),
    }
}

fn option_u64(key: &str, text: &str) -> Result<u64, ParserError> {
    text.parse().or_else(|_| {
        err(format!(
            "{key} must be a non-negative integer, got '{text}'"
        ))
    })
}

/// `ALTER TABLE ... SET TBLPROPERTIES (...)`: applies one option (any but
/// TYPE) to `options`.
pub fn apply_table_option(option: &SqlOption, options: &mut TableOptions) -> Result<(), String> {
    let mut kind = None;
    apply_with_option(option, options, &mut kind).map_err(|e| e.to_string())?;
    if kind.is_some() {
        return Err("A table's TYPE cannot be changed".into());
    }
    Ok(())
}

fn apply_with_option(
    option: &SqlOption,
    options: &mut TableOptions,
    kind: &mut Option<TableType>,
) -> Result<(), ParserError> {
    let SqlOption::KeyValue { key, value } = option else {
        return err(format!("Unsupported table option {option}"));
    };
    let name = key.value.to_ascii_uppercase();
    let text = option_text(value)?;
    match name.as_str() {
        "TYPE" => *kind = Some(text.parse().map_err(ParserError::ParserError)?),
        "STORAGE_ID" | "STORAGE" => options.storage_id = text.to_ascii_lowercase(),
        "FLUSH_POLICY" => {
            options.flush_policy = Some(text.parse().map_err(ParserError::ParserError)?)
        }
        "DELETED_RETENTION_HOURS" => {
            options.deleted_retention_hours = Some(option_u64(&name, &text)?)
        }
        "TTL_SECONDS" | "TTL" => options.ttl_seconds = Some(option_u64(&name, &text)?),
        "MAX_ROWS" => options.max_rows = Some(option_u64(&name, &text)?),
        "ACCESS_LEVEL" => {
            options.access_level = Some(
                text.parse::<AccessLevel>()
                    .map_err(ParserError::ParserError)?,
            )
        }
        other => {
            return err(format!(
                "Unknown table option '{other}': expected TYPE, STORAGE_ID, FLUSH_POLICY, DELETED_RETENTION_HOURS, TTL_SECONDS, MAX_ROWS or ACCESS_LEVEL"
            ));
        }
    }
    Ok(())
}

fn parse_name_or_string(p: &mut Parser<'_>) -> Result<String, ParserError> {
    if let Token::SingleQuotedString(s) = p.peek_token().token {
        p.next_token();
        return Ok(s.to_ascii_lowercase());
    }
    parse_simple_name(p)
}

/// A number of seconds: `300`, `300s`, `5m`, `2h` (`300 s` also accepted).
fn parse_seconds(p: &mut Parser<'_>) -> Result<u64, ParserError> {
    let token = p.next_token();
    let (digits, unit) = match &token.token {
        Token::Number(n, _) => (n.clone(), None),
        Token::Word(w) => {
            let split = w
                .value
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(w.value.len());
            let (d, u) = w.value.split_at(split);
            if d.is_empty() {
                return p.expected("a number of seconds", token);
            }
            (d.to_string(), Some(u.to_ascii_lowercase()))
        }
        _ => return p.expected("a number of seconds", token),
    };
    let unit = match unit {
        Some(u) => u,
        None => match peek_word(p, 0).as_deref() {
            Some(
                u @ ("S" | "SEC" | "SECS" | "SECONDS" | "M" | "MIN" | "MINUTES" | "H" | "HOURS"),
            ) => {
                let u = u.to_ascii_lowercase();
                p.next_token();
                u
            }
            _ => String::new(),
        },
    };
    let n: u64 = digits
        .parse()
        .or_else(|_| err(format!("Invalid number '{digits}'")))?;
    let factor = match unit.as_str() {
        "" | "s" | "sec" | "secs" | "seconds" => 1,
        "m" | "min" | "minutes" => 60,
        "h" | "hours" => 3600,
        other => return err(format!("Unknown time unit '{other}': use s, m or h")),
    };
    n.checked_mul(factor)
        .ok_or_else(|| ParserError::ParserError("Interval too large".into()))
}

/// `ROW_THRESHOLD n` | `ROWS n` | `INTERVAL 300s [ROW_THRESHOLD n]`.
fn parse_flush_clause(p: &mut Parser<'_>) -> Result<FlushPolicy, ParserError> {
    let mut policy = FlushPolicy::default();
    loop {
        if parse_word(p, "ROW_THRESHOLD") || parse_word(p, "ROWS") {
            policy.rows = Some(p.parse_literal_uint()?);
        } else if p.parse_keyword(Keyword::INTERVAL) {
            policy.interval_seconds = Some(parse_seconds(p)?);
        } else {
            break;
        }
    }
    if policy == FlushPolicy::default() {
        return p.expected(
            "ROW_THRESHOLD, ROWS or INTERVAL after FLUSH",
            p.peek_token(),
        );
    }
    if policy.rows == Some(0) || policy.interval_seconds == Some(0) {
        return err("FLUSH thresholds must be positive");
    }
    Ok(policy)
}

fn validate_options(kind: TableType, options: &TableOptions) -> Result<(), ParserError> {
    match kind {
        TableType::Stream if options.ttl_seconds.is_none() => {
            err("STREAM tables need a TTL (TTL_SECONDS = n)")
        }
        TableType::Stream if options.ttl_seconds == Some(0) => err("TTL must be positive"),
        TableType::Stream if options.max_rows == Some(0) => err("MAX_ROWS must be positive"),
        TableType::User | TableType::Shared if options.max_rows.is_some() => {
            err("MAX_ROWS applies to STREAM tables only")
        }
        TableType::User | TableType::Shared if options.ttl_seconds.is_some() => {
            err("TTL applies to STREAM tables only")
        }
        TableType::User | TableType::Stream if options.access_level.is_some() => {
            err("ACCESS_LEVEL applies to SHARED tables only")
        }
        _ => Ok(()),
    }
}

/// The table-level `UNIQUE (columns)` constraints.
fn constraint_unique(
    constraints: &[TableConstraint],
    columns: &[ColumnSpec],
) -> Result<Vec<UniqueSpec>, ParserError> {
    let mut out = Vec::new();
    for constraint in constraints {
        let TableConstraint::Unique(c) = constraint else {
            continue;
        };
        let mut names = Vec::with_capacity(c.columns.len());
        for column in &c.columns {
            let Expr::Identifier(ident) = &column.column.expr else {
                return err(format!("Invalid UNIQUE column '{}'", column.column.expr));
            };
            let name = normalize(ident);
            if !columns.iter().any(|c| c.name == name) {
                return err(format!("UNIQUE names unknown column '{name}'"));
            }
            if names.contains(&name) {
                return err(format!(
                    "Column '{name}' appears twice in a UNIQUE constraint"
                ));
            }
            names.push(name);
        }
        if names.is_empty() {
            return err("A UNIQUE constraint needs at least one column");
        }
        out.push(UniqueSpec {
            name: c.name.as_ref().map(normalize),
            columns: names,
        });
    }
    Ok(out)
}

/// The columns of a table-level `PRIMARY KEY (a [, b …])`, in key order.
fn constraint_primary_key(constraints: &[TableConstraint]) -> Result<Vec<String>, ParserError> {
    let mut pk: Option<Vec<String>> = None;
    for constraint in constraints {
        if matches!(constraint, TableConstraint::Unique(_)) {
            continue;
        }
        let TableConstraint::PrimaryKey(c) = constraint else {
            return err(format!(
                "Unsupported table constraint '{constraint}': only PRIMARY KEY (columns) and UNIQUE (columns) are supported"
            ));
        };
        if c.columns.len() > kalamdb_commons::definition::MAX_KEY_COLUMNS {
            return err(format!(
                "A primary key has at most {} columns",
                kalamdb_commons::definition::MAX_KEY_COLUMNS
            ));
        }
        let mut names: Vec<String> = Vec::with_capacity(c.columns.len());
        for column in &c.columns {
            let Expr::Identifier(ident) = &column.column.expr else {
                return err(format!(
                    "Invalid primary key column '{}'",
                    column.column.expr
                ));
            };
            let name = normalize(ident);
            if names.contains(&name) {
                return err(format!("Column '{name}' appears twice in the PRIMARY KEY"));
            }
            names.push(name);
        }
        if names.is_empty() {
            return err("A PRIMARY KEY needs at least one column");
        }
        if pk.replace(names).is_some() {
            return err("A table has at most one PRIMARY KEY");
        }
    }
    Ok(pk.unwrap_or_default())
}

/// One column of CREATE TABLE or ALTER TABLE ADD COLUMN; `table_pk` are
/// the columns of the table-level PRIMARY KEY, if there is one.
pub fn column_spec(def: ColumnDef, table_pk: &[String]) -> Result<ColumnSpec, ParserError> {
    let name = normalize(&def.name);
    if name == SEQ_COLUMN || name == DELETED_COLUMN {
        return err(format!(
            "Column name '{name}' is reserved for a system column"
        ));
    }
    if name.is_empty() || name.len() > kalamdb_commons::ids::MAX_NAME_LEN {
        return err(format!("Invalid column name '{name}'"));
    }
    let data_type = kalam_type(&def.data_type)
        .map_err(|m| ParserError::ParserError(format!("Column '{name}': {m}")))?;
    let mut spec = ColumnSpec {
        primary_key: table_pk.contains(&name),
        name,
        data_type,
        nullable: true,
        default: None,
        unique: false,
    };
    for option in def.options {
        match option.option {
            ColumnOption::Null => spec.nullable = true,
            ColumnOption::NotNull => spec.nullable = false,
            ColumnOption::Default(expr) => {
                // evaluated for every INSERT later: bounded like a statement
                crate::limits::check_expr(&expr, &crate::limits::SqlLimits::default()).map_err(
                    |e| {
                        ParserError::ParserError(format!(
                            "DEFAULT of '{name}': {e}",
                            name = spec.name
                        ))
                    },
                )?;
                spec.default = Some(expr.to_string());
            }
            ColumnOption::Unique(_) => spec.unique = true,
            ColumnOption::PrimaryKey(_) => {
                if !table_pk.is_empty() && !spec.primary_key {
                    return err("A table has at most one PRIMARY KEY");
                }
                spec.primary_key = true;
            }
            other => {
                return err(format!(
                    "Column '{}': unsupported column option '{other}'",
                    spec.name
                ));
            }
        }
    }
    if spec.unique && !data_type.can_be_primary_key() {
        return err(format!(
            "Column '{}': {data_type} cannot be UNIQUE (it has no index order)",
            spec.name
        ));
    }
    if spec.primary_key {
        // the key is unique already
        spec.unique = false;
        if !data_type.can_be_primary_key() {
            return err(format!(
                "Column '{}': {data_type} cannot be a primary key",
                spec.name
            ));
        }
        spec.nullable = false;
    }
    Ok(spec)
}

/// The declared columns, and the primary key's columns in key order.
fn columns(
    defs: Vec<ColumnDef>,
    constraints: &[TableConstraint],
) -> Result<(Vec<ColumnSpec>, Vec<String>), ParserError> {
    let table_pk = constraint_primary_key(constraints)?;
    let mut out: Vec<ColumnSpec> = Vec::with_capacity(defs.len());
    for def in defs {
        let spec = column_spec(def, &table_pk)?;
        if out.iter().any(|c| c.name == spec.name) {
            return err(format!("Column '{}' is declared twice", spec.name));
        }
        out.push(spec);
    }
    if let Some(pk) = table_pk
        .iter()
        .find(|pk| !out.iter().any(|c| &c.name == *pk))
    {
        return err(format!("PRIMARY KEY names unknown column '{pk}'"));
    }
    let flagged: Vec<String> = out
        .iter()
        .filter(|c| c.primary_key)
        .map(|c| c.name.clone())
        .collect();
    if table_pk.is_empty() && flagged.len() > 1 {
        return err(
            "A table has at most one PRIMARY KEY: for a key of several columns write PRIMARY KEY (a, b)",
        );
    }
    let key = if table_pk.is_empty() {
        flagged
    } else {
        table_pk
    };
    Ok((out, key))
}

#[cfg(test)]
mod tests {
    use crate::parse_sql;
    use crate::statement::{CreateTableStatement, SqlStatement};
    use kalamdb_commons::definition::AccessLevel;
    use kalamdb_commons::{KalamDataType, TableType};

    fn create(sql: &str) -> CreateTableStatement {
        match parse_sql(sql).unwrap().remove(0).statement {
            SqlStatement::CreateTable(c) => *c,
            other => panic!("not a CREATE TABLE: {other:?}"),
        }
    }

    #[test]
    fn both_option_styles_parse_to_the_same_statement() {
        let with_style = create(
            "CREATE TABLE app.msgs (id BIGINT PRIMARY KEY, body TEXT NOT NULL, n INT DEFAULT 0)
             WITH (TYPE = 'USER', STORAGE_ID = 'local', FLUSH_POLICY = 'rows:1000,interval:300')",
        );
        let clause_style = create(
            "CREATE USER TABLE app.msgs (id BIGINT PRIMARY KEY, body TEXT NOT NULL, n INT DEFAULT 0)
             STORAGE local FLUSH INTERVAL 300s ROW_THRESHOLD 1000",
        );
        assert_eq!(with_style, clause_style);
        assert_eq!(with_style.table_type, TableType::User);
        assert_eq!(with_style.table.namespace.as_deref(), Some("app"));
        assert!(with_style.columns[0].primary_key);
        assert!(!with_style.columns[0].nullable);
        assert!(!with_style.columns[1].nullable);
        assert_eq!(with_style.columns[2].default.as_deref(), Some("0"));
    }

    #[test]
    fn plain_create_table_is_shared_and_may_be_keyless() {
        let c = create("create table t (a int, B varchar(10), c double precision)");
        assert_eq!(c.table_type, TableType::Shared);
        assert!(c.columns.iter().all(|c| !c.primary_key));
        assert_eq!(c.columns[1].name, "b");
        assert_eq!(c.columns[2].data_type, KalamDataType::Double);
    }

    #[test]
    fn table_level_primary_key_and_types() {
        let c = create(
            "CREATE SHARED TABLE t (id TEXT, v EMBEDDING(3), d DECIMAL(10,2), PRIMARY KEY (id)) WITH (ACCESS_LEVEL = 'public')",
        );
        assert!(c.columns[0].primary_key);
        assert_eq!(
            c.columns[1].data_type,
            KalamDataType::Embedding { dimensions: 3 }
        );
        assert_eq!(
            c.columns[2].data_type,
            KalamDataType::Decimal {
                precision: 10,
                scale: 2
            }
        );
        assert_eq!(c.options.access_level, Some(AccessLevel::Public));
    }

    #[test]
    fn a_primary_key_of_several_columns_keeps_its_order() {
        let c = create(
            "CREATE TABLE m (body TEXT, msg_id BIGINT, chat TEXT, PRIMARY KEY (chat, msg_id))",
        );
        assert_eq!(c.primary_key, ["chat", "msg_id"]);
        assert!(!c.columns[0].primary_key);
        assert!(c.columns[1].primary_key && !c.columns[1].nullable);
        assert!(c.columns[2].primary_key && !c.columns[2].nullable);
        assert_eq!(
            create("CREATE TABLE t (a INT PRIMARY KEY)").primary_key,
            ["a"]
        );
        assert!(create("CREATE TABLE t (a INT)").primary_key.is_empty());
    }

    #[test]
    fn stream_tables_take_a_ttl() {
        let c = create("CREATE STREAM TABLE ev (id INT) TTL 30");
        assert_eq!(c.options.ttl_seconds, Some(30));
        let c = create("CREATE TABLE ev (id INT) WITH (TYPE = 'STREAM', TTL_SECONDS = 60)");
        assert_eq!(c.table_type, TableType::Stream);
    }

    #[test]
    fn invalid_definitions_are_rejected_with_a_reason() {
        for (sql, needle) in [
            ("CREATE STREAM TABLE e (id INT)", "TTL"),
            (
                "CREATE TABLE t (a INT PRIMARY KEY, b INT PRIMARY KEY)",
                "at most one",
            ),
            ("CREATE TABLE t (a INT, PRIMARY KEY (a, a))", "twice"),
            (
                "CREATE TABLE t (a INT, b DOUBLE, PRIMARY KEY (a, b))",
                "cannot be a primary key",
            ),
            (
                "CREATE TABLE t (a INT PRIMARY KEY, b INT, PRIMARY KEY (b))",
                "at most one",
            ),
            ("CREATE TABLE t (a INT, a TEXT)", "twice"),
            ("CREATE TABLE t (_seq INT)", "reserved"),
            ("CREATE TABLE t (a FOO)", "Unsupported column type"),
            (
                "CREATE USER TABLE t (a INT) WITH (TYPE = 'SHARED')",
                "conflicts",
            ),
            (
                "CREATE TABLE t (a INT) WITH (COLOR = 'red')",
                "Unknown table option",
            ),
            (
                "CREATE TABLE t (a DOUBLE PRIMARY KEY)",
                "cannot be a primary key",
            ),
            ("CREATE TABLE t ()", "at least one column"),
            ("CREATE TABLE t (a INT, PRIMARY KEY (b))", "unknown column"),
            ("CREATE TABLE t", "column list"),
        ] {
            let e = parse_sql(sql).unwrap_err();
            assert!(e.message.contains(needle), "{sql}: {}", e.message);
        }
    }

    #[test]
    fn drop_table_forms() {
        match parse_sql("DROP USER TABLE IF EXISTS app.t")
            .unwrap()
            .remove(0)
            .statement
        {
            SqlStatement::DropTable {
                table,
                table_type,
                if_exists,
            } => {
                assert_eq!(table.name, "t");
                assert_eq!(table_type, Some(TableType::User));
                assert!(if_exists);
            }
            other => panic!("{other:?}"),
        }
    }
}

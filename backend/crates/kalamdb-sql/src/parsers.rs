//! Our statement parsers, one file per family, all working on sqlparser's
//! `Parser` so positions and error messages look the same as sqlparser's.

pub mod backup;
pub mod flush;
pub mod index;
pub mod insert_values;
pub mod job;
pub mod live;
pub mod namespace;
pub mod show_describe;
pub mod storage;
pub mod table;
pub mod user;

use crate::statement::{QualifiedName, SqlStatement};
use datafusion::sql::sqlparser::ast::{Ident, ObjectName};
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::Token;

/// Routes one statement by its leading keywords.
pub(crate) fn parse_statement(p: &mut Parser<'_>) -> Result<SqlStatement, ParserError> {
    let w0 = peek_word(p, 0);
    let w1 = peek_word(p, 1);
    let w2 = peek_word(p, 2);
    match (w0.as_deref(), w1.as_deref(), w2.as_deref()) {
        (Some("CREATE"), Some("NAMESPACE"), _) => namespace::parse_create(p),
        (Some("DROP"), Some("NAMESPACE"), _) => namespace::parse_drop(p),
        (Some("SHOW"), Some("NAMESPACES"), _) => namespace::parse_show(p),
        (Some("USE"), _, _) => namespace::parse_use(p),
        (Some("SET"), Some("NAMESPACE"), _) => namespace::parse_use(p),
        (Some("CREATE"), Some("TABLE"), _)
        | (Some("CREATE"), Some("USER" | "SHARED" | "STREAM"), Some("TABLE")) => {
            table::parse_create(p)
        }
        (Some("DROP"), Some("TABLE"), _)
        | (Some("DROP"), Some("USER" | "SHARED" | "STREAM"), Some("TABLE")) => table::parse_drop(p),
        (Some("CREATE"), Some("INDEX"), _) | (Some("CREATE"), Some("UNIQUE"), Some("INDEX")) => {
            index::parse_create(p)
        }
        (Some("DROP"), Some("INDEX"), _) => index::parse_drop(p),
        (Some("SHOW"), Some("INDEXES" | "INDEX" | "KEYS"), _) => index::parse_show(p),
        (Some("SHOW"), Some("TABLES"), _) => show_describe::parse_show_tables(p),
        (Some("SHOW"), Some("STATS"), _) => show_describe::parse_show_stats(p),
        (Some("SHOW"), Some("STORAGES"), _) => show_describe::parse_show_storages(p),
        (Some("CREATE"), Some("STORAGE"), _) => storage::parse_create(p),
        (Some("ALTER"), Some("STORAGE"), _) => storage::parse_alter(p),
        (Some("DROP"), Some("STORAGE"), _) => storage::parse_drop(p),
        (Some("CREATE"), Some("USER"), _) => user::parse_create(p),
        (Some("ALTER"), Some("USER"), _) => user::parse_alter(p),
        (Some("DROP"), Some("USER"), _) => user::parse_drop(p),
        (Some("EXECUTE"), Some("AS"), Some("USER")) => user::parse_execute_as(p),
        (Some("DESCRIBE" | "DESC"), _, _) => show_describe::parse_describe(p),
        (Some("KILL" | "CANCEL"), Some("JOB"), _) => job::parse_kill(p),
        (Some("KILL"), Some("LIVE"), Some("QUERY")) => live::parse_kill(p),
        (Some("FLUSH"), Some("TABLE" | "ALL"), _)
        | (Some("STORAGE"), Some("FLUSH"), Some("TABLE" | "ALL")) => flush::parse_flush(p),
        (Some("STORAGE"), Some("COMPACT"), _) => flush::parse_compact(p),
        (Some("BACKUP"), Some("DATABASE"), _) => backup::parse_backup(p),
        (Some("RESTORE"), Some("DATABASE"), _) => backup::parse_restore(p),
        (Some("SHOW"), Some("BACKUPS"), _) => backup::parse_show(p),
        (Some("SUBSCRIBE"), Some("TO"), _) | (Some("LIVE"), Some("SELECT" | "WITH"), _) => {
            live::parse_subscribe(p)
        }
        (Some("INSERT"), _, _) => match insert_values::try_parse(p) {
            Some(statement) => Ok(statement),
            None => Ok(SqlStatement::Standard(Box::new(p.parse_statement()?))),
        },
        _ => Ok(SqlStatement::Standard(Box::new(p.parse_statement()?))),
    }
}

/// The `n`th upcoming token as an upper-cased bare word, if it is one.
pub(crate) fn peek_word(p: &Parser<'_>, n: usize) -> Option<String> {
    match p.peek_nth_token(n).token {
        Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
        _ => None,
    }
}

/// Consumes the bare word `word` (case-insensitive) if it comes next.
pub(crate) fn parse_word(p: &mut Parser<'_>, word: &str) -> bool {
    if peek_word(p, 0).as_deref() == Some(word) {
        p.next_token();
        true
    } else {
        false
    }
}

pub(crate) fn expect_word(p: &mut Parser<'_>, word: &str) -> Result<(), ParserError> {
    if parse_word(p, word) {
        Ok(())
    } else {
        p.expected(word, p.peek_token())
    }
}

/// Unquoted identifiers are lower-cased; quoted ones are kept as written.
pub fn normalize(ident: &Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_ascii_lowercase()
    }
}

pub(crate) fn parse_simple_name(p: &mut Parser<'_>) -> Result<String, ParserError> {
    Ok(normalize(&p.parse_identifier()?))
}

/// `[ns.]table` from an already parsed object name (e.g. an INSERT target).
pub fn parse_qualified_name_from(name: &ObjectName) -> Result<QualifiedName, String> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|part| part.as_ident().map(normalize))
        .collect::<Option<_>>()
        .ok_or_else(|| format!("Invalid table name '{name}'"))?;
    match parts.as_slice() {
        [table] => Ok(QualifiedName {
            namespace: None,
            name: table.clone(),
        }),
        [ns, table] => Ok(QualifiedName {
            namespace: Some(ns.clone()),
            name: table.clone(),
        }),
        _ => Err(format!(
            "Invalid table name '{name}': expected [namespace.]table"
        )),
    }
}

pub(crate) fn parse_qualified_name(p: &mut Parser<'_>) -> Result<QualifiedName, ParserError> {
    let name = p.parse_object_name(false)?;
    parse_qualified_name_from(&name).map_err(ParserError::ParserError)
}

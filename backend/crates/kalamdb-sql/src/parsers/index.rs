//! `CREATE [UNIQUE] INDEX [IF NOT EXISTS] [name] ON [ns.]t (col [ASC|DESC], …)`,
//! `DROP INDEX [IF EXISTS] [ns.]name [ON [ns.]t]` and
//! `SHOW INDEXES [FROM|IN|ON [ns.]t]` (also `SHOW INDEX`, `SHOW KEYS`).

use super::{expect_word, parse_qualified_name, parse_simple_name, parse_word};
use crate::statement::SqlStatement;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::Token;

pub fn parse_create(p: &mut Parser<'_>) -> Result<SqlStatement, ParserError> {
    p.expect_keyword(Keyword::CREATE)?;
    let unique = p.parse_keyword(Keyword::UNIQUE);
    expect_word(p, "INDEX")?;
    // an index is always built while the table stays writable
    let _ = parse_word(p, "CONCURRENTLY");
    let if_not_exists = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name = if p.peek_keyword(Keyword::ON) {
        None
    } else {
        Some(parse_simple_name(p)?)
    };
    p.expect_keyword(Keyword::ON)?;
    let table = parse_qualified_name(p)?;
    if p.parse_keyword(Keyword::USING) {
        let method = parse_simple_name(p)?;
        if method != "btree" {
            return Err(ParserError::ParserError(format!(
                "Index method '{method}' is not supported: indexes are ordered (btree)"
            )));
        }
    }
    p.expect_token(&Token::LParen)?;
    let mut columns = Vec::new();
    loop {
        let column = parse_simple_name(p)?;
        // entries are read in either direction: ASC and DESC index alike
        let _ = p.parse_keyword(Keyword::ASC) || p.parse_keyword(Keyword::DESC);
        if columns.contains(&column) {
            return Err(ParserError::ParserError(format!(
                "Column '{column}' appears twice in the index"
            )));
        }
        columns.push(column);
        if !p.consume_token(&Token::Comma) {
            break;
        }
    }
    p.expect_token(&Token::RParen)?;
    if columns.len() > MAX_INDEX_COLUMNS {
        return Err(ParserError::ParserError(format!(
            "An index has at most {MAX_INDEX_COLUMNS} columns"
        )));
    }
    Ok(SqlStatement::CreateIndex {
        name,
        table,
        columns,
        unique,
        if_not_exists,
    })
}

/// The most columns one index may have.
pub const MAX_INDEX_COLUMNS: usize = 16;

pub fn parse_drop(p: &mut Parser<'_>) -> Result<SqlStatement, ParserError> {
    p.expect_keyword(Keyword::DROP)?;
    expect_word(p, "INDEX")?;
    let _ = parse_word(p, "CONCURRENTLY");
    let if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
    let index = parse_qualified_name(p)?;
    let table = if p.parse_keyword(Keyword::ON) {
        Some(parse_qualified_name(p)?)
    } else {
        None
    };
    Ok(SqlStatement::DropIndex {
        index,
        table,
        if_exists,
    })
}

pub fn parse_show(p: &mut Parser<'_>) -> Result<SqlStatement, ParserError> {
    p.expect_keyword(Keyword::SHOW)?;
    if !(parse_word(p, "INDEXES") || parse_word(p, "INDEX") || parse_word(p, "KEYS")) {
        return p.expected("INDEXES", p.peek_token());
    }
    let table = if p.parse_keyword(Keyword::FROM)
        || p.parse_keyword(Keyword::IN)
        || p.parse_keyword(Keyword::ON)
    {
        let _ = p.parse_keyword(Keyword::TABLE);
        Some(parse_qualified_name(p)?)
    } else {
        None
    };
    Ok(SqlStatement::ShowIndexes { table })
}

#[cfg(test)]
mod tests {
    use crate::parse_sql;
    use crate::statement::SqlStatement;

    fn one(sql: &str) -> SqlStatement {
        parse_sql(sql).unwrap().remove(0).statement
    }

    #[test]
    fn index_statements_parse() {
        match one("create unique index if not exists by_room on app.t (room, body desc)") {
            SqlStatement::CreateIndex {
                name,
                table,
                columns,
                unique,
                if_not_exists,
            } => {
                assert_eq!(name.as_deref(), Some("by_room"));
                assert_eq!(table.namespace.as_deref(), Some("app"));
                assert_eq!(columns, ["room", "body"]);
                assert!(unique && if_not_exists);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            one("CREATE INDEX ON t (a)"),
            SqlStatement::CreateIndex {
                name: None,
                unique: false,
                ..
            }
        ));
        assert!(matches!(
            one("DROP INDEX IF EXISTS app.by_room"),
            SqlStatement::DropIndex {
                if_exists: true,
                table: None,
                ..
            }
        ));
        assert!(matches!(
            one("SHOW INDEXES FROM app.t"),
            SqlStatement::ShowIndexes { table: Some(_) }
        ));
        assert!(matches!(
            one("SHOW INDEXES"),
            SqlStatement::ShowIndexes { table: None }
        ));
        for bad in [
            "CREATE INDEX i ON t ()",
            "CREATE INDEX i ON t (a, a)",
            "CREATE INDEX i ON t USING hash (a)",
            "CREATE INDEX i t (a)",
        ] {
            assert!(parse_sql(bad).is_err(), "{bad}");
        }
    }
}

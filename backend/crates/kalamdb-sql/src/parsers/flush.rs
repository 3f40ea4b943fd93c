//! `[STORAGE] FLUSH TABLE [ns.]t`, `STORAGE FLUSH ALL [IN ns]` and
//! `FLUSH ALL TABLES [IN ns]`: move hot rows to the cold tier;
//! `STORAGE COMPACT TABLE [ns.]t` and `STORAGE COMPACT ALL [IN ns]`: merge
//! its segments.

use super::{expect_word, parse_qualified_name, parse_simple_name, parse_word};
use crate::statement::SqlStatement;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};

pub fn parse_flush(p: &mut Parser<'_>) -> Result<SqlStatement, ParserError> {
    parse_word(p, "STORAGE");
    expect_word(p, "FLUSH")?;
    if p.parse_keyword(Keyword::TABLE) {
        return Ok(SqlStatement::FlushTable {
            table: parse_qualified_name(p)?,
        });
    }
    p.expect_keyword(Keyword::ALL)?;
    let _ = p.parse_keyword(Keyword::TABLES);
    let namespace = parse_in_namespace(p)?;
    Ok(SqlStatement::FlushAll { namespace })
}

pub fn parse_compact(p: &mut Parser<'_>) -> Result<SqlStatement, ParserError> {
    expect_word(p, "STORAGE")?;
    expect_word(p, "COMPACT")?;
    if p.parse_keyword(Keyword::TABLE) {
        return Ok(SqlStatement::CompactTable {
            table: parse_qualified_name(p)?,
        });
    }
    if !p.parse_keyword(Keyword::ALL) {
        return p.expected("TABLE or ALL after STORAGE COMPACT", p.peek_token());
    }
    let _ = p.parse_keyword(Keyword::TABLES);
    let namespace = parse_in_namespace(p)?;
    Ok(SqlStatement::CompactAll { namespace })
}

/// `[IN [NAMESPACE] ns]`
fn parse_in_namespace(p: &mut Parser<'_>) -> Result<Option<String>, ParserError> {
    if p.parse_keyword(Keyword::IN) {
        parse_word(p, "NAMESPACE");
        Ok(Some(parse_simple_name(p)?))
    } else {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use crate::parser::parse_sql;
    use crate::statement::{QualifiedName, SqlStatement};

    fn one(sql: &str) -> SqlStatement {
        parse_sql(sql).unwrap().remove(0).statement
    }

    #[test]
    fn every_spelling_parses() {
        let t = SqlStatement::FlushTable {
            table: QualifiedName {
                namespace: Some("app".into()),
                name: "t".into(),
            },
        };
        assert_eq!(one("FLUSH TABLE app.t"), t);
        assert_eq!(one("STORAGE FLUSH TABLE app.t"), t);
        let all = |ns: Option<&str>| SqlStatement::FlushAll {
            namespace: ns.map(str::to_string),
        };
        assert_eq!(one("STORAGE FLUSH ALL"), all(None));
        assert_eq!(one("STORAGE FLUSH ALL IN app"), all(Some("app")));
        assert_eq!(one("FLUSH ALL TABLES IN NAMESPACE app"), all(Some("app")));
        assert!(parse_sql("FLUSH TABLE").is_err());
        assert_eq!(
            one("STORAGE COMPACT TABLE app.t"),
            SqlStatement::CompactTable {
                table: QualifiedName {
                    namespace: Some("app".into()),
                    name: "t".into(),
                },
            }
        );
        assert_eq!(
            one("STORAGE COMPACT ALL IN app"),
            SqlStatement::CompactAll {
                namespace: Some("app".into())
            }
        );
        assert_eq!(
            one("storage compact all"),
            SqlStatement::CompactAll { namespace: None }
        );
        let err = parse_sql("STORAGE COMPACT everything")
            .unwrap_err()
            .to_string();
        assert!(err.contains("TABLE or ALL"), "{err}");
    }
}

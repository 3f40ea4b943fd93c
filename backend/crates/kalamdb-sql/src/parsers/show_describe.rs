//! `SHOW TABLES [IN [NAMESPACE] ns]`, `DESCRIBE|DESC [TABLE] t [HISTORY]`,
//! `SHOW STATS FOR TABLE t` and `SHOW STORAGES`.

use super::{parse_qualified_name, parse_simple_name, parse_word};
use crate::statement::SqlStatement;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};

pub fn parse_show_tables(p: &mut Parser<'_>) -> Result<SqlStatement, ParserError> {
    p.expect_keyword(Keyword::SHOW)?;
    p.expect_keyword(Keyword::TABLES)?;
    let namespace = if p.parse_keyword(Keyword::IN) || p.parse_keyword(Keyword::FROM) {
        parse_word(p, "NAMESPACE");
        Some(parse_simple_name(p)?)
    } else {
        None
    };
    Ok(SqlStatement::ShowTables { namespace })
}

/// `SHOW STATS FOR TABLE [ns.]t`
pub fn parse_show_stats(p: &mut Parser<'_>) -> Result<SqlStatement, ParserError> {
    p.expect_keyword(Keyword::SHOW)?;
    super::expect_word(p, "STATS")?;
    p.expect_keyword(Keyword::FOR)?;
    let _ = p.parse_keyword(Keyword::TABLE);
    let table = parse_qualified_name(p)?;
    Ok(SqlStatement::ShowStats { table })
}

/// `SHOW STORAGES`
pub fn parse_show_storages(p: &mut Parser<'_>) -> Result<SqlStatement, ParserError> {
    p.expect_keyword(Keyword::SHOW)?;
    super::expect_word(p, "STORAGES")?;
    Ok(SqlStatement::ShowStorages)
}

pub fn parse_describe(p: &mut Parser<'_>) -> Result<SqlStatement, ParserError> {
    if !parse_word(p, "DESCRIBE") {
        p.expect_keyword(Keyword::DESC)?;
    }
    let _ = p.parse_keyword(Keyword::TABLE);
    let table = parse_qualified_name(p)?;
    let history = parse_word(p, "HISTORY");
    Ok(SqlStatement::DescribeTable { table, history })
}

#[cfg(test)]
mod tests {
    use crate::parse_sql;
    use crate::statement::SqlStatement;

    #[test]
    fn show_and_describe() {
        let s = |sql: &str| parse_sql(sql).unwrap().remove(0).statement;
        assert_eq!(
            s("SHOW TABLES"),
            SqlStatement::ShowTables { namespace: None }
        );
        assert_eq!(
            s("show tables in namespace App"),
            SqlStatement::ShowTables {
                namespace: Some("app".into())
            }
        );
        match s("DESC TABLE app.t HISTORY") {
            SqlStatement::DescribeTable { table, history } => {
                assert_eq!(table.namespace.as_deref(), Some("app"));
                assert!(history);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            s("DESCRIBE t"),
            SqlStatement::DescribeTable { history: false, .. }
        ));
        match s("SHOW STATS FOR TABLE app.t") {
            SqlStatement::ShowStats { table } => assert_eq!(table.name, "t"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            s("show stats for t"),
            SqlStatement::ShowStats { .. }
        ));
        assert_eq!(s("SHOW STORAGES"), SqlStatement::ShowStorages);
        assert!(parse_sql("SHOW STATS t").is_err());
    }
}

//! `CREATE NAMESPACE`, `DROP NAMESPACE`, `SHOW NAMESPACES`, `USE`.

use super::{expect_word, parse_simple_name, parse_word};
use crate::statement::SqlStatement;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::Token;

pub fn parse_create(p: &mut Parser<'_>) -> Result<SqlStatement, ParserError> {
    p.expect_keyword(Keyword::CREATE)?;
    expect_word(p, "NAMESPACE")?;
    let if_not_exists = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name = parse_simple_name(p)?;
    Ok(SqlStatement::CreateNamespace {
        name,
        if_not_exists,
    })
}

pub fn parse_drop(p: &mut Parser<'_>) -> Result<SqlStatement, ParserError> {
    p.expect_keyword(Keyword::DROP)?;
    expect_word(p, "NAMESPACE")?;
    let if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
    let name = parse_simple_name(p)?;
    let cascade = p.parse_keyword(Keyword::CASCADE);
    if !cascade {
        // RESTRICT is the default; accept it spelled out.
        let _ = p.parse_keyword(Keyword::RESTRICT);
    }
    Ok(SqlStatement::DropNamespace {
        name,
        if_exists,
        cascade,
    })
}

pub fn parse_show(p: &mut Parser<'_>) -> Result<SqlStatement, ParserError> {
    p.expect_keyword(Keyword::SHOW)?;
    expect_word(p, "NAMESPACES")?;
    Ok(SqlStatement::ShowNamespaces)
}

/// `USE ns`, `USE NAMESPACE ns`, `SET NAMESPACE ns` (also `= ns` / `TO ns`).
pub fn parse_use(p: &mut Parser<'_>) -> Result<SqlStatement, ParserError> {
    if p.parse_keyword(Keyword::SET) {
        expect_word(p, "NAMESPACE")?;
        if !p.consume_token(&Token::Eq) {
            let _ = p.parse_keyword(Keyword::TO);
        }
    } else {
        p.expect_keyword(Keyword::USE)?;
        // `USE namespace` alone names a namespace called "namespace".
        if super::peek_word(p, 0).as_deref() == Some("NAMESPACE")
            && matches!(p.peek_nth_token(1).token, Token::Word(_))
        {
            parse_word(p, "NAMESPACE");
        }
    }
    Ok(SqlStatement::UseNamespace {
        name: parse_simple_name(p)?,
    })
}

#[cfg(test)]
mod tests {
    use crate::parse_sql;
    use crate::statement::SqlStatement;

    fn one(sql: &str) -> SqlStatement {
        let mut v = parse_sql(sql).unwrap();
        assert_eq!(v.len(), 1);
        v.remove(0).statement
    }

    #[test]
    fn namespace_statements() {
        assert_eq!(
            one("create namespace if not exists App"),
            SqlStatement::CreateNamespace {
                name: "app".into(),
                if_not_exists: true
            }
        );
        assert_eq!(
            one("DROP NAMESPACE IF EXISTS app CASCADE"),
            SqlStatement::DropNamespace {
                name: "app".into(),
                if_exists: true,
                cascade: true
            }
        );
        assert_eq!(one("SHOW NAMESPACES"), SqlStatement::ShowNamespaces);
        for sql in [
            "USE app",
            "USE NAMESPACE app",
            "SET NAMESPACE app",
            "SET NAMESPACE = app",
        ] {
            assert_eq!(
                one(sql),
                SqlStatement::UseNamespace { name: "app".into() },
                "{sql}"
            );
        }
        assert!(parse_sql("CREATE NAMESPACE").is_err());
        assert!(parse_sql("DROP NAMESPACE app extra").is_err());
    }
}

//! `BACKUP DATABASE [ns] TO 'path'`, `RESTORE DATABASE [ns] FROM 'path'
//! [WITH OVERWRITE]` and `SHOW BACKUPS`.

use super::{expect_word, parse_simple_name, peek_word};
use crate::statement::SqlStatement;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::Token;

/// `[ns]` before `word` (TO / FROM), then the quoted path.
fn namespace_and_path(
    p: &mut Parser<'_>,
    word: &str,
) -> Result<(Option<String>, String), ParserError> {
    let namespace = if peek_word(p, 0).as_deref() == Some(word) {
        None
    } else {
        Some(parse_simple_name(p)?)
    };
    expect_word(p, word)?;
    let next = p.next_token();
    let path = match next.token {
        Token::SingleQuotedString(s) => s,
        _ => return p.expected("a quoted path", next),
    };
    if path.trim().is_empty() {
        return Err(ParserError::ParserError(
            "the backup path must not be empty".into(),
        ));
    }
    Ok((namespace, path))
}

pub fn parse_backup(p: &mut Parser<'_>) -> Result<SqlStatement, ParserError> {
    expect_word(p, "BACKUP")?;
    expect_word(p, "DATABASE")?;
    let (namespace, path) = namespace_and_path(p, "TO")?;
    Ok(SqlStatement::BackupDatabase { namespace, path })
}

pub fn parse_restore(p: &mut Parser<'_>) -> Result<SqlStatement, ParserError> {
    expect_word(p, "RESTORE")?;
    expect_word(p, "DATABASE")?;
    let (namespace, path) = namespace_and_path(p, "FROM")?;
    let overwrite = if p.parse_keyword(Keyword::WITH) {
        expect_word(p, "OVERWRITE")?;
        true
    } else {
        false
    };
    Ok(SqlStatement::RestoreDatabase {
        namespace,
        path,
        overwrite,
    })
}

pub fn parse_show(p: &mut Parser<'_>) -> Result<SqlStatement, ParserError> {
    p.expect_keyword(Keyword::SHOW)?;
    expect_word(p, "BACKUPS")?;
    Ok(SqlStatement::ShowBackups)
}

#[cfg(test)]
mod tests {
    use crate::parser::parse_sql;
    use crate::statement::SqlStatement;

    fn one(sql: &str) -> SqlStatement {
        parse_sql(sql).unwrap().remove(0).statement
    }

    #[test]
    fn backup_restore_and_show() {
        assert_eq!(
            one("BACKUP DATABASE TO '/b/1'"),
            SqlStatement::BackupDatabase {
                namespace: None,
                path: "/b/1".into()
            }
        );
        assert_eq!(
            one("backup database App to 'nightly'"),
            SqlStatement::BackupDatabase {
                namespace: Some("app".into()),
                path: "nightly".into()
            }
        );
        assert_eq!(
            one("RESTORE DATABASE FROM '/b/1'"),
            SqlStatement::RestoreDatabase {
                namespace: None,
                path: "/b/1".into(),
                overwrite: false
            }
        );
        assert_eq!(
            one("RESTORE DATABASE app FROM '/b/1' WITH OVERWRITE"),
            SqlStatement::RestoreDatabase {
                namespace: Some("app".into()),
                path: "/b/1".into(),
                overwrite: true
            }
        );
        assert_eq!(one("SHOW BACKUPS"), SqlStatement::ShowBackups);
    }

    #[test]
    fn malformed_forms_are_errors() {
        for sql in [
            "BACKUP DATABASE TO",
            "BACKUP DATABASE TO path",
            "BACKUP DATABASE TO ''",
            "BACKUP DATABASE app '/x'",
            "RESTORE DATABASE FROM '/x' WITH",
            "RESTORE DATABASE FROM '/x' WITH REPLACE",
            "RESTORE DATABASE FROM '/x' extra",
            "SHOW BACKUPS now",
        ] {
            assert!(parse_sql(sql).is_err(), "{sql}");
        }
    }
}

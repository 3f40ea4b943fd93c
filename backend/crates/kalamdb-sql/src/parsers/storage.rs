//! `CREATE STORAGE`, `ALTER STORAGE … SET …`, `DROP STORAGE`: where cold
//! segments live. Options may come in any order, each at most once, each
//! optionally written `OPTION = 'value'`.

use super::{expect_word, parse_simple_name, peek_word};
use crate::statement::{SqlStatement, StorageOptions};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::Token;
use kalamdb_commons::password::Secret;

const OPTIONS: &str = "TYPE, NAME, DESCRIPTION, PATH, SHARED_TABLES_TEMPLATE, USER_TABLES_TEMPLATE, CONFIG or CREDENTIALS";

pub fn parse_create(p: &mut Parser<'_>) -> Result<SqlStatement, ParserError> {
    p.expect_keyword(Keyword::CREATE)?;
    expect_word(p, "STORAGE")?;
    let if_not_exists = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let storage_id = parse_simple_name(p)?;
    let options = parse_options(p, false)?;
    Ok(SqlStatement::CreateStorage {
        storage_id,
        if_not_exists,
        options,
    })
}

pub fn parse_alter(p: &mut Parser<'_>) -> Result<SqlStatement, ParserError> {
    p.expect_keyword(Keyword::ALTER)?;
    expect_word(p, "STORAGE")?;
    let storage_id = parse_simple_name(p)?;
    p.expect_keyword(Keyword::SET)?;
    let options = parse_options(p, true)?;
    if options == StorageOptions::default() {
        return p.expected(OPTIONS, p.peek_token());
    }
    Ok(SqlStatement::AlterStorage {
        storage_id,
        options,
    })
}

pub fn parse_drop(p: &mut Parser<'_>) -> Result<SqlStatement, ParserError> {
    p.expect_keyword(Keyword::DROP)?;
    expect_word(p, "STORAGE")?;
    let if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
    Ok(SqlStatement::DropStorage {
        storage_id: parse_simple_name(p)?,
        if_exists,
    })
}

fn parse_options(p: &mut Parser<'_>, commas: bool) -> Result<StorageOptions, ParserError> {
    let mut out = StorageOptions::default();
    let mut first = true;
    loop {
        if commas && !first {
            let _ = p.consume_token(&Token::Comma);
        }
        let Some(word) = peek_word(p, 0) else {
            break;
        };
        let slot = match word.as_str() {
            "TYPE" | "STORAGE_TYPE" => &mut out.storage_type,
            "NAME" | "STORAGE_NAME" => &mut out.name,
            "DESCRIPTION" => &mut out.description,
            "PATH" | "BASE_DIRECTORY" => &mut out.path,
            "SHARED_TABLES_TEMPLATE" => &mut out.shared_tables_template,
            "USER_TABLES_TEMPLATE" => &mut out.user_tables_template,
            "CONFIG" => &mut out.config,
            "CREDENTIALS" => {
                p.next_token();
                let _ = p.consume_token(&Token::Eq);
                if out.credentials.is_some() {
                    return Err(ParserError::ParserError("CREDENTIALS given twice".into()));
                }
                out.credentials = Some(Secret(p.parse_literal_string()?));
                first = false;
                continue;
            }
            _ if first && !commas => {
                return p.expected(OPTIONS, p.peek_token());
            }
            _ => break,
        };
        p.next_token();
        let _ = p.consume_token(&Token::Eq);
        if slot.is_some() {
            return Err(ParserError::ParserError(format!("{word} given twice")));
        }
        // TYPE may be a bare word: TYPE s3
        let value = match (word.as_str(), p.peek_token().token) {
            ("TYPE" | "STORAGE_TYPE", Token::Word(w)) => {
                p.next_token();
                w.value
            }
            _ => p.parse_literal_string()?,
        };
        *slot = Some(value);
        first = false;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::parse_sql;
    use crate::statement::{SqlStatement, StorageOptions};
    use kalamdb_commons::password::Secret;

    fn one(sql: &str) -> SqlStatement {
        let mut v = parse_sql(sql).unwrap();
        assert_eq!(v.len(), 1);
        v.remove(0).statement
    }

    #[test]
    fn create_takes_options_in_any_order() {
        let expected = SqlStatement::CreateStorage {
            storage_id: "archive".into(),
            if_not_exists: true,
            options: StorageOptions {
                storage_type: Some("s3".into()),
                name: Some("Archive".into()),
                path: Some("s3://bucket/kalam".into()),
                config: Some(r#"{"region": "us-east-1"}"#.into()),
                credentials: Some(Secret(r#"{"access_key_id": "a"}"#.into())),
                ..StorageOptions::default()
            },
        };
        assert_eq!(
            one(
                r#"CREATE STORAGE IF NOT EXISTS archive TYPE 's3' NAME 'Archive'
                   PATH 's3://bucket/kalam' CONFIG '{"region": "us-east-1"}'
                   CREDENTIALS '{"access_key_id": "a"}'"#
            ),
            expected
        );
        assert_eq!(
            one(
                r#"create storage if not exists Archive credentials = '{"access_key_id": "a"}'
                   config '{"region": "us-east-1"}' base_directory 's3://bucket/kalam'
                   type s3 name = 'Archive'"#
            ),
            expected
        );
        assert!(parse_sql("CREATE STORAGE a TYPE 's3' TYPE 'gcs'").is_err());
        assert!(parse_sql("CREATE STORAGE a BUCKET 'x'").is_err());
        assert!(parse_sql("CREATE STORAGE a PATH 1").is_err());
    }

    #[test]
    fn alter_sets_and_drop_removes() {
        assert_eq!(
            one("ALTER STORAGE archive SET DESCRIPTION 'cold', CREDENTIALS '{}'"),
            SqlStatement::AlterStorage {
                storage_id: "archive".into(),
                options: StorageOptions {
                    description: Some("cold".into()),
                    credentials: Some(Secret("{}".into())),
                    ..StorageOptions::default()
                },
            }
        );
        assert!(parse_sql("ALTER STORAGE archive SET").is_err());
        assert_eq!(
            one("DROP STORAGE IF EXISTS archive"),
            SqlStatement::DropStorage {
                storage_id: "archive".into(),
                if_exists: true
            }
        );
    }

    #[test]
    fn credentials_never_show_in_debug() {
        let statement = one(
            r#"CREATE STORAGE a TYPE 's3' PATH 's3://b' CREDENTIALS '{"secret_access_key": "hunter2"}'"#,
        );
        assert!(!format!("{statement:?}").contains("hunter2"));
    }
}

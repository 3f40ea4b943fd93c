//! `CREATE USER`, `ALTER USER`, `DROP USER`.

use super::{expect_word, parse_word, peek_word};
use crate::statement::{SqlStatement, UserAuth, UserChange};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::Token;
use kalamdb_commons::Role;
use kalamdb_commons::password::Secret;

/// A user name: a string literal or a bare identifier.
fn parse_user_name(p: &mut Parser<'_>) -> Result<String, ParserError> {
    let token = p.next_token();
    match &token.token {
        Token::SingleQuotedString(s) => Ok(s.clone()),
        Token::Word(w) if w.quote_style.is_none() => Ok(w.value.to_ascii_lowercase()),
        Token::Word(w) => Ok(w.value.clone()),
        _ => p.expected("a user name", token),
    }
}

fn parse_string(p: &mut Parser<'_>, what: &str) -> Result<String, ParserError> {
    let token = p.next_token();
    match &token.token {
        Token::SingleQuotedString(s) => Ok(s.clone()),
        _ => p.expected(what, token),
    }
}

fn parse_role(p: &mut Parser<'_>) -> Result<Role, ParserError> {
    let token = p.next_token();
    let text = match &token.token {
        Token::Word(w) => w.value.clone(),
        Token::SingleQuotedString(s) => s.clone(),
        _ => return p.expected("a role (user, service, dba, system)", token),
    };
    text.parse().map_err(ParserError::ParserError)
}

fn parse_bool(p: &mut Parser<'_>) -> Result<bool, ParserError> {
    if p.parse_keyword(Keyword::TRUE) {
        Ok(true)
    } else if p.parse_keyword(Keyword::FALSE) {
        Ok(false)
    } else {
        p.expected("true or false", p.peek_token())
    }
}

pub fn parse_create(p: &mut Parser<'_>) -> Result<SqlStatement, ParserError> {
    p.expect_keyword(Keyword::CREATE)?;
    p.expect_keyword(Keyword::USER)?;
    let if_not_exists = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name = parse_user_name(p)?;
    p.expect_keyword(Keyword::WITH)?;
    let auth = if parse_word(p, "INTERNAL") {
        UserAuth::Internal
    } else {
        expect_word(p, "PASSWORD")?;
        UserAuth::Password(Secret(parse_string(p, "a password string")?))
    };
    expect_word(p, "ROLE")?;
    let role = parse_role(p)?;
    let mut email = None;
    let mut allow_remote = false;
    loop {
        if parse_word(p, "EMAIL") {
            email = Some(parse_string(p, "an email string")?);
        } else if parse_word(p, "ALLOW_REMOTE") {
            allow_remote = parse_bool(p)?;
        } else {
            break;
        }
    }
    Ok(SqlStatement::CreateUser {
        name,
        if_not_exists,
        auth,
        role,
        email,
        allow_remote,
    })
}

pub fn parse_alter(p: &mut Parser<'_>) -> Result<SqlStatement, ParserError> {
    p.expect_keyword(Keyword::ALTER)?;
    p.expect_keyword(Keyword::USER)?;
    let name = parse_user_name(p)?;
    p.expect_keyword(Keyword::SET)?;
    let change = match peek_word(p, 0).as_deref() {
        Some("PASSWORD") => {
            p.next_token();
            UserChange::Password(Secret(parse_string(p, "a password string")?))
        }
        Some("ROLE") => {
            p.next_token();
            UserChange::Role(parse_role(p)?)
        }
        Some("EMAIL") => {
            p.next_token();
            UserChange::Email(parse_string(p, "an email string")?)
        }
        Some("ALLOW_REMOTE") => {
            p.next_token();
            UserChange::AllowRemote(parse_bool(p)?)
        }
        _ => return p.expected("PASSWORD, ROLE, EMAIL or ALLOW_REMOTE", p.peek_token()),
    };
    Ok(SqlStatement::AlterUser { name, change })
}

pub fn parse_drop(p: &mut Parser<'_>) -> Result<SqlStatement, ParserError> {
    p.expect_keyword(Keyword::DROP)?;
    p.expect_keyword(Keyword::USER)?;
    let if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
    let name = parse_user_name(p)?;
    Ok(SqlStatement::DropUser { name, if_exists })
}

/// `EXECUTE AS USER 'name' ( <one statement> )`
pub fn parse_execute_as(p: &mut Parser<'_>) -> Result<SqlStatement, ParserError> {
    p.expect_keyword(Keyword::EXECUTE)?;
    p.expect_keyword(Keyword::AS)?;
    p.expect_keyword(Keyword::USER)?;
    let user = parse_user_name(p)?;
    p.expect_token(&Token::LParen)?;
    if peek_word(p, 0).as_deref() == Some("EXECUTE") {
        return p.expected("a statement other than EXECUTE AS USER", p.peek_token());
    }
    let statement = super::parse_statement(p)?;
    let _ = p.consume_token(&Token::SemiColon);
    p.expect_token(&Token::RParen)?;
    Ok(SqlStatement::ExecuteAsUser {
        user,
        statement: Box::new(statement),
    })
}

#[cfg(test)]
mod tests {
    use crate::parse_sql;
    use crate::statement::{SqlStatement, UserAuth, UserChange};
    use kalamdb_commons::Role;
    use kalamdb_commons::password::Secret;

    fn one(sql: &str) -> SqlStatement {
        parse_sql(sql).unwrap().remove(0).statement
    }

    #[test]
    fn user_statements() {
        assert_eq!(
            one(
                "CREATE USER IF NOT EXISTS 'alice' WITH PASSWORD 'secret-pw' ROLE user EMAIL 'a@x.io' ALLOW_REMOTE true"
            ),
            SqlStatement::CreateUser {
                name: "alice".into(),
                if_not_exists: true,
                auth: UserAuth::Password(Secret("secret-pw".into())),
                role: Role::User,
                email: Some("a@x.io".into()),
                allow_remote: true,
            }
        );
        assert!(matches!(
            one("CREATE USER 'svc' WITH INTERNAL ROLE system"),
            SqlStatement::CreateUser {
                auth: UserAuth::Internal,
                role: Role::System,
                ..
            }
        ));
        assert_eq!(
            one("ALTER USER 'alice' SET ROLE dba"),
            SqlStatement::AlterUser {
                name: "alice".into(),
                change: UserChange::Role(Role::Dba)
            }
        );
        assert_eq!(
            one("DROP USER IF EXISTS bob"),
            SqlStatement::DropUser {
                name: "bob".into(),
                if_exists: true
            }
        );
        // CREATE USER TABLE is still a table
        assert!(matches!(
            one("CREATE USER TABLE t (a INT)"),
            SqlStatement::CreateTable(_)
        ));
        assert!(parse_sql("CREATE USER 'x' WITH PASSWORD 'p' ROLE king").is_err());
        assert!(parse_sql("ALTER USER 'x' SET HAT 'red'").is_err());
        match one("EXECUTE AS USER 'alice' (INSERT INTO t VALUES (1))") {
            SqlStatement::ExecuteAsUser { user, statement } => {
                assert_eq!(user, "alice");
                assert!(matches!(*statement, SqlStatement::Standard(_)));
            }
            other => panic!("{other:?}"),
        }
        assert!(parse_sql("EXECUTE AS USER 'a' (EXECUTE AS USER 'b' (SELECT 1))").is_err());
        assert!(parse_sql("EXECUTE AS USER 'a' (SELECT 1").is_err());
        // the password never shows in debug output
        assert!(
            !format!("{:?}", one("ALTER USER a SET PASSWORD 'topsecret1'")).contains("topsecret1")
        );
    }
}

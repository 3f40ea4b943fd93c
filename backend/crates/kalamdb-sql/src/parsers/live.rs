//! `SUBSCRIBE TO <select>`, `LIVE SELECT …` and `KILL LIVE QUERY 'id'`.

use super::expect_word;
use crate::statement::SqlStatement;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::Token;

/// `SUBSCRIBE TO <select>` or `LIVE <select>`: the SELECT's text.
pub fn parse_subscribe(p: &mut Parser<'_>) -> Result<SqlStatement, ParserError> {
    if super::parse_word(p, "SUBSCRIBE") {
        expect_word(p, "TO")?;
    } else {
        expect_word(p, "LIVE")?;
    }
    let query = p.parse_query()?;
    Ok(SqlStatement::Subscribe {
        select: query.to_string(),
    })
}

pub fn parse_kill(p: &mut Parser<'_>) -> Result<SqlStatement, ParserError> {
    expect_word(p, "KILL")?;
    expect_word(p, "LIVE")?;
    expect_word(p, "QUERY")?;
    let token = p.next_token();
    let live_id = match &token.token {
        Token::SingleQuotedString(s) => s.clone(),
        _ => return p.expected("a live query id in quotes (see system.live_queries)", token),
    };
    Ok(SqlStatement::KillLiveQuery { live_id })
}

#[cfg(test)]
mod tests {
    use crate::{SqlStatement, parse_sql};

    #[test]
    fn subscribe_live_select_and_kill() {
        for sql in [
            "SUBSCRIBE TO SELECT * FROM app.t WHERE a = 1",
            "live select * from app.t where a = 1",
        ] {
            let SqlStatement::Subscribe { select } = &parse_sql(sql).unwrap()[0].statement else {
                panic!("{sql}");
            };
            assert_eq!(
                select.to_lowercase(),
                "select * from app.t where a = 1",
                "{sql}"
            );
        }
        assert_eq!(
            parse_sql("KILL LIVE QUERY 'alice-7-3'").unwrap()[0].statement,
            SqlStatement::KillLiveQuery {
                live_id: "alice-7-3".into()
            }
        );
        assert!(parse_sql("KILL LIVE QUERY").is_err());
        assert!(parse_sql("SUBSCRIBE TO").is_err());
    }
}

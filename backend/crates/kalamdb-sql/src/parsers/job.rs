//! `KILL JOB 'id'` and `CANCEL JOB 'id'`.

use super::expect_word;
use crate::statement::SqlStatement;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::Token;

pub fn parse_kill(p: &mut Parser<'_>) -> Result<SqlStatement, ParserError> {
    let verb = p.next_token();
    match &verb.token {
        Token::Word(w) if ["KILL", "CANCEL"].contains(&w.value.to_ascii_uppercase().as_str()) => {}
        _ => return p.expected("KILL or CANCEL", verb),
    }
    expect_word(p, "JOB")?;
    let token = p.next_token();
    let job_id = match &token.token {
        Token::SingleQuotedString(s) => s.clone(),
        Token::Word(w) => w.value.clone(),
        _ => return p.expected("a job id such as 'FL-4fT9a2xQ'", token),
    };
    Ok(SqlStatement::KillJob { job_id })
}

#[cfg(test)]
mod tests {
    use crate::{SqlStatement, parse_sql};

    #[test]
    fn kill_and_cancel() {
        for sql in [
            "KILL JOB 'FL-abc123'",
            "cancel job 'FL-abc123';",
            "KILL JOB \"FL-abc123\"",
        ] {
            let parsed = parse_sql(sql).unwrap();
            assert_eq!(
                parsed[0].statement,
                SqlStatement::KillJob {
                    job_id: "FL-abc123".into()
                },
                "{sql}"
            );
        }
        assert!(parse_sql("KILL JOB").is_err());
        assert!(parse_sql("KILL JOB 'x' extra").is_err());
    }
}

//! Entry point: splits a request into statements and routes each to our own
//! parser or to sqlparser, on one shared token stream.

use crate::error::SqlParseError;
use crate::limits::{SqlLimits, check_limits, may_exceed};
use crate::parsers;
use crate::statement::SqlStatement;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

/// Nesting depth sqlparser may recurse to before giving up (guards the stack
/// against hostile input such as thousands of parentheses).
const RECURSION_LIMIT: usize = 64;

/// A parsed statement that passed the limits.
#[derive(Debug, Clone)]
pub struct ParsedStatement {
    pub statement: SqlStatement,
    /// The highest `$n` placeholder it uses (0: none).
    pub placeholders: usize,
}

/// Input up to this size is parsed on the caller's thread: the deepest tree
/// it can build (~2 bytes a level) drops well within a server thread's stack.
const INLINE_PARSE_BYTES: usize = 32 << 10;

/// Parses every `;`-separated statement of `sql` under the default limits.
pub fn parse_sql(sql: &str) -> Result<Vec<ParsedStatement>, SqlParseError> {
    parse_sql_with_limits(sql, &SqlLimits::default())
}

/// Parses every `;`-separated statement of `sql`, each checked against
/// `limits` before anything walks it. Never panics and never overflows the
/// stack; a failure names the statement and the line/column where parsing
/// stopped, or the limit that was passed.
///
/// sqlparser builds operator chains in a loop, so a large input can hold an
/// arbitrarily deep tree even when parsing it is safe — and dropping such a
/// tree (say, after a parse error or a failed limit check) recurses once per
/// level. Large inputs are therefore parsed, checked and, when refused,
/// dropped on a thread whose stack fits the deepest tree their size allows.
pub fn parse_sql_with_limits(
    sql: &str,
    limits: &SqlLimits,
) -> Result<Vec<ParsedStatement>, SqlParseError> {
    if sql.len() <= INLINE_PARSE_BYTES {
        return parse_checked(sql, limits);
    }
    // ~200 bytes of stack per level of a dropped tree, ~2 bytes of SQL per
    // level: 128 bytes of stack per byte of SQL, reserved (not committed).
    let stack = sql.len().saturating_mul(128).max(16 << 20);
    let unavailable = |what: &str| SqlParseError {
        message: format!("cannot parse the statement: {what}"),
        statement_index: 1,
        in_batch: looks_like_batch(sql),
        too_complex: false,
    };
    std::thread::scope(|scope| {
        let parsing = std::thread::Builder::new()
            .name("kalamdb-parse".into())
            .stack_size(stack)
            .spawn_scoped(scope, || parse_checked(sql, limits))
            .map_err(|e| unavailable(&e.to_string()))?;
        parsing
            .join()
            .unwrap_or_else(|_| Err(unavailable("the parser failed")))
    })
}

fn parse_checked(sql: &str, limits: &SqlLimits) -> Result<Vec<ParsedStatement>, SqlParseError> {
    let dialect = GenericDialect {};
    let in_batch = looks_like_batch(sql);
    let fail = |e: ParserError, index: usize| SqlParseError {
        message: clean_message(e, sql),
        statement_index: index,
        in_batch,
        too_complex: false,
    };
    let tokens = Tokenizer::new(&dialect, sql)
        .with_unescape(true)
        .tokenize_with_location()
        .map_err(|e| fail(ParserError::TokenizerError(e.to_string()), 1))?;
    let placeholders = highest_placeholder(&tokens);
    let walk = may_exceed(sql.len(), limits);
    let mut parser = Parser::new(&dialect)
        .with_recursion_limit(RECURSION_LIMIT)
        .with_tokens_with_locations(accept_call_parens(tokens));

    let mut statements = Vec::new();
    loop {
        while parser.consume_token(&Token::SemiColon) {}
        if parser.peek_token().token == Token::EOF {
            break;
        }
        let index = statements.len() + 1;
        let statement = parsers::parse_statement(&mut parser).map_err(|e| fail(e, index))?;
        if walk && let Some(Err(e)) = statement.standard().map(|s| check_limits(s, limits)) {
            return Err(SqlParseError {
                message: e.to_string(),
                statement_index: index,
                in_batch,
                too_complex: true,
            });
        }
        statements.push(ParsedStatement {
            statement,
            placeholders,
        });
        let next = parser.peek_token();
        match next.token {
            Token::SemiColon | Token::EOF => {}
            _ => {
                return Err(fail(
                    parser.expected::<()>("end of statement", next).unwrap_err(),
                    index,
                ));
            }
        }
    }
    Ok(statements)
}

/// The highest `$n` among the tokens (0: none). Only a single statement takes
/// params, so the whole input's highest is that statement's.
fn highest_placeholder(tokens: &[TokenWithSpan]) -> usize {
    tokens
        .iter()
        .filter_map(|t| match &t.token {
            Token::Placeholder(p) => p.strip_prefix('$')?.parse::<usize>().ok(),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

/// `CURRENT_USER()` / `SESSION_USER()`: sqlparser knows these SQL-standard
/// niladic functions only without parentheses; KalamDB documents them with.
/// Drops an empty `()` right after them so both spellings parse alike.
fn accept_call_parens(tokens: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    let niladic = |t: &Token| {
        matches!(t, Token::Word(w) if w.quote_style.is_none()
            && matches!(w.keyword, Keyword::CURRENT_USER | Keyword::SESSION_USER))
    };
    if !tokens.iter().any(|t| niladic(&t.token)) {
        return tokens;
    }
    let significant = |t: &TokenWithSpan| !matches!(t.token, Token::Whitespace(_));
    let mut out = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        out.push(tokens[i].clone());
        if niladic(&tokens[i].token) {
            let mut j = i + 1;
            let mut parens = Vec::new();
            while j < tokens.len() && parens.len() < 2 {
                if significant(&tokens[j]) {
                    parens.push(j);
                }
                j += 1;
            }
            if let [open, close] = parens[..]
                && tokens[open].token == Token::LParen
                && tokens[close].token == Token::RParen
            {
                i = close + 1;
                continue;
            }
        }
        i += 1;
    }
    out
}

/// Whether `sql` holds a `;` before its last non-blank character, i.e. may be
/// more than one statement. Used only to choose the error code.
fn looks_like_batch(sql: &str) -> bool {
    sql.trim_end().trim_end_matches(';').contains(';')
}

/// sqlparser's message, with the position added when it has none (errors at
/// the end of input carry no location).
fn clean_message(e: ParserError, sql: &str) -> String {
    let message = match e {
        ParserError::TokenizerError(m) | ParserError::ParserError(m) => m,
        ParserError::RecursionLimitExceeded => "Statement is nested too deeply".to_string(),
    };
    if message.contains("Line: ") {
        return message;
    }
    let line = sql.lines().count().max(1);
    let column = sql.lines().last().map_or(0, |l| l.chars().count()) + 1;
    format!("{message} at Line: {line}, Column: {column}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn splits_batches_and_skips_empty_statements() {
        let stmts = parse_sql("SELECT 1;; SELECT 'a;b'; ").unwrap();
        assert_eq!(stmts.len(), 2);
        assert!(parse_sql("  ;  ").unwrap().is_empty());
    }

    #[test]
    fn errors_name_the_statement_and_position() {
        let err = parse_sql("SELECT 1; SELEC 2").unwrap_err();
        assert_eq!(err.statement_index, 2);
        assert!(err.in_batch);
        assert!(err.message.contains("Line: 1"), "{}", err.message);

        let err = parse_sql("SELECT * FROM t WHERE").unwrap_err();
        assert!(!err.in_batch);
        assert!(err.message.contains("Column"), "{}", err.message);
    }

    #[test]
    fn the_highest_placeholder_is_reported() {
        let n = |sql: &str| parse_sql(sql).unwrap()[0].placeholders;
        assert_eq!(n("SELECT 1"), 0);
        assert_eq!(n("SELECT $1, $1"), 1);
        assert_eq!(n("SELECT * FROM t WHERE a = $3 AND b = $1"), 3);
        assert_eq!(n("SELECT '$2' FROM t WHERE a = $1"), 1, "not in a string");
        assert_eq!(n("INSERT INTO t VALUES ($1, $2)"), 2);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let sql = format!("SELECT {}1{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(parse_sql(&sql).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn random_text_never_panics(s in "\\PC{0,80}") {
            let _ = parse_sql(&s);
        }

        #[test]
        fn random_sql_like_text_never_panics(
            words in proptest::collection::vec(prop_oneof![
                Just("CREATE"), Just("USER"), Just("SHARED"), Just("STREAM"), Just("TABLE"),
                Just("NAMESPACE"), Just("DROP"), Just("IF"), Just("NOT"), Just("EXISTS"),
                Just("("), Just(")"), Just(","), Just("WITH"), Just("="), Just("'x'"), Just("1"),
                Just("a"), Just("INT"), Just("PRIMARY"), Just("KEY"), Just("FLUSH"), Just("TTL"),
                Just("SELECT"), Just("*"), Just("FROM"), Just("SHOW"), Just("TABLES"), Just("IN"),
                Just("DESCRIBE"), Just("USE"), Just(";"), Just("ROWS"), Just("INTERVAL"), Just("30s"),
                Just("INSERT"), Just("INTO"), Just("VALUES"), Just("-"), Just("NULL"), Just("$1"), Just(" \n "),
            ], 0..16)
        ) {
            let _ = parse_sql(&words.join(" "));
        }
    }
}

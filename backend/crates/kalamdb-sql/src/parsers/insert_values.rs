//! `INSERT INTO t [(cols)] VALUES (...), ...` whose values are all plain
//! literals (numbers, strings, booleans, NULL, `$n`) is read straight from the
//! token stream into the same AST sqlparser would build. Building that AST
//! through sqlparser's expression parser costs about 1.5 µs per value, most of
//! a 1 000-row INSERT; this path costs a fraction of it. Any other shape
//! rewinds and goes to sqlparser unchanged.

use super::parse_word;
use crate::statement::SqlStatement;
use datafusion::sql::sqlparser::ast::{
    Expr, Ident, Insert, ObjectName, Parens, SetExpr, Statement, TableObject, UnaryOperator, Value,
    ValueWithSpan,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{IsOptional, Parser};
use datafusion::sql::sqlparser::tokenizer::Token;
use std::sync::LazyLock;

/// A parsed `INSERT INTO t VALUES (1)` whose table, columns and rows are
/// replaced: every other field keeps sqlparser's defaults.
static TEMPLATE: LazyLock<Option<Insert>> = LazyLock::new(|| {
    let dialect = GenericDialect {};
    match Parser::parse_sql(&dialect, "INSERT INTO t VALUES (1)")
        .ok()?
        .pop()?
    {
        Statement::Insert(insert) => Some(insert),
        _ => None,
    }
});

/// Parses the statement if it has the literal-VALUES shape; otherwise leaves
/// the parser where it was and returns `None`.
pub fn try_parse(p: &mut Parser<'_>) -> Option<SqlStatement> {
    // The position of the INSERT token itself (not of whitespace before it),
    // so rewinding token by token stops exactly there.
    let _ = p.next_token();
    let start = p.index() - 1;
    p.prev_token();
    match read(p) {
        Some(statement) => Some(statement),
        None => {
            while p.index() > start {
                p.prev_token();
            }
            None
        }
    }
}

fn read(p: &mut Parser<'_>) -> Option<SqlStatement> {
    let mut insert = TEMPLATE.clone()?;
    if !p.parse_keyword(Keyword::INSERT) || !p.parse_keyword(Keyword::INTO) {
        return None;
    }
    let table = p.parse_object_name(false).ok()?;
    let columns: Vec<Ident> = if p.peek_token().token == Token::LParen {
        p.parse_parenthesized_column_list(IsOptional::Mandatory, false)
            .ok()?
    } else {
        Vec::new()
    };
    if !parse_word(p, "VALUES") {
        return None;
    }
    let mut rows = Vec::new();
    loop {
        if !p.consume_token(&Token::LParen) {
            return None;
        }
        let mut row = Vec::new();
        loop {
            row.push(literal(p)?);
            if p.consume_token(&Token::Comma) {
                continue;
            }
            if p.consume_token(&Token::RParen) {
                break;
            }
            return None;
        }
        rows.push(Parens::with_empty_span(row));
        if !p.consume_token(&Token::Comma) {
            break;
        }
    }
    if !matches!(p.peek_token().token, Token::SemiColon | Token::EOF) {
        return None;
    }
    insert.table = TableObject::TableName(table);
    insert.columns = columns
        .into_iter()
        .map(|c| ObjectName::from(vec![c]))
        .collect();
    let source = insert.source.as_mut()?;
    let SetExpr::Values(values) = source.body.as_mut() else {
        return None;
    };
    values.rows = rows;
    Some(SqlStatement::Standard(Box::new(Statement::Insert(insert))))
}

fn value(value: Value, token: &datafusion::sql::sqlparser::tokenizer::TokenWithSpan) -> Expr {
    Expr::Value(ValueWithSpan {
        value,
        span: token.span,
    })
}

/// One plain literal, as sqlparser's expression parser would return it.
fn literal(p: &mut Parser<'_>) -> Option<Expr> {
    let token = p.next_token();
    Some(match &token.token {
        Token::Number(n, long) => value(Value::Number(n.clone(), *long), &token),
        Token::SingleQuotedString(s) => value(Value::SingleQuotedString(s.clone()), &token),
        Token::Placeholder(s) => value(Value::Placeholder(s.clone()), &token),
        Token::Word(w) if w.quote_style.is_none() => match w.keyword {
            Keyword::NULL => value(Value::Null, &token),
            Keyword::TRUE => value(Value::Boolean(true), &token),
            Keyword::FALSE => value(Value::Boolean(false), &token),
            _ => return None,
        },
        Token::Minus => {
            let number = p.next_token();
            let Token::Number(n, long) = &number.token else {
                return None;
            };
            Expr::UnaryOp {
                op: UnaryOperator::Minus,
                expr: Box::new(value(Value::Number(n.clone(), *long), &number)),
            }
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use crate::parse_sql;
    use crate::statement::SqlStatement;
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    /// The fast path and sqlparser produce the same statement.
    #[test]
    fn same_ast_as_sqlparser() {
        for sql in [
            "INSERT INTO t VALUES (1, 'a', NULL, true, false, -5, 1.5, $1)",
            "insert into app.T (a, \"B\") values (1, 'x'), (2, 'it''s')",
            "INSERT INTO t VALUES (1)",
            "INSERT INTO t VALUES (1, 2), (3, 4), (-1.25e3, 0)",
        ] {
            let ours = match parse_sql(sql).unwrap().remove(0).statement {
                SqlStatement::Standard(s) => s,
                other => panic!("{other:?}"),
            };
            let theirs = Parser::parse_sql(&GenericDialect {}, sql)
                .unwrap()
                .remove(0);
            assert_eq!(ours.to_string(), theirs.to_string(), "{sql}");
            assert_eq!(*ours, theirs, "{sql}");
        }
    }

    /// Shapes the fast path does not take still parse (through sqlparser).
    #[test]
    fn other_shapes_fall_back() {
        for sql in [
            "  \n INSERT INTO t VALUES (1 + 1)",
            "SELECT 1; \t INSERT INTO t VALUES (now())",
            "INSERT INTO t VALUES (1 + 1)",
            "INSERT INTO t VALUES (now())",
            "INSERT INTO t SELECT * FROM u",
            "INSERT INTO t VALUES (1) ON CONFLICT (a) DO NOTHING",
            "INSERT INTO t VALUES (1) RETURNING a",
            "INSERT INTO t VALUES ([1, 2])",
            "INSERT INTO t (a) VALUES (-'x')",
        ] {
            let parsed = parse_sql(sql);
            let theirs = Parser::parse_sql(&GenericDialect {}, sql);
            match (parsed, theirs) {
                (Ok(mut ours), Ok(mut theirs)) => {
                    let SqlStatement::Standard(s) = ours.pop().unwrap().statement else {
                        panic!("{sql}");
                    };
                    assert_eq!(s.to_string(), theirs.pop().unwrap().to_string(), "{sql}");
                }
                (Err(_), Err(_)) => {}
                (a, b) => panic!("{sql}: ours {a:?} theirs {b:?}"),
            }
        }
        assert!(parse_sql("INSERT INTO t VALUES (1,").is_err());
        assert!(parse_sql("INSERT INTO t VALUES (1) garbage").is_err());
    }
}

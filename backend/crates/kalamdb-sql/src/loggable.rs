//! SQL text fit for a log line: a statement that can carry a secret
//! (`PASSWORD`, `CREDENTIALS`, `SECRET`, `TOKEN`) has every string literal
//! masked, and the text is cut to a length.

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

/// Words after which a statement may hold a secret in a string literal.
const SECRET_WORDS: [&str; 4] = ["PASSWORD", "CREDENTIALS", "SECRET", "TOKEN"];

/// `sql` with the string literals of secret-bearing statements replaced by
/// `'***'`, cut to `max_chars` characters (`…` marks a cut). Text that does
/// not tokenize and names a secret word is not shown at all.
pub fn loggable_sql(sql: &str, max_chars: usize) -> String {
    let names_secret = |text: &str| {
        let upper = text.to_ascii_uppercase();
        SECRET_WORDS.iter().any(|w| upper.contains(w))
    };
    let text = if names_secret(sql) {
        match Tokenizer::new(&GenericDialect {}, sql).tokenize() {
            Ok(tokens) => tokens
                .into_iter()
                .map(|t| match t {
                    Token::Word(_)
                    | Token::Whitespace(_)
                    | Token::Number(..)
                    | Token::Placeholder(_) => t.to_string(),
                    // every kind of string literal
                    other => {
                        let text = other.to_string();
                        if text.contains(['\'', '"', '$']) {
                            "'***'".to_string()
                        } else {
                            text
                        }
                    }
                })
                .collect(),
            Err(_) => return "<not shown: it may hold a secret>".to_string(),
        }
    } else {
        sql.to_string()
    };
    let text = text.trim();
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_and_other_text_kept() {
        let masked = loggable_sql("CREATE USER 'ann' WITH PASSWORD 'hunter2!' ROLE user", 200);
        assert!(!masked.contains("hunter2"), "{masked}");
        assert!(
            masked.contains("CREATE USER") && masked.contains("ROLE user"),
            "{masked}"
        );
        let storage = loggable_sql(
            "ALTER STORAGE s3x SET CREDENTIALS '{\"secret_access_key\":\"abc\"}'",
            200,
        );
        assert!(!storage.contains("abc"), "{storage}");
        assert_eq!(
            loggable_sql("SELECT * FROM t WHERE name = 'bob'", 200),
            "SELECT * FROM t WHERE name = 'bob'"
        );
        // an unterminated literal after a secret word is not shown
        let broken = loggable_sql("ALTER USER x SET PASSWORD 'oops", 200);
        assert!(!broken.contains("oops"), "{broken}");
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary() {
        let sql = format!("SELECT '{}'", "é".repeat(50));
        let cut = loggable_sql(&sql, 20);
        assert_eq!(cut.chars().count(), 21);
        assert!(cut.ends_with('…'));
    }
}

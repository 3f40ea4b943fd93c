//! A forgiving SQL lexer for the shell: highlighting, completion context and
//! the destructive-statement check. Unterminated strings and comments run
//! to the end of the text (the user is still typing them).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Word,
    QuotedIdent,
    String,
    Number,
    Comment,
    Punct,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
}

pub fn lex(text: &str) -> Vec<Token> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        let kind = if c.is_ascii_whitespace() {
            i += 1;
            continue;
        } else if c == b'-' && b.get(i + 1) == Some(&b'-') {
            i = text[i..].find('\n').map_or(b.len(), |n| i + n);
            Kind::Comment
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            i = text[i + 2..].find("*/").map_or(b.len(), |n| i + 2 + n + 2);
            Kind::Comment
        } else if c == b'\'' || c == b'"' || c == b'`' {
            i += 1;
            while i < b.len() {
                if b[i] == c {
                    if b.get(i + 1) == Some(&c) {
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                i += 1;
            }
            if c == b'\'' {
                Kind::String
            } else {
                Kind::QuotedIdent
            }
        } else if c == b'$' && b.get(i + 1) == Some(&b'$') {
            i = text[i + 2..].find("$$").map_or(b.len(), |n| i + 2 + n + 2);
            Kind::String
        } else if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.' || b[i] == b'_') {
                i += 1;
            }
            Kind::Number
        } else if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] >= 0x80) {
                i += 1;
            }
            Kind::Word
        } else {
            i += text[i..].chars().next().map_or(1, char::len_utf8);
            Kind::Punct
        };
        out.push(Token {
            kind,
            start,
            end: i.min(b.len()),
        });
    }
    out
}

/// The statement's words outside strings and comments, upper-cased.
pub fn words(text: &str) -> Vec<String> {
    lex(text)
        .into_iter()
        .filter(|t| t.kind == Kind::Word)
        .map(|t| text[t.start..t.end].to_ascii_uppercase())
        .collect()
}

/// Why a statement deserves a confirmation, if it does: `DROP …`,
/// `TRUNCATE …`, and `DELETE` / `UPDATE` without a `WHERE`.
pub fn destructive(text: &str) -> Option<&'static str> {
    let words = words(text);
    let first = words.first().map(String::as_str);
    let has_where = words.iter().any(|w| w == "WHERE");
    match first {
        Some("DROP") => Some("drops an object and its data"),
        Some("TRUNCATE") => Some("deletes every row"),
        Some("DELETE") if !has_where => Some("has no WHERE: it deletes every row"),
        Some("UPDATE") if !has_where => Some("has no WHERE: it updates every row"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_of_each_kind() {
        let text = "SELECT 'a''b', \"Col\", 1.5e3 -- c\nFROM t /* x */ WHERE x=$$y$$";
        let kinds: Vec<Kind> = lex(text).iter().map(|t| t.kind).collect();
        use Kind::*;
        assert_eq!(
            kinds,
            [
                Word,
                String,
                Punct,
                QuotedIdent,
                Punct,
                Number,
                Comment,
                Word,
                Word,
                Comment,
                Word,
                Word,
                Punct,
                String
            ]
        );
        assert_eq!(lex("'open").len(), 1);
        assert_eq!(lex("/* open").len(), 1);
    }

    #[test]
    fn destructive_statements() {
        assert!(destructive("DROP TABLE app.t").is_some());
        assert!(destructive("  delete from app.t").is_some());
        assert!(destructive("UPDATE app.t SET a = 'WHERE'").is_some());
        assert!(destructive("DELETE FROM app.t WHERE id = 1").is_none());
        assert!(destructive("UPDATE t SET a = 1 -- WHERE\n").is_some());
        assert!(destructive("SELECT * FROM t").is_none());
        assert!(destructive("-- DROP\nSELECT 1").is_none());
    }
}

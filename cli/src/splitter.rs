//! Splits SQL text into statements at `;` — but never inside a string
//! (`'…'`, `E'…'` with backslash escapes), a quoted identifier (`"…"`,
//! `` `…` ``), a comment (`-- …`, nested `/* … */`) or a dollar-quoted body
//! (`$$…$$`, `$tag$…$tag$`).

/// One statement and the line (1-based) of the input it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub text: String,
    pub line: usize,
}

/// The complete statements of `input`, and what follows the last `;`
/// (empty, or an unterminated statement).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub statements: Vec<Statement>,
    pub rest: Option<Statement>,
    /// Bytes of the input up to and including the last splitting `;`.
    pub consumed: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Code,
    Quote { close: u8, backslash: bool },
    LineComment,
    BlockComment { depth: usize },
}

/// Splits `input`. Statements are trimmed; ones holding only whitespace or
/// comments are dropped.
pub fn split(input: &str) -> Split {
    let bytes = input.as_bytes();
    let mut statements = Vec::new();
    let mut state = State::Code;
    let mut start = 0;
    let mut i = 0;
    let mut meaningful = false; // the current statement has code, not only comments
    let push = |from: usize, to: usize, out: &mut Vec<Statement>| {
        let raw = &input[from..to];
        let text = raw.trim();
        if !text.is_empty() {
            let lead = raw.len() - raw.trim_start().len();
            let line = 1 + input[..from + lead].matches('\n').count();
            out.push(Statement {
                text: text.to_string(),
                line,
            });
        }
    };
    while i < bytes.len() {
        let c = bytes[i];
        let next = bytes.get(i + 1).copied();
        match state {
            State::Code => match c {
                b';' => {
                    if meaningful {
                        push(start, i, &mut statements);
                    }
                    meaningful = false;
                    start = i + 1;
                }
                b'-' if next == Some(b'-') => {
                    state = State::LineComment;
                    i += 1;
                }
                b'/' if next == Some(b'*') => {
                    state = State::BlockComment { depth: 1 };
                    i += 1;
                }
                b'\'' | b'"' | b'`' => {
                    let backslash = c == b'\''
                        && i > 0
                        && matches!(bytes[i - 1], b'e' | b'E')
                        && (i < 2 || !is_word(bytes[i - 2]));
                    state = State::Quote {
                        close: c,
                        backslash,
                    };
                    meaningful = true;
                }
                b'$' => {
                    meaningful = true;
                    if let Some(tag_len) = dollar_tag(&bytes[i..])
                        && (i == 0 || !is_word(bytes[i - 1]))
                    {
                        let tag = &input[i..i + tag_len];
                        match input[i + tag_len..].find(tag) {
                            Some(end) => i += tag_len + end + tag_len - 1,
                            None => i = bytes.len() - 1, // unterminated: the rest is the body
                        }
                    }
                }
                c if c.is_ascii_whitespace() => {}
                _ => meaningful = true,
            },
            State::Quote { close, backslash } => {
                if backslash && c == b'\\' {
                    i += 1;
                } else if c == close {
                    if next == Some(close) {
                        i += 1; // doubled quote
                    } else {
                        state = State::Code;
                    }
                }
            }
            State::LineComment => {
                if c == b'\n' {
                    state = State::Code;
                }
            }
            State::BlockComment { depth } => {
                if c == b'*' && next == Some(b'/') {
                    state = if depth == 1 {
                        State::Code
                    } else {
                        State::BlockComment { depth: depth - 1 }
                    };
                    i += 1;
                } else if c == b'/' && next == Some(b'*') {
                    state = State::BlockComment { depth: depth + 1 };
                    i += 1;
                }
            }
        }
        i += 1;
    }
    let mut rest = Vec::new();
    if meaningful {
        push(start, input.len(), &mut rest);
    }
    Split {
        statements,
        rest: rest.pop(),
        consumed: start,
    }
}

/// Whether `input` ends inside a string, quoted identifier, block comment or
/// dollar-quoted body (so a newline continues it).
pub fn is_complete(input: &str) -> bool {
    let split = split(input);
    split.rest.is_none() && !split.statements.is_empty()
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// The length of a dollar-quote tag at the start of `s` (`$$` or `$name$`),
/// or `None` for anything else (such as the parameter `$1`).
fn dollar_tag(s: &[u8]) -> Option<usize> {
    if s.first() != Some(&b'$') {
        return None;
    }
    let mut j = 1;
    while j < s.len() && s[j] != b'$' {
        let ok = if j == 1 {
            s[j].is_ascii_alphabetic() || s[j] == b'_'
        } else {
            is_word(s[j])
        };
        if !ok {
            return None;
        }
        j += 1;
    }
    (j < s.len()).then_some(j + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(input: &str) -> Vec<String> {
        let s = split(input);
        s.statements
            .into_iter()
            .chain(s.rest)
            .map(|s| s.text)
            .collect()
    }

    #[test]
    fn semicolons_inside_strings_identifiers_comments_and_dollar_quotes_do_not_split() {
        assert_eq!(
            texts("SELECT 'a;b'; SELECT \"x;y\" FROM t; SELECT 1"),
            ["SELECT 'a;b'", "SELECT \"x;y\" FROM t", "SELECT 1"]
        );
        assert_eq!(texts("SELECT 'it''s; fine';"), ["SELECT 'it''s; fine'"]);
        assert_eq!(texts("SELECT E'a\\';b';"), ["SELECT E'a\\';b'"]);
        // outside E'' a backslash is an ordinary character
        assert_eq!(
            texts("SELECT 'a\\'; SELECT 2;"),
            ["SELECT 'a\\'", "SELECT 2"]
        );
        assert_eq!(
            texts("SELECT 1 -- no; split\n; SELECT /* a; /* nested; */ b; */ 2;"),
            [
                "SELECT 1 -- no; split",
                "SELECT /* a; /* nested; */ b; */ 2"
            ]
        );
        assert_eq!(
            texts("SELECT $$a;b$$; SELECT $tag$ $$; $tag$; SELECT $1, $2;"),
            ["SELECT $$a;b$$", "SELECT $tag$ $$; $tag$", "SELECT $1, $2"]
        );
        assert_eq!(texts("SELECT `a;b` FROM t"), ["SELECT `a;b` FROM t"]);
    }

    #[test]
    fn empty_statements_and_comment_only_pieces_are_dropped() {
        assert!(texts(" ; ;; \n").is_empty());
        assert!(texts("-- just a comment\n/* and another */").is_empty());
        assert_eq!(texts(";;SELECT 1;;"), ["SELECT 1"]);
    }

    #[test]
    fn line_numbers_point_at_each_statement() {
        let s = split("\n\nSELECT 1;\n-- c\nSELECT\n 2;\nSELECT 3");
        let lines: Vec<usize> = s.statements.iter().map(|s| s.line).collect();
        assert_eq!(lines, [3, 4]);
        assert_eq!(s.statements[1].text, "-- c\nSELECT\n 2");
        assert_eq!(s.rest.unwrap().line, 7);
    }

    #[test]
    fn completeness_for_the_interactive_prompt() {
        assert!(is_complete("SELECT 1;"));
        assert!(is_complete("SELECT 1; -- trailing comment"));
        assert!(!is_complete("SELECT 1"));
        assert!(!is_complete("SELECT 'a;"));
        assert!(!is_complete("SELECT /* ; */"));
        assert!(!is_complete("SELECT $$ ; "));
        assert!(!is_complete(""));
        assert!(is_complete("SELECT 1;\nSELECT 2;"));
    }

    #[test]
    fn multibyte_text_is_kept_whole() {
        assert_eq!(
            texts("INSERT INTO t VALUES ('héllo; wörld 🎉'); SELECT 'ü'"),
            ["INSERT INTO t VALUES ('héllo; wörld 🎉')", "SELECT 'ü'"]
        );
    }
}

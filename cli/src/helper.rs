//! The interactive shell's rustyline helper: context-aware completion from
//! the server's catalog, highlighting, and multi-line input that ends at a
//! statement's `;`.

use crate::lexer::{Kind, lex};
use rustyline::completion::{Completer, Pair};
use rustyline::highlight::{CmdKind, Highlighter};
use rustyline::hint::Hinter;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Helper};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

pub const KEYWORDS: &[&str] = &[
    "ADD",
    "ALL",
    "ALTER",
    "AND",
    "AS",
    "ASC",
    "BEGIN",
    "BETWEEN",
    "BY",
    "CASE",
    "COMMIT",
    "CONFLICT",
    "CREATE",
    "DEFAULT",
    "DELETE",
    "DESC",
    "DESCRIBE",
    "DISTINCT",
    "DO",
    "DROP",
    "ELSE",
    "END",
    "EXECUTE",
    "EXISTS",
    "EXPLAIN",
    "FALSE",
    "FLUSH",
    "FROM",
    "GROUP",
    "HAVING",
    "IF",
    "IN",
    "INDEX",
    "INNER",
    "INSERT",
    "INTO",
    "IS",
    "JOIN",
    "JOB",
    "JOBS",
    "KILL",
    "LEFT",
    "LIKE",
    "LIMIT",
    "LIVE",
    "NAMESPACE",
    "NAMESPACES",
    "NOT",
    "NULL",
    "OFFSET",
    "ON",
    "OR",
    "ORDER",
    "OUTER",
    "PRIMARY",
    "KEY",
    "QUERY",
    "RETURNING",
    "RIGHT",
    "ROLLBACK",
    "SELECT",
    "SET",
    "SHARED",
    "SHOW",
    "STORAGE",
    "STORAGES",
    "STREAM",
    "TABLE",
    "TABLES",
    "THEN",
    "TRUE",
    "UNION",
    "UNIQUE",
    "UPDATE",
    "USER",
    "USERS",
    "USING",
    "VALUES",
    "WHEN",
    "WHERE",
    "WITH",
    "BIGINT",
    "INT",
    "TEXT",
    "BOOLEAN",
    "DOUBLE",
    "TIMESTAMP",
    "JSON",
    "BYTES",
    "SMALLINT",
    "FLOAT",
    "DATE",
    "UUID",
];

pub const FUNCTIONS: &[&str] = &[
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "coalesce",
    "lower",
    "upper",
    "length",
    "now",
    "date_trunc",
    "abs",
    "round",
    "concat",
    "substr",
    "snowflake_id",
    "uuid_v7",
    "ulid",
    "current_user",
    "current_role",
    "cosine_distance",
];

pub const META_COMMANDS: &[&str] = &[
    "\\?",
    "\\q",
    "\\conninfo",
    "\\c",
    "\\connect",
    "\\dn",
    "\\dt",
    "\\d",
    "\\du",
    "\\dj",
    "\\jobs",
    "\\health",
    "\\use",
    "\\format",
    "\\x",
    "\\timing",
    "\\i",
    "\\o",
    "\\e",
    "\\as",
    "\\refresh",
    "\\login",
    "\\logout",
    "\\subscribe",
    "\\watch",
    "\\live",
    "\\subscriptions",
    "\\unsubscribe",
];

/// What completion knows of the server (read from `system.*`).
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub namespaces: Vec<String>,
    /// namespace → tables
    pub tables: BTreeMap<String, Vec<String>>,
    /// (namespace, table) → columns
    pub columns: BTreeMap<(String, String), Vec<String>>,
}

pub struct ShellHelper {
    pub catalog: Arc<Mutex<Catalog>>,
    pub namespace: Arc<Mutex<Option<String>>>,
    pub color: bool,
}

impl Helper for ShellHelper {}

impl Hinter for ShellHelper {
    type Hint = String;
}

impl Validator for ShellHelper {
    fn validate(&self, ctx: &mut ValidationContext<'_>) -> rustyline::Result<ValidationResult> {
        Ok(if input_is_complete(ctx.input()) {
            ValidationResult::Valid(None)
        } else {
            ValidationResult::Incomplete
        })
    }
}

/// Whether Enter should run the buffer: a meta-command, `exit`/`quit`, an
/// empty line, or SQL ending in `;` outside any string or comment.
pub fn input_is_complete(input: &str) -> bool {
    let t = input.trim();
    t.is_empty()
        || t.starts_with('\\')
        || matches!(t.to_ascii_lowercase().as_str(), "exit" | "quit" | "help")
        || crate::splitter::is_complete(input)
}

impl Highlighter for ShellHelper {
    fn highlight<'l>(&self, line: &'l str, _pos: usize) -> Cow<'l, str> {
        if !self.color || line.trim_start().starts_with('\\') {
            return Cow::Borrowed(line);
        }
        Cow::Owned(highlight(line))
    }

    fn highlight_char(&self, _line: &str, _pos: usize, _kind: CmdKind) -> bool {
        self.color
    }
}

/// ANSI colours: keywords bold blue, strings green, numbers yellow,
/// comments grey.
pub fn highlight(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + 16);
    let mut at = 0;
    for t in lex(line) {
        out.push_str(&line[at..t.start]);
        let text = &line[t.start..t.end];
        let color = match t.kind {
            Kind::Word if KEYWORDS.contains(&text.to_ascii_uppercase().as_str()) => Some("1;34"),
            Kind::String => Some("32"),
            Kind::Number => Some("33"),
            Kind::Comment => Some("90"),
            _ => None,
        };
        match color {
            Some(c) => {
                out.push_str("\x1b[");
                out.push_str(c);
                out.push('m');
                out.push_str(text);
                out.push_str("\x1b[0m");
            }
            None => out.push_str(text),
        }
        at = t.end;
    }
    out.push_str(&line[at..]);
    out
}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let catalog = self.catalog.lock().expect("catalog").clone();
        let namespace = self.namespace.lock().expect("namespace").clone();
        Ok(complete(&catalog, namespace.as_deref(), line, pos))
    }
}

fn pairs(prefix: &str, candidates: impl IntoIterator<Item = String>) -> Vec<Pair> {
    let lower = prefix.to_lowercase();
    let mut out: Vec<Pair> = candidates
        .into_iter()
        .filter(|c| c.to_lowercase().starts_with(&lower))
        .map(|c| Pair {
            display: c.clone(),
            replacement: c,
        })
        .collect();
    out.sort_by(|a, b| a.display.cmp(&b.display));
    out.dedup_by(|a, b| a.display == b.display);
    out
}

/// Keywords in the case the user is typing in.
fn keywords(prefix: &str) -> impl Iterator<Item = String> + '_ {
    let lower = prefix.chars().next().is_some_and(char::is_lowercase);
    KEYWORDS.iter().map(move |k| {
        if lower {
            k.to_lowercase()
        } else {
            k.to_string()
        }
    })
}

/// The tables a statement names after FROM / JOIN / INTO / UPDATE / TABLE,
/// as (namespace, table).
pub fn referenced_tables(line: &str, default_ns: Option<&str>) -> Vec<(String, String)> {
    let tokens = lex(line);
    let text = |i: usize| &line[tokens[i].start..tokens[i].end];
    let mut out = Vec::new();
    for i in 0..tokens.len() {
        if tokens[i].kind != Kind::Word
            || !matches!(
                text(i).to_ascii_uppercase().as_str(),
                "FROM" | "JOIN" | "INTO" | "UPDATE" | "TABLE" | "DESCRIBE"
            )
        {
            continue;
        }
        let word = |j: usize| {
            tokens
                .get(j)
                .filter(|t| t.kind == Kind::Word)
                .map(|_| text(j))
        };
        match (
            word(i + 1),
            tokens.get(i + 2).map(|_| text(i + 2)),
            word(i + 3),
        ) {
            (Some(ns), Some("."), Some(table)) => out.push((ns.to_string(), table.to_string())),
            (Some(table), _, _) => {
                if let Some(ns) = default_ns {
                    out.push((ns.to_string(), table.to_string()));
                }
            }
            _ => {}
        }
    }
    out
}

pub fn complete(
    catalog: &Catalog,
    namespace: Option<&str>,
    line: &str,
    pos: usize,
) -> (usize, Vec<Pair>) {
    let before = &line[..pos];
    let start = before
        .char_indices()
        .rev()
        .find(|(_, c)| !(c.is_alphanumeric() || matches!(c, '_' | '.' | '\\')))
        .map_or(0, |(i, c)| i + c.len_utf8());
    let word = &before[start..];
    // meta-commands and their arguments
    let trimmed = before.trim_start();
    if trimmed.starts_with('\\') {
        if !trimmed.contains(char::is_whitespace) {
            return (
                start,
                pairs(word, META_COMMANDS.iter().map(|s| s.to_string())),
            );
        }
        let command = trimmed.split_whitespace().next().unwrap_or_default();
        return match command {
            "\\use" | "\\dt" => (start, pairs(word, catalog.namespaces.iter().cloned())),
            "\\d" => (start, pairs(word, qualified_tables(catalog))),
            "\\format" => (
                start,
                pairs(
                    word,
                    ["table", "json", "jsonl", "csv", "markdown"].map(String::from),
                ),
            ),
            "\\x" => (start, pairs(word, ["on", "off", "auto"].map(String::from))),
            "\\timing" => (start, pairs(word, ["on", "off"].map(String::from))),
            _ => (
                start,
                sql_candidates(catalog, namespace, line, &before[..start], word),
            ),
        };
    }
    (
        start,
        sql_candidates(catalog, namespace, line, &before[..start], word),
    )
}

fn qualified_tables(catalog: &Catalog) -> Vec<String> {
    catalog
        .tables
        .iter()
        .flat_map(|(ns, tables)| tables.iter().map(move |t| format!("{ns}.{t}")))
        .collect()
}

fn sql_candidates(
    catalog: &Catalog,
    namespace: Option<&str>,
    line: &str,
    head: &str,
    word: &str,
) -> Vec<Pair> {
    // `ns.` → its tables; `ns.table.` → its columns
    if let Some((qualifier, _)) = word.rsplit_once('.') {
        let mut out = Vec::new();
        if let Some(tables) = catalog.tables.get(qualifier) {
            out.extend(tables.iter().map(|t| format!("{qualifier}.{t}")));
        }
        if let Some((ns, table)) = qualifier.split_once('.')
            && let Some(cols) = catalog.columns.get(&(ns.to_string(), table.to_string()))
        {
            out.extend(cols.iter().map(|c| format!("{qualifier}.{c}")));
        }
        // `alias.` or `table.` of a referenced table → its columns
        for (ns, table) in referenced_tables(line, namespace) {
            if table == qualifier
                && let Some(cols) = catalog.columns.get(&(ns, table))
            {
                out.extend(cols.iter().map(|c| format!("{qualifier}.{c}")));
            }
        }
        return pairs(word, out);
    }
    let tokens = lex(head);
    let previous = tokens
        .last()
        .map(|t| head[t.start..t.end].to_ascii_uppercase());
    match previous.as_deref() {
        Some("FROM" | "JOIN" | "INTO" | "UPDATE" | "TABLE" | "DESCRIBE") => {
            let mut out: Vec<String> = catalog.namespaces.iter().map(|n| format!("{n}.")).collect();
            if let Some(tables) = namespace.and_then(|ns| catalog.tables.get(ns)) {
                out.extend(tables.iter().cloned());
            }
            pairs(word, out)
        }
        Some(
            "SELECT" | "WHERE" | "SET" | "AND" | "OR" | "BY" | "ON" | "HAVING" | "," | "(" | "="
            | "<" | ">" | "NOT",
        ) => {
            let mut out: Vec<String> = referenced_tables(line, namespace)
                .into_iter()
                .filter_map(|key| catalog.columns.get(&key).cloned())
                .flatten()
                .collect();
            out.extend(FUNCTIONS.iter().map(|f| f.to_string()));
            out.extend(keywords(word));
            pairs(word, out)
        }
        _ => pairs(word, keywords(word)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        let mut c = Catalog {
            namespaces: vec!["app".into(), "system".into()],
            ..Default::default()
        };
        c.tables
            .insert("app".into(), vec!["messages".into(), "members".into()]);
        c.columns.insert(
            ("app".into(), "messages".into()),
            vec!["id".into(), "room".into(), "body".into()],
        );
        c
    }

    fn names(line: &str) -> Vec<String> {
        let (_, p) = complete(&catalog(), None, line, line.len());
        p.into_iter().map(|p| p.replacement).collect()
    }

    #[test]
    fn completes_in_context() {
        assert_eq!(names("SELECT * FROM ap"), ["app."]);
        assert_eq!(
            names("SELECT * FROM app.me"),
            ["app.members", "app.messages"]
        );
        let line = "SELECT * FROM app.messages WHERE ro";
        assert!(
            names(line).contains(&"room".to_string()),
            "{:?}",
            names(line)
        );
        assert_eq!(names("\\ti"), ["\\timing"]);
        assert_eq!(names("\\use a"), ["app"]);
        assert_eq!(names("sel"), ["select"]);
        assert_eq!(names("SEL"), ["SELECT"]);
        let (_, p) = complete(&catalog(), Some("app"), "SELECT * FROM mes", 17);
        assert_eq!(p[0].replacement, "messages");
    }

    #[test]
    fn columns_of_the_statement_table_even_when_typed_before_from() {
        let line = "SELECT bo FROM app.messages";
        let (start, p) = complete(&catalog(), None, line, 9);
        assert_eq!(start, 7);
        assert!(p.iter().any(|p| p.replacement == "body"));
    }

    #[test]
    fn highlighting_colours_keywords_strings_numbers() {
        let h = highlight("select 'x', 1 from t -- c");
        assert!(h.starts_with("\x1b[1;34mselect\x1b[0m"), "{h:?}");
        assert!(h.contains("\x1b[32m'x'\x1b[0m"));
        assert!(h.contains("\x1b[33m1\x1b[0m"));
        assert!(h.contains("\x1b[90m-- c\x1b[0m"));
    }
}

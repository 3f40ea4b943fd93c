//! Result rendering: aligned tables (wrapped to the terminal, never cut),
//! expanded records, JSON (64-bit integers kept exactly as the server sent
//! them), JSON lines, CSV (RFC 4180) and GitHub markdown.

use comfy_table::{Cell, Color, ContentArrangement, Table, presets};
use kalam_link::QueryResult;
use serde_json::Value;
use std::fmt::Write as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Jsonl,
    Csv,
    Markdown,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        <Format as clap::ValueEnum>::from_str(s, true).ok()
    }
    pub fn name(self) -> &'static str {
        match self {
            Format::Table => "table",
            Format::Json => "json",
            Format::Jsonl => "jsonl",
            Format::Csv => "csv",
            Format::Markdown => "markdown",
        }
    }
}

/// `\x`: one record per block instead of one row per line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expanded {
    Off,
    On,
    /// Expanded when the table would not fit the terminal.
    Auto,
}

/// How to render: the parts of the session that shape output.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub format: Format,
    pub expanded: Expanded,
    pub color: bool,
    /// Terminal width in columns (`None`: not a terminal, no wrapping).
    pub width: Option<u16>,
}

/// A cell as text: strings as they are, NULL as `None`, other JSON compact.
pub fn cell_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

const NULL: &str = "NULL";

/// Renders one statement's result. Statements without rows render their
/// message (table format) or a small object (JSON formats).
pub fn render(result: &QueryResult, style: &Style) -> String {
    let Some(schema) = &result.schema else {
        let message = result.message.clone().unwrap_or_else(|| "OK".into());
        return match style.format {
            Format::Json | Format::Jsonl => {
                format!("{}\n", serde_json::json!({ "message": message }))
            }
            Format::Csv => String::new(),
            Format::Table | Format::Markdown => format!("{message}\n"),
        };
    };
    let names: Vec<&str> = schema.iter().map(|c| c.name.as_str()).collect();
    let rows = result.rows();
    match style.format {
        Format::Table => table(&names, rows, style),
        Format::Json => {
            let mut out = String::from("[");
            for (i, row) in rows.iter().enumerate() {
                out.push_str(if i == 0 { "\n  " } else { ",\n  " });
                out.push_str(&object(&names, row));
            }
            out.push_str(if rows.is_empty() { "]\n" } else { "\n]\n" });
            out
        }
        Format::Jsonl => rows.iter().map(|row| object(&names, row) + "\n").collect(),
        Format::Csv => csv_text(&names, rows),
        Format::Markdown => markdown(&names, rows),
    }
}

/// One row as a JSON object, keys in column order.
pub fn object(names: &[&str], row: &[Value]) -> String {
    let mut out = String::from("{");
    for (i, (name, value)) in names.iter().zip(row).enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&Value::String((*name).to_string()).to_string());
        out.push(':');
        out.push_str(&value.to_string());
    }
    out.push('}');
    out
}

fn csv_text(names: &[&str], rows: &[Vec<Value>]) -> String {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    let _ = writer.write_record(names);
    for row in rows {
        let _ = writer.write_record(row.iter().map(|v| cell_text(v).unwrap_or_default()));
    }
    String::from_utf8(writer.into_inner().unwrap_or_default()).unwrap_or_default()
}

fn markdown(names: &[&str], rows: &[Vec<Value>]) -> String {
    let esc = |s: &str| {
        s.replace('\\', "\\\\")
            .replace('|', "\\|")
            .replace('\n', "<br>")
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| {} |",
        names.iter().map(|n| esc(n)).collect::<Vec<_>>().join(" | ")
    );
    let _ = writeln!(out, "|{}", " --- |".repeat(names.len()));
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .map(|v| cell_text(v).map_or_else(|| NULL.to_string(), |s| esc(&s)))
            .collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out
}

fn null_cell(color: bool) -> Cell {
    let cell = Cell::new(NULL);
    if color {
        cell.fg(Color::DarkGrey)
    } else {
        cell
    }
}

fn table(names: &[&str], rows: &[Vec<Value>], style: &Style) -> String {
    let natural_width: usize = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            rows.iter()
                .map(|r| {
                    r.get(i)
                        .and_then(cell_text)
                        .map_or(NULL.len(), |s| s.lines().map(str::len).max().unwrap_or(0))
                })
                .max()
                .unwrap_or(0)
                .max(n.len())
                + 3
        })
        .sum::<usize>()
        + 1;
    let expanded = match style.expanded {
        Expanded::On => true,
        Expanded::Off => false,
        Expanded::Auto => style.width.is_some_and(|w| natural_width > w as usize),
    };
    if expanded && !rows.is_empty() {
        return records(names, rows, style);
    }
    let mut table = Table::new();
    table.load_preset(presets::UTF8_FULL_CONDENSED);
    if let Some(width) = style.width {
        table
            .set_width(width)
            .set_content_arrangement(ContentArrangement::Dynamic);
    }
    table.set_header(names.iter().map(|n| {
        let cell = Cell::new(n);
        if style.color {
            cell.fg(Color::Cyan)
        } else {
            cell
        }
    }));
    for row in rows {
        table.add_row(row.iter().map(|v| match cell_text(v) {
            Some(s) => Cell::new(s),
            None => null_cell(style.color),
        }));
    }
    format!("{table}\n")
}

/// psql's expanded display: `-[ RECORD n ]-` then `column | value` lines.
fn records(names: &[&str], rows: &[Vec<Value>], style: &Style) -> String {
    let label = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let head = format!("-[ RECORD {} ]", i + 1);
        let rule = style
            .width
            .map_or(head.len() + 10, |w| (w as usize).min(80))
            .max(head.len() + 1);
        let _ = writeln!(out, "{head}{}", "-".repeat(rule - head.len()));
        for (name, value) in names.iter().zip(row) {
            let text = match cell_text(value) {
                Some(s) => s,
                None if style.color => format!("\x1b[90m{NULL}\x1b[0m"),
                None => NULL.to_string(),
            };
            let mut lines = text.lines();
            let _ = writeln!(out, "{name:<label$} | {}", lines.next().unwrap_or_default());
            for more in lines {
                let _ = writeln!(out, "{:<label$} | {more}", "");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kalam_link::ColumnInfo;
    use serde_json::json;

    fn result() -> QueryResult {
        QueryResult {
            schema: Some(
                ["id", "name", "tags"]
                    .iter()
                    .enumerate()
                    .map(|(index, n)| ColumnInfo {
                        name: n.to_string(),
                        data_type: "Utf8".into(),
                        index,
                        flags: vec![],
                    })
                    .collect(),
            ),
            rows: Some(vec![
                vec![
                    json!("9007199254740993"),
                    json!("a, \"b\""),
                    json!({"k": [1, 2]}),
                ],
                vec![json!("2"), Value::Null, json!("x|y\nz")],
            ]),
            row_count: 2,
            message: None,
            as_user: None,
        }
    }

    fn style(format: Format) -> Style {
        Style {
            format,
            expanded: Expanded::Off,
            color: false,
            width: None,
        }
    }

    #[test]
    fn json_keeps_big_integers_and_column_order() {
        let out = render(&result(), &style(Format::Json));
        assert_eq!(
            out,
            "[\n  {\"id\":\"9007199254740993\",\"name\":\"a, \\\"b\\\"\",\"tags\":{\"k\":[1,2]}},\n  {\"id\":\"2\",\"name\":null,\"tags\":\"x|y\\nz\"}\n]\n"
        );
        let lines = render(&result(), &style(Format::Jsonl));
        assert_eq!(lines.lines().count(), 2);
        let first: Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
        assert_eq!(first["id"], "9007199254740993");
    }

    #[test]
    fn csv_quotes_per_rfc_4180() {
        let out = render(&result(), &style(Format::Csv));
        assert_eq!(
            out,
            "id,name,tags\r\n9007199254740993,\"a, \"\"b\"\"\",\"{\"\"k\"\":[1,2]}\"\r\n2,,\"x|y\nz\"\r\n"
        );
    }

    #[test]
    fn markdown_escapes_pipes_and_newlines() {
        let out = render(&result(), &style(Format::Markdown));
        assert_eq!(
            out,
            "| id | name | tags |\n| --- | --- | --- |\n| 9007199254740993 | a, \"b\" | {\"k\":[1,2]} |\n| 2 | NULL | x\\|y<br>z |\n"
        );
    }

    #[test]
    fn tables_wrap_long_values_instead_of_cutting_them() {
        let long = "word ".repeat(40);
        let mut r = result();
        r.rows.as_mut().unwrap()[0][1] = json!(long.trim());
        let out = render(
            &r,
            &Style {
                width: Some(60),
                ..style(Format::Table)
            },
        );
        assert!(out.lines().all(|l| l.chars().count() <= 60), "{out}");
        assert_eq!(out.matches("word").count(), 40, "nothing cut: {out}");
        assert!(out.contains("NULL"));
    }

    #[test]
    fn expanded_display_on_and_auto() {
        let on = render(
            &result(),
            &Style {
                expanded: Expanded::On,
                ..style(Format::Table)
            },
        );
        assert!(on.starts_with("-[ RECORD 1 ]"), "{on}");
        assert!(on.contains("\nname | NULL\n"), "{on}");
        let narrow = Style {
            expanded: Expanded::Auto,
            width: Some(20),
            ..style(Format::Table)
        };
        assert!(render(&result(), &narrow).starts_with("-[ RECORD 1 ]"));
        let wide = Style {
            width: Some(200),
            ..narrow
        };
        assert!(!render(&result(), &wide).starts_with("-[ RECORD"));
    }
}

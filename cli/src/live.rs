//! `\subscribe`, `\live`, background subscriptions and `--subscribe`:
//! printing a live query's rows and changes.

use crate::format::{self, Format};
use crate::session::{Background, Session};
use kalam_link::{ColumnInfo, LiveEvent, LiveRow, QueryResult, SubscriptionOptions};
use serde_json::Value;
use std::time::Duration;

/// The display columns: the schema's, then any other key but `_seq`
/// (`with_seq` keeps it, last).
fn columns(schema: &[ColumnInfo], sample: Option<&LiveRow>, with_seq: bool) -> Vec<String> {
    let mut names: Vec<String> = schema
        .iter()
        .map(|c| c.name.clone())
        .filter(|n| n != "_seq")
        .collect();
    if let Some(row) = sample {
        for key in row.keys() {
            if key != "_seq" && !names.contains(key) {
                names.push(key.clone());
            }
        }
    }
    if with_seq {
        names.push("_seq".into());
    }
    names
}

fn values(names: &[String], row: &LiveRow) -> Vec<Value> {
    names
        .iter()
        .map(|n| row.get(n).cloned().unwrap_or(Value::Null))
        .collect()
}

fn object(names: &[String], row: &LiveRow) -> String {
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let row: Vec<Value> = names
        .iter()
        .map(|n| row.get(*n).cloned().unwrap_or(Value::Null))
        .collect();
    format::object(&names, &row)
}

fn as_result(names: &[String], rows: &[LiveRow]) -> QueryResult {
    QueryResult {
        schema: Some(
            names
                .iter()
                .enumerate()
                .map(|(index, n)| ColumnInfo {
                    name: n.clone(),
                    data_type: String::new(),
                    index,
                    flags: vec![],
                })
                .collect(),
        ),
        rows: Some(rows.iter().map(|r| values(names, r)).collect()),
        row_count: rows.len(),
        message: None,
        as_user: None,
    }
}

/// The columns identifying a row: the primary key's, else every column.
fn identity(schema: &[ColumnInfo], names: &[String]) -> Vec<String> {
    let pk: Vec<String> = schema
        .iter()
        .filter(|c| c.flags.iter().any(|f| f == "pk"))
        .map(|c| c.name.clone())
        .collect();
    if pk.is_empty() { names.to_vec() } else { pk }
}

fn same_row(key: &[String], a: &LiveRow, b: &LiveRow) -> bool {
    key.iter().all(|k| a.get(k) == b.get(k))
}

/// One line per change, coloured when the terminal takes colour.
fn change_lines(event: &LiveEvent, names: &[String], color: bool, prefix: &str) -> Vec<String> {
    let paint = |code: &str, text: String| {
        if color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text
        }
    };
    match event {
        LiveEvent::Insert { rows } => rows
            .iter()
            .map(|r| paint("32", format!("{prefix}+ INSERT {}", object(names, r))))
            .collect(),
        LiveEvent::Update { rows, old_rows } => rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let was = old_rows
                    .get(i)
                    .map(|o| format!("  (was {})", object(names, o)))
                    .unwrap_or_default();
                paint("33", format!("{prefix}~ UPDATE {}{was}", object(names, r)))
            })
            .collect(),
        LiveEvent::Delete { old_rows } => old_rows
            .iter()
            .map(|r| paint("31", format!("{prefix}- DELETE {}", object(names, r))))
            .collect(),
        LiveEvent::InitialRows {
            rows,
            resumed: true,
        } => rows
            .iter()
            .map(|r| paint("33", format!("{prefix}~ CHANGED {}", object(names, r))))
            .collect(),
        _ => vec![],
    }
}

fn options() -> SubscriptionOptions {
    SubscriptionOptions::default()
}

impl Session {
    /// `\subscribe` / `\live`: until Ctrl-C or the subscription ends.
    pub async fn subscribe_foreground(&mut self, sql: &str, redraw: bool) -> Result<(), String> {
        let mut sub = self
            .client
            .subscribe(sql, options())
            .await
            .map_err(|e| e.to_string())?;
        let color = self.style.color;
        let mut schema: Vec<ColumnInfo> = vec![];
        let mut names: Vec<String> = vec![];
        let mut rows: Vec<LiveRow> = vec![];
        let mut ready = false;
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        loop {
            let event = tokio::select! {
                e = sub.next() => e,
                _ = &mut ctrl_c => break,
            };
            let Some(event) = event else { break };
            if names.is_empty() {
                let sample = match &event {
                    LiveEvent::InitialRows { rows, .. } | LiveEvent::Insert { rows } => {
                        rows.first()
                    }
                    _ => None,
                };
                if sample.is_some() {
                    names = columns(&schema, sample, false);
                }
            }
            match &event {
                LiveEvent::Subscribed {
                    schema: s,
                    resumed_from,
                    ..
                } => {
                    schema = s.clone();
                    if !s.is_empty() {
                        names = columns(s, None, false);
                    }
                    if let Some(seq) = resumed_from {
                        self.notice(&format!("Reconnected; resuming after _seq {seq}."));
                    }
                }
                LiveEvent::InitialRows {
                    rows: batch,
                    resumed: false,
                } => rows.extend(batch.iter().cloned()),
                LiveEvent::Ready if !ready => {
                    ready = true;
                    if redraw {
                        self.redraw(sql, &names, &rows);
                    } else {
                        let mut style = self.style;
                        style.format = Format::Table;
                        style.width = terminal_size::terminal_size().map(|(w, _)| w.0);
                        let text = format::render(&as_result(&names, &rows), &style);
                        self.print(&text);
                        self.notice(&format!(
                            "({} row{}) Listening for changes; Ctrl-C stops.",
                            rows.len(),
                            if rows.len() == 1 { "" } else { "s" }
                        ));
                    }
                }
                LiveEvent::Reconnecting { reason, .. } => {
                    self.notice(&format!("Connection lost ({reason}); reconnecting…"));
                }
                LiveEvent::Error { code, message } => {
                    return Err(format!("[{code}] {message}"));
                }
                _ => {}
            }
            if redraw {
                let key = identity(&schema, &names);
                let changed = match &event {
                    LiveEvent::Insert { rows: new } => {
                        rows.extend(new.iter().cloned());
                        true
                    }
                    LiveEvent::InitialRows {
                        rows: new,
                        resumed: true,
                    } => {
                        for r in new {
                            match rows.iter_mut().find(|x| same_row(&key, x, r)) {
                                Some(x) => *x = r.clone(),
                                None => rows.push(r.clone()),
                            }
                        }
                        true
                    }
                    LiveEvent::Update {
                        rows: new,
                        old_rows,
                    } => {
                        for (i, r) in new.iter().enumerate() {
                            let old = old_rows.get(i).unwrap_or(r);
                            match rows.iter_mut().find(|x| same_row(&key, x, old)) {
                                Some(x) => *x = r.clone(),
                                None => rows.push(r.clone()),
                            }
                        }
                        true
                    }
                    LiveEvent::Delete { old_rows } => {
                        rows.retain(|x| !old_rows.iter().any(|o| same_row(&key, x, o)));
                        true
                    }
                    _ => false,
                };
                if changed && ready {
                    self.redraw(sql, &names, &rows);
                }
            } else if ready {
                for line in change_lines(&event, &names, color, "") {
                    self.print(&format!("{line}\n"));
                }
            }
        }
        self.notice(&format!(
            "Subscription ended (last _seq {}).",
            sub.last_seq().map_or("-".into(), |s| s.to_string())
        ));
        Ok(())
    }

    fn redraw(&mut self, sql: &str, names: &[String], rows: &[LiveRow]) {
        let mut style = self.style;
        style.format = Format::Table;
        style.width = terminal_size::terminal_size().map(|(w, _)| w.0);
        let table = format::render(&as_result(names, rows), &style);
        let now = chrono_like_now();
        let n = rows.len();
        let plural = if n == 1 { "" } else { "s" };
        self.print(&format!(
            "\x1b[H\x1b[2J{sql}\n{table}({n} row{plural} at {now}) Ctrl-C stops.\n"
        ));
    }

    /// `\subscribe … &`: changes printed above the prompt, tagged with the
    /// subscription's id.
    pub async fn subscribe_background(&mut self, sql: &str) -> Result<(), String> {
        let mut sub = self
            .client
            .subscribe(sql, options())
            .await
            .map_err(|e| e.to_string())?;
        // the smallest number not in use
        let id = (1..)
            .map(|n: usize| n.to_string())
            .find(|n| !self.background.contains_key(n))
            .expect("some number is free");
        let printer = self.printer.clone();
        let color = self.style.color;
        let tag = format!("[{id}] ");
        let task = tokio::spawn(async move {
            let mut names: Vec<String> = vec![];
            let mut initial = 0usize;
            let say = |line: String| match &printer {
                Some(p) => (p.lock().expect("printer"))(line),
                None => println!("{line}"),
            };
            while let Some(event) = sub.next().await {
                match &event {
                    LiveEvent::Subscribed { schema, .. } if !schema.is_empty() => {
                        names = columns(schema, None, false);
                    }
                    LiveEvent::InitialRows {
                        rows,
                        resumed: false,
                    } => {
                        if names.is_empty() {
                            names = columns(&[], rows.first(), false);
                        }
                        initial += rows.len();
                    }
                    LiveEvent::Ready => say(format!("{tag}{initial} row(s); listening")),
                    LiveEvent::Reconnecting { reason, .. } => {
                        say(format!("{tag}connection lost ({reason}); reconnecting…"))
                    }
                    LiveEvent::Error { code, message } => {
                        say(format!("{tag}ended: [{code}] {message}"));
                    }
                    _ => {}
                }
                if names.is_empty()
                    && let LiveEvent::Insert { rows } = &event
                {
                    names = columns(&[], rows.first(), false);
                }
                for line in change_lines(&event, &names, color, &tag) {
                    say(line);
                }
            }
        });
        self.notice(&format!(
            "Subscription {id} runs in the background (\\subscriptions lists, \\unsubscribe {id} ends it)."
        ));
        self.background.insert(
            id,
            Background {
                sql: sql.to_string(),
                task,
            },
        );
        Ok(())
    }

    /// `--subscribe`: one JSON line per event on standard output (notices on
    /// standard error) until Ctrl-C, the timeout, or the end.
    pub async fn subscribe_jsonl(
        &mut self,
        sql: &str,
        timeout: Option<Duration>,
        from: Option<i64>,
        last_rows: Option<usize>,
    ) -> Result<(), String> {
        let options = SubscriptionOptions {
            from,
            last_rows,
            ..options()
        };
        let mut sub = self
            .client
            .subscribe(sql, options)
            .await
            .map_err(|e| e.to_string())?;
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let mut names: Vec<String> = vec![];
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        loop {
            let event = tokio::select! {
                e = sub.next() => e,
                _ = &mut ctrl_c => break,
                _ = async {
                    match deadline {
                        Some(d) => tokio::time::sleep_until(d).await,
                        None => std::future::pending().await,
                    }
                } => break,
            };
            let Some(event) = event else { break };
            let row_names = |rows: &[LiveRow], names: &mut Vec<String>| {
                if names.is_empty() {
                    *names = columns(&[], rows.first(), true);
                }
            };
            let mut lines: Vec<String> = vec![];
            match &event {
                LiveEvent::Subscribed {
                    schema,
                    total_rows,
                    resumed_from,
                } => {
                    if !schema.is_empty() {
                        names = columns(schema, None, true);
                    }
                    let cols: Vec<&String> = names.iter().filter(|n| *n != "_seq").collect();
                    lines.push(
                        serde_json::json!({"type": "subscribed", "columns": cols,
                                           "total_rows": total_rows, "resumed_from": resumed_from.map(|s| s.to_string())})
                        .to_string(),
                    );
                }
                LiveEvent::InitialRows { rows, resumed } => {
                    row_names(rows, &mut names);
                    let kind = if *resumed { "changed" } else { "initial" };
                    for r in rows {
                        lines.push(format!(
                            "{{\"type\":\"{kind}\",\"row\":{}}}",
                            object(&names, r)
                        ));
                    }
                }
                LiveEvent::Ready => lines.push("{\"type\":\"ready\"}".into()),
                LiveEvent::Insert { rows } => {
                    row_names(rows, &mut names);
                    for r in rows {
                        lines.push(format!(
                            "{{\"type\":\"insert\",\"row\":{}}}",
                            object(&names, r)
                        ));
                    }
                }
                LiveEvent::Update { rows, old_rows } => {
                    row_names(rows, &mut names);
                    for (i, r) in rows.iter().enumerate() {
                        let old = old_rows.get(i).map_or("null".into(), |o| object(&names, o));
                        lines.push(format!(
                            "{{\"type\":\"update\",\"row\":{},\"old\":{old}}}",
                            object(&names, r)
                        ));
                    }
                }
                LiveEvent::Delete { old_rows } => {
                    row_names(old_rows, &mut names);
                    for r in old_rows {
                        lines.push(format!(
                            "{{\"type\":\"delete\",\"old\":{}}}",
                            object(&names, r)
                        ));
                    }
                }
                LiveEvent::Reconnecting { reason, .. } => {
                    self.notice(&format!("connection lost ({reason}); reconnecting…"));
                }
                LiveEvent::Error { code, message } => {
                    return Err(format!("[{code}] {message}"));
                }
            }
            for line in lines {
                self.print(&format!("{line}\n"));
            }
        }
        Ok(())
    }
}

/// HH:MM:SS (UTC) without a date-time dependency.
fn chrono_like_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let day = secs % 86_400;
    format!(
        "{:02}:{:02}:{:02} UTC",
        day / 3600,
        day % 3600 / 60,
        day % 60
    )
}

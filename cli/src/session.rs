//! A shell session: the client, display settings, and running SQL text and
//! meta-commands — the same code for `-c`, `-f`, standard input and the
//! interactive prompt.

use crate::args::OnError;
use crate::config::{Credentials, SavedSession};
use crate::format::{self, Expanded, Format, Style};
use crate::helper::Catalog;
use crate::lexer;
use crate::splitter::{self, Statement};
use kalam_link::{Auth, KalamLinkClient, LinkError, QueryOptions, QueryResult, TokenPair};
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running background subscription (`\subscribe … &`).
pub struct Background {
    pub sql: String,
    pub task: tokio::task::JoinHandle<()>,
}

/// Where lines printed from the background go (rustyline's external
/// printer while the prompt is up).
pub type Printer = Arc<Mutex<Box<dyn FnMut(String) + Send>>>;

pub struct Session {
    pub client: KalamLinkClient,
    pub instance: String,
    pub namespace: Arc<Mutex<Option<String>>>,
    pub catalog: Arc<Mutex<Catalog>>,
    pub style: Style,
    pub timing: bool,
    pub spinner: bool,
    pub pager: bool,
    /// Standard input and output are a terminal and no script was given.
    pub interactive: bool,
    pub on_error: OnError,
    pub yes: bool,
    /// `\o FILE`.
    pub out: Option<std::fs::File>,
    /// The last SQL run (for `\e`).
    pub last_sql: Option<String>,
    /// The tokens last written to credentials.toml (to save refreshed ones).
    pub saved: Option<TokenPair>,
    /// Prompt for a password when the server says 401 (no password given).
    pub may_prompt_password: bool,
    pub background: std::collections::BTreeMap<String, Background>,
    pub printer: Option<Printer>,
    pub quit: bool,
}

/// How a statement went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Failed,
    Cancelled,
}

impl Session {
    pub fn namespace(&self) -> Option<String> {
        self.namespace.lock().expect("namespace").clone()
    }

    pub fn set_namespace(&self, ns: Option<String>) {
        *self.namespace.lock().expect("namespace") = ns;
    }

    /// Writes to `\o`'s file or standard output.
    pub fn print(&mut self, text: &str) {
        match &mut self.out {
            Some(f) => {
                let _ = f.write_all(text.as_bytes());
            }
            None => {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(text.as_bytes());
                let _ = out.flush();
            }
        }
    }

    /// Writes long output through the pager when interactive.
    fn print_paged(&mut self, text: &str) {
        let page = self.pager
            && self.interactive
            && self.out.is_none()
            && std::io::stdout().is_terminal()
            && terminal_size::terminal_size()
                .is_some_and(|(_, h)| text.lines().count() + 2 > h.0 as usize);
        if page && pager(text) {
            return;
        }
        self.print(text);
    }

    pub fn error(&self, message: &str) {
        if self.style.color {
            eprintln!("\x1b[31m{message}\x1b[0m");
        } else {
            eprintln!("{message}");
        }
    }

    pub fn notice(&self, message: &str) {
        if self.style.color {
            eprintln!("\x1b[90m{message}\x1b[0m");
        } else {
            eprintln!("{message}");
        }
    }

    /// Runs SQL text and meta-command lines (a line starting with `\`
    /// between statements). `false` when anything failed.
    pub async fn run_text(&mut self, text: &str) -> bool {
        let mut ok = true;
        let mut buffer = String::new();
        let mut buffer_line = 1;
        let mut number = 0;
        for (index, line) in text.split_inclusive('\n').enumerate() {
            if self.quit {
                break;
            }
            if buffer.trim().is_empty() && line.trim_start().starts_with('\\') {
                buffer.clear();
                if !self.meta(line.trim()).await {
                    ok = false;
                    if self.on_error == OnError::Stop {
                        return false;
                    }
                }
                continue;
            }
            if buffer.trim().is_empty() {
                buffer.clear();
                buffer_line = index + 1;
            }
            buffer.push_str(line);
            if !line.contains(';') {
                continue;
            }
            let split = splitter::split(&buffer);
            for statement in split.statements {
                number += 1;
                let line = buffer_line + statement.line - 1;
                if self.statement(&statement.text, Some((number, line))).await != Outcome::Ok {
                    ok = false;
                    if self.on_error == OnError::Stop {
                        return false;
                    }
                }
            }
            let rest = buffer[split.consumed..].to_string();
            buffer_line += buffer[..split.consumed].matches('\n').count();
            buffer = rest;
        }
        if let Some(Statement { text, line }) = splitter::split(&buffer).rest
            && !self.quit
        {
            number += 1;
            let line = buffer_line + line - 1;
            if self.statement(&text, Some((number, line))).await != Outcome::Ok {
                ok = false;
            }
        }
        ok
    }

    fn confirm(&self, sql: &str, why: &str) -> bool {
        if self.yes || !self.interactive {
            return true;
        }
        let head: String = sql.chars().take(80).collect();
        eprint!("'{head}' {why}. Run it? [y/N] ");
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        if std::io::stdin().read_line(&mut answer).is_err() {
            return false;
        }
        matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
    }

    /// Runs one statement and prints its result. `label` is (number, line)
    /// within a script, for error messages.
    pub async fn statement(&mut self, sql: &str, label: Option<(usize, usize)>) -> Outcome {
        if let Some(why) = lexer::destructive(sql)
            && !self.confirm(sql, why)
        {
            self.notice("Not run.");
            return Outcome::Cancelled;
        }
        self.last_sql = Some(sql.to_string());
        let started = Instant::now();
        let options = QueryOptions {
            params: vec![],
            namespace: self.namespace(),
        };
        let mut reply = self.query(sql, &options).await;
        if let Some(Err(e)) = &reply
            && e.code() == Some("UNAUTHORIZED")
            && self.may_prompt_password
            && let Auth::Basic { user, .. } = self.client.auth()
            && let Ok(password) = rpassword::prompt_password(format!("Password for {user}: "))
        {
            self.client.set_auth(Auth::Basic { user, password });
            self.may_prompt_password = false;
            reply = self.query(sql, &options).await;
        }
        let elapsed = started.elapsed();
        let reply = match reply {
            None => {
                self.error("Cancelled.");
                return Outcome::Cancelled;
            }
            Some(r) => r,
        };
        self.save_refreshed_tokens();
        match reply {
            Ok(response) => {
                for result in &response.results {
                    self.show(result, elapsed);
                }
                if self.timing {
                    let line = format!(
                        "Time: {:.3} ms (server {:.3} ms)\n",
                        elapsed.as_secs_f64() * 1000.0,
                        response.took
                    );
                    if self.style.format == Format::Table {
                        self.print(&line);
                    } else {
                        eprint!("{line}");
                    }
                }
                if matches!(
                    lexer::words(sql).first().map(String::as_str),
                    Some("CREATE" | "ALTER" | "DROP")
                ) {
                    self.refresh_catalog().await;
                }
                Outcome::Ok
            }
            Err(e) => {
                let mut message = match &e {
                    LinkError::Server { code, message, .. } => format!("ERROR [{code}]: {message}"),
                    other => format!("ERROR: {other}"),
                };
                if let Some((number, line)) = label {
                    message.push_str(&format!(" (statement {number}, line {line})"));
                }
                self.error(&message);
                Outcome::Failed
            }
        }
    }

    /// The query, raced against Ctrl-C (`None`: cancelled — the request is
    /// dropped, which closes its connection and stops it on the server).
    async fn query(
        &self,
        sql: &str,
        options: &QueryOptions,
    ) -> Option<Result<kalam_link::QueryResponse, LinkError>> {
        let spin = self.spinner.then(spinner);
        let result = tokio::select! {
            r = self.client.query_with(sql, options) => Some(r),
            _ = tokio::signal::ctrl_c() => None,
        };
        if let Some(s) = spin {
            s.abort();
            eprint!("\r\x1b[2K");
        }
        result
    }

    fn show(&mut self, result: &QueryResult, elapsed: Duration) {
        let mut style = self.style;
        if style.width.is_none() && self.out.is_none() && std::io::stdout().is_terminal() {
            style.width = terminal_width();
        }
        let mut text = format::render(result, &style);
        if style.format == Format::Table && result.schema.is_some() {
            let n = result.row_count;
            let plural = if n == 1 { "" } else { "s" };
            // the time only at the prompt: script output stays reproducible
            let time = if self.interactive && !self.timing {
                format!(" in {:.3} ms", elapsed.as_secs_f64() * 1000.0)
            } else {
                String::new()
            };
            text.push_str(&format!("({n} row{plural}){time}\n"));
        }
        self.print_paged(&text);
    }

    /// Writes tokens the client refreshed back to credentials.toml.
    pub fn save_refreshed_tokens(&mut self) {
        let (Some(saved), Some(current)) = (&self.saved, self.client.tokens()) else {
            return;
        };
        if saved.access_token == current.access_token {
            return;
        }
        let mut credentials = Credentials::load();
        credentials.instances.insert(
            self.instance.clone(),
            SavedSession::new(self.client.base_url(), &current),
        );
        if credentials.save().is_ok() {
            self.saved = Some(current);
        }
    }

    /// Logs in and saves the session for this instance.
    pub async fn login_and_save(&mut self, user: &str, password: &str) -> Result<String, String> {
        let pair = self
            .client
            .login(user, password)
            .await
            .map_err(|e| e.to_string())?;
        let mut credentials = Credentials::load();
        credentials.instances.insert(
            self.instance.clone(),
            SavedSession::new(self.client.base_url(), &pair),
        );
        let path = credentials.save()?;
        self.saved = Some(pair.clone());
        Ok(format!(
            "Logged in as {} ({}); session saved in {} for instance '{}'",
            pair.user.username,
            pair.user.role,
            path.display(),
            self.instance
        ))
    }

    /// Reads the catalog for completion (what the user may see).
    pub async fn refresh_catalog(&self) {
        let mut catalog = Catalog::default();
        let q = |sql: &'static str| async move { self.client.query(sql).await };
        if let Ok(r) = q("SELECT namespace_id FROM system.namespaces ORDER BY namespace_id").await
            && let Some(first) = r.results.first()
        {
            catalog.namespaces = first
                .rows()
                .iter()
                .filter_map(|row| row.first().and_then(|v| v.as_str()).map(String::from))
                .collect();
        }
        if let Ok(r) = q(
            "SELECT namespace_id, table_name, column_name FROM system.columns \
             ORDER BY namespace_id, table_name, ordinal_position",
        )
        .await
            && let Some(first) = r.results.first()
        {
            for row in first.rows() {
                let text = |i: usize| row.get(i).and_then(|v| v.as_str()).unwrap_or_default();
                let key = (text(0).to_string(), text(1).to_string());
                let tables = catalog.tables.entry(key.0.clone()).or_default();
                if tables.last() != Some(&key.1) {
                    tables.push(key.1.clone());
                }
                catalog
                    .columns
                    .entry(key)
                    .or_default()
                    .push(text(2).to_string());
            }
        }
        if let Ok(r) = q("SELECT namespace_id, table_name FROM system.tables").await
            && let Some(first) = r.results.first()
        {
            for row in first.rows() {
                let text = |i: usize| row.get(i).and_then(|v| v.as_str()).unwrap_or_default();
                let tables = catalog.tables.entry(text(0).to_string()).or_default();
                if !tables.iter().any(|t| t == text(1)) {
                    tables.push(text(1).to_string());
                }
            }
        }
        *self.catalog.lock().expect("catalog") = catalog;
    }
}

fn terminal_width() -> Option<u16> {
    terminal_size::terminal_size().map(|(w, _)| w.0)
}

/// A spinner on standard error for queries running past 300 ms.
fn spinner() -> tokio::task::JoinHandle<()> {
    tokio::spawn(async {
        if !std::io::stderr().is_terminal() {
            return;
        }
        let started = Instant::now();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let frames = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
        for i in 0.. {
            eprint!(
                "\r{} running… {:.1} s (Ctrl-C cancels)",
                frames[i % frames.len()],
                started.elapsed().as_secs_f64()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

/// Pipes `text` through `$PAGER` (default `less -S -R -F -X`); `false`
/// when no pager could be started.
fn pager(text: &str) -> bool {
    let command = std::env::var("PAGER")
        .ok()
        .filter(|p| !p.trim().is_empty())
        .unwrap_or_else(|| "less -S -R -F -X".into());
    let Ok(mut child) = std::process::Command::new("sh")
        .arg("-c")
        .arg(&command)
        .stdin(std::process::Stdio::piped())
        .spawn()
    else {
        return false;
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(text.as_bytes());
    }
    child.wait().is_ok_and(|s| s.code() != Some(127))
}

/// The default style for a stream.
pub fn default_style(format: Format, color: bool) -> Style {
    Style {
        format,
        expanded: Expanded::Off,
        color,
        width: None,
    }
}

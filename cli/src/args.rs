//! Command-line flags (KalamDB's `kalam` names, plus psql's habits).

use crate::format::Format;
use clap::{Parser, ValueEnum};
use std::path::PathBuf;

const EXAMPLES: &str = "\
Examples:
  kalam                                   interactive shell on http://127.0.0.1:8080 as root
  kalam -u http://db:8080 --user alice --password        prompt for alice's password
  kalam --user alice --password --save-credentials       log in once, keep the session
  kalam -c 'SELECT * FROM app.messages LIMIT 5' --format json
  kalam -f schema.sql --on-error continue
  echo 'SELECT 1;' | kalam --csv
  kalam --subscribe \"SELECT * FROM app.messages WHERE room = 'a'\" | jq .

Environment: KALAM_URL, KALAM_USER, KALAM_PASSWORD, NO_COLOR, PAGER, EDITOR.
Files: ~/.kalam/config.toml, ~/.kalam/credentials.toml (0600), ~/.kalam/history.
In the shell, \\? lists the meta-commands.";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnError {
    /// Stop at the first failing statement (the default).
    Stop,
    /// Report the failure and run the rest; the exit code is still 1.
    Continue,
}

#[derive(Debug, Parser)]
#[command(
    name = "kalam",
    version,
    about = "KalamDB's SQL shell: run SQL, inspect the catalog, follow live queries",
    after_help = EXAMPLES
)]
pub struct Args {
    /// Server URL [env: KALAM_URL] [default: http://127.0.0.1:8080]
    #[arg(short = 'u', long)]
    pub url: Option<String>,
    /// Server host (with --port; instead of --url)
    #[arg(short = 'H', long)]
    pub host: Option<String>,
    /// Server port (with --host; instead of --url)
    #[arg(short = 'p', long)]
    pub port: Option<u16>,
    /// User name [env: KALAM_USER] (default: a saved session, else root)
    #[arg(long)]
    pub user: Option<String>,
    /// Password; without a value it is prompted for, without echo
    /// [env: KALAM_PASSWORD]
    #[arg(long, num_args = 0..=1, value_name = "PASSWORD")]
    pub password: Option<Option<String>>,
    /// A JWT access token instead of a user and password
    #[arg(long)]
    pub token: Option<String>,
    /// A named instance: its URL from config.toml, its saved session from
    /// credentials.toml
    #[arg(long, value_name = "NAME")]
    pub instance: Option<String>,
    /// Namespace unqualified table names resolve in
    #[arg(long)]
    pub namespace: Option<String>,
    /// Run this SQL (or meta-command) and exit; may be repeated
    #[arg(short = 'c', long = "command", value_name = "SQL")]
    pub commands: Vec<String>,
    /// Run the statements of this file and exit; may be repeated
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Output format
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Same as --format json
    #[arg(long, conflicts_with_all = ["format", "csv"])]
    pub json: bool,
    /// Same as --format csv
    #[arg(long, conflicts_with_all = ["format", "json"])]
    pub csv: bool,
    /// No colours (also when NO_COLOR is set or stdout is not a terminal)
    #[arg(long)]
    pub no_color: bool,
    /// No progress spinner
    #[arg(long)]
    pub no_spinner: bool,
    /// Never page long results
    #[arg(long)]
    pub no_pager: bool,
    /// Request timeout in seconds (none by default)
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
    /// Config file [default: ~/.kalam/config.toml]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log in and keep the session (a JWT and refresh token, never the
    /// password) in ~/.kalam/credentials.toml
    #[arg(long)]
    pub save_credentials: bool,
    /// What a failing statement of a script does
    #[arg(long, value_enum, default_value = "stop")]
    pub on_error: OnError,
    /// Do not ask before DROP, TRUNCATE, or DELETE/UPDATE without WHERE
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// Show client and server time of each statement
    #[arg(long)]
    pub timing: bool,
    /// Subscribe to a live query and print one JSON line per event until
    /// interrupted
    #[arg(long, value_name = "SELECT")]
    pub subscribe: Option<String>,
    /// Stop --subscribe after this many seconds
    #[arg(long, value_name = "SECS", requires = "subscribe")]
    pub subscription_timeout: Option<u64>,
    /// --subscribe: resume after this _seq
    #[arg(long, value_name = "SEQ", requires = "subscribe")]
    pub from: Option<i64>,
    /// --subscribe: start with the newest N rows
    #[arg(long, value_name = "N", requires = "subscribe")]
    pub last_rows: Option<usize>,
}

impl Args {
    pub fn format(&self) -> Option<Format> {
        if self.json {
            Some(Format::Json)
        } else if self.csv {
            Some(Format::Csv)
        } else {
            self.format
        }
    }
}

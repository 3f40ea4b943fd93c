//! Backslash meta-commands (psql's names where psql has one).

use crate::config::Credentials;
use crate::format::{Expanded, Format};
use crate::session::{Outcome, Session};
use kalam_link::KalamLinkClient;

pub const HELP: &str = "\
General
  \\?                     this help
  \\q                     quit (also exit, quit, Ctrl-D)
  \\conninfo              server, user and namespace of this session
  \\c, \\connect URL       connect to another server (same credentials)
  \\health                the server's health check
  \\login [USER]          log in (password prompted) and save the session
  \\logout                forget this instance's saved session
Catalog
  \\dn                    namespaces
  \\dt [NAMESPACE]        tables
  \\d TABLE               describe a table
  \\du                    users
  \\dj, \\jobs             recent jobs
  \\use NAMESPACE         resolve unqualified table names in NAMESPACE
  \\refresh               re-read the catalog used by tab completion
Output
  \\format FORMAT         table, json, jsonl, csv or markdown
  \\x [on|off|auto]       expanded display (one record per block)
  \\timing [on|off]       show client and server time
  \\o [FILE]              send results to FILE (no FILE: back to the terminal)
Input
  \\i FILE                run a file
  \\e                     edit the last statement in $EDITOR, then run it
  \\as USER SQL           run SQL as USER (EXECUTE AS USER)
Live queries
  \\subscribe SELECT      print the rows, then each change, until Ctrl-C
  \\subscribe SELECT &    the same in the background
  \\watch SELECT          same as \\subscribe
  \\live SELECT           keep the current result on screen as rows change
  \\subscriptions         background subscriptions
  \\unsubscribe ID        end one
";

fn on_off(arg: Option<&str>, current: bool) -> Result<bool, String> {
    match arg.map(str::to_ascii_lowercase).as_deref() {
        None => Ok(!current),
        Some("on" | "true" | "1") => Ok(true),
        Some("off" | "false" | "0") => Ok(false),
        Some(other) => Err(format!("expected on or off, not '{other}'")),
    }
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

impl Session {
    /// Runs one meta-command line; `false` when it failed.
    pub async fn meta(&mut self, line: &str) -> bool {
        let line = line.trim().trim_end_matches(';').trim();
        let (command, rest) = match line.split_once(char::is_whitespace) {
            Some((c, r)) => (c, r.trim()),
            None => (line, ""),
        };
        let arg = (!rest.is_empty()).then_some(rest);
        let result: Result<(), String> = match command {
            "\\?" | "\\h" | "\\help" => {
                self.print(HELP);
                Ok(())
            }
            "\\q" | "\\quit" => {
                self.quit = true;
                Ok(())
            }
            "\\conninfo" => self.conninfo().await,
            "\\c" | "\\connect" => match arg {
                None => Err("usage: \\connect URL".into()),
                Some(url) => self.connect(url).await,
            },
            "\\health" => match self.client.health().await {
                Ok(h) => {
                    self.print(&format!(
                        "status: {}\nversion: {}\napi_version: {}\nbuild_date: {}\n",
                        h.status, h.version, h.api_version, h.build_date
                    ));
                    Ok(())
                }
                Err(e) => Err(e.to_string()),
            },
            "\\dn" => {
                return self
                    .sql("SELECT namespace_id AS namespace, table_count FROM system.namespaces ORDER BY namespace_id")
                    .await;
            }
            "\\dt" => {
                let filter = arg.map_or(String::new(), |ns| {
                    format!(" WHERE namespace_id = {}", quote(ns))
                });
                return self
                    .sql(&format!(
                        "SELECT namespace_id AS namespace, table_name AS name, table_type AS type, storage_id AS storage \
                         FROM system.tables{filter} ORDER BY namespace_id, table_name"
                    ))
                    .await;
            }
            "\\d" => match arg {
                None => return Box::pin(self.meta("\\dt")).await,
                Some(table) => return self.sql(&format!("DESCRIBE TABLE {table}")).await,
            },
            "\\du" => {
                return self
                    .sql("SELECT username, role, auth_type, email, created_at FROM system.users ORDER BY username")
                    .await;
            }
            "\\dj" | "\\jobs" => {
                return self
                    .sql("SELECT job_id, job_type, status, namespace_id, table_name, created_at, message \
                          FROM system.jobs ORDER BY created_at DESC LIMIT 50")
                    .await;
            }
            "\\use" => match arg {
                None => Err("usage: \\use NAMESPACE".into()),
                Some(ns) => {
                    let known = self.catalog.lock().expect("catalog").namespaces.clone();
                    if !known.is_empty() && !known.iter().any(|n| n == ns) {
                        Err(format!("namespace '{ns}' does not exist (see \\dn)"))
                    } else {
                        self.set_namespace(Some(ns.to_string()));
                        self.notice(&format!("Using namespace {ns}"));
                        Ok(())
                    }
                }
            },
            "\\refresh" => {
                self.refresh_catalog().await;
                let n: usize = self
                    .catalog
                    .lock()
                    .expect("catalog")
                    .tables
                    .values()
                    .map(Vec::len)
                    .sum();
                self.notice(&format!("Catalog refreshed: {n} table(s)"));
                Ok(())
            }
            "\\format" => match arg.and_then(Format::parse) {
                Some(f) => {
                    self.style.format = f;
                    self.notice(&format!("Output format is {}", f.name()));
                    Ok(())
                }
                None => Err("usage: \\format table|json|jsonl|csv|markdown".into()),
            },
            "\\x" => {
                let next = match arg.map(str::to_ascii_lowercase).as_deref() {
                    Some("auto") => Ok(Expanded::Auto),
                    other => on_off(other, self.style.expanded == Expanded::On)
                        .map(|on| if on { Expanded::On } else { Expanded::Off }),
                };
                next.map(|e| {
                    self.style.expanded = e;
                    let name = match e {
                        Expanded::On => "on",
                        Expanded::Off => "off",
                        Expanded::Auto => "auto",
                    };
                    self.notice(&format!("Expanded display is {name}."));
                })
            }
            "\\timing" => on_off(arg, self.timing).map(|on| {
                self.timing = on;
                self.notice(&format!("Timing is {}.", if on { "on" } else { "off" }));
            }),
            "\\o" | "\\out" => match arg {
                None => {
                    self.out = None;
                    Ok(())
                }
                Some(path) => std::fs::File::create(path)
                    .map(|f| self.out = Some(f))
                    .map_err(|e| format!("{path}: {e}")),
            },
            "\\i" | "\\include" => match arg {
                None => Err("usage: \\i FILE".into()),
                Some(path) => match std::fs::read_to_string(path) {
                    Ok(text) => return Box::pin(self.run_text(&text)).await,
                    Err(e) => Err(format!("{path}: {e}")),
                },
            },
            "\\e" | "\\edit" => match self.edit() {
                Ok(Some(sql)) => return Box::pin(self.run_text(&sql)).await,
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            },
            "\\as" => match rest.split_once(char::is_whitespace) {
                Some((user, sql)) if !sql.trim().is_empty() => {
                    let sql = sql.trim().trim_end_matches(';');
                    return self
                        .sql(&format!("EXECUTE AS USER {} ({sql})", quote(user)))
                        .await;
                }
                _ => Err("usage: \\as USER SQL".into()),
            },
            "\\login" => self.login(arg).await,
            "\\logout" => {
                let mut credentials = Credentials::load();
                let removed = credentials.instances.remove(&self.instance).is_some();
                self.saved = None;
                if removed {
                    credentials.save().map(|_| {
                        self.notice(&format!(
                            "Saved session of instance '{}' removed.",
                            self.instance
                        ));
                    })
                } else {
                    self.notice("No saved session for this instance.");
                    Ok(())
                }
            }
            "\\subscribe" | "\\watch" => match arg {
                None => Err("usage: \\subscribe SELECT …  [&]".into()),
                Some(sql) => match sql.strip_suffix('&') {
                    Some(sql) => {
                        self.subscribe_background(sql.trim().trim_end_matches(';'))
                            .await
                    }
                    None => {
                        self.subscribe_foreground(sql.trim_end_matches(';'), false)
                            .await
                    }
                },
            },
            "\\live" => match arg {
                None => Err("usage: \\live SELECT …".into()),
                Some(sql) => {
                    self.subscribe_foreground(sql.trim_end_matches(';'), true)
                        .await
                }
            },
            "\\subscriptions" => {
                self.background.retain(|_, b| !b.task.is_finished());
                if self.background.is_empty() {
                    self.print("No background subscriptions.\n");
                }
                let lines: Vec<String> = self
                    .background
                    .iter()
                    .map(|(id, b)| format!("{id}  {}\n", b.sql))
                    .collect();
                lines.iter().for_each(|l| self.print(l));
                Ok(())
            }
            "\\unsubscribe" => match arg.and_then(|id| self.background.remove(id)) {
                Some(b) => {
                    b.task.abort();
                    self.notice("Unsubscribed.");
                    Ok(())
                }
                None => Err("usage: \\unsubscribe ID (see \\subscriptions)".into()),
            },
            other => Err(format!("unknown command {other}; \\? lists them")),
        };
        match result {
            Ok(()) => true,
            Err(message) => {
                self.error(&format!("ERROR: {message}"));
                false
            }
        }
    }

    async fn sql(&mut self, sql: &str) -> bool {
        self.statement(sql, None).await == Outcome::Ok
    }

    async fn conninfo(&mut self) -> Result<(), String> {
        let me = self.client.me().await.map_err(|e| e.to_string())?;
        let version = self
            .client
            .health()
            .await
            .map(|h| h.version)
            .unwrap_or_else(|_| "unknown".into());
        let ns = self.namespace().unwrap_or_else(|| "(none)".into());
        let text = format!(
            "Connected to {} (server {version}) as {} (role {}), instance '{}', namespace {ns}\n",
            self.client.base_url(),
            me.username,
            me.role,
            self.instance
        );
        self.print(&text);
        Ok(())
    }

    async fn connect(&mut self, url: &str) -> Result<(), String> {
        let client = KalamLinkClient::builder(url)
            .auth(self.client.auth())
            .build()
            .map_err(|e| e.to_string())?;
        client.health().await.map_err(|e| e.to_string())?;
        self.client = client;
        self.notice(&format!("Connected to {}", self.client.base_url()));
        self.refresh_catalog().await;
        Ok(())
    }

    async fn login(&mut self, user: Option<&str>) -> Result<(), String> {
        let user = match user {
            Some(u) => u.to_string(),
            None => {
                eprint!("User: ");
                let mut u = String::new();
                std::io::stdin()
                    .read_line(&mut u)
                    .map_err(|e| e.to_string())?;
                u.trim().to_string()
            }
        };
        let password = rpassword::prompt_password(format!("Password for {user}: "))
            .map_err(|e| e.to_string())?;
        let message = self.login_and_save(&user, &password).await?;
        self.notice(&message);
        self.refresh_catalog().await;
        Ok(())
    }

    /// `\e`: the last statement in `$VISUAL` / `$EDITOR` (default `vi`).
    fn edit(&self) -> Result<Option<String>, String> {
        let editor = std::env::var("VISUAL")
            .or_else(|_| std::env::var("EDITOR"))
            .unwrap_or_else(|_| "vi".into());
        let path = std::env::temp_dir().join(format!("kalam-edit-{}.sql", std::process::id()));
        let mut text = self.last_sql.clone().unwrap_or_default();
        if !text.is_empty() && !text.trim_end().ends_with(';') {
            text.push_str(";\n");
        }
        std::fs::write(&path, text).map_err(|e| e.to_string())?;
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{editor} \"$1\""))
            .arg("sh")
            .arg(&path)
            .status()
            .map_err(|e| format!("{editor}: {e}"))?;
        let edited = std::fs::read_to_string(&path).unwrap_or_default();
        let _ = std::fs::remove_file(&path);
        if !status.success() {
            return Err(format!("{editor} exited with {status}"));
        }
        Ok((!edited.trim().is_empty()).then_some(edited))
    }
}

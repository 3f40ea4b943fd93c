//! The interactive prompt: rustyline with history, completion, highlighting
//! and multi-line statements.

use crate::config;
use crate::helper::{ShellHelper, input_is_complete};
use crate::session::Session;
use rustyline::error::ReadlineError;
use rustyline::{Config, Editor, ExternalPrinter, history::FileHistory};
use std::sync::{Arc, Mutex};

fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

pub fn run(mut session: Session, runtime: tokio::runtime::Runtime) -> Result<(), String> {
    let config = Config::builder()
        .auto_add_history(false)
        .max_history_size(10_000)
        .map_err(|e| e.to_string())?
        .completion_type(rustyline::CompletionType::List)
        .build();
    let mut editor: Editor<ShellHelper, FileHistory> =
        Editor::with_config(config).map_err(|e| e.to_string())?;
    editor.set_helper(Some(ShellHelper {
        catalog: session.catalog.clone(),
        namespace: session.namespace.clone(),
        color: session.style.color,
    }));
    let history = config::history_path();
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    if let Ok(mut printer) = editor.create_external_printer() {
        let print: Box<dyn FnMut(String) + Send> = Box::new(move |line: String| {
            let _ = printer.print(format!("{line}\n"));
        });
        session.printer = Some(Arc::new(Mutex::new(print)));
    }

    let user = runtime
        .block_on(session.client.me())
        .map(|u| u.username)
        .unwrap_or_else(|e| {
            session.error(&format!("ERROR: {e}"));
            "?".into()
        });
    runtime.block_on(session.refresh_catalog());
    session.notice(&format!(
        "kalam {} — connected to {}. \\? for help, \\q to quit.",
        env!("CARGO_PKG_VERSION"),
        session.client.base_url()
    ));
    let host = host_of(session.client.base_url()).to_string();
    while !session.quit {
        let ns = session
            .namespace()
            .map(|n| format!("/{n}"))
            .unwrap_or_default();
        let prompt = format!("{user}@{host}{ns}> ");
        let prompt = if session.style.color {
            format!("\x1b[1;32m{prompt}\x1b[0m")
        } else {
            prompt
        };
        match editor.readline(&prompt) {
            Ok(input) => {
                let trimmed = input.trim();
                if trimmed.is_empty() {
                    continue;
                }
                let _ = editor.add_history_entry(trimmed);
                if let Some(path) = &history {
                    let _ = editor.append_history(path);
                }
                if matches!(trimmed.to_ascii_lowercase().as_str(), "exit" | "quit") {
                    break;
                }
                if trimmed.eq_ignore_ascii_case("help") {
                    runtime.block_on(session.meta("\\?"));
                    continue;
                }
                debug_assert!(input_is_complete(&input));
                runtime.block_on(session.run_text(&input));
            }
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.to_string()),
        }
    }
    for (_, b) in std::mem::take(&mut session.background) {
        b.task.abort();
    }
    Ok(())
}

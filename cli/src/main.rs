//! `kalam`: KalamDB's SQL shell. `docs/cli.md` is its manual.

mod args;
mod config;
mod format;
mod helper;
mod lexer;
mod live;
mod meta;
mod session;
mod shell;
mod splitter;

use args::Args;
use clap::Parser;
use config::{Config, Credentials, DEFAULT_INSTANCE};
use format::Format;
use kalam_link::{Auth, KalamLinkClient};
use session::Session;
use std::io::{IsTerminal, Read};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const DEFAULT_URL: &str = "http://127.0.0.1:8080";

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("kalam: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> Result<ExitCode, String> {
    let config = Config::load(args.config.as_deref())?;
    let instance = args
        .instance
        .clone()
        .or_else(|| config.instance.clone())
        .unwrap_or_else(|| DEFAULT_INSTANCE.to_string());
    let named = config.instances.get(&instance).cloned().unwrap_or_default();
    if args.instance.is_some()
        && !args.save_credentials
        && !config.instances.contains_key(&instance)
    {
        let saved = Credentials::load();
        if !saved.instances.contains_key(&instance) {
            return Err(format!(
                "instance '{instance}' is neither in config.toml nor in credentials.toml"
            ));
        }
    }
    let saved = Credentials::load().instances.get(&instance).cloned();
    // --url, then -H/-p, then the URL of an instance named with --instance,
    // then KALAM_URL, then config.toml's, then the default
    let instance_url = named.url.clone().or_else(|| {
        saved
            .as_ref()
            .filter(|_| args.instance.is_some())
            .map(|s| s.url.clone())
    });
    let env_url = std::env::var("KALAM_URL").ok().filter(|u| !u.is_empty());
    let url = if let Some(url) = &args.url {
        url.clone()
    } else if args.host.is_some() || args.port.is_some() {
        format!(
            "http://{}:{}",
            args.host.as_deref().unwrap_or("127.0.0.1"),
            args.port.unwrap_or(8080)
        )
    } else {
        let explicit_instance = instance_url.clone().filter(|_| args.instance.is_some());
        explicit_instance
            .or(env_url)
            .or(instance_url)
            .or_else(|| config.url.clone())
            .unwrap_or_else(|| DEFAULT_URL.to_string())
    };

    let scripted = !args.commands.is_empty() || !args.files.is_empty() || args.subscribe.is_some();
    let interactive =
        !scripted && std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let user = args
        .user
        .clone()
        .or_else(|| std::env::var("KALAM_USER").ok().filter(|u| !u.is_empty()))
        .or_else(|| named.user.clone())
        .or_else(|| config.user.clone());
    let env_password = std::env::var("KALAM_PASSWORD").ok();
    let mut may_prompt_password = false;
    let saved_for_url = saved
        .clone()
        .filter(|s| s.url.trim_end_matches('/') == url.trim_end_matches('/'));
    // (credentials, the saved session they come from)
    let (auth, saved) = if let Some(token) = &args.token {
        (Auth::Bearer(token.clone()), None)
    } else if let Some(user) = user
        .clone()
        .or_else(|| (args.password.is_some() || env_password.is_some()).then(|| "root".to_string()))
    {
        match (&args.password, &env_password) {
            (Some(Some(p)), _) => (
                Auth::Basic {
                    user,
                    password: p.clone(),
                },
                None,
            ),
            (Some(None), _) => {
                let password = rpassword::prompt_password(format!("Password for {user}: "))
                    .map_err(|e| format!("could not read the password: {e}"))?;
                (Auth::Basic { user, password }, None)
            }
            (None, Some(p)) => (
                Auth::Basic {
                    user,
                    password: p.clone(),
                },
                None,
            ),
            (None, None) => match saved_for_url.as_ref().filter(|s| s.username == user) {
                // the saved session of this very user
                Some(s) if !args.save_credentials => (Auth::Tokens(s.tokens()), Some(s.tokens())),
                _ => {
                    may_prompt_password = interactive;
                    let password = String::new();
                    (Auth::Basic { user, password }, None)
                }
            },
        }
    } else if let Some(s) = &saved_for_url {
        (Auth::Tokens(s.tokens()), Some(s.tokens()))
    } else {
        let root = Auth::Basic {
            user: "root".into(),
            password: String::new(),
        };
        (root, None)
    };
    let connection = Connection {
        instance,
        url,
        auth,
        interactive,
        may_prompt_password,
        saved,
    };
    finish(args, config, connection)
}

/// Where and how to connect, resolved from flags, environment and files.
struct Connection {
    instance: String,
    url: String,
    auth: Auth,
    interactive: bool,
    /// Ask for the password when the server says 401.
    may_prompt_password: bool,
    /// The saved session in use (refreshed tokens are written back to it).
    saved: Option<kalam_link::TokenPair>,
}

fn finish(args: Args, config: Config, connection: Connection) -> Result<ExitCode, String> {
    let Connection {
        instance,
        url,
        auth,
        interactive,
        may_prompt_password,
        saved,
    } = connection;
    let timeout = args
        .timeout
        .or(config.timeout_secs)
        .map(Duration::from_secs);
    let client = KalamLinkClient::builder(&url)
        .auth(auth.clone())
        .timeout(timeout)
        .build()
        .map_err(|e| e.to_string())?;
    let format = match args.format() {
        Some(f) => f,
        None => match &config.format {
            Some(name) => Format::parse(name)
                .ok_or_else(|| format!("config.toml: unknown format '{name}'"))?,
            None => Format::Table,
        },
    };
    let color = !args.no_color
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && config.color != Some(false)
        && std::io::stdout().is_terminal();
    let namespace = args
        .namespace
        .clone()
        .or_else(|| {
            config
                .instances
                .get(&instance)
                .and_then(|i| i.namespace.clone())
        })
        .or_else(|| config.namespace.clone());
    let mut session = Session {
        client,
        instance,
        namespace: Arc::new(Mutex::new(namespace)),
        catalog: Arc::default(),
        style: session::default_style(format, color),
        timing: args.timing,
        spinner: !args.no_spinner && std::io::stderr().is_terminal(),
        pager: !args.no_pager && config.pager != Some(false),
        interactive,
        on_error: args.on_error,
        yes: args.yes,
        out: None,
        last_sql: None,
        saved,
        may_prompt_password,
        background: Default::default(),
        printer: None,
        quit: false,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;

    if args.save_credentials {
        let Auth::Basic { user, password } = auth else {
            return Err("--save-credentials needs --user and a password".into());
        };
        match runtime.block_on(session.login_and_save(&user, &password)) {
            Ok(message) => session.notice(&message),
            Err(e) => {
                session.error(&format!("ERROR: login failed: {e}"));
                return Ok(ExitCode::FAILURE);
            }
        }
    }

    if let Some(sql) = &args.subscribe {
        let timeout = args.subscription_timeout.map(Duration::from_secs);
        return Ok(
            match runtime.block_on(session.subscribe_jsonl(sql, timeout, args.from, args.last_rows))
            {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    session.error(&format!("ERROR: {e}"));
                    ExitCode::FAILURE
                }
            },
        );
    }

    let mut ok = true;
    if !args.commands.is_empty() || !args.files.is_empty() {
        for command in &args.commands {
            ok &= runtime.block_on(session.run_text(command));
            if (!ok && session.on_error == args::OnError::Stop) || session.quit {
                return Ok(exit(ok));
            }
        }
        for file in &args.files {
            let text =
                std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
            ok &= runtime.block_on(session.run_text(&text));
            if (!ok && session.on_error == args::OnError::Stop) || session.quit {
                return Ok(exit(ok));
            }
        }
        return Ok(exit(ok));
    }
    if interactive {
        return shell::run(session, runtime).map(|()| ExitCode::SUCCESS);
    }
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| format!("standard input: {e}"))?;
    ok &= runtime.block_on(session.run_text(&text));
    Ok(exit(ok))
}

fn exit(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

//! `-c`, `-f`, standard input, formats, exit codes, credentials.

use crate::server::Server;
use crate::{kalam, sql};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const SETUP: &str = "CREATE NAMESPACE app;
CREATE TABLE app.notes (id BIGINT PRIMARY KEY, body TEXT, n INT);
INSERT INTO app.notes (id, body, n) VALUES (9007199254740993, 'semi; colon', 1), (2, NULL, NULL), (3, 'say \"hi\", | pipe', 3);";

const QUERY: &str = "SELECT id, body, n FROM app.notes ORDER BY id";

fn out(cmd: &mut assert_cmd::Command) -> (bool, String, String) {
    let o = cmd.output().expect("run kalam");
    (
        o.status.success(),
        String::from_utf8(o.stdout).unwrap(),
        String::from_utf8(o.stderr).unwrap(),
    )
}

#[test]
fn every_output_format_matches_its_golden_output() {
    let server = Server::start();
    let home = tempfile::tempdir().unwrap();
    sql(&server, home.path(), SETUP);
    let format = |f: &str| {
        let (ok, stdout, stderr) =
            out(kalam(&server, home.path()).args(["--format", f, "-c", QUERY]));
        assert!(ok, "{stderr}");
        stdout
    };
    assert_eq!(
        format("table"),
        "\
┌──────────────────┬──────────────────┬──────┐
│ id               ┆ body             ┆ n    │
╞══════════════════╪══════════════════╪══════╡
│ 2                ┆ NULL             ┆ NULL │
│ 3                ┆ say \"hi\", | pipe ┆ 3    │
│ 9007199254740993 ┆ semi; colon      ┆ 1    │
└──────────────────┴──────────────────┴──────┘
(3 rows)
"
    );
    assert_eq!(
        format("json"),
        "[\n  {\"id\":\"2\",\"body\":null,\"n\":null},\n  {\"id\":\"3\",\"body\":\"say \\\"hi\\\", | pipe\",\"n\":3},\n  {\"id\":\"9007199254740993\",\"body\":\"semi; colon\",\"n\":1}\n]\n"
    );
    assert_eq!(
        format("jsonl"),
        "{\"id\":\"2\",\"body\":null,\"n\":null}\n{\"id\":\"3\",\"body\":\"say \\\"hi\\\", | pipe\",\"n\":3}\n{\"id\":\"9007199254740993\",\"body\":\"semi; colon\",\"n\":1}\n"
    );
    assert_eq!(
        format("csv"),
        "id,body,n\r\n2,,\r\n3,\"say \"\"hi\"\", | pipe\",3\r\n9007199254740993,semi; colon,1\r\n"
    );
    assert_eq!(
        format("markdown"),
        "| id | body | n |\n| --- | --- | --- |\n| 2 | NULL | NULL |\n| 3 | say \"hi\", \\| pipe | 3 |\n| 9007199254740993 | semi; colon | 1 |\n"
    );
    // --json / --csv are the same as --format
    let (_, j, _) = out(kalam(&server, home.path()).args(["--json", "-c", QUERY]));
    assert_eq!(j, format("json"));
    let (_, c, _) = out(kalam(&server, home.path()).args(["--csv", "-c", QUERY]));
    assert_eq!(c, format("csv"));
    // statements without rows: their message
    let (ok, stdout, _) = out(kalam(&server, home.path()).args([
        "-c",
        "INSERT INTO app.notes (id) VALUES (50); DELETE FROM app.notes WHERE id = 50",
    ]));
    assert!(ok);
    assert_eq!(stdout, "Inserted 1 row(s)\nDeleted 1 row(s)\n");
    let (_, stdout, _) = out(kalam(&server, home.path()).args([
        "--format",
        "jsonl",
        "-c",
        "INSERT INTO app.notes (id) VALUES (51)",
    ]));
    assert_eq!(stdout, "{\"message\":\"Inserted 1 row(s)\"}\n");
}

#[test]
fn files_and_stdin_split_statements_correctly_and_errors_set_the_exit_code() {
    let server = Server::start();
    let home = tempfile::tempdir().unwrap();
    sql(&server, home.path(), SETUP);
    let file = home.path().join("tricky.sql");
    std::fs::write(
        &file,
        "-- a comment; with a semicolon\n\
         INSERT INTO app.notes (id, body) VALUES (10, 'a;b'); /* block; comment */ INSERT INTO app.notes (id, body) VALUES (11, 'it''s; $5 ok');\n\
         INSERT INTO app.notes (id, body)\n  VALUES (12, 'multi\nline; value')\n;\n\
         SELECT id, body FROM app.notes WHERE id BETWEEN 10 AND 20 ORDER BY id",
    )
    .unwrap();
    let (ok, stdout, stderr) = out(kalam(&server, home.path())
        .args(["--format", "jsonl", "-f"])
        .arg(&file));
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout,
        "{\"message\":\"Inserted 1 row(s)\"}\n{\"message\":\"Inserted 1 row(s)\"}\n{\"message\":\"Inserted 1 row(s)\"}\n\
         {\"id\":\"10\",\"body\":\"a;b\"}\n{\"id\":\"11\",\"body\":\"it's; $5 ok\"}\n{\"id\":\"12\",\"body\":\"multi\\nline; value\"}\n"
    );

    // standard input, the last statement without a `;`
    let (ok, stdout, _) = out(kalam(&server, home.path())
        .arg("--csv")
        .write_stdin("SELECT 40 + 2 AS x;\nSELECT 'a;b' AS y"));
    assert!(ok);
    assert_eq!(stdout, "x\r\n42\r\ny\r\na;b\r\n");

    // a failing statement stops the script (exit 1), naming it and its line
    let bad = home.path().join("bad.sql");
    std::fs::write(
        &bad,
        "SELECT 1 AS one;\n\nSELECT * FROM app.nope;\nSELECT 2 AS two;\n",
    )
    .unwrap();
    let (ok, stdout, stderr) = out(kalam(&server, home.path()).args(["--csv", "-f"]).arg(&bad));
    assert!(!ok);
    assert_eq!(stdout, "one\r\n1\r\n");
    assert!(
        stderr.contains("ERROR [TABLE_NOT_FOUND]") && stderr.contains("(statement 2, line 3)"),
        "{stderr}"
    );
    // --on-error continue runs the rest, and still exits 1
    let (ok, stdout, _) = out(kalam(&server, home.path())
        .args(["--csv", "--on-error", "continue", "-f"])
        .arg(&bad));
    assert!(!ok);
    assert_eq!(stdout, "one\r\n1\r\ntwo\r\n2\r\n");
    let o = kalam(&server, home.path())
        .args(["-c", "SELEC 1"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    // not a server at all: a clear message, exit 1
    let o = kalam(&server, home.path())
        .args(["-u", "http://127.0.0.1:9", "-c", "SELECT 1"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("could not connect to http://127.0.0.1:9"));
    // no colours when stdout is not a terminal
    assert!(!String::from_utf8_lossy(&o.stderr).contains('\x1b'));
}

#[test]
fn meta_commands_work_in_scripts() {
    let server = Server::start();
    let home = tempfile::tempdir().unwrap();
    sql(&server, home.path(), SETUP);
    let (ok, stdout, stderr) = out(kalam(&server, home.path()).args(["--csv", "-c", "\\dt app"]));
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout,
        "namespace,name,type,storage\r\napp,notes,SHARED,local\r\n"
    );
    let (ok, stdout, _) = out(kalam(&server, home.path()).args(["-c", "\\d app.notes"]));
    assert!(ok);
    assert!(
        stdout.contains("body") && stdout.contains("BIGINT"),
        "{stdout}"
    );
    let script = home.path().join("meta.sql");
    std::fs::write(
        &script,
        "\\format jsonl\nSELECT n FROM app.notes WHERE id = 3;\n\\use app\nSELECT body FROM notes WHERE id = 2;\n\\x on\n\\format table\nSELECT id, n FROM notes WHERE id = 3;\n",
    )
    .unwrap();
    let (ok, stdout, stderr) = out(kalam(&server, home.path()).arg("-f").arg(&script));
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout,
        "{\"n\":3}\n{\"body\":null}\n-[ RECORD 1 ]----------\nid | 3\nn  | 3\n(1 row)\n"
    );
    // catalog listings, health and connection info
    let (ok, stdout, stderr) = out(kalam(&server, home.path()).args([
        "--csv",
        "-c",
        "\\dn",
        "-c",
        "\\du",
        "-c",
        "\\health",
        "-c",
        "\\conninfo",
    ]));
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("namespace,table_count\r\n"), "{stdout}");
    assert!(stdout.contains("app,1\r\n"), "{stdout}");
    assert!(
        stdout.contains("username,role,auth_type,email,created_at\r\nroot,system,"),
        "{stdout}"
    );
    assert!(stdout.contains("status: healthy\n"), "{stdout}");
    assert!(
        stdout.contains(&format!("Connected to {} (server ", server.url))
            && stdout.contains("as root (role system)"),
        "{stdout}"
    );
    let (ok, stdout, _) = out(kalam(&server, home.path()).args([
        "--csv",
        "-c",
        "FLUSH TABLE app.notes",
        "-c",
        "\\jobs",
    ]));
    assert!(ok);
    assert!(
        stdout.contains("job_id,job_type,status,namespace_id,table_name,created_at,message\r\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains(",flush,") || stdout.contains(",Flush,"),
        "{stdout}"
    );
    // \o sends results to a file, \i runs one, \timing adds times
    let included = home.path().join("inc.sql");
    std::fs::write(&included, "SELECT 5 AS five;\n").unwrap();
    let result = home.path().join("result.txt");
    let (ok, stdout, stderr) = out(kalam(&server, home.path()).args([
        "--csv",
        "-c",
        &format!("\\o {}", result.display()),
        "-c",
        &format!("\\i {}", included.display()),
        "-c",
        "\\o",
        "-c",
        "\\timing on",
        "-c",
        "SELECT 6 AS six",
    ]));
    assert!(ok, "{stderr}");
    assert_eq!(std::fs::read_to_string(&result).unwrap(), "five\r\n5\r\n");
    assert_eq!(stdout, "six\r\n6\r\n");
    assert!(
        stderr.contains("Time: ") && stderr.contains(" ms (server "),
        "{stderr}"
    );
    let (ok, _, stderr) = out(kalam(&server, home.path()).args(["-c", "\\nope"]));
    assert!(!ok);
    assert!(stderr.contains("unknown command \\nope"), "{stderr}");
    // \as runs a statement as another user
    sql(
        &server,
        home.path(),
        "CREATE USER 'bob' WITH PASSWORD 'bob-pass-12' ROLE user",
    );
    let (ok, stdout, stderr) = out(kalam(&server, home.path()).args([
        "--csv",
        "-c",
        "\\as bob SELECT CURRENT_USER() AS u",
    ]));
    assert!(ok, "{stderr}");
    assert_eq!(stdout, "u\r\nbob\r\n");
}

#[cfg(unix)]
#[test]
fn saved_credentials_hold_tokens_never_the_password_in_a_0600_file() {
    use std::os::unix::fs::PermissionsExt;
    let server = Server::start();
    let home = tempfile::tempdir().unwrap();
    sql(
        &server,
        home.path(),
        "CREATE USER 'alice' WITH PASSWORD 'alice-secret-99' ROLE user",
    );
    let (ok, stdout, stderr) = out(kalam(&server, home.path()).args([
        "--user",
        "alice",
        "--password",
        "alice-secret-99",
        "--save-credentials",
        "--csv",
        "-c",
        "SELECT CURRENT_USER() AS u",
    ]));
    assert!(ok, "{stderr}");
    assert_eq!(stdout, "u\r\nalice\r\n");
    let path = home.path().join(".kalam/credentials.toml");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let dir_mode = std::fs::metadata(home.path().join(".kalam"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("alice-secret-99"), "no password: {text}");
    assert!(
        text.contains("[instances.default]")
            && text.contains("access_token")
            && text.contains("refresh_token")
    );
    assert!(text.contains(&format!("url = \"{}\"", server.url)));

    // the saved session is used without any credentials
    let (ok, stdout, stderr) =
        out(kalam(&server, home.path()).args(["--csv", "-c", "SELECT CURRENT_USER() AS u"]));
    assert!(ok, "{stderr}");
    assert_eq!(stdout, "u\r\nalice\r\n");
    // a named instance keeps its own section
    let (ok, _, stderr) = out(kalam(&server, home.path()).args([
        "--instance",
        "other",
        "--user",
        "root",
        "--password",
        "",
        "--save-credentials",
        "-c",
        "SELECT 1",
    ]));
    assert!(ok, "{stderr}");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("[instances.other]") && text.contains("[instances.default]"),
        "{text}"
    );
    let (ok, stdout, _) = out(kalam(&server, home.path()).args([
        "--instance",
        "other",
        "--csv",
        "-c",
        "SELECT CURRENT_USER() AS u",
    ]));
    assert!(ok);
    assert_eq!(stdout, "u\r\nroot\r\n");
    // \logout removes this instance's session only
    let (ok, _, stderr) = out(kalam(&server, home.path()).args(["-c", "\\logout"]));
    assert!(ok, "{stderr}");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        !text.contains("[instances.default]") && text.contains("[instances.other]"),
        "{text}"
    );
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // a wrong password: login fails, nothing saved, exit 1
    let o = kalam(&server, home.path())
        .args([
            "--user",
            "alice",
            "--password",
            "wrong",
            "--save-credentials",
            "-c",
            "SELECT 1",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        !std::fs::read_to_string(&path)
            .unwrap()
            .contains("[instances.default]")
    );
    // an unknown instance is refused
    let o = kalam(&server, home.path())
        .args(["--instance", "ghost", "-c", "SELECT 1"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));

    // --token: a bare access token works from anywhere
    let text = std::fs::read_to_string(&path).unwrap();
    let saved: toml::Value = toml::from_str(&text).unwrap();
    let token = saved["instances"]["other"]["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let elsewhere = tempfile::tempdir().unwrap();
    let (ok, stdout, stderr) = out(kalam(&server, elsewhere.path()).args([
        "--token",
        &token,
        "--csv",
        "-c",
        "SELECT CURRENT_USER() AS u",
    ]));
    assert!(ok, "{stderr}");
    assert_eq!(stdout, "u\r\nroot\r\n");
}

#[test]
fn host_port_config_file_and_named_instances_choose_the_server() {
    let server = Server::start();
    let home = tempfile::tempdir().unwrap();
    let port = server.port().to_string();
    // -H / -p instead of a URL (KALAM_URL points elsewhere)
    let (ok, stdout, stderr) = out(kalam(&server, home.path())
        .env("KALAM_URL", "http://127.0.0.1:9")
        .args([
            "-H",
            "127.0.0.1",
            "-p",
            &port,
            "--csv",
            "-c",
            "SELECT 1 AS one",
        ]));
    assert!(ok, "{stderr}");
    assert_eq!(stdout, "one\r\n1\r\n");
    // config.toml: a default format and a named instance with its namespace
    sql(
        &server,
        home.path(),
        "CREATE NAMESPACE chat; CREATE TABLE chat.rooms (id INT PRIMARY KEY, name TEXT); INSERT INTO chat.rooms VALUES (1, 'lobby')",
    );
    let config = home.path().join("kalam.toml");
    std::fs::write(
        &config,
        format!(
            "format = \"jsonl\"\n[instances.dev]\nurl = \"{}\"\nnamespace = \"chat\"\n",
            server.url
        ),
    )
    .unwrap();
    let (ok, stdout, stderr) = out(kalam(&server, home.path())
        .env_remove("KALAM_URL")
        .arg("--config")
        .arg(&config)
        .args(["--instance", "dev", "-c", "SELECT name FROM rooms"]));
    assert!(ok, "{stderr}");
    assert_eq!(stdout, "{\"name\":\"lobby\"}\n");
    // a typo in the config is an error, not silently ignored
    std::fs::write(&config, "fromat = \"json\"\n").unwrap();
    let o = kalam(&server, home.path())
        .arg("--config")
        .arg(&config)
        .args(["-c", "SELECT 1"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("fromat"));
}

#[test]
fn subscribe_prints_one_json_line_per_event() {
    let server = Server::start();
    let home = tempfile::tempdir().unwrap();
    sql(&server, home.path(), SETUP);
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("kalam"))
        .env("HOME", home.path())
        .env("KALAM_URL", &server.url)
        .args([
            "--subscribe",
            "SELECT id, body FROM app.notes WHERE id < 100",
            "--subscription-timeout",
            "60",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let next = || rx.recv_timeout(Duration::from_secs(20)).expect("a line");
    let first: serde_json::Value = serde_json::from_str(&next()).unwrap();
    assert_eq!(first["type"], "subscribed");
    assert_eq!(first["total_rows"], 2);
    let mut initial = vec![];
    loop {
        let line = next();
        if line == "{\"type\":\"ready\"}" {
            break;
        }
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["type"], "initial");
        assert!(
            v["row"]["_seq"].is_string(),
            "every row carries its _seq: {line}"
        );
        initial.push(v["row"]["id"].as_str().unwrap().to_string());
    }
    assert_eq!(initial, ["2", "3"].map(String::from));
    sql(
        &server,
        home.path(),
        "INSERT INTO app.notes (id, body) VALUES (7, 'new')",
    );
    let v: serde_json::Value = serde_json::from_str(&next()).unwrap();
    assert_eq!(
        (v["type"].as_str(), v["row"]["body"].as_str()),
        (Some("insert"), Some("new"))
    );
    sql(
        &server,
        home.path(),
        "UPDATE app.notes SET body = 'newer' WHERE id = 7",
    );
    let v: serde_json::Value = serde_json::from_str(&next()).unwrap();
    assert_eq!(
        (v["row"]["body"].as_str(), v["old"]["body"].as_str()),
        (Some("newer"), Some("new"))
    );
    sql(&server, home.path(), "DELETE FROM app.notes WHERE id = 7");
    let v: serde_json::Value = serde_json::from_str(&next()).unwrap();
    assert_eq!(
        (v["type"].as_str(), v["old"]["id"].as_str()),
        (Some("delete"), Some("7"))
    );
    child.kill().unwrap();
    let _ = child.wait();

    // --subscription-timeout ends it with exit 0; a refused query exits 1
    let o = kalam(&server, home.path())
        .args([
            "--subscribe",
            "SELECT id FROM app.notes",
            "--subscription-timeout",
            "1",
        ])
        .output()
        .unwrap();
    assert!(o.status.success());
    let o = kalam(&server, home.path())
        .args(["--subscribe", "SELECT count(*) FROM app.notes"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("UNSUPPORTED"));
}

#[test]
fn help_documents_the_flags() {
    let o = assert_cmd::Command::cargo_bin("kalam")
        .unwrap()
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(o.stdout).unwrap();
    for flag in [
        "--url",
        "--host",
        "--port",
        "--user",
        "--password",
        "--token",
        "--instance",
        "--namespace",
        "--command",
        "--file",
        "--format",
        "--json",
        "--csv",
        "--no-color",
        "--no-spinner",
        "--timeout",
        "--config",
        "--save-credentials",
        "--on-error",
        "--yes",
        "--subscribe",
        "--subscription-timeout",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}

/// base64url without padding (for a hand-made JWT).
fn b64url(bytes: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(unix)]
#[test]
fn an_expiring_saved_session_is_refreshed_and_written_back() {
    use std::os::unix::fs::PermissionsExt;
    let server = Server::start();
    let home = tempfile::tempdir().unwrap();
    sql(
        &server,
        home.path(),
        "CREATE USER 'carol' WITH PASSWORD 'carol-pass-77' ROLE user",
    );
    let (ok, _, stderr) = out(kalam(&server, home.path()).args([
        "--user",
        "carol",
        "--password",
        "carol-pass-77",
        "--save-credentials",
        "-c",
        "SELECT 1",
    ]));
    assert!(ok, "{stderr}");
    let path = home.path().join(".kalam/credentials.toml");
    let mut saved: toml::Value = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    // an access token that expires now (the signature is junk: only a
    // refresh can get the request through)
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let stale = format!(
        "{}.{}.junk",
        b64url(br#"{"alg":"HS256","typ":"JWT"}"#),
        b64url(format!(r#"{{"exp":{now},"sub":"x"}}"#).as_bytes())
    );
    saved["instances"]["default"]["access_token"] = toml::Value::String(stale.clone());
    std::fs::write(&path, toml::to_string(&saved).unwrap()).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();

    let (ok, stdout, stderr) =
        out(kalam(&server, home.path()).args(["--csv", "-c", "SELECT CURRENT_USER() AS u"]));
    assert!(ok, "{stderr}");
    assert_eq!(stdout, "u\r\ncarol\r\n");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains(&stale), "the refreshed pair was saved");
    assert!(!text.contains("carol-pass-77"));
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn edit_runs_what_the_editor_left() {
    let server = Server::start();
    let home = tempfile::tempdir().unwrap();
    let edited = home.path().join("edited.sql");
    std::fs::write(&edited, "SELECT 99 AS edited;\n").unwrap();
    let (ok, stdout, stderr) = out(kalam(&server, home.path())
        .env("EDITOR", format!("cp {}", edited.display()))
        .env_remove("VISUAL")
        .args(["--csv", "-c", "SELECT 1 AS first", "-c", "\\e"]));
    assert!(ok, "{stderr}");
    assert_eq!(stdout, "first\r\n1\r\nedited\r\n99\r\n");
}

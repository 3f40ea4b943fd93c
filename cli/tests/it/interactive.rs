//! The interactive shell through a pseudo-terminal: completion, multi-line
//! input, confirmation, expanded display, Ctrl-C cancelling a running query,
//! and `\subscribe` following another client's writes across a server
//! restart.

use crate::server::Server;
use expectrl::{ControlCode, Session};
use std::process::Command;
use std::time::Duration;

const SETUP: &str = "CREATE NAMESPACE app;
CREATE TABLE app.notes (id BIGINT PRIMARY KEY, body TEXT);
INSERT INTO app.notes (id, body) VALUES (1, 'one'), (2, NULL);";

fn shell(server: &Server, home: &std::path::Path) -> (Session, String) {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("kalam"));
    cmd.env("HOME", home)
        .env("KALAM_URL", &server.url)
        .env("TERM", "xterm-256color")
        .env_remove("KALAM_USER")
        .env_remove("KALAM_PASSWORD")
        .arg("--no-color");
    let mut p = Session::spawn(cmd).expect("spawn kalam in a pty");
    p.get_process_mut()
        .set_window_size(100, 40)
        .expect("window size");
    p.set_expect_timeout(Some(Duration::from_secs(30)));
    let prompt = format!("root@127.0.0.1:{}> ", server.port());
    p.expect(prompt.as_str()).expect("the prompt");
    (p, prompt)
}

/// Reads lines until every one of `needles` has appeared.
fn wait_for_all(p: &mut Session, needles: &[&str]) {
    let mut seen = String::new();
    while !needles.iter().all(|n| seen.contains(n)) {
        let c = p.expect("\n").unwrap_or_else(|e| panic!("{e}; saw {seen}"));
        seen.push_str(&text(&c));
        seen.push('\n');
    }
}

fn text(c: &expectrl::Captures) -> String {
    String::from_utf8_lossy(c.before()).into_owned()
}

#[test]
fn completion_multiline_input_confirmation_and_expanded_display() {
    let server = Server::start();
    let home = tempfile::tempdir().unwrap();
    crate::sql(&server, home.path(), SETUP);
    let (mut p, prompt) = shell(&server, home.path());

    // a table, then a column of that table, completed with Tab
    p.send("SELECT id FROM app.no\t").unwrap();
    p.expect("app.notes").unwrap();
    p.send(" WHERE bod\t").unwrap();
    p.expect("body").unwrap();
    p.send(" IS NULL;\r").unwrap();
    let c = p.expect("(1 row)").unwrap();
    assert!(text(&c).contains("│ 2  │"), "{}", text(&c));
    p.expect(prompt.as_str()).unwrap();

    // a statement over several lines runs at its `;`
    p.send("SELECT\r").unwrap();
    p.send("  40 + 2\r").unwrap();
    p.send("  AS answer;\r").unwrap();
    let c = p.expect("(1 row)").unwrap();
    assert!(
        text(&c).contains("answer") && text(&c).contains("42"),
        "{}",
        text(&c)
    );
    p.expect(prompt.as_str()).unwrap();

    // a DROP asks first; "n" keeps the table
    p.send("DROP TABLE app.notes;\r").unwrap();
    p.expect("Run it? [y/N]").unwrap();
    p.send("n\r").unwrap();
    p.expect("Not run.").unwrap();
    p.expect(prompt.as_str()).unwrap();
    p.send("SELECT count(*) AS c FROM app.notes;\r").unwrap();
    p.expect("(1 row)").unwrap();

    // \x auto: a row wider than the terminal becomes a record
    p.send("\\x auto\r").unwrap();
    p.expect("Expanded display is auto.").unwrap();
    p.send("SELECT repeat('x', 150) AS wide, 7 AS n;\r")
        .unwrap();
    let c = p.expect("(1 row)").unwrap();
    let out = text(&c);
    assert!(out.contains("-[ RECORD 1 ]"), "{out}");
    assert!(out.contains("n    | 7"), "{out}");
    p.send("SELECT 1 AS narrow;\r").unwrap();
    let c = p.expect("(1 row)").unwrap();
    assert!(
        !text(&c).contains("RECORD"),
        "a narrow result stays a table"
    );

    // history is kept in ~/.kalam/history
    p.send("\\q\r").unwrap();
    p.expect(expectrl::Eof).unwrap();
    let history = std::fs::read_to_string(home.path().join(".kalam/history")).unwrap();
    assert!(history.contains("AS answer;"), "{history}");
}

#[test]
fn ctrl_c_cancels_a_running_query_on_the_server() {
    let server = Server::start();
    let home = tempfile::tempdir().unwrap();
    let values: Vec<String> = (1..=3000).map(|i| format!("({i})")).collect();
    crate::sql(
        &server,
        home.path(),
        &format!(
            "CREATE NAMESPACE app; CREATE TABLE app.big (id BIGINT PRIMARY KEY); INSERT INTO app.big (id) VALUES {}",
            values.join(",")
        ),
    );
    let (mut p, prompt) = shell(&server, home.path());
    // 27 billion combinations: minutes of work
    p.send("SELECT count(*) FROM app.big a, app.big b, app.big c WHERE a.id + b.id + c.id > 1;\r")
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let busy_from = server.cpu_seconds();
    std::thread::sleep(Duration::from_millis(1500));
    let busy = server.cpu_seconds() - busy_from;
    // (other tests may share the cores: any steady work shows it runs)
    assert!(
        busy > 0.2,
        "the query is running ({busy:.2} s of CPU in 1.5 s)"
    );
    p.send(ControlCode::EndOfText).unwrap();
    p.expect("Cancelled.").unwrap();
    p.expect(prompt.as_str()).unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    let idle_from = server.cpu_seconds();
    std::thread::sleep(Duration::from_millis(2000));
    let idle = server.cpu_seconds() - idle_from;
    assert!(
        idle < 0.3,
        "the server stopped the query ({idle:.2} s of CPU in 2 s)"
    );
    // and the shell goes on
    p.send("SELECT 7 AS seven;\r").unwrap();
    let c = p.expect("(1 row)").unwrap();
    assert!(text(&c).contains("seven"));
}

#[test]
fn subscribe_prints_another_clients_changes_and_survives_a_server_restart() {
    let mut server = Server::start();
    let home = tempfile::tempdir().unwrap();
    crate::sql(&server, home.path(), SETUP);
    let (mut p, prompt) = shell(&server, home.path());
    p.send("\\subscribe SELECT id, body FROM app.notes WHERE id > 100\r")
        .unwrap();
    p.expect("Listening for changes").unwrap();
    crate::sql(
        &server,
        home.path(),
        "INSERT INTO app.notes (id, body) VALUES (101, 'first')",
    );
    let mut seen = String::new();
    let c = p.expect("\"first\"").unwrap();
    seen.push_str(&text(&c));
    assert!(
        seen.contains("+ INSERT {\"id\":\"101\",\"body\":"),
        "{seen}"
    );

    server.restart();
    crate::sql(
        &server,
        home.path(),
        "INSERT INTO app.notes (id, body) VALUES (102, 'while away')",
    );
    let c = p.expect("\"while away\"").unwrap();
    seen.push_str(&text(&c));
    assert!(seen.contains("reconnecting"), "{seen}");
    crate::sql(
        &server,
        home.path(),
        "INSERT INTO app.notes (id, body) VALUES (103, 'after')",
    );
    let c = p.expect("\"after\"").unwrap();
    seen.push_str(&text(&c));
    assert!(seen.contains("+ INSERT {\"id\":\"103\""), "{seen}");
    assert_eq!(
        seen.matches("\"101\"").count(),
        1,
        "no change repeated: {seen}"
    );
    assert_eq!(
        seen.matches("\"102\"").count(),
        1,
        "no change repeated: {seen}"
    );

    p.send(ControlCode::EndOfText).unwrap();
    p.expect("Subscription ended").unwrap();
    p.expect(prompt.as_str()).unwrap();
}

#[test]
fn background_subscriptions_and_the_live_view() {
    let server = Server::start();
    let home = tempfile::tempdir().unwrap();
    crate::sql(&server, home.path(), SETUP);
    let (mut p, prompt) = shell(&server, home.path());
    p.send("\\subscribe SELECT id, body FROM app.notes WHERE id > 100 &\r")
        .unwrap();
    p.expect("Subscription 1 runs in the background").unwrap();
    p.expect(prompt.as_str()).unwrap();
    p.send("\\subscribe SELECT id FROM app.notes WHERE id > 200 &\r")
        .unwrap();
    p.expect("Subscription 2 runs in the background").unwrap();
    p.send("\\subscriptions\r").unwrap();
    let c = p.expect("id > 200").unwrap();
    assert!(
        text(&c).contains("1  SELECT id, body FROM app.notes WHERE id > 100"),
        "{}",
        text(&c)
    );
    crate::sql(
        &server,
        home.path(),
        "INSERT INTO app.notes (id, body) VALUES (150, 'bg'), (250, 'both')",
    );
    // the two subscriptions print in whichever order they are told
    wait_for_all(
        &mut p,
        &[
            "[1] + INSERT {\"id\":\"150\",\"body\":\"bg\"}",
            "[1] + INSERT {\"id\":\"250\",\"body\":\"both\"}",
            "[2] + INSERT {\"id\":\"250\"}",
        ],
    );
    p.send("\\unsubscribe 1\r").unwrap();
    p.expect("Unsubscribed.").unwrap();
    p.send("\\subscriptions\r").unwrap();
    p.expect("2  SELECT id FROM app.notes WHERE id > 200")
        .unwrap();
    let c = p.expect(prompt.as_str()).unwrap();
    assert!(!text(&c).contains("id > 100"), "{}", text(&c));

    // \live redraws the whole result as rows change
    p.send("\\live SELECT id, body FROM app.notes WHERE id < 100\r")
        .unwrap();
    p.expect("(2 rows at").unwrap();
    crate::sql(
        &server,
        home.path(),
        "UPDATE app.notes SET body = 'uno' WHERE id = 1",
    );
    let c = p.expect("(2 rows at").unwrap();
    assert!(text(&c).contains("uno"), "{}", text(&c));
    crate::sql(&server, home.path(), "DELETE FROM app.notes WHERE id = 2");
    p.expect("(1 row at").unwrap();
    p.send(ControlCode::EndOfText).unwrap();
    p.expect("Subscription ended").unwrap();
    p.expect(prompt.as_str()).unwrap();
}

#[test]
fn a_password_is_prompted_without_echo_and_ctrl_c_and_ctrl_d_behave() {
    let server = Server::start();
    let home = tempfile::tempdir().unwrap();
    crate::sql(&server, home.path(), SETUP);
    crate::sql(
        &server,
        home.path(),
        "CREATE USER 'alice' WITH PASSWORD 'alice-pass-123' ROLE user",
    );
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("kalam"));
    cmd.env("HOME", home.path())
        .env("KALAM_URL", &server.url)
        .env("TERM", "xterm-256color")
        .args(["--no-color", "--user", "alice", "--password"]);
    let mut p = Session::spawn(cmd).expect("spawn kalam in a pty");
    p.set_expect_timeout(Some(Duration::from_secs(30)));
    p.expect("Password for alice: ").unwrap();
    p.send("alice-pass-123\r").unwrap();
    let prompt = format!("alice@127.0.0.1:{}> ", server.port());
    let c = p.expect(prompt.as_str()).unwrap();
    assert!(
        !text(&c).contains("alice-pass-123"),
        "no echo: {}",
        text(&c)
    );

    // Ctrl-C drops the line being typed
    p.send("SELECT 'abandoned'").unwrap();
    p.expect("'abandoned'").unwrap();
    p.send(ControlCode::EndOfText).unwrap();
    p.expect(prompt.as_str()).unwrap();
    p.send("SELECT 'kept' AS k;\r").unwrap();
    let c = p.expect("(1 row) in ").unwrap();
    assert!(
        text(&c).contains("kept") && !text(&c).contains("ERROR"),
        "{}",
        text(&c)
    );

    // \use shows the namespace in the prompt
    p.send("\\use app\r").unwrap();
    p.expect(format!("alice@127.0.0.1:{}/app> ", server.port()).as_str())
        .unwrap();
    // \login saves a session (tokens, never the password)
    p.send("\\login alice\r").unwrap();
    p.expect("Password for alice: ").unwrap();
    p.send("alice-pass-123\r").unwrap();
    p.expect("Logged in as alice (user); session saved in")
        .unwrap();
    let saved = std::fs::read_to_string(home.path().join(".kalam/credentials.toml")).unwrap();
    assert!(saved.contains("refresh_token") && !saved.contains("alice-pass-123"));
    p.expect(format!("alice@127.0.0.1:{}/app> ", server.port()).as_str())
        .unwrap();
    // Ctrl-D leaves
    p.send(ControlCode::EndOfTransmission).unwrap();
    p.expect(expectrl::Eof).unwrap();
}

#[test]
fn results_taller_than_the_terminal_go_through_the_pager() {
    let server = Server::start();
    let home = tempfile::tempdir().unwrap();
    let paged = home.path().join("paged.txt");
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("kalam"));
    cmd.env("HOME", home.path())
        .env("KALAM_URL", &server.url)
        .env("TERM", "xterm-256color")
        .env("PAGER", format!("cat > {}", paged.display()))
        .arg("--no-color");
    let mut p = Session::spawn(cmd).expect("spawn kalam in a pty");
    p.get_process_mut().set_window_size(100, 40).unwrap();
    p.set_expect_timeout(Some(Duration::from_secs(30)));
    let prompt = format!("root@127.0.0.1:{}> ", server.port());
    p.expect(prompt.as_str()).unwrap();
    // 10 rows fit: printed directly
    p.send("SELECT * FROM (VALUES (1), (2), (3), (4), (5), (6), (7), (8), (9), (10)) AS t(n);\r")
        .unwrap();
    p.expect("(10 rows)").unwrap();
    assert!(!paged.exists(), "a short result is not paged");
    // 60 rows do not: the pager gets the whole table and the footer
    let values: Vec<String> = (1..=60).map(|i| format!("({i})")).collect();
    p.send(format!(
        "SELECT * FROM (VALUES {}) AS t(n);\r",
        values.join(", ")
    ))
    .unwrap();
    // (the output goes to the pager, not the screen: wait for its file)
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&paged).is_ok_and(|t| t.contains("rows)")) {
        assert!(std::time::Instant::now() < deadline, "the pager never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = std::fs::read_to_string(&paged).unwrap();
    assert!(
        text.contains("│ 60 │") && text.contains("(60 rows)"),
        "{text}"
    );
}

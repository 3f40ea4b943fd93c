//! The `kalam` binary against a real server: scripts (`scripts.rs`,
//! assert_cmd) and the interactive shell through a pseudo-terminal
//! (`interactive.rs`, expectrl).

#[path = "../../../link/tests/server.rs"]
mod server;

mod interactive;
mod scripts;

use server::Server;
use std::path::Path;

/// `kalam` with a private HOME, talking to `server`.
pub fn kalam(server: &Server, home: &Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("kalam").expect("kalam binary");
    cmd.env("HOME", home)
        .env("KALAM_URL", &server.url)
        .env_remove("KALAM_USER")
        .env_remove("KALAM_PASSWORD")
        .env_remove("NO_COLOR")
        .env_remove("PAGER")
        .timeout(std::time::Duration::from_secs(60));
    cmd
}

/// Runs SQL as root through the CLI; panics on failure.
pub fn sql(server: &Server, home: &Path, sql: &str) -> String {
    let out = kalam(server, home)
        .args(["-c", sql])
        .output()
        .expect("run kalam");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

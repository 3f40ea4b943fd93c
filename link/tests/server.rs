//! A real `kalamdb-server` for client tests: the workspace's binary on an
//! ephemeral port with a temporary data directory. Shared by the link and
//! cli test binaries (`#[path]`), which may not depend on server crates.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

pub struct Server {
    child: Child,
    pub url: String,
    pub data_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

/// The server binary: `KALAMDB_SERVER_BIN`, else the one next to this test's
/// target directory (built by `cargo build -p kalamdb-server` if missing).
fn server_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("KALAMDB_SERVER_BIN") {
            return PathBuf::from(p);
        }
        let exe = std::env::current_exe().expect("test exe");
        // target/<profile>/deps/it-xxxx → target/<profile>/kalamdb-server
        let profile_dir = exe.parent().and_then(Path::parent).expect("profile dir");
        let bin = profile_dir.join("kalamdb-server");
        if !bin.exists() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args(["build", "-p", "kalamdb-server", "--bin", "kalamdb-server"])
                .status()
                .expect("run cargo build");
            assert!(status.success(), "building kalamdb-server failed");
        }
        assert!(bin.exists(), "no server binary at {}", bin.display());
        bin
    })
}

impl Server {
    pub fn start() -> Server {
        let temp = tempfile::tempdir().expect("temp dir");
        let mut s = Server::start_on(temp.path(), None);
        s._temp = Some(temp);
        s
    }

    /// Starts on `data_dir`, on `port` (0: any free one).
    pub fn start_on(data_dir: &Path, port: Option<u16>) -> Server {
        let mut child = Command::new(server_binary())
            .env_clear()
            .env("KALAMDB_DATA_DIR", data_dir)
            .env("KALAMDB_SERVER_PORT", port.unwrap_or(0).to_string())
            .env("KALAMDB_LOG_LEVEL", "warn")
            .env("KALAMDB_LOGGING_STDOUT", "false")
            .env("KALAMDB_AUTH_BCRYPT_COST", "4")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn kalamdb-server");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let url = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(url) = line.strip_prefix("kalamdb-server listening on ") {
                        break url.trim().to_string();
                    }
                }
                _ => panic!("kalamdb-server exited before listening: {:?}", child.wait()),
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            url,
            data_dir: data_dir.to_path_buf(),
            _temp: None,
        }
    }

    pub fn port(&self) -> u16 {
        self.url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server (SIGKILL) and starts it again on the same data
    /// directory and port.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let temp = self._temp.take();
        let mut next = Server::start_on(&self.data_dir, Some(self.port()));
        next._temp = temp;
        std::mem::swap(self, &mut next);
        // `next` now holds the old, already reaped process: dropping it
        // signals nothing
    }

    /// CPU time (user + system) the server process has used, in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
            + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
        ticks / 100.0
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

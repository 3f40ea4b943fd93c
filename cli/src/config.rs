//! `~/.kalam/config.toml` (defaults and named instances) and
//! `~/.kalam/credentials.toml` (saved sessions: a JWT and its refresh token
//! per instance, never a password; mode 0600).

use kalam_link::{TokenPair, UserInfo};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The instance name used when `--instance` is not given.
pub const DEFAULT_INSTANCE: &str = "default";

/// `~/.kalam`.
pub fn kalam_dir() -> Option<PathBuf> {
    std::env::home_dir().map(|h| h.join(".kalam"))
}

/// `config.toml`: every key optional.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub url: Option<String>,
    pub user: Option<String>,
    pub namespace: Option<String>,
    pub format: Option<String>,
    pub timeout_secs: Option<u64>,
    pub color: Option<bool>,
    pub pager: Option<bool>,
    /// Instance used when `--instance` is not given.
    pub instance: Option<String>,
    #[serde(default)]
    pub instances: BTreeMap<String, InstanceConfig>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceConfig {
    pub url: Option<String>,
    pub user: Option<String>,
    pub namespace: Option<String>,
}

impl Config {
    /// Reads `path` (or `~/.kalam/config.toml`); a missing default file is
    /// an empty config, a missing or malformed named one is an error.
    pub fn load(path: Option<&Path>) -> Result<Config, String> {
        let (path, explicit) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => match kalam_dir() {
                Some(d) => (d.join("config.toml"), false),
                None => return Ok(Config::default()),
            },
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                Ok(Config::default())
            }
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }
}

/// One saved session.
#[derive(Clone, PartialEq, Deserialize, Serialize)]
pub struct SavedSession {
    pub url: String,
    pub username: String,
    #[serde(default)]
    pub user_id: String,
    #[serde(default)]
    pub role: String,
    pub access_token: String,
    pub refresh_token: String,
    pub expires_at: String,
    pub refresh_expires_at: String,
}

impl std::fmt::Debug for SavedSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SavedSession")
            .field("url", &self.url)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl SavedSession {
    pub fn new(url: &str, pair: &TokenPair) -> Self {
        Self {
            url: url.to_string(),
            username: pair.user.username.clone(),
            user_id: pair.user.id.clone(),
            role: pair.user.role.clone(),
            access_token: pair.access_token.clone(),
            refresh_token: pair.refresh_token.clone(),
            expires_at: pair.expires_at.clone(),
            refresh_expires_at: pair.refresh_expires_at.clone(),
        }
    }

    pub fn tokens(&self) -> TokenPair {
        TokenPair {
            user: UserInfo {
                id: self.user_id.clone(),
                username: self.username.clone(),
                role: self.role.clone(),
                email: None,
            },
            access_token: self.access_token.clone(),
            refresh_token: self.refresh_token.clone(),
            expires_at: self.expires_at.clone(),
            refresh_expires_at: self.refresh_expires_at.clone(),
        }
    }
}

/// `credentials.toml`: `[instances.<name>]` sections.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Credentials {
    #[serde(default)]
    pub instances: BTreeMap<String, SavedSession>,
}

impl Credentials {
    pub fn path() -> Option<PathBuf> {
        kalam_dir().map(|d| d.join("credentials.toml"))
    }

    pub fn load() -> Credentials {
        Self::path()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|t| toml::from_str(&t).ok())
            .unwrap_or_default()
    }

    /// Writes the file with mode 0600 (its directory 0700), replacing it
    /// atomically.
    pub fn save(&self) -> Result<PathBuf, String> {
        let path = Self::path().ok_or("no home directory to keep credentials in")?;
        let dir = path.parent().expect("has a parent");
        create_private_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let text = toml::to_string(self).map_err(|e| e.to_string())?;
        let temp = dir.join(".credentials.toml.tmp");
        let _ = std::fs::remove_file(&temp);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options
            .open(&temp)
            .map_err(|e| format!("{}: {e}", temp.display()))?;
        file.write_all(text.as_bytes())
            .and_then(|_| file.sync_all())
            .map_err(|e| format!("{}: {e}", temp.display()))?;
        std::fs::rename(&temp, &path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(path)
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// `~/.kalam/history`.
pub fn history_path() -> Option<PathBuf> {
    let dir = kalam_dir()?;
    create_private_dir(&dir).ok()?;
    Some(dir.join("history"))
}

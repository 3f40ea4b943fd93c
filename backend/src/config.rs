//! Server configuration: defaults, then `server.toml` (optional,
//! `--config`), then `KALAMDB_*` environment variables; validated at start
//! with errors that name the key.
//!
//! Environment names: `KALAMDB_<SECTION>_<KEY>` (e.g.
//! `KALAMDB_STORAGE_SYNC_WRITES=true`), plus the fixed short names
//! `KALAMDB_DATA_DIR`, `KALAMDB_LOGS_DIR`, `KALAMDB_LOG_LEVEL`,
//! `KALAMDB_JWT_SECRET` and `KALAMDB_ROOT_PASSWORD`.

use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid config: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    pub host: String,
    pub port: u16,
    /// Requests in flight get this long to finish at shutdown.
    pub shutdown_timeout_secs: u64,
    /// Snowflake node id (0..=1023).
    pub node_id: u16,
    /// Open connections at once; beyond it new ones get 503 and are closed.
    pub max_connections: usize,
    /// A request head must arrive within this long of the connection opening
    /// or of the previous reply (so idle keep-alive connections close too).
    pub header_read_timeout_secs: u64,
    /// A request body must arrive in full within this long.
    pub body_read_timeout_secs: u64,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8080,
            shutdown_timeout_secs: 30,
            node_id: 0,
            max_connections: 10_000,
            header_read_timeout_secs: 10,
            body_read_timeout_secs: 30,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSection {
    pub data_dir: PathBuf,
    /// fsync the WAL on every write (group-committed). Off: writes survive a
    /// process crash but not power loss.
    pub sync_writes: bool,
    pub block_cache_mb: usize,
    pub write_buffer_mb: usize,
    /// How long soft-deleted rows are kept before Retention purges them
    /// (a table's DELETED_RETENTION_HOURS overrides it). A live query can
    /// resume from a cursor this old, no older.
    pub deleted_retention_hours: u64,
}

impl Default for StorageSection {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            sync_writes: false,
            block_cache_mb: 64,
            write_buffer_mb: 32,
            deleted_retention_hours: 168,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingSection {
    /// error, warn, info, debug or trace (or a tracing filter string).
    pub level: String,
    /// Defaults to `<data_dir>/logs`.
    pub logs_dir: Option<PathBuf>,
    /// Also write logs to stdout.
    pub stdout: bool,
    /// `text` (one readable line per event) or `json` (one JSON object per
    /// line, with the request's span fields, for log shippers).
    pub format: LogFormat,
    /// Statements that take longer are logged (warn) with their duration,
    /// user and SQL (truncated; string literals of statements that carry
    /// secrets masked; parameter values never). 0: off.
    pub slow_query_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for LoggingSection {
    fn default() -> Self {
        Self {
            level: "info".into(),
            logs_dir: None,
            stdout: true,
            format: LogFormat::Text,
            slow_query_ms: 1000,
        }
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// Serve `GET /metrics` (Prometheus text format) and record metrics.
    /// Off: nothing is recorded and `/metrics` answers 404.
    pub enabled: bool,
    /// Let any address scrape `/metrics` without a token. Off: only
    /// loopback clients, or a request carrying `token`.
    pub allow_remote: bool,
    /// `Authorization: Bearer <token>` lets a remote scraper in. Never logged.
    pub token: Option<String>,
}

impl Default for MetricsSection {
    fn default() -> Self {
        Self {
            enabled: true,
            allow_remote: false,
            token: None,
        }
    }
}

/// The token is masked so a logged config never shows it.
impl std::fmt::Debug for MetricsSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsSection")
            .field("enabled", &self.enabled)
            .field("allow_remote", &self.allow_remote)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .finish()
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    /// HS256 secret for JWTs (at least 32 bytes). Unset: a built-in
    /// development secret, accepted only while listening on loopback.
    /// Never logged.
    pub jwt_secret: Option<String>,
    /// Lifetime of an access token.
    pub access_token_ttl_secs: u64,
    /// Lifetime of a refresh token.
    pub refresh_token_ttl_secs: u64,
    /// Sets root's password on first start only. Never logged.
    pub root_password: Option<String>,
    pub bcrypt_cost: u32,
    /// Failed logins in a row before an account is locked.
    pub max_failed_logins: u32,
    /// How long a locked account is refused.
    pub lockout_seconds: u64,
    /// Days a dropped user's rows are kept before UserCleanup purges them.
    pub user_deletion_grace_days: u64,
}

/// Secrets are masked so a logged config never shows them.
impl std::fmt::Debug for AuthSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mask = |s: &Option<String>| s.as_ref().map(|_| "***");
        f.debug_struct("AuthSection")
            .field("jwt_secret", &mask(&self.jwt_secret))
            .field("access_token_ttl_secs", &self.access_token_ttl_secs)
            .field("refresh_token_ttl_secs", &self.refresh_token_ttl_secs)
            .field("root_password", &mask(&self.root_password))
            .field("bcrypt_cost", &self.bcrypt_cost)
            .field("max_failed_logins", &self.max_failed_logins)
            .field("lockout_seconds", &self.lockout_seconds)
            .field("user_deletion_grace_days", &self.user_deletion_grace_days)
            .finish()
    }
}

impl Default for AuthSection {
    fn default() -> Self {
        Self {
            jwt_secret: None,
            access_token_ttl_secs: 3600,
            refresh_token_ttl_secs: 7 * 24 * 3600,
            root_password: None,
            bcrypt_cost: 12,
            max_failed_logins: 5,
            lockout_seconds: 300,
            user_deletion_grace_days: 7,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    pub max_request_body_bytes: usize,
    pub max_sql_length: usize,
}

impl Default for LimitsSection {
    fn default() -> Self {
        Self {
            max_request_body_bytes: 10 << 20,
            max_sql_length: 1 << 20,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuerySection {
    /// Rows per Arrow batch.
    pub batch_size: usize,
    /// Parallelism of one query.
    pub target_partitions: usize,
}

impl Default for QuerySection {
    fn default() -> Self {
        Self {
            batch_size: 8192,
            target_partitions: 2,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsSection {
    /// Jobs running at once; the rest wait Queued.
    pub max_concurrent: usize,
    /// First retry delay (doubled for each further retry).
    pub retry_backoff_ms: u64,
    /// Retries of a failing job before it is Failed.
    pub max_retries: u32,
    /// How often a UserCleanup job runs (0: never).
    pub user_cleanup_interval_secs: u64,
    /// How often a StreamEviction job reclaims expired STREAM rows (0: never;
    /// reads hide expired rows either way).
    pub stream_eviction_interval_secs: u64,
    /// How often a Retention job purges soft-deleted rows past their
    /// retention (0: never).
    pub retention_interval_secs: u64,
    /// How often a Compact job merges small cold segments and drops
    /// superseded versions and purgeable tombstones (0: never).
    pub compaction_interval_secs: u64,
}

impl Default for JobsSection {
    fn default() -> Self {
        Self {
            max_concurrent: 4,
            retry_backoff_ms: 1000,
            max_retries: 3,
            user_cleanup_interval_secs: 3600,
            stream_eviction_interval_secs: 60,
            retention_interval_secs: 3600,
            compaction_interval_secs: 3600,
        }
    }
}

/// Live queries over WebSocket (`/v1/ws`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebsocketSection {
    /// Undelivered change messages one subscription may hold; beyond it the
    /// subscription gets `OVERFLOW` (with the `_seq` to resume from) and
    /// ends, so a client that stops reading never holds more memory.
    pub subscription_queue: usize,
    /// A connection must authenticate within this long.
    pub auth_timeout_secs: u64,
    /// The server pings every connection this often.
    pub heartbeat_interval_secs: u64,
    /// A connection the client has been silent on this long is closed.
    pub client_timeout_secs: u64,
    /// Subscriptions one connection may hold.
    pub max_subscriptions_per_connection: usize,
    /// Subscriptions one user may hold over all connections.
    pub max_subscriptions_per_user: usize,
    /// The largest message a client may send.
    pub max_message_bytes: usize,
    /// Messages per second a connection may send.
    pub max_messages_per_second: u32,
    /// Initial rows one subscription may start with.
    pub max_initial_rows: usize,
}

impl Default for WebsocketSection {
    fn default() -> Self {
        Self {
            subscription_queue: 1000,
            auth_timeout_secs: 3,
            heartbeat_interval_secs: 5,
            client_timeout_secs: 10,
            max_subscriptions_per_connection: 100,
            max_subscriptions_per_user: 10,
            max_message_bytes: 1 << 20,
            max_messages_per_second: 50,
            max_initial_rows: 100_000,
        }
    }
}

/// Statement limits and per-query budgets.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SqlSection {
    /// How deeply expressions may nest (`a + b + …` of n terms is n deep).
    pub max_expression_depth: usize,
    /// How deep a query's plan may get (set operations, WITH entries and
    /// joined tables each add a level).
    pub max_query_depth: usize,
    /// Wall time one query may run, by role, in ms (0: unlimited).
    pub query_timeout_ms: PerRole,
    /// Memory one query may hold (operators and its result), by role, in MiB
    /// (0: unlimited).
    pub query_memory_limit_mb: PerRole,
}

impl Default for SqlSection {
    fn default() -> Self {
        let core = kalamdb_sql::SqlLimits::default();
        Self {
            max_expression_depth: core.max_expression_depth,
            max_query_depth: core.max_query_depth,
            query_timeout_ms: PerRole {
                user: 30_000,
                service: 30_000,
                dba: 300_000,
                system: 300_000,
            },
            query_memory_limit_mb: PerRole {
                user: 256,
                service: 256,
                dba: 1024,
                system: 1024,
            },
        }
    }
}

/// A value per role. In a file either one number for every role or a table
/// naming all four; in the environment one number for every role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PerRoleRepr")]
pub struct PerRole {
    pub user: u64,
    pub service: u64,
    pub dba: u64,
    pub system: u64,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum PerRoleRepr {
    All(u64),
    Each {
        user: Option<u64>,
        service: Option<u64>,
        dba: Option<u64>,
        system: Option<u64>,
    },
}

impl TryFrom<PerRoleRepr> for PerRole {
    type Error = String;
    fn try_from(r: PerRoleRepr) -> Result<Self, String> {
        Ok(match r {
            PerRoleRepr::All(v) => PerRole {
                user: v,
                service: v,
                dba: v,
                system: v,
            },
            PerRoleRepr::Each {
                user: Some(user),
                service: Some(service),
                dba: Some(dba),
                system: Some(system),
            } => PerRole {
                user,
                service,
                dba,
                system,
            },
            PerRoleRepr::Each { .. } => {
                return Err(
                    "a per-role value is one number or a table naming all four roles: \
                     { user = …, service = …, dba = …, system = … }"
                        .into(),
                );
            }
        })
    }
}

impl SqlSection {
    pub fn statement_limits(&self) -> kalamdb_sql::SqlLimits {
        kalamdb_sql::SqlLimits {
            max_expression_depth: self.max_expression_depth,
            max_query_depth: self.max_query_depth,
        }
    }

    pub fn query_limits(&self) -> kalamdb_core::query_limits::RoleQueryLimits {
        use kalamdb_core::query_limits::QueryLimits;
        let of = |timeout_ms: u64, memory_mb: u64| QueryLimits {
            timeout: (timeout_ms > 0).then(|| std::time::Duration::from_millis(timeout_ms)),
            memory_bytes: (memory_mb > 0)
                .then(|| usize::try_from(memory_mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX)),
        };
        let (t, m) = (&self.query_timeout_ms, &self.query_memory_limit_mb);
        kalamdb_core::query_limits::RoleQueryLimits {
            user: of(t.user, m.user),
            service: of(t.service, m.service),
            dba: of(t.dba, m.dba),
            system: of(t.system, m.system),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub server: ServerSection,
    pub storage: StorageSection,
    pub logging: LoggingSection,
    pub auth: AuthSection,
    pub limits: LimitsSection,
    pub query: QuerySection,
    pub jobs: JobsSection,
    pub sql: SqlSection,
    pub websocket: WebsocketSection,
    pub metrics: MetricsSection,
}

const SECTIONS: [&str; 10] = [
    "server",
    "storage",
    "logging",
    "auth",
    "limits",
    "query",
    "jobs",
    "sql",
    "websocket",
    "metrics",
];

/// Fixed environment names and the key each sets.
const SHORT_NAMES: [(&str, &str, &str); 5] = [
    ("KALAMDB_DATA_DIR", "storage", "data_dir"),
    ("KALAMDB_LOGS_DIR", "logging", "logs_dir"),
    ("KALAMDB_LOG_LEVEL", "logging", "level"),
    ("KALAMDB_JWT_SECRET", "auth", "jwt_secret"),
    ("KALAMDB_ROOT_PASSWORD", "auth", "root_password"),
];

impl ServerConfig {
    /// Defaults, then the file (if given), then the process environment.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with_env(path, std::env::vars())
    }

    pub fn load_with_env(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut table = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.display().to_string(),
                    source,
                })?;
                text.parse::<toml::Table>()
                    .map_err(|e| ConfigError::Invalid(format!("{}: {e}", p.display())))?
            }
            None => toml::Table::new(),
        };
        let defaults = toml::Table::try_from(ServerConfig::default())
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        for (name, value) in env {
            let Some((section, key)) = env_target(&name) else {
                continue;
            };
            let kind = defaults.get(&section).and_then(|s| s.get(&key)).cloned();
            let parsed = parse_env_value(&name, &value, kind.as_ref())?;
            table
                .entry(section)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .ok_or_else(|| ConfigError::Invalid(format!("{name}: section is not a table")))?
                .insert(key, parsed);
        }
        let config: ServerConfig = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.message().to_string()))?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: String| Err(ConfigError::Invalid(format!("{key}: {why}")));
        if self.server.host.parse::<IpAddr>().is_err() && self.server.host != "localhost" {
            return bad(
                "server.host",
                format!("'{}' is not an IP address", self.server.host),
            );
        }
        if self.server.max_connections == 0 {
            return bad("server.max_connections", "must be positive".into());
        }
        if self.server.header_read_timeout_secs == 0 || self.server.body_read_timeout_secs == 0 {
            return bad(
                "server.header_read_timeout_secs/body_read_timeout_secs",
                "must be positive".into(),
            );
        }
        if self.server.node_id > 1023 {
            return bad("server.node_id", "must be 0..=1023".into());
        }
        if self.storage.data_dir.as_os_str().is_empty() {
            return bad("storage.data_dir", "must not be empty".into());
        }
        if self.storage.block_cache_mb == 0 || self.storage.write_buffer_mb == 0 {
            return bad(
                "storage.block_cache_mb/write_buffer_mb",
                "must be positive".into(),
            );
        }
        if tracing_subscriber::EnvFilter::try_new(&self.logging.level).is_err() {
            return bad(
                "logging.level",
                format!("'{}' is not a log level", self.logging.level),
            );
        }
        if self
            .metrics
            .token
            .as_ref()
            .is_some_and(|t| t.len() < 16 || t.chars().any(|c| c.is_whitespace()))
        {
            return bad(
                "metrics.token",
                "must be at least 16 characters, without spaces".into(),
            );
        }
        if !(4..=31).contains(&self.auth.bcrypt_cost) {
            return bad("auth.bcrypt_cost", "must be 4..=31".into());
        }
        if let Some(p) = &self.auth.root_password
            && let Err(m) = kalamdb_auth::password::validate_password(p)
        {
            return bad("auth.root_password", m);
        }
        match &self.auth.jwt_secret {
            Some(secret) if secret.len() < kalamdb_auth::jwt::MIN_SECRET_LEN => {
                return bad(
                    "auth.jwt_secret",
                    format!(
                        "must be at least {} bytes long",
                        kalamdb_auth::jwt::MIN_SECRET_LEN
                    ),
                );
            }
            Some(secret) if secret == kalamdb_auth::DEV_JWT_SECRET => {
                return bad(
                    "auth.jwt_secret",
                    "is the built-in development secret; choose your own".into(),
                );
            }
            None if !self.listens_on_loopback_only() => {
                return bad(
                    "auth.jwt_secret",
                    format!(
                        "not set, so tokens would be signed with the built-in development \
                         secret; refusing to listen on the non-loopback address '{}'. Set \
                         auth.jwt_secret (KALAMDB_JWT_SECRET) to a secret of at least {} bytes",
                        self.server.host,
                        kalamdb_auth::jwt::MIN_SECRET_LEN
                    ),
                );
            }
            _ => {}
        }
        if self.auth.access_token_ttl_secs == 0
            || self.auth.refresh_token_ttl_secs < self.auth.access_token_ttl_secs
        {
            return bad(
                "auth.access_token_ttl_secs/refresh_token_ttl_secs",
                "must be positive, and a refresh token must live at least as long as an access token".into(),
            );
        }
        if self.auth.max_failed_logins == 0 {
            return bad("auth.max_failed_logins", "must be positive".into());
        }
        if self.limits.max_request_body_bytes < 1024 {
            return bad(
                "limits.max_request_body_bytes",
                "must be at least 1024".into(),
            );
        }
        if self.limits.max_sql_length == 0 {
            return bad("limits.max_sql_length", "must be positive".into());
        }
        if self.sql.max_expression_depth < 16 || self.sql.max_query_depth < 4 {
            return bad(
                "sql.max_expression_depth/max_query_depth",
                "must be at least 16 and 4".into(),
            );
        }
        if self.sql.max_expression_depth > 100_000 || self.sql.max_query_depth > 10_000 {
            return bad(
                "sql.max_expression_depth/max_query_depth",
                "at most 100000 and 10000: deeper statements cannot be planned safely".into(),
            );
        }
        if self.jobs.max_concurrent == 0 {
            return bad("jobs.max_concurrent", "must be positive".into());
        }
        if self.websocket.subscription_queue == 0 {
            return bad("websocket.subscription_queue", "must be positive".into());
        }
        if self.websocket.heartbeat_interval_secs == 0
            || self.websocket.client_timeout_secs <= self.websocket.heartbeat_interval_secs
        {
            return bad(
                "websocket.heartbeat_interval_secs/client_timeout_secs",
                "the heartbeat must be positive and shorter than the client timeout".into(),
            );
        }
        if self.query.batch_size == 0 || self.query.target_partitions == 0 {
            return bad(
                "query.batch_size/target_partitions",
                "must be positive".into(),
            );
        }
        Ok(())
    }

    /// Whether `server.host` is a loopback address (`localhost`, 127.0.0.0/8,
    /// `::1`).
    pub fn listens_on_loopback_only(&self) -> bool {
        self.server.host == "localhost"
            || self
                .server
                .host
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    /// The token settings the authenticator runs with.
    pub fn jwt_config(&self) -> kalamdb_auth::JwtConfig {
        kalamdb_auth::JwtConfig {
            secret: kalamdb_commons::password::Secret(
                self.auth
                    .jwt_secret
                    .clone()
                    .unwrap_or_else(|| kalamdb_auth::DEV_JWT_SECRET.to_string()),
            ),
            access_ttl: std::time::Duration::from_secs(self.auth.access_token_ttl_secs),
            refresh_ttl: std::time::Duration::from_secs(self.auth.refresh_token_ttl_secs),
        }
    }

    pub fn logs_dir(&self) -> PathBuf {
        self.logging
            .logs_dir
            .clone()
            .unwrap_or_else(|| self.storage.data_dir.join("logs"))
    }
}

/// `(section, key)` an environment variable sets, if it is one of ours.
fn env_target(name: &str) -> Option<(String, String)> {
    if let Some((_, section, key)) = SHORT_NAMES.iter().find(|(n, _, _)| *n == name) {
        return Some((section.to_string(), key.to_string()));
    }
    let rest = name.strip_prefix("KALAMDB_")?;
    SECTIONS.iter().find_map(|section| {
        let key = rest
            .strip_prefix(&section.to_ascii_uppercase())?
            .strip_prefix('_')?;
        (!key.is_empty()).then(|| (section.to_string(), key.to_ascii_lowercase()))
    })
}

fn parse_env_value(
    name: &str,
    value: &str,
    kind: Option<&toml::Value>,
) -> Result<toml::Value, ConfigError> {
    let bad = |what: &str| ConfigError::Invalid(format!("{name}='{value}': expected {what}"));
    Ok(match kind {
        Some(toml::Value::Integer(_)) => {
            toml::Value::Integer(value.trim().parse().map_err(|_| bad("an integer"))?)
        }
        Some(toml::Value::Boolean(_)) => {
            toml::Value::Boolean(match value.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => true,
                "false" | "0" | "no" | "off" => false,
                _ => return Err(bad("true or false")),
            })
        }
        Some(toml::Value::Float(_)) => {
            toml::Value::Float(value.trim().parse().map_err(|_| bad("a number"))?)
        }
        // A per-role value: one number for every role.
        Some(toml::Value::Table(_)) => toml::Value::Integer(
            value
                .trim()
                .parse()
                .map_err(|_| bad("an integer (applied to every role)"))?,
        ),
        _ => toml::Value::String(value.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_valid_and_match_the_product_spec() {
        let c = ServerConfig::load_with_env(None, env(&[])).unwrap();
        assert_eq!(c.server.host, "127.0.0.1");
        assert_eq!(c.server.port, 8080);
        assert_eq!(c.storage.data_dir, PathBuf::from("./data"));
        assert_eq!(c.logs_dir(), PathBuf::from("./data/logs"));
        assert_eq!(c.logging.level, "info");
    }

    #[test]
    fn environment_overrides_file_and_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.toml");
        std::fs::write(
            &path,
            "[server]\nport = 9000\n[storage]\nsync_writes = false\n",
        )
        .unwrap();
        let c = ServerConfig::load_with_env(
            Some(&path),
            env(&[
                ("KALAMDB_SERVER_PORT", "9100"),
                ("KALAMDB_STORAGE_SYNC_WRITES", "true"),
                ("KALAMDB_DATA_DIR", "/tmp/x"),
                ("KALAMDB_LOG_LEVEL", "debug"),
                ("KALAMDB_UNRELATED", "ignored"),
                ("PATH", "/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(c.server.port, 9100);
        assert!(c.storage.sync_writes);
        assert_eq!(c.storage.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.logging.level, "debug");
    }

    #[test]
    fn errors_name_the_key() {
        let e = ServerConfig::load_with_env(None, env(&[("KALAMDB_SERVER_PORT", "eighty")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("KALAMDB_SERVER_PORT"), "{e}");
        let e = ServerConfig::load_with_env(None, env(&[("KALAMDB_SERVER_HOST", "nowhere")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("server.host"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.toml");
        std::fs::write(&path, "[storage]\nsync_write = true\n").unwrap();
        let e = ServerConfig::load_with_env(Some(&path), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("sync_write"), "{e}");
        let e = ServerConfig::load_with_env(None, env(&[("KALAMDB_ROOT_PASSWORD", "short")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("auth.root_password"), "{e}");
    }

    /// server.example.toml parses, and names every key there is.
    #[test]
    fn the_example_config_documents_every_key() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../server.example.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        ServerConfig::load_with_env(Some(&path), env(&[])).unwrap();
        let defaults = toml::Table::try_from(ServerConfig::default()).unwrap();
        for (section, keys) in &defaults {
            assert!(
                text.contains(&format!("[{section}]")),
                "[{section}] missing"
            );
            for key in keys.as_table().unwrap().keys() {
                assert!(
                    text.contains(&format!("\n{key} =")) || text.contains(&format!("# {key} =")),
                    "{section}.{key} is not in server.example.toml"
                );
            }
        }
        for optional in ["jwt_secret", "root_password", "logs_dir"] {
            assert!(text.contains(&format!("# {optional} =")), "{optional}");
        }
    }

    #[test]
    fn query_limits_are_set_per_role_in_a_file_or_for_all_in_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.toml");
        std::fs::write(
            &path,
            "[sql]\nquery_timeout_ms = { user = 1000, service = 2000, dba = 0, system = 0 }\n\
             query_memory_limit_mb = 64\n",
        )
        .unwrap();
        let c = ServerConfig::load_with_env(Some(&path), env(&[])).unwrap();
        let limits = c.sql.query_limits();
        use kalamdb_commons::Role;
        use std::time::Duration;
        assert_eq!(
            limits.for_role(Role::User).timeout,
            Some(Duration::from_millis(1000))
        );
        assert_eq!(
            limits.for_role(Role::Service).timeout,
            Some(Duration::from_millis(2000))
        );
        assert_eq!(limits.for_role(Role::Dba).timeout, None, "0 is unlimited");
        assert_eq!(limits.for_role(Role::System).memory_bytes, Some(64 << 20));
        let c = ServerConfig::load_with_env(
            Some(&path),
            env(&[("KALAMDB_SQL_QUERY_TIMEOUT_MS", "500")]),
        )
        .unwrap();
        assert_eq!(
            c.sql.query_limits().for_role(Role::Dba).timeout,
            Some(Duration::from_millis(500))
        );
        let e = ServerConfig::load_with_env(None, env(&[("KALAMDB_SQL_QUERY_TIMEOUT_MS", "soon")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("KALAMDB_SQL_QUERY_TIMEOUT_MS"), "{e}");
        let e =
            ServerConfig::load_with_env(None, env(&[("KALAMDB_SQL_MAX_EXPRESSION_DEPTH", "3")]))
                .unwrap_err()
                .to_string();
        assert!(e.contains("sql.max_expression_depth"), "{e}");
    }

    #[test]
    fn the_subscription_queue_is_configurable_and_never_zero() {
        let c = ServerConfig::load_with_env(None, env(&[])).unwrap();
        assert_eq!(c.websocket.subscription_queue, 1000);
        let c = ServerConfig::load_with_env(
            None,
            env(&[("KALAMDB_WEBSOCKET_SUBSCRIPTION_QUEUE", "64")]),
        )
        .unwrap();
        assert_eq!(c.websocket.subscription_queue, 64);
        let e = ServerConfig::load_with_env(
            None,
            env(&[("KALAMDB_WEBSOCKET_SUBSCRIPTION_QUEUE", "0")]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("websocket.subscription_queue"), "{e}");
    }

    #[test]
    fn logging_and_metrics_keys_come_from_the_environment() {
        let c = ServerConfig::load_with_env(None, env(&[])).unwrap();
        assert_eq!(c.logging.format, LogFormat::Text);
        assert_eq!(c.logging.slow_query_ms, 1000);
        assert!(c.metrics.enabled && !c.metrics.allow_remote && c.metrics.token.is_none());
        let token = "a-scrape-token-of-length";
        let c = ServerConfig::load_with_env(
            None,
            env(&[
                ("KALAMDB_LOGGING_FORMAT", "json"),
                ("KALAMDB_LOGGING_SLOW_QUERY_MS", "250"),
                ("KALAMDB_METRICS_ENABLED", "false"),
                ("KALAMDB_METRICS_TOKEN", token),
            ]),
        )
        .unwrap();
        assert_eq!(c.logging.format, LogFormat::Json);
        assert_eq!(c.logging.slow_query_ms, 250);
        assert!(!c.metrics.enabled);
        assert!(
            !format!("{c:?}").contains(token),
            "the token must not show in Debug"
        );
        let e = ServerConfig::load_with_env(None, env(&[("KALAMDB_LOGGING_FORMAT", "xml")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("xml"), "{e}");
        let e = ServerConfig::load_with_env(None, env(&[("KALAMDB_METRICS_TOKEN", "short")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("metrics.token"), "{e}");
    }

    #[test]
    fn the_development_jwt_secret_is_refused_off_loopback() {
        for host in ["127.0.0.1", "::1", "localhost", "127.0.0.2"] {
            let c =
                ServerConfig::load_with_env(None, env(&[("KALAMDB_SERVER_HOST", host)])).unwrap();
            assert!(c.jwt_config().uses_dev_secret());
        }
        for host in ["0.0.0.0", "::", "192.168.1.10"] {
            let e = ServerConfig::load_with_env(None, env(&[("KALAMDB_SERVER_HOST", host)]))
                .unwrap_err()
                .to_string();
            assert!(e.contains("auth.jwt_secret") && e.contains(host), "{e}");
        }
        let secret = "0123456789abcdef0123456789abcdef";
        let c = ServerConfig::load_with_env(
            None,
            env(&[
                ("KALAMDB_SERVER_HOST", "0.0.0.0"),
                ("KALAMDB_JWT_SECRET", secret),
            ]),
        )
        .unwrap();
        assert!(!c.jwt_config().uses_dev_secret());
        assert!(
            !format!("{c:?}").contains(secret),
            "secret must not show in Debug"
        );
        let e = ServerConfig::load_with_env(None, env(&[("KALAMDB_JWT_SECRET", "short")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("at least 32 bytes"), "{e}");
        let e = ServerConfig::load_with_env(
            None,
            env(&[("KALAMDB_JWT_SECRET", kalamdb_auth::DEV_JWT_SECRET)]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("development secret"), "{e}");
    }
}

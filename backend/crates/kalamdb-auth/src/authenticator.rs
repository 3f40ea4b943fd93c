//! Who a request is: HTTP Basic credentials or a Bearer JWT, checked against
//! `system.users`, with a verified-credential cache.
//!
//! The cache is keyed by a keyed BLAKE3 hash of `(username, password)` (or of
//! the token) under a random per-process key, so neither passwords nor
//! tokens are kept in memory, and a hit skips bcrypt (or signature checking
//! and the account lookup) entirely. Any committed user change empties it.
//! Where the account may log in from is checked on every request, hit or
//! miss.
//!
//! Logins reveal nothing about which names exist: an unknown name costs one
//! bcrypt check like a known one (against a dummy hash), gets the same
//! message, and is counted and locked out the same way. Failed logins are
//! counted per (name, client address), so an attacker elsewhere can lock a
//! name out only for their own address, never for its owner; an address
//! that keeps failing across names is slowed down, and bcrypt checks run at
//! most a few at a time so a login flood queues instead of taking every
//! core.

use crate::error::AuthError;
use crate::jwt::{Claims, JwtConfig, JwtKeys, TokenPair, TokenType, now_secs};
use crate::password::{PasswordCheck, hash_password, verify_password};
use base64::Engine;
use dashmap::DashMap;
use kalamdb_commons::snowflake::SnowflakeGenerator;
use kalamdb_commons::{Role, UserId};
use kalamdb_core::meta_store::{AuditEntry, MetaStore, UserRecord};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Entries kept before the cache is cleared (bounds memory under attack).
const MAX_CACHED: usize = 10_000;
/// Failure counters kept before expired ones are pruned (and, if that is not
/// enough, all are dropped; the per-address slow-down still applies).
const MAX_TRACKED: usize = 100_000;
/// Added before each login from an address past its failure allowance, per
/// failure over it, up to [`MAX_SLOWDOWN`].
const SLOWDOWN_STEP: Duration = Duration::from_millis(100);
const MAX_SLOWDOWN: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedUser {
    pub user_id: UserId,
    pub username: String,
    pub role: Role,
}

#[derive(Debug, Clone)]
struct Verified {
    user: AuthenticatedUser,
    localhost_only: bool,
    /// For a token: its `exp` (epoch seconds); a cached token stops working
    /// then.
    expires_at: Option<u64>,
    /// The account's token generation, signed into new tokens.
    token_generation: u64,
}

impl Verified {
    fn of(record: &UserRecord, expires_at: Option<u64>) -> Self {
        Self {
            user: AuthenticatedUser {
                user_id: record.user_id.clone(),
                username: record.username.clone(),
                role: record.role,
            },
            localhost_only: record.password_hash.is_none()
                || (record.role == Role::System && !record.allow_remote),
            expires_at,
            token_generation: record.token_generation,
        }
    }
}

/// Everything the authenticator is configured with.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub lockout: LockoutPolicy,
    pub jwt: JwtConfig,
    /// The cost of the dummy hash unknown names are checked against (the
    /// cost new passwords are hashed with).
    pub bcrypt_cost: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            lockout: LockoutPolicy::default(),
            jwt: JwtConfig::default(),
            bcrypt_cost: 12,
        }
    }
}

/// After `max_failed` wrong passwords in a row an account is refused for
/// `lockout`, even with the right password.
#[derive(Debug, Clone, Copy)]
pub struct LockoutPolicy {
    pub max_failed: u32,
    pub lockout: Duration,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            max_failed: 5,
            lockout: Duration::from_secs(300),
        }
    }
}

#[derive(Debug)]
struct Failures {
    count: u32,
    first: Instant,
    locked_until: Option<Instant>,
}

impl Default for Failures {
    fn default() -> Self {
        Self {
            count: 0,
            first: Instant::now(),
            locked_until: None,
        }
    }
}

/// Where a failed login is counted: the name tried and the client address.
type FailureKey = (String, Option<IpAddr>);

pub struct Authenticator {
    meta: MetaStore,
    lockout: LockoutPolicy,
    /// Failed logins per (name, address), known names or not.
    failures: DashMap<FailureKey, Failures>,
    /// Failed logins per address over every name, within a lockout window.
    address_failures: DashMap<Option<IpAddr>, Failures>,
    /// bcrypt checks running at once.
    verifications: tokio::sync::Semaphore,
    bcrypt_cost: u32,
    /// What unknown names are checked against, so they cost what known do.
    dummy_hash: tokio::sync::OnceCell<String>,
    jwt: JwtKeys,
    cache_key: [u8; 32],
    cache: DashMap<[u8; 32], Arc<Verified>>,
    /// The users generation the cache was filled under.
    generation: AtomicU64,
    audit_ids: SnowflakeGenerator,
}

/// Whether `addr` is a loopback address (IPv4, IPv6 or IPv4-mapped IPv6).
pub fn is_local(addr: Option<IpAddr>) -> bool {
    addr.is_some_and(|a| match a {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    })
}

impl Authenticator {
    pub fn new(meta: MetaStore) -> Self {
        Self::with_config(meta, &AuthConfig::default())
    }

    pub fn with_config(meta: MetaStore, config: &AuthConfig) -> Self {
        Self {
            meta,
            lockout: config.lockout,
            jwt: JwtKeys::new(&config.jwt),
            failures: DashMap::new(),
            address_failures: DashMap::new(),
            verifications: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get() * 2),
            ),
            bcrypt_cost: config.bcrypt_cost,
            dummy_hash: tokio::sync::OnceCell::new(),
            cache_key: rand::random(),
            cache: DashMap::new(),
            generation: AtomicU64::new(0),
            // Node id 1023 keeps these ids apart from the executor's.
            audit_ids: SnowflakeGenerator::new(1023),
        }
    }

    /// Drops every cached verification if any user changed since it was made
    /// (a changed password, role or a dropped account takes effect at once).
    fn refresh(&self) {
        let current = self.meta.users_generation();
        if self.generation.swap(current, Ordering::AcqRel) != current {
            self.cache.clear();
        }
    }

    fn cache_id(&self, username: &str, password: &str) -> [u8; 32] {
        let mut h = blake3::Hasher::new_keyed(&self.cache_key);
        h.update(b"basic");
        h.update(&(username.len() as u64).to_le_bytes());
        h.update(username.as_bytes());
        h.update(password.as_bytes());
        *h.finalize().as_bytes()
    }

    fn token_cache_id(&self, token: &str) -> [u8; 32] {
        let mut h = blake3::Hasher::new_keyed(&self.cache_key);
        h.update(b"bearer");
        h.update(token.as_bytes());
        *h.finalize().as_bytes()
    }

    /// Forgets cached verifications (call after a user changes).
    pub fn invalidate_all(&self) {
        self.cache.clear();
    }

    pub fn jwt(&self) -> &JwtKeys {
        &self.jwt
    }

    fn remember(&self, id: [u8; 32], entry: &Arc<Verified>, generation: u64) {
        if self.cache.len() >= MAX_CACHED {
            self.cache.clear();
        }
        // A user changed while we verified: answer, but do not cache.
        if self.meta.users_generation() == generation {
            self.cache.insert(id, Arc::clone(entry));
        }
    }

    /// Authenticates an `Authorization` header value from `client`.
    pub async fn authenticate(
        &self,
        header: Option<&str>,
        client: Option<IpAddr>,
    ) -> Result<AuthenticatedUser, AuthError> {
        let method = match header.and_then(|h| h.split(' ').next()) {
            Some(s) if s.eq_ignore_ascii_case("bearer") => "bearer",
            Some(s) if s.eq_ignore_ascii_case("basic") => "basic",
            _ => "other",
        };
        count_attempt(method, self.authenticate_header(header, client).await)
    }

    async fn authenticate_header(
        &self,
        header: Option<&str>,
        client: Option<IpAddr>,
    ) -> Result<AuthenticatedUser, AuthError> {
        let header = header.ok_or(AuthError::MissingCredentials)?;
        let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
        if scheme.eq_ignore_ascii_case("bearer") {
            return self.verify_access_token(rest.trim(), client);
        }
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(AuthError::Malformed(format!("unknown scheme '{scheme}'")));
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .map_err(|_| AuthError::Malformed("credentials are not base64".into()))?;
        let text = String::from_utf8(decoded)
            .map_err(|_| AuthError::Malformed("credentials are not UTF-8".into()))?;
        let (username, password) = text
            .split_once(':')
            .ok_or_else(|| AuthError::Malformed("expected user:password".into()))?;
        self.verify(username, password, client).await
    }

    async fn verify(
        &self,
        username: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<AuthenticatedUser, AuthError> {
        Ok(self
            .verify_password_login(username, password, client)
            .await?
            .user
            .clone())
    }

    async fn verify_password_login(
        &self,
        username: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<Arc<Verified>, AuthError> {
        self.refresh();
        let key: FailureKey = (username.to_string(), client);
        if let Some(f) = self.failures.get(&key)
            && let Some(until) = f.locked_until
        {
            let now = Instant::now();
            if until > now {
                return Err(AuthError::Locked {
                    user: username.to_string(),
                    seconds: (until - now).as_secs().max(1),
                });
            }
        }
        let id = self.cache_id(username, password);
        if let Some(hit) = self.cache.get(&id).map(|e| Arc::clone(e.value())) {
            self.failures.remove(&key);
            self.admit(&hit, client)?;
            return Ok(hit);
        }
        let delay = self.slowdown(client);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let generation = self.meta.users_generation();
        let record = self
            .meta
            .user(username)
            .map_err(|e| AuthError::Internal(e.to_string()))?
            .filter(|u| u.deleted_at.is_none());
        let check = match record.as_ref().map(|r| r.password_hash.as_deref()) {
            Some(Some(hash)) => self.check_password(password, hash.to_string()).await?,
            // A passwordless account takes only the empty password; anything
            // else costs what a wrong password costs.
            Some(None) if password.is_empty() => PasswordCheck::Match,
            Some(None) | None => {
                let dummy = self.dummy_hash().await?;
                self.check_password(password, dummy).await?;
                PasswordCheck::Mismatch
            }
        };
        let record = match (check, record) {
            (PasswordCheck::Mismatch, record) => {
                self.record_failure(key, record.is_some(), client);
                return Err(AuthError::InvalidCredentials);
            }
            (_, None) => return Err(AuthError::InvalidCredentials),
            (PasswordCheck::MatchNeedsUpgrade, Some(record)) => {
                self.upgrade_hash(&record, password).await;
                record
            }
            (PasswordCheck::Match, Some(record)) => record,
        };
        self.failures.remove(&key);
        let entry = Arc::new(Verified::of(&record, None));
        self.remember(id, &entry, generation);
        self.admit(&entry, client)?;
        Ok(entry)
    }

    /// One bcrypt check, off the async threads and at most a few at once.
    async fn check_password(
        &self,
        password: &str,
        hash: String,
    ) -> Result<PasswordCheck, AuthError> {
        let _turn = self
            .verifications
            .acquire()
            .await
            .map_err(|e| AuthError::Internal(e.to_string()))?;
        let password = password.to_string();
        tokio::task::spawn_blocking(move || verify_password(&password, &hash))
            .await
            .map_err(|e| AuthError::Internal(e.to_string()))
    }

    async fn dummy_hash(&self) -> Result<String, AuthError> {
        let cost = self.bcrypt_cost;
        self.dummy_hash
            .get_or_try_init(|| async move {
                tokio::task::spawn_blocking(move || {
                    hash_password(&format!("{:032x}", rand::random::<u128>()), cost)
                })
                .await
                .map_err(|e| AuthError::Internal(e.to_string()))?
                .map_err(AuthError::Internal)
            })
            .await
            .cloned()
    }

    /// Re-stores a hash of the old scheme in the current one, now that the
    /// password is known to be right. Written only if the stored hash is
    /// still the one just checked (a concurrent password change wins); a
    /// failure leaves the old hash, which keeps working.
    async fn upgrade_hash(&self, record: &UserRecord, password: &str) {
        let (password, cost) = (password.to_string(), self.bcrypt_cost);
        let hashed = tokio::task::spawn_blocking(move || hash_password(&password, cost)).await;
        let Ok(Ok(new_hash)) = hashed else {
            tracing::warn!(user = record.username, "cannot upgrade a password hash");
            return;
        };
        let current = self.meta.user(&record.username).ok().flatten();
        if current.as_ref().map(|c| &c.password_hash) != Some(&record.password_hash) {
            return;
        }
        let mut upgraded = record.clone();
        upgraded.password_hash = Some(new_hash);
        match self.meta.write_user(&upgraded) {
            Ok(()) => tracing::info!(user = record.username, "password hash upgraded"),
            Err(e) => tracing::warn!(
                user = record.username,
                "cannot upgrade a password hash: {e}"
            ),
        }
    }

    /// How long a login from `client` waits first: nothing, until the
    /// address has failed more than the lockout allows within a window.
    fn slowdown(&self, client: Option<IpAddr>) -> Duration {
        let Some(f) = self.address_failures.get(&client) else {
            return Duration::ZERO;
        };
        if f.first.elapsed() > self.lockout.lockout {
            return Duration::ZERO;
        }
        let over = f.count.saturating_sub(self.lockout.max_failed);
        (SLOWDOWN_STEP * over).min(MAX_SLOWDOWN)
    }

    /// Verifies a Bearer access token: signature, algorithm, issuer, expiry,
    /// type, then that its account still exists with the same id and role.
    fn verify_access_token(
        &self,
        token: &str,
        client: Option<IpAddr>,
    ) -> Result<AuthenticatedUser, AuthError> {
        self.refresh();
        let id = self.token_cache_id(token);
        if let Some(hit) = self.cache.get(&id).map(|e| Arc::clone(e.value())) {
            if hit.expires_at.is_some_and(|exp| exp > now_secs()) {
                return self.admit(&hit, client);
            }
            self.cache.remove(&id);
        }
        let generation = self.meta.users_generation();
        let claims = self.jwt.verify(token, TokenType::Access)?;
        let record = self.account_of(&claims)?;
        let entry = Arc::new(Verified::of(&record, Some(claims.exp)));
        self.remember(id, &entry, generation);
        self.admit(&entry, client)
    }

    /// When a valid access token expires (epoch seconds); `None` for
    /// anything else.
    pub fn access_token_expiry(&self, token: &str) -> Option<u64> {
        self.jwt
            .verify(token, TokenType::Access)
            .ok()
            .map(|claims| claims.exp)
    }

    /// The live account a verified token speaks for. A token outlives
    /// neither its account (dropped, or dropped and re-created under the
    /// same name) nor the role it was issued with.
    fn account_of(&self, claims: &Claims) -> Result<UserRecord, AuthError> {
        let record = self
            .meta
            .user(&claims.username)
            .map_err(|e| AuthError::Internal(e.to_string()))?
            .filter(|u| u.deleted_at.is_none() && u.user_id.as_str() == claims.sub)
            .ok_or_else(|| AuthError::InvalidToken("the token's user no longer exists".into()))?;
        if record.role.as_str() != claims.role {
            return Err(AuthError::InvalidToken(
                "the user's role changed since the token was issued: log in again".into(),
            ));
        }
        if record.token_generation != claims.generation {
            return Err(AuthError::InvalidToken(
                "the user's password or role changed since the token was issued: log in again"
                    .into(),
            ));
        }
        Ok(record)
    }

    /// `POST /v1/api/auth/login`: checks the password (with lockout and
    /// auditing, like Basic) and signs an access + refresh pair.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<(AuthenticatedUser, TokenPair), AuthError> {
        let login = async {
            let verified = self
                .verify_password_login(username, password, client)
                .await?;
            let user = verified.user.clone();
            let pair = self.jwt.sign_pair(
                user.user_id.as_str(),
                &user.username,
                user.role.as_str(),
                verified.token_generation,
            )?;
            Ok((user, pair))
        };
        count_attempt("login", login.await)
    }

    /// `POST /v1/api/auth/refresh`: a valid refresh token of a live account
    /// buys a new pair.
    pub fn refresh_tokens(
        &self,
        refresh_token: &str,
        client: Option<IpAddr>,
    ) -> Result<(AuthenticatedUser, TokenPair), AuthError> {
        let refresh = || {
            let claims = self.jwt.verify(refresh_token, TokenType::Refresh)?;
            let record = self.account_of(&claims)?;
            let user = self.admit(&Verified::of(&record, None), client)?;
            let pair = self.jwt.sign_pair(
                user.user_id.as_str(),
                &user.username,
                user.role.as_str(),
                record.token_generation,
            )?;
            Ok((user, pair))
        };
        count_attempt("refresh", refresh())
    }

    /// Counts a wrong password for (name, address) and for the address,
    /// and audits it when the name is a real account. Only counted failures
    /// are audited, so a locked account's log cannot be flooded.
    fn record_failure(&self, key: FailureKey, known: bool, client: Option<IpAddr>) {
        if self.failures.len() >= MAX_TRACKED || self.address_failures.len() >= MAX_TRACKED {
            let window = self.lockout.lockout;
            let live = |f: &Failures| {
                f.first.elapsed() <= window || f.locked_until.is_some_and(|u| u > Instant::now())
            };
            self.failures.retain(|_, f| live(f));
            self.address_failures.retain(|_, f| live(f));
            if self.failures.len() >= MAX_TRACKED {
                self.failures.clear();
            }
            if self.address_failures.len() >= MAX_TRACKED {
                self.address_failures.clear();
            }
        }
        {
            let mut f = self.address_failures.entry(client).or_default();
            if f.first.elapsed() > self.lockout.lockout {
                *f = Failures::default();
            }
            f.count += 1;
        }
        let username = key.0.clone();
        let (count, locked) = {
            let mut f = self.failures.entry(key).or_default();
            if f.locked_until.is_some_and(|u| u <= Instant::now()) {
                *f = Failures::default();
            }
            f.count += 1;
            if f.count >= self.lockout.max_failed {
                if f.locked_until.is_none() {
                    metrics::counter!("kalamdb_auth_lockouts_total").increment(1);
                }
                f.locked_until = Some(Instant::now() + self.lockout.lockout);
            }
            (f.count, f.locked_until.is_some())
        };
        if !known {
            return;
        }
        if locked {
            tracing::warn!(
                user = username,
                client = ?client,
                "login locked for this address after {count} failed attempts"
            );
        }
        let entry = AuditEntry {
            audit_id: self.audit_ids.next_id(),
            timestamp: kalamdb_commons::now_ms(),
            actor: username,
            action: "LOGIN FAILED".to_string(),
            details: if locked {
                format!("wrong password ({count} in a row); locked for this address")
            } else {
                format!("wrong password ({count} in a row)")
            },
            client_addr: client.map(|c| c.to_string()),
            as_user: None,
        };
        if let Err(e) = self.meta.append_audit(&entry) {
            tracing::error!("cannot write the audit log: {e}");
        }
    }

    fn admit(&self, v: &Verified, client: Option<IpAddr>) -> Result<AuthenticatedUser, AuthError> {
        if v.localhost_only && !is_local(client) {
            return Err(AuthError::LocalhostOnly(v.user.username.clone()));
        }
        Ok(v.user.clone())
    }
}

/// Counts an authentication by method and outcome.
fn count_attempt<T>(method: &'static str, result: Result<T, AuthError>) -> Result<T, AuthError> {
    let outcome = match &result {
        Ok(_) => "success",
        Err(AuthError::Locked { .. }) => "locked",
        Err(_) => "failure",
    };
    kalamdb_commons::metric_handles::count(
        "kalamdb_auth_attempts_total",
        &[("method", method), ("outcome", outcome)],
        1,
    );
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::password::hash_password;
    use kalamdb_core::{AppContext, CoreOptions};
    use kalamdb_store::{RocksDbBackend, RocksDbOptions};

    fn basic(user: &str, password: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    }

    fn authenticator(dir: &std::path::Path, root_password: Option<&str>) -> Authenticator {
        let backend = Arc::new(RocksDbBackend::open(dir, &RocksDbOptions::default()).unwrap());
        let options = CoreOptions {
            root_password_hash: root_password.map(|p| hash_password(p, 4).unwrap()),
            ..CoreOptions::default()
        };
        let app = AppContext::open(backend, &options).unwrap();
        Authenticator::new(app.meta.clone())
    }

    #[tokio::test]
    async fn passwordless_root_only_from_localhost() {
        let dir = tempfile::tempdir().unwrap();
        let auth = authenticator(dir.path(), None);
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let remote: IpAddr = "10.1.2.3".parse().unwrap();
        let user = auth
            .authenticate(Some(&basic("root", "")), Some(local))
            .await
            .unwrap();
        assert_eq!(user.role, Role::System);
        assert!(matches!(
            auth.authenticate(Some(&basic("root", "")), Some(remote))
                .await,
            Err(AuthError::LocalhostOnly(_))
        ));
        assert!(matches!(
            auth.authenticate(Some(&basic("root", "guess")), Some(local))
                .await,
            Err(AuthError::InvalidCredentials)
        ));
        assert!(matches!(
            auth.authenticate(Some(&basic("nobody", "")), Some(local))
                .await,
            Err(AuthError::InvalidCredentials)
        ));
        assert!(matches!(
            auth.authenticate(None, Some(local)).await,
            Err(AuthError::MissingCredentials)
        ));
        assert!(matches!(
            auth.authenticate(Some("Basic %%%"), Some(local)).await,
            Err(AuthError::Malformed(_))
        ));
    }

    #[tokio::test]
    async fn an_old_plain_bcrypt_hash_is_upgraded_at_the_next_login() {
        let dir = tempfile::tempdir().unwrap();
        let auth = authenticator(dir.path(), None);
        let mut root = auth.meta.user("root").unwrap().unwrap();
        root.password_hash = Some(bcrypt::hash("legacy-password", 4).unwrap());
        auth.meta.write_user(&root).unwrap();
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let stored_hash = || {
            auth.meta
                .user("root")
                .unwrap()
                .unwrap()
                .password_hash
                .unwrap()
        };
        assert!(
            auth.authenticate(Some(&basic("root", "wrong-password")), Some(local))
                .await
                .is_err()
        );
        let stored = stored_hash();
        assert!(stored.starts_with("$2"), "a failed login changes nothing");
        auth.authenticate(Some(&basic("root", "legacy-password")), Some(local))
            .await
            .unwrap();
        let stored = stored_hash();
        assert!(stored.starts_with("$kdb-b3$"), "{stored}");
        // and the upgraded hash verifies the same password
        auth.invalidate_all();
        auth.authenticate(Some(&basic("root", "legacy-password")), Some(local))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn password_is_verified_once_then_cached_and_remote_still_refused() {
        let dir = tempfile::tempdir().unwrap();
        let auth = authenticator(dir.path(), Some("s3cret-pass"));
        let local: IpAddr = "::1".parse().unwrap();
        let remote: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(
            auth.authenticate(Some(&basic("root", "")), Some(local))
                .await
                .is_err()
        );
        auth.authenticate(Some(&basic("root", "s3cret-pass")), Some(local))
            .await
            .unwrap();
        assert_eq!(auth.cache.len(), 1);
        auth.authenticate(Some(&basic("root", "s3cret-pass")), Some(local))
            .await
            .unwrap();
        assert_eq!(auth.cache.len(), 1);
        // root without ALLOW_REMOTE stays local even with the right password
        assert!(matches!(
            auth.authenticate(Some(&basic("root", "s3cret-pass")), Some(remote))
                .await,
            Err(AuthError::LocalhostOnly(_))
        ));
    }
    #[tokio::test]
    async fn bearer_tokens_are_cached_and_keep_the_localhost_rule() {
        let dir = tempfile::tempdir().unwrap();
        let auth = authenticator(dir.path(), Some("s3cret-pass"));
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let remote: IpAddr = "192.0.2.1".parse().unwrap();
        let (user, pair) = auth
            .login("root", "s3cret-pass", Some(local))
            .await
            .unwrap();
        assert_eq!(user.role, Role::System);
        let bearer = format!("Bearer {}", pair.access_token);
        let cached = auth.cache.len();
        assert_eq!(
            auth.authenticate(Some(&bearer), Some(local)).await.unwrap(),
            user
        );
        assert_eq!(auth.cache.len(), cached + 1);
        auth.authenticate(Some(&bearer), Some(local)).await.unwrap();
        assert_eq!(auth.cache.len(), cached + 1);
        // root without ALLOW_REMOTE: a token does not open the remote door
        assert!(matches!(
            auth.authenticate(Some(&bearer), Some(remote)).await,
            Err(AuthError::LocalhostOnly(_))
        ));
        assert!(matches!(
            auth.refresh_tokens(&pair.refresh_token, Some(remote)),
            Err(AuthError::LocalhostOnly(_))
        ));
        let refresh = format!("Bearer {}", pair.refresh_token);
        assert!(matches!(
            auth.authenticate(Some(&refresh), Some(local)).await,
            Err(AuthError::InvalidToken(_))
        ));
        // any user change empties the cache
        auth.meta.users_changed();
        auth.authenticate(Some(&bearer), Some(local)).await.unwrap();
        assert_eq!(auth.cache.len(), 1);
    }
}

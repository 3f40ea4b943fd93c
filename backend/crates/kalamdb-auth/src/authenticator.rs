//! Who a request is: HTTP Basic credentials or a Bearer JWT, checked against
//! `system.users`, with a verified-credential cache.
//!
//! The cache is keyed by a keyed BLAKE3 hash of `(username, password)` (or of
//! the token) under a random per-process key, so neither passwords nor
//! tokens are kept in memory, and a hit skips bcrypt (or signature checking
//! and the account lookup) entirely. Any committed user change empties it.
//! Where the account may log in from is checked on every request, hit or
//! miss.

use crate::error::AuthError;
use crate::jwt::{Claims, JwtConfig, JwtKeys, TokenPair, TokenType, now_secs};
use crate::password::verify_password;
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
        }
    }
}

/// Everything the authenticator is configured with.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    pub lockout: LockoutPolicy,
    pub jwt: JwtConfig,
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

#[derive(Debug, Default)]
struct Failures {
    count: u32,
    locked_until: Option<Instant>,
}

pub struct Authenticator {
    meta: MetaStore,
    lockout: LockoutPolicy,
    /// Failed logins per existing account (unknown names are not tracked, so
    /// guessing names cannot grow this map).
    failures: DashMap<String, Failures>,
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
        self.refresh();
        if let Some(f) = self.failures.get(username)
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
            self.failures.remove(username);
            return self.admit(&hit, client);
        }
        let generation = self.meta.users_generation();
        let record = self
            .meta
            .user(username)
            .map_err(|e| AuthError::Internal(e.to_string()))?
            .filter(|u| u.deleted_at.is_none())
            .ok_or(AuthError::InvalidCredentials)?;
        let verified = match &record.password_hash {
            None => password.is_empty(),
            Some(hash) => {
                let (password, hash) = (password.to_string(), hash.clone());
                tokio::task::spawn_blocking(move || verify_password(&password, &hash))
                    .await
                    .map_err(|e| AuthError::Internal(e.to_string()))?
            }
        };
        if !verified {
            self.record_failure(username, client);
            return Err(AuthError::InvalidCredentials);
        }
        self.failures.remove(username);
        let entry = Arc::new(Verified::of(&record, None));
        self.remember(id, &entry, generation);
        self.admit(&entry, client)
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
        let user = self.verify(username, password, client).await?;
        let pair = self
            .jwt
            .sign_pair(user.user_id.as_str(), &user.username, user.role.as_str())?;
        Ok((user, pair))
    }

    /// `POST /v1/api/auth/refresh`: a valid refresh token of a live account
    /// buys a new pair.
    pub fn refresh_tokens(
        &self,
        refresh_token: &str,
        client: Option<IpAddr>,
    ) -> Result<(AuthenticatedUser, TokenPair), AuthError> {
        let claims = self.jwt.verify(refresh_token, TokenType::Refresh)?;
        let record = self.account_of(&claims)?;
        let user = self.admit(&Verified::of(&record, None), client)?;
        let pair = self
            .jwt
            .sign_pair(user.user_id.as_str(), &user.username, user.role.as_str())?;
        Ok((user, pair))
    }

    /// Counts a wrong password for an existing account and audits it. Only
    /// counted failures are audited, so a locked account's log cannot be
    /// flooded.
    fn record_failure(&self, username: &str, client: Option<IpAddr>) {
        let (count, locked) = {
            let mut f = self.failures.entry(username.to_string()).or_default();
            if f.locked_until.is_some_and(|u| u <= Instant::now()) {
                *f = Failures::default();
            }
            f.count += 1;
            if f.count >= self.lockout.max_failed {
                f.locked_until = Some(Instant::now() + self.lockout.lockout);
            }
            (f.count, f.locked_until.is_some())
        };
        if locked {
            tracing::warn!(
                user = username,
                "account locked after {count} failed logins"
            );
        }
        let entry = AuditEntry {
            audit_id: self.audit_ids.next_id(),
            timestamp: kalamdb_core::app_context::now_ms(),
            actor: username.to_string(),
            action: "LOGIN FAILED".to_string(),
            details: if locked {
                format!("wrong password ({count} in a row); account locked")
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

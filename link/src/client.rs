//! `KalamLinkClient`: SQL over HTTP, login and token refresh.

use crate::error::LinkError;
use crate::models::{HealthInfo, QueryResponse, TokenPair, UserInfo};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Refresh an access token this long before it expires.
const REFRESH_MARGIN_SECS: u64 = 60;

/// How requests authenticate.
#[derive(Clone, Default)]
pub enum Auth {
    /// No credentials (health checks; everything else answers 401).
    #[default]
    None,
    /// `Authorization: Basic` on every request (the SQL route only; live
    /// queries log in once for a token).
    Basic { user: String, password: String },
    /// A bare access token (not refreshed: it works until it expires).
    Bearer(String),
    /// An access + refresh pair, refreshed before the access token expires.
    Tokens(TokenPair),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Basic { user, .. } => write!(f, "Basic({user}, <redacted>)"),
            Auth::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            Auth::Tokens(pair) => write!(f, "Tokens({})", pair.user.username),
        }
    }
}

/// Options of one `POST /v1/api/sql`.
#[derive(Debug, Clone, Default)]
pub struct QueryOptions {
    /// `$1`, `$2`, … values (one statement only).
    pub params: Vec<Value>,
    /// Unqualified table names resolve in this namespace.
    pub namespace: Option<String>,
}

/// Builds a [`KalamLinkClient`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    base_url: String,
    auth: Auth,
    timeout: Option<Duration>,
}

impl ClientBuilder {
    pub fn basic(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.auth = Auth::Basic {
            user: user.into(),
            password: password.into(),
        };
        self
    }

    pub fn bearer(mut self, token: impl Into<String>) -> Self {
        self.auth = Auth::Bearer(token.into());
        self
    }

    pub fn tokens(mut self, pair: TokenPair) -> Self {
        self.auth = Auth::Tokens(pair);
        self
    }

    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    /// Whole-request timeout (none by default: a query may run long; the
    /// server's own per-role limits still apply).
    pub fn timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn build(self) -> Result<KalamLinkClient, LinkError> {
        let url = self.base_url.trim().trim_end_matches('/').to_string();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(LinkError::Config(format!(
                "'{url}' is not an http:// or https:// URL"
            )));
        }
        if url.starts_with("https://") {
            return Err(LinkError::Config(
                "https:// is not supported by this build yet; use http:// (e.g. behind a local TLS proxy)"
                    .into(),
            ));
        }
        let mut http = reqwest::Client::builder()
            .user_agent(concat!("kalam-link/", env!("CARGO_PKG_VERSION")));
        if let Some(t) = self.timeout {
            http = http.timeout(t);
        }
        Ok(KalamLinkClient {
            base_url: url,
            auth: Arc::new(Mutex::new(self.auth)),
            http: http.build().map_err(LinkError::Transport)?,
        })
    }
}

/// A client bound to one server. Cheap to clone (clones share credentials,
/// so a token refreshed by one is seen by all).
#[derive(Debug, Clone)]
pub struct KalamLinkClient {
    base_url: String,
    auth: Arc<Mutex<Auth>>,
    http: reqwest::Client,
}

/// Seconds since the epoch.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The `exp` claim of a JWT (unverified: only to know when to refresh).
pub fn token_expiry(token: &str) -> Option<u64> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims["exp"].as_u64()
}

impl KalamLinkClient {
    /// `base_url` such as `http://127.0.0.1:8080`.
    pub fn builder(base_url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            base_url: base_url.into(),
            auth: Auth::None,
            timeout: None,
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The current credentials (after any refresh).
    pub fn auth(&self) -> Auth {
        self.auth.lock().expect("auth lock").clone()
    }

    pub fn set_auth(&self, auth: Auth) {
        *self.auth.lock().expect("auth lock") = auth;
    }

    /// The token pair in use, if the client holds one.
    pub fn tokens(&self) -> Option<TokenPair> {
        match self.auth() {
            Auth::Tokens(pair) => Some(pair),
            _ => None,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// The `Authorization` header value for the next request, refreshing a
    /// token pair that is about to expire.
    async fn authorization(&self) -> Result<Option<String>, LinkError> {
        use base64::Engine;
        let auth = self.auth();
        Ok(match auth {
            Auth::None => None,
            Auth::Basic { user, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            )),
            Auth::Bearer(token) => Some(format!("Bearer {token}")),
            Auth::Tokens(pair) => {
                let due = token_expiry(&pair.access_token)
                    .is_some_and(|exp| exp <= now_secs() + REFRESH_MARGIN_SECS);
                let pair = if due { self.refresh().await? } else { pair };
                Some(format!("Bearer {}", pair.access_token))
            }
        })
    }

    /// A bearer access token for the WebSocket: the held one, or one got by
    /// logging in with the Basic credentials.
    pub(crate) async fn access_token(&self) -> Result<String, LinkError> {
        match self.auth() {
            Auth::None => Err(LinkError::Auth(
                "live queries need credentials (a user and password, or a token)".into(),
            )),
            Auth::Basic { user, password } => Ok(self.login(&user, &password).await?.access_token),
            Auth::Bearer(token) => Ok(token),
            Auth::Tokens(_) => {
                let header = self.authorization().await?.unwrap_or_default();
                Ok(header.trim_start_matches("Bearer ").to_string())
            }
        }
    }

    /// The WebSocket URL of this server.
    pub(crate) fn ws_url(&self) -> String {
        let rest = self.base_url.strip_prefix("http").unwrap_or(&self.base_url);
        format!("ws{rest}/v1/ws")
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<(u16, Value), LinkError> {
        let response = request.send().await.map_err(|e| self.transport(e))?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| self.transport(e))?;
        let body: Value = serde_json::from_str(&text).map_err(|_| {
            LinkError::Protocol(format!(
                "HTTP {status} with a body that is not JSON: {}",
                text.chars().take(200).collect::<String>()
            ))
        })?;
        if status >= 400 || body["status"] == "error" {
            let code = body["error"]["code"].as_str().unwrap_or("HTTP_ERROR");
            let message = body["error"]["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("HTTP {status}"));
            return Err(LinkError::Server {
                status,
                code: code.to_string(),
                message,
            });
        }
        Ok((status, body))
    }

    fn transport(&self, e: reqwest::Error) -> LinkError {
        if e.is_timeout() {
            LinkError::Timeout
        } else if e.is_connect() {
            LinkError::Connect {
                url: self.base_url.clone(),
                source: e,
            }
        } else {
            LinkError::Transport(e)
        }
    }

    /// Runs `sql` (one or more `;`-separated statements; one result each).
    pub async fn query(&self, sql: &str) -> Result<QueryResponse, LinkError> {
        self.query_with(sql, &QueryOptions::default()).await
    }

    /// Runs `sql` with parameters and/or a default namespace.
    pub async fn query_with(
        &self,
        sql: &str,
        options: &QueryOptions,
    ) -> Result<QueryResponse, LinkError> {
        let mut body = json!({ "sql": sql });
        if !options.params.is_empty() {
            body["params"] = Value::Array(options.params.clone());
        }
        if let Some(ns) = &options.namespace {
            body["namespace_id"] = json!(ns);
        }
        let mut request = self.http.post(self.url("/v1/api/sql")).json(&body);
        if let Some(header) = self.authorization().await? {
            request = request.header("authorization", header);
        }
        let (_, body) = self.send(request).await?;
        serde_json::from_value(body)
            .map_err(|e| LinkError::Protocol(format!("unexpected reply shape: {e}")))
    }

    /// Logs in; the client then uses (and refreshes) the returned tokens.
    pub async fn login(&self, user: &str, password: &str) -> Result<TokenPair, LinkError> {
        let request = self
            .http
            .post(self.url("/v1/api/auth/login"))
            .json(&json!({ "user": user, "password": password }));
        let pair = self.token_reply(request).await?;
        self.set_auth(Auth::Tokens(pair.clone()));
        Ok(pair)
    }

    /// Trades the held refresh token for a new pair.
    pub async fn refresh(&self) -> Result<TokenPair, LinkError> {
        let Auth::Tokens(pair) = self.auth() else {
            return Err(LinkError::Auth("no refresh token held".into()));
        };
        let request = self
            .http
            .post(self.url("/v1/api/auth/refresh"))
            .bearer_auth(&pair.refresh_token);
        let fresh = self.token_reply(request).await.map_err(|e| match e {
            LinkError::Server { message, .. } => LinkError::Auth(format!(
                "the saved session could not be refreshed ({message}); log in again"
            )),
            other => other,
        })?;
        self.set_auth(Auth::Tokens(fresh.clone()));
        Ok(fresh)
    }

    async fn token_reply(&self, request: reqwest::RequestBuilder) -> Result<TokenPair, LinkError> {
        let (_, body) = self.send(request).await?;
        serde_json::from_value(body)
            .map_err(|e| LinkError::Protocol(format!("unexpected token reply: {e}")))
    }

    /// `GET /v1/api/auth/me`: who the credentials belong to.
    pub async fn me(&self) -> Result<UserInfo, LinkError> {
        let mut request = self.http.get(self.url("/v1/api/auth/me"));
        if let Some(header) = self.authorization().await? {
            request = request.header("authorization", header);
        }
        let (_, body) = self.send(request).await?;
        let user = if body.get("user").is_some() {
            body["user"].clone()
        } else {
            body
        };
        serde_json::from_value(user)
            .map_err(|e| LinkError::Protocol(format!("unexpected user reply: {e}")))
    }

    /// `GET /health`.
    pub async fn health(&self) -> Result<HealthInfo, LinkError> {
        let (_, body) = self.send(self.http.get(self.url("/health"))).await?;
        serde_json::from_value(body)
            .map_err(|e| LinkError::Protocol(format!("unexpected health reply: {e}")))
    }
}

//! `kalam-link`: a Rust client for KalamDB's HTTP API (`POST /v1/api/sql`).
//! Live queries over WebSocket arrive with the realtime work.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("request failed: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("{code}: {message}")]
    Server { code: String, message: String },
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ColumnInfo {
    pub name: String,
    pub data_type: String,
    pub index: usize,
    #[serde(default)]
    pub flags: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct QueryResult {
    #[serde(default)]
    pub schema: Option<Vec<ColumnInfo>>,
    #[serde(default)]
    pub rows: Option<Vec<Vec<Value>>>,
    pub row_count: usize,
    pub message: Option<String>,
    #[serde(default)]
    pub as_user: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct ErrorBody {
    code: String,
    message: String,
}

#[derive(Debug, Clone, Deserialize)]
struct SqlResponse {
    status: String,
    #[serde(default)]
    results: Vec<QueryResult>,
    error: Option<ErrorBody>,
}

/// A client bound to one server and one set of credentials.
#[derive(Debug, Clone)]
pub struct KalamLinkClient {
    base_url: String,
    username: String,
    password: String,
    http: reqwest::Client,
}

impl KalamLinkClient {
    pub fn new(
        base_url: impl Into<String>,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        Self {
            base_url: base_url.into().trim_end_matches('/').to_string(),
            username: username.into(),
            password: password.into(),
            http: reqwest::Client::new(),
        }
    }

    /// Runs `sql` (one or more `;`-separated statements); one result each.
    pub async fn execute_sql(
        &self,
        sql: &str,
        params: &[Value],
    ) -> Result<Vec<QueryResult>, LinkError> {
        let mut body = serde_json::json!({ "sql": sql });
        if !params.is_empty() {
            body["params"] = Value::Array(params.to_vec());
        }
        let response: SqlResponse = self
            .http
            .post(format!("{}/v1/api/sql", self.base_url))
            .basic_auth(&self.username, Some(&self.password))
            .json(&body)
            .send()
            .await?
            .json()
            .await?;
        match (response.status.as_str(), response.error) {
            ("success", _) => Ok(response.results),
            (_, Some(e)) => Err(LinkError::Server {
                code: e.code,
                message: e.message,
            }),
            (status, None) => Err(LinkError::Server {
                code: "UNKNOWN".into(),
                message: format!("unexpected status '{status}'"),
            }),
        }
    }
}

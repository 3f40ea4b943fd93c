//! The shapes of the server's replies (`POST /v1/api/sql`, `/v1/api/auth/*`,
//! `/health`), as PROTOCOL.md gives them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One column of a result's `schema`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct ColumnInfo {
    pub name: String,
    pub data_type: String,
    pub index: usize,
    /// `pk`, `nn` (not null), `uq` (unique).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
}

/// The result of one statement.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct QueryResult {
    /// Present for statements that return rows.
    #[serde(default)]
    pub schema: Option<Vec<ColumnInfo>>,
    /// Positional arrays in `schema` order, exactly as the server sent them:
    /// 64-bit integers are JSON strings, so no digit is ever lost.
    #[serde(default)]
    pub rows: Option<Vec<Vec<Value>>>,
    #[serde(default)]
    pub row_count: usize,
    /// DDL/DML summaries ("Inserted 3 row(s)").
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub as_user: Option<String>,
}

impl QueryResult {
    /// The column names, in order (empty without a schema).
    pub fn column_names(&self) -> Vec<&str> {
        self.schema
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect()
    }

    /// The rows (empty for a statement without rows).
    pub fn rows(&self) -> &[Vec<Value>] {
        self.rows.as_deref().unwrap_or_default()
    }

    /// Cell `column` of row `row`, by column name.
    pub fn cell(&self, row: usize, column: &str) -> Option<&Value> {
        let index = self.column_names().iter().position(|c| *c == column)?;
        self.rows().get(row)?.get(index)
    }

    /// Cell `column` of row `row` as an exact 64-bit integer (the server
    /// sends them as strings; smaller integers arrive as numbers).
    pub fn i64(&self, row: usize, column: &str) -> Option<i64> {
        as_i64(self.cell(row, column)?)
    }

    /// Cell `column` of row `row` as text (`None` for NULL or a non-string).
    pub fn str(&self, row: usize, column: &str) -> Option<&str> {
        self.cell(row, column)?.as_str()
    }
}

/// A JSON value holding an integer, as a number or as a decimal string.
pub fn as_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// A whole `POST /v1/api/sql` reply.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct QueryResponse {
    pub status: String,
    /// One per statement, in order.
    #[serde(default)]
    pub results: Vec<QueryResult>,
    /// Server time in milliseconds.
    #[serde(default)]
    pub took: f64,
    #[serde(default)]
    pub error: Option<ErrorBody>,
}

/// The `error` object of a failed request.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
    #[serde(default)]
    pub details: Option<Value>,
}

/// The account a login or `GET /v1/api/auth/me` returns.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct UserInfo {
    #[serde(default)]
    pub id: String,
    pub username: String,
    pub role: String,
    #[serde(default)]
    pub email: Option<String>,
}

/// An access + refresh token pair (`POST /v1/api/auth/login` / `refresh`).
#[derive(Clone, PartialEq, Deserialize, Serialize)]
pub struct TokenPair {
    pub user: UserInfo,
    pub access_token: String,
    pub refresh_token: String,
    /// RFC 3339.
    pub expires_at: String,
    pub refresh_expires_at: String,
}

impl std::fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenPair")
            .field("user", &self.user)
            .field("access_token", &"<redacted>")
            .field("refresh_token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// `GET /health`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct HealthInfo {
    pub status: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub build_date: String,
}

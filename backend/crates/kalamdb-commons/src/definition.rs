//! Table definitions as persisted in the metadata store and cached by the
//! schema registry. Columns carry stable ids so that rows survive renames and
//! drops: stored rows refer to column ids, never names or positions.

use crate::data_type::KalamDataType;
use crate::ids::{NamespaceId, TableId, TableRef};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TableType {
    User,
    Shared,
    Stream,
    System,
}

impl TableType {
    pub fn as_str(self) -> &'static str {
        match self {
            TableType::User => "USER",
            TableType::Shared => "SHARED",
            TableType::Stream => "STREAM",
            TableType::System => "SYSTEM",
        }
    }
}

impl fmt::Display for TableType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TableType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "USER" => Ok(TableType::User),
            "SHARED" => Ok(TableType::Shared),
            "STREAM" => Ok(TableType::Stream),
            other => Err(format!(
                "Unknown table type '{other}': expected USER, SHARED or STREAM"
            )),
        }
    }
}

/// Who may read a SHARED table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum AccessLevel {
    Public,
    Private,
    Restricted,
}

impl AccessLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            AccessLevel::Public => "PUBLIC",
            AccessLevel::Private => "PRIVATE",
            AccessLevel::Restricted => "RESTRICTED",
        }
    }
}

impl FromStr for AccessLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "PUBLIC" => Ok(AccessLevel::Public),
            "PRIVATE" => Ok(AccessLevel::Private),
            "RESTRICTED" => Ok(AccessLevel::Restricted),
            other => Err(format!(
                "Unknown access level '{other}': expected PUBLIC, PRIVATE or RESTRICTED"
            )),
        }
    }
}

/// When hot rows are flushed to Parquet: after `rows` rows and/or every
/// `interval_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FlushPolicy {
    pub rows: Option<u64>,
    pub interval_seconds: Option<u64>,
}

impl fmt::Display for FlushPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(rows) = self.rows {
            parts.push(format!("rows:{rows}"));
        }
        if let Some(secs) = self.interval_seconds {
            parts.push(format!("interval:{secs}"));
        }
        f.write_str(&parts.join(","))
    }
}

impl FromStr for FlushPolicy {
    type Err = String;
    /// Parses `rows:1000,interval:60` (either part may be left out).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut policy = FlushPolicy::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once(':')
                .ok_or_else(|| format!("Invalid FLUSH_POLICY part '{part}': expected key:value"))?;
            let value: u64 = value.trim().parse().map_err(|_| {
                format!("Invalid FLUSH_POLICY value '{value}': expected a positive integer")
            })?;
            if value == 0 {
                return Err(format!(
                    "Invalid FLUSH_POLICY part '{part}': must be positive"
                ));
            }
            match key.trim().to_ascii_lowercase().as_str() {
                "rows" => policy.rows = Some(value),
                "interval" => policy.interval_seconds = Some(value),
                other => {
                    return Err(format!(
                        "Unknown FLUSH_POLICY key '{other}': expected rows or interval"
                    ));
                }
            }
        }
        if policy == FlushPolicy::default() {
            return Err("FLUSH_POLICY must name rows:N and/or interval:S".to_string());
        }
        Ok(policy)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableOptions {
    pub storage_id: String,
    pub flush_policy: Option<FlushPolicy>,
    pub deleted_retention_hours: Option<u64>,
    pub ttl_seconds: Option<u64>,
    /// STREAM tables: the most rows kept (oldest evicted first).
    #[serde(default)]
    pub max_rows: Option<u64>,
    /// Only meaningful for SHARED tables.
    pub access_level: Option<AccessLevel>,
}

impl Default for TableOptions {
    fn default() -> Self {
        Self {
            storage_id: crate::LOCAL_STORAGE_ID.to_string(),
            flush_policy: None,
            deleted_retention_hours: None,
            ttl_seconds: None,
            max_rows: None,
            access_level: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnDefinition {
    /// Stable id; rows refer to columns by it. Never reused within a table.
    pub column_id: u32,
    pub name: String,
    pub data_type: KalamDataType,
    pub nullable: bool,
    pub primary_key: bool,
    /// The DEFAULT expression as SQL text, evaluated per inserted row.
    pub default: Option<String>,
    /// For a column added by ALTER TABLE: what rows written before it existed
    /// read as (a SQL literal); `None` reads them as NULL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableDefinition {
    pub table_id: TableId,
    pub namespace: NamespaceId,
    pub name: String,
    pub table_type: TableType,
    /// Declared columns in order (system columns are implicit).
    pub columns: Vec<ColumnDefinition>,
    /// Starts at 1; every schema change adds one.
    pub schema_version: u32,
    pub options: TableOptions,
    /// Epoch milliseconds.
    pub created_at: i64,
    /// Secondary indexes (UNIQUE constraints are unique indexes). Adding or
    /// dropping one changes no row, so it is not a schema version.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indexes: Vec<IndexDefinition>,
    /// The id the next index of this table gets (ids are never reused).
    #[serde(default = "first_index_id")]
    pub next_index_id: u32,
    /// The primary key's columns (by column id) in key order, for a key of
    /// several columns; empty: the one column flagged `primary_key`, if any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_columns: Vec<u32>,
}

/// The most columns a primary key (or an index) may have.
pub const MAX_KEY_COLUMNS: usize = 16;

fn first_index_id() -> u32 {
    1
}

/// Whether an index is being built (every write maintains it, no read uses
/// it yet) or complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IndexState {
    Building,
    Ready,
}

impl IndexState {
    pub fn as_str(self) -> &'static str {
        match self {
            IndexState::Building => "building",
            IndexState::Ready => "ready",
        }
    }
}

/// A secondary index over some of a table's columns (by column id), in
/// column order; its entries sit in the `index` partition (see
/// kalamdb-store's key layout).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexDefinition {
    /// Unique within the table; never reused.
    pub index_id: u32,
    /// Unique within the namespace.
    pub name: String,
    pub column_ids: Vec<u32>,
    /// No two live rows (of one user, in a USER table) hold the same
    /// non-NULL values.
    pub unique: bool,
    pub state: IndexState,
    /// Epoch milliseconds.
    pub created_at: i64,
}

impl TableDefinition {
    pub fn table_ref(&self) -> TableRef {
        TableRef {
            namespace: self.namespace.clone(),
            table: self.name.clone(),
        }
    }

    /// Positions of the primary key's columns, in key order; empty for a
    /// keyless table, whose rows are keyed by `_seq`.
    pub fn primary_key_positions(&self) -> Vec<usize> {
        if self.key_columns.is_empty() {
            return self
                .columns
                .iter()
                .position(|c| c.primary_key)
                .into_iter()
                .collect();
        }
        self.key_columns
            .iter()
            .filter_map(|id| self.column_position_of(*id))
            .collect()
    }

    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// The position of the column with id `id`.
    pub fn column_position_of(&self, id: u32) -> Option<usize> {
        self.columns.iter().position(|c| c.column_id == id)
    }

    pub fn index(&self, name: &str) -> Option<&IndexDefinition> {
        self.indexes.iter().find(|i| i.name == name)
    }

    /// The names of `index`'s columns, in index order.
    pub fn index_column_names(&self, index: &IndexDefinition) -> Vec<&str> {
        index
            .column_ids
            .iter()
            .filter_map(|id| self.columns.iter().find(|c| c.column_id == *id))
            .map(|c| c.name.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flush_policy_round_trips() {
        let p: FlushPolicy = "rows:1000,interval:60".parse().unwrap();
        assert_eq!(p.rows, Some(1000));
        assert_eq!(p.interval_seconds, Some(60));
        assert_eq!(p.to_string(), "rows:1000,interval:60");
        assert!("rows:0".parse::<FlushPolicy>().is_err());
        assert!("bytes:10".parse::<FlushPolicy>().is_err());
        assert!("".parse::<FlushPolicy>().is_err());
    }
}

//! Everything derived from a table definition that the hot paths need,
//! computed once per schema version.

use crate::rows::coerce::{Literal, coerce};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use kalamdb_commons::{ColumnDefinition, DELETED_COLUMN, SEQ_COLUMN, TableDefinition, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// Field metadata key holding the KalamDB type name (`BigInt`, `Json`, …).
pub const TYPE_METADATA_KEY: &str = "kalamdb.type";
/// Field metadata key holding column flags (`pk`, `nn`).
pub const FLAGS_METADATA_KEY: &str = "kalamdb.flags";

#[derive(Debug)]
pub struct CachedTable {
    pub definition: TableDefinition,
    /// Declared columns only: what `SELECT *` shows.
    pub schema: SchemaRef,
    /// Declared columns, then `_seq` and `_deleted`.
    pub schema_with_system: SchemaRef,
    /// The primary key's column positions in key order; empty for a table
    /// keyed by `_seq`.
    pub key: Vec<usize>,
    /// Per declared column: the value rows written before the column existed
    /// read as (ALTER TABLE ADD COLUMN ... DEFAULT literal); `None`: NULL.
    pub backfill: Vec<Option<Value>>,
    column_positions: HashMap<String, usize>,
}

impl CachedTable {
    pub fn new(definition: TableDefinition) -> Self {
        let mut fields: Vec<Field> = definition
            .columns
            .iter()
            .map(|c| {
                let mut flags = Vec::new();
                if c.primary_key {
                    flags.push("pk");
                }
                if !c.nullable {
                    flags.push("nn");
                }
                let mut metadata = HashMap::from([(
                    TYPE_METADATA_KEY.to_string(),
                    c.data_type.api_name().to_string(),
                )]);
                if !flags.is_empty() {
                    metadata.insert(FLAGS_METADATA_KEY.to_string(), flags.join(","));
                }
                Field::new(&c.name, c.data_type.to_arrow(), c.nullable).with_metadata(metadata)
            })
            .collect();
        let schema = Arc::new(Schema::new(fields.clone()));
        fields.push(Field::new(SEQ_COLUMN, DataType::Int64, false));
        fields.push(Field::new(DELETED_COLUMN, DataType::Boolean, false));
        let schema_with_system = Arc::new(Schema::new(fields));
        let column_positions = definition
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), i))
            .collect();
        let backfill = definition
            .columns
            .iter()
            .map(|c| {
                let text = c.backfill.clone()?;
                let probe = ColumnDefinition {
                    default: Some(text),
                    ..c.clone()
                };
                match crate::rows::defaults::compile_default(&probe) {
                    Ok(crate::rows::defaults::ColumnDefault::Value(v)) => Some(v),
                    _ => None,
                }
            })
            .collect();
        Self {
            key: definition.primary_key_positions(),
            backfill,
            definition,
            schema,
            schema_with_system,
            column_positions,
        }
    }

    pub fn column_position(&self, name: &str) -> Option<usize> {
        self.column_positions.get(name).copied()
    }

    /// The position of column `name`, or the error every statement gives
    /// for a column the table does not have.
    pub fn column_index(&self, name: &str) -> crate::error::CoreResult<usize> {
        self.column_position(name).ok_or_else(|| {
            crate::error::CoreError::InvalidSql(format!(
                "Column '{name}' does not exist in table '{}'",
                self.definition.table_ref()
            ))
        })
    }

    /// Whether the table is keyed by `_seq` (it has no primary key).
    pub fn keyless(&self) -> bool {
        self.key.is_empty()
    }

    /// The rule "this predicate pins a primary-key column", for the
    /// point-lookup fast paths: `column = literal` pins the key's `at`-th
    /// column to a value when `column` is in the primary key and the literal
    /// converts to its type exactly as an INSERT would take it (NULL pins
    /// nothing). Returns `(at, value)`.
    pub fn pinned_key(&self, column: &str, literal: &Literal<'_>) -> Option<(usize, Value)> {
        let at = self
            .key
            .iter()
            .position(|&i| self.definition.columns[i].name == column)?;
        let pk = &self.definition.columns[self.key[at]];
        coerce(literal, pk)
            .ok()
            .filter(|v| !v.is_null())
            .map(|v| (at, v))
    }
}

//! Secondary indexes (and UNIQUE constraints, which are unique indexes).
//!
//! An index entry lives in the `index` partition under
//! `table_id(u64 BE) | index_id(u32 BE) | [user_id] | values… | row key tail`
//! with the row key's tail (its primary key, or `_seq` for a keyless
//! table) as the value. Each indexed value is a tag byte (`0x01` a value,
//! `0x02` NULL, so NULLs sort last) and then the value in the key encoding
//! of `kalamdb_store::keys`; the encoding is order-preserving and
//! prefix-free, so one user's entries of one value are one contiguous
//! range, and a range of values is a range of entries. A USER table's
//! entries carry the owner's id right after the index id, exactly as its
//! rows do: an index read is a prefix scan of the caller's partition of the
//! index and can never reach another user's rows.
//!
//! Entries are written only by the write funnel, in the same storage batch
//! as their rows ([`WriteSet::to_batch`](crate::write_set::WriteSet::to_batch)):
//! a row and its entries become visible together or not at all. The funnel
//! asks the [`IndexCatalog`] which indexes a table has at its commit point,
//! so a write set built before `CREATE INDEX` still maintains the new index
//! when it commits after it. A unique index is checked there too, against
//! what is stored and what the commits of the same group write
//! (`write_set::entries`, which turns a write set's changes into entry
//! changes).
//!
//! Building an index on a table that has rows is the IndexBuild job
//! (`jobs/executors/index_build.rs`): the index is `building` (maintained by
//! every write, used by no read), the job indexes the rows in chunks, each
//! chunk read and written at the commit point, and then marks it `ready`.

use crate::error::{CoreError, CoreResult};
use crate::table_store::RowScope;
pub use crate::table_store::{index_base, index_prefix};
use dashmap::DashMap;
use kalamdb_commons::{
    IndexDefinition, IndexState, KalamDataType, TableDefinition, TableId, Value,
};
use kalamdb_store::backend::prefix_end;
use kalamdb_store::keys::KeyBuilder;
use std::sync::Arc;

/// The most bytes an entry's indexed values may take: a longer value (a
/// long TEXT) cannot be indexed, and a write that would need one fails.
pub const MAX_INDEXED_BYTES: usize = 4096;

/// Tag before a non-NULL indexed value.
const VALUE_TAG: u8 = 0x01;
/// Tag of a NULL indexed value: after every value, so NULLs sort last.
const NULL_TAG: u8 = 0x02;

/// Whether a column of `data_type` can be indexed (the types a primary key
/// takes: they have an order-preserving key encoding).
pub fn indexable(data_type: KalamDataType) -> bool {
    data_type.can_be_primary_key()
}

/// One indexed value in the entry encoding: tag, then the key encoding.
pub fn push_value(buf: &mut Vec<u8>, value: &Value) -> CoreResult<()> {
    if value.is_null() {
        buf.push(NULL_TAG);
        return Ok(());
    }
    buf.push(VALUE_TAG);
    let encoded = KeyBuilder::new()
        .value(value)
        .ok_or_else(|| CoreError::TypeMismatch(format!("{value:?} cannot be an indexed value")))?;
    buf.extend_from_slice(encoded.as_slice());
    Ok(())
}

/// The entry range of every non-NULL value whose key encoding lies in
/// `[start, end)` (`end` `None`: no upper bound), under `prefix`.
pub fn value_range(prefix: &[u8], start: &[u8], end: Option<&[u8]>) -> (Vec<u8>, Vec<u8>) {
    let mut low = prefix.to_vec();
    low.push(VALUE_TAG);
    low.extend_from_slice(start);
    let high = match end {
        Some(end) => {
            let mut high = prefix.to_vec();
            high.push(VALUE_TAG);
            high.extend_from_slice(end);
            high
        }
        None => {
            let mut high = prefix.to_vec();
            high.push(NULL_TAG);
            high
        }
    };
    (low, high)
}

/// The indexes of every table, as the write funnel reads them at its commit
/// point. Kept by the schema registry, which swaps a table's entry whenever
/// its definition changes.
#[derive(Debug, Default)]
pub struct IndexCatalog {
    tables: DashMap<u64, Arc<Vec<IndexDefinition>>>,
}

impl IndexCatalog {
    /// Takes `def`'s indexes as its table's.
    pub fn set(&self, def: &TableDefinition) {
        if def.indexes.is_empty() {
            self.tables.remove(&def.table_id.0);
        } else {
            self.tables
                .insert(def.table_id.0, Arc::new(def.indexes.clone()));
        }
    }

    pub fn remove(&self, table: TableId) {
        self.tables.remove(&table.0);
    }

    /// The indexes of `table` (`None` when it has none).
    pub fn of(&self, table: TableId) -> Option<Arc<Vec<IndexDefinition>>> {
        self.tables.get(&table.0).map(|e| Arc::clone(e.value()))
    }
}

/// An index's entries for one partition and one write set's columns.
pub(crate) struct IndexLayout<'a> {
    pub(crate) def: &'a IndexDefinition,
    pub(crate) prefix: Vec<u8>,
    /// Where each indexed column is in the set's values (`None`: the set
    /// has no such column, so it reads as NULL).
    pub(crate) positions: Vec<Option<usize>>,
}

impl IndexLayout<'_> {
    /// The entry for a row with `values` and key tail `tail`, and (for a
    /// unique index with no NULL value) its length up to the values.
    pub(crate) fn entry(
        &self,
        values: &[Value],
        tail: &[u8],
    ) -> CoreResult<(Vec<u8>, Option<usize>)> {
        let mut key = Vec::with_capacity(self.prefix.len() + 16 + tail.len());
        key.extend_from_slice(&self.prefix);
        let mut has_null = false;
        for position in &self.positions {
            let value = position.and_then(|p| values.get(p)).unwrap_or(&Value::Null);
            has_null |= value.is_null();
            push_value(&mut key, value)?;
        }
        let values_end = key.len();
        if values_end - self.prefix.len() > MAX_INDEXED_BYTES {
            return Err(CoreError::InvalidParameter(format!(
                "The values of index '{}' take {} bytes in this row; an index holds at most {MAX_INDEXED_BYTES}",
                self.def.name,
                values_end - self.prefix.len()
            )));
        }
        key.extend_from_slice(tail);
        let unique = (self.def.unique && !has_null).then_some(values_end);
        Ok((key, unique))
    }
}

/// A value as SQL would write it, for messages.
pub fn show_value(value: &Value) -> String {
    match value {
        Value::Null => "NULL".into(),
        Value::Text(s) => format!("'{s}'"),
        Value::Boolean(b) => b.to_string(),
        Value::Int16(i) => i.to_string(),
        Value::Int32(i) => i.to_string(),
        Value::Int64(i) => i.to_string(),
        other => format!("{other:?}"),
    }
}

/// Whether queries may read `index` (it is built).
pub fn ready(index: &IndexDefinition) -> bool {
    index.state == IndexState::Ready
}

/// A stored row's values of `index`'s columns, at their declared positions
/// in a row of `def`'s width (the other columns NULL): what
/// [`row_entry`] reads, decoded without the rest of the row.
pub fn indexed_values(
    table: &crate::schema::CachedTable,
    index: &IndexDefinition,
    row: &kalamdb_store::row::RowView<'_>,
) -> CoreResult<Vec<Value>> {
    let def = &table.definition;
    let mut values = vec![Value::Null; def.columns.len()];
    let positions: Vec<(u32, usize)> = index
        .column_ids
        .iter()
        .filter_map(|id| def.column_position_of(*id).map(|p| (*id, p)))
        .collect();
    for &(_, p) in &positions {
        if let Some(b) = &table.backfill[p] {
            values[p] = b.clone();
        }
    }
    let mut columns = row.columns();
    while let Some(item) = columns.next_where(|id| positions.iter().any(|(c, _)| *c == id)) {
        let (id, value) = item?;
        if let Some(&(_, p)) = positions.iter().find(|(c, _)| *c == id) {
            values[p] = value.to_value();
        }
    }
    Ok(values)
}

/// The scope a row key of `def` belongs to and where its tail starts:
/// `table_id | [user_id] | tail`.
pub fn scope_of_row_key(def: &TableDefinition, key: &[u8]) -> Option<(RowScope, usize)> {
    match def.table_type {
        kalamdb_commons::TableType::User | kalamdb_commons::TableType::Stream => {
            let (user, used) = kalamdb_store::keys::decode_str(key.get(8..)?)?;
            Some((
                RowScope::User(kalamdb_commons::UserId::new(&user)),
                8 + used,
            ))
        }
        _ => Some((RowScope::Shared, 8)),
    }
}

/// A stored row's entry in `index`: the row's key (`table_id | [user_id] |
/// tail`) and its declared-order `values`. Returns the entry's key, its
/// value (the tail) and, for a unique index with no NULL value, the key's
/// length up to the values.
pub fn row_entry(
    def: &TableDefinition,
    index: &IndexDefinition,
    row_key: &[u8],
    values: &[Value],
) -> CoreResult<(Vec<u8>, Vec<u8>, Option<usize>)> {
    let (_, tail_at) = scope_of_row_key(def, row_key)
        .ok_or_else(|| CoreError::Internal("a row key without its partition".into()))?;
    let layout = IndexLayout {
        def: index,
        prefix: index_prefix(
            &index_base(def.table_id, index.index_id),
            &row_key[..tail_at],
        ),
        positions: index
            .column_ids
            .iter()
            .map(|id| def.column_position_of(*id))
            .collect(),
    };
    let tail = row_key[tail_at..].to_vec();
    let (key, unique) = layout.entry(values, &tail)?;
    Ok((key, tail, unique))
}

/// Every entry of `index` (all partitions): `[start, end)` of the `index`
/// partition.
pub fn index_range(table: TableId, index_id: u32) -> (Vec<u8>, Vec<u8>) {
    let base = index_base(table, index_id);
    let end = prefix_end(&base).unwrap_or_else(|| vec![0xFF; base.len() + 1]);
    (base, end)
}

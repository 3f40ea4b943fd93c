//! A write set's changes as changes of its table's index entries, and the
//! unique check of those entries at the commit point (the entry layout is
//! `indexes.rs`).

use super::{ChangeOp, RowChange, WriteSet};
use crate::error::{CoreError, CoreResult};
use crate::indexes::{IndexCatalog, IndexLayout, index_base, index_prefix, show_value};
use crate::table_store::partition_prefix;
use kalamdb_commons::IndexDefinition;
use kalamdb_store::backend::prefix_end;
use kalamdb_store::{Batch, Partition, StorageBackend};
use std::collections::{BTreeSet, HashMap};

/// One change to the `index` partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryOp {
    Delete {
        key: Vec<u8>,
        /// The entry's length up to its values, for a unique index.
        unique: Option<usize>,
    },
    Put {
        key: Vec<u8>,
        tail: Vec<u8>,
        unique: Option<usize>,
        /// The index, for an error message.
        index: usize,
        change: usize,
    },
}

fn layouts<'a>(set: &WriteSet, indexes: &'a [IndexDefinition]) -> (Vec<IndexLayout<'a>>, usize) {
    let row_prefix = partition_prefix(set.table_id, &set.scope);
    let layouts = indexes
        .iter()
        .map(|def| IndexLayout {
            def,
            prefix: index_prefix(&index_base(set.table_id, def.index_id), &row_prefix),
            positions: def
                .column_ids
                .iter()
                .map(|id| set.column_ids.iter().position(|c| c == id))
                .collect(),
        })
        .collect();
    (layouts, row_prefix.len())
}

/// The entry changes of `set`'s changes, in change order: per change and
/// index, the old entry goes and the new one comes (nothing when they are
/// the same entry).
pub fn entry_ops(set: &WriteSet, indexes: &[IndexDefinition]) -> CoreResult<Vec<EntryOp>> {
    let (layouts, prefix_len) = layouts(set, indexes);
    let mut ops = Vec::new();
    for (at, change) in set.changes.iter().enumerate() {
        change_ops(&layouts, prefix_len, at, change, &mut ops)?;
    }
    Ok(ops)
}

fn change_ops(
    layouts: &[IndexLayout<'_>],
    prefix_len: usize,
    at: usize,
    change: &RowChange,
    ops: &mut Vec<EntryOp>,
) -> CoreResult<()> {
    let tail = |key: &[u8]| key.get(prefix_len..).unwrap_or_default().to_vec();
    // the row as it was (live: a change that read a soft-deleted row or a
    // free key has no old values)
    let old_key = change.moved_from.as_deref().unwrap_or(&change.key);
    for (index, layout) in layouts.iter().enumerate() {
        let old = match &change.old_values {
            Some(values) => Some(layout.entry(values, &tail(old_key))?),
            None => None,
        };
        let new = if change.op == ChangeOp::Delete {
            None
        } else {
            Some(layout.entry(&change.values, &tail(&change.key))?)
        };
        if let (Some((a, _)), Some((b, _))) = (&old, &new)
            && a == b
        {
            continue;
        }
        if let Some((key, unique)) = old {
            ops.push(EntryOp::Delete { key, unique });
        }
        if let Some((key, unique)) = new {
            ops.push(EntryOp::Put {
                key,
                tail: tail(&change.key),
                unique,
                index,
                change: at,
            });
        }
    }
    Ok(())
}

/// Checks that every entry `sets` would write can be written (before they
/// are queued, so one statement's unindexable value fails only it).
pub fn check_entries(sets: &[WriteSet], catalog: &IndexCatalog) -> CoreResult<()> {
    for set in sets {
        if let Some(indexes) = catalog.of(set.table_id) {
            entry_ops(set, &indexes)?;
        }
    }
    Ok(())
}

/// Adds `ops` to `batch`.
pub fn ops_to_batch(ops: Vec<EntryOp>, batch: &mut Batch) {
    for op in ops {
        match op {
            EntryOp::Delete { key, .. } => batch.delete(Partition::Index, key),
            EntryOp::Put { key, tail, .. } => batch.put(Partition::Index, key, tail),
        }
    }
}

/// The entries of unique indexes as a group of commits leaves them, so each
/// commit is checked against what is stored and what the commits before it
/// in the same group write. Built fresh for each group (or statement of a
/// transaction), over the storage it is checked against.
#[derive(Default)]
pub struct UniqueCheck {
    /// Per unique prefix (index, partition, values): the entries there.
    entries: HashMap<Vec<u8>, BTreeSet<Vec<u8>>>,
}

impl UniqueCheck {
    fn load<'s>(
        entries: &'s mut HashMap<Vec<u8>, BTreeSet<Vec<u8>>>,
        base: &HashMap<Vec<u8>, BTreeSet<Vec<u8>>>,
        backend: &dyn StorageBackend,
        prefix: &[u8],
    ) -> CoreResult<&'s mut BTreeSet<Vec<u8>>> {
        if !entries.contains_key(prefix) {
            let found = match base.get(prefix) {
                Some(found) => found.clone(),
                None => {
                    let mut found = BTreeSet::new();
                    let end = prefix_end(prefix).unwrap_or_else(|| vec![0xFF; prefix.len() + 1]);
                    backend.scan(Partition::Index, prefix, &end, &mut |key, _| {
                        found.insert(key.to_vec());
                        Ok(true)
                    })?;
                    found
                }
            };
            entries.insert(prefix.to_vec(), found);
        }
        Ok(entries.get_mut(prefix).expect("inserted above"))
    }

    /// Whether `sets` (one commit) leave two entries under one unique
    /// prefix; if not, their entries join what later commits are checked
    /// against.
    pub fn check(
        &mut self,
        backend: &dyn StorageBackend,
        catalog: &IndexCatalog,
        sets: &[WriteSet],
    ) -> CoreResult<Option<CoreError>> {
        let mut touched: HashMap<Vec<u8>, BTreeSet<Vec<u8>>> = HashMap::new();
        let mut puts: Vec<(Vec<u8>, usize, usize, usize)> = Vec::new();
        for (at, set) in sets.iter().enumerate() {
            let Some(indexes) = catalog.of(set.table_id) else {
                continue;
            };
            if !indexes.iter().any(|i| i.unique) {
                continue;
            }
            for op in entry_ops(set, &indexes)? {
                match op {
                    EntryOp::Delete {
                        key,
                        unique: Some(len),
                    } => {
                        Self::load(&mut touched, &self.entries, backend, &key[..len])?.remove(&key);
                    }
                    EntryOp::Put {
                        key,
                        unique: Some(len),
                        index,
                        change,
                        ..
                    } => {
                        let prefix = key[..len].to_vec();
                        Self::load(&mut touched, &self.entries, backend, &prefix)?.insert(key);
                        puts.push((prefix, at, index, change));
                    }
                    _ => {}
                }
            }
        }
        for (prefix, at, index, change) in &puts {
            if touched.get(prefix).is_some_and(|e| e.len() > 1) {
                let set = &sets[*at];
                let indexes = catalog.of(set.table_id).unwrap_or_default();
                return Ok(Some(violation(
                    set,
                    &indexes[*index],
                    &set.changes[*change],
                )));
            }
        }
        self.entries.extend(touched);
        Ok(None)
    }
}

fn violation(set: &WriteSet, index: &IndexDefinition, change: &RowChange) -> CoreError {
    let shown: Vec<String> = index
        .column_ids
        .iter()
        .map(|id| {
            set.column_ids
                .iter()
                .position(|c| c == id)
                .and_then(|p| change.values.get(p))
                .map_or_else(|| "NULL".to_string(), show_value)
        })
        .collect();
    CoreError::UniqueViolation(format!(
        "Duplicate key value violates unique constraint '{}': ({}) already exists",
        index.name,
        shown.join(", ")
    ))
}

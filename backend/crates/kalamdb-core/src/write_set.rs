//! The write funnel: every row a statement changes is described as a typed
//! [`RowChange`] in the statement's [`WriteSet`], and [`commit`] is the one
//! function that turns write sets into a storage write — row keys are built
//! and rows encoded here and nowhere else — and, only after that write
//! succeeded, hands them to the [`ChangeSink`].
//!
//! Inside `BEGIN … COMMIT` a statement's write sets go into the
//! transaction's overlay (so later statements read them) and are kept with
//! it; `COMMIT` passes all of them through [`commit`] as one atomic write, so
//! a change is published if and only if it was committed. ROLLBACK or a
//! failure drops overlay and write sets together.
//!
//! A write set is a plain value (table id, schema version, column ids,
//! scope, changes with their keys, values and `_seq`s) that serialises as
//! it is: the unit a replication log can carry, applied on a replica through
//! [`WriteSet::to_batch`] exactly as here.

use crate::error::CoreResult;
use crate::table_store::{RowScope, TableStore, partition_prefix, row_key, seq_key};
use kalamdb_commons::{TableDefinition, TableId, Value};
use kalamdb_store::row::encode_row;
use kalamdb_store::{Batch, OverlayBackend, Partition, StorageBackend};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChangeOp {
    Insert,
    Update,
    /// Soft delete: the row stays, with `_deleted = true` and a new `_seq`.
    Delete,
}

/// One row a statement changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowChange {
    pub op: ChangeOp,
    /// The row's storage key (partition prefix + primary key, or + `_seq`
    /// for a table without one).
    pub key: Vec<u8>,
    /// A keyless table's row moves to its new `_seq` key: the key it left.
    pub moved_from: Option<Vec<u8>>,
    /// The row's new `_seq`.
    pub seq: i64,
    /// The row's values after the change, in declared column order.
    pub values: Vec<Value>,
    /// The values before, where the statement read them (UPDATE, DELETE,
    /// ON CONFLICT DO UPDATE).
    pub old_values: Option<Vec<Value>>,
}

/// What one statement changed in one table, for one scope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WriteSet {
    pub table_id: TableId,
    pub schema_version: u32,
    /// The id of each column, in the order of every change's values.
    pub column_ids: Vec<u32>,
    /// Which of the values is the primary key (`None`: keyed by `_seq`).
    pub primary_key: Option<usize>,
    pub scope: RowScope,
    pub changes: Vec<RowChange>,
    /// Where this set's keys start (derived from table and scope).
    #[serde(skip)]
    prefix: Vec<u8>,
}

impl WriteSet {
    pub fn new(def: &TableDefinition, scope: RowScope) -> Self {
        Self::with_capacity(def, scope, 0)
    }

    pub fn with_capacity(def: &TableDefinition, scope: RowScope, rows: usize) -> Self {
        Self {
            table_id: def.table_id,
            schema_version: def.schema_version,
            column_ids: def.columns.iter().map(|c| c.column_id).collect(),
            primary_key: def.primary_key_index(),
            prefix: partition_prefix(def.table_id, &scope),
            scope,
            changes: Vec::with_capacity(rows),
        }
    }

    /// The key of the row with primary key `pk` in this set's partition.
    pub fn key_of(&self, pk: &Value) -> CoreResult<Vec<u8>> {
        row_key(&self.prefix, pk)
    }

    /// The key of a keyless table's row written with `_seq` = `seq`.
    pub fn key_of_seq(&self, seq: i64) -> Vec<u8> {
        seq_key(&self.prefix, seq)
    }

    /// The primary-key value of `change` (`None` for a keyless table).
    pub fn pk_of<'a>(&self, change: &'a RowChange) -> Option<&'a Value> {
        self.primary_key.and_then(|i| change.values.get(i))
    }

    pub fn push(&mut self, change: RowChange) {
        self.changes.push(change);
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    pub fn len(&self) -> usize {
        self.changes.len()
    }

    /// The stored form of one change's row.
    pub fn encode(&self, change: &RowChange) -> Vec<u8> {
        encode_row(
            self.schema_version,
            change.seq,
            change.op == ChangeOp::Delete,
            self.column_ids.iter().copied().zip(change.values.iter()),
        )
    }

    /// Adds this set's writes to `batch`, in change order.
    pub fn to_batch(&self, batch: &mut Batch) {
        for change in &self.changes {
            if let Some(old) = &change.moved_from {
                batch.delete(Partition::Data, old.clone());
            }
            batch.put(Partition::Data, change.key.clone(), self.encode(change));
        }
    }
}

/// Where committed changes go (live queries, once they exist). Called after
/// the storage write succeeded, with the write sets of one statement or one
/// COMMIT, in commit order. Must not block: it runs on the writer's path.
pub trait ChangeSink: Send + Sync {
    fn publish(&self, sets: &[WriteSet]);
}

/// The sink until something subscribes: drops every change.
pub struct NoChangeSink;

impl ChangeSink for NoChangeSink {
    fn publish(&self, _sets: &[WriteSet]) {}
}

/// An open `BEGIN … COMMIT`: the overlay later statements read through, and
/// the write sets that COMMIT will write.
pub struct Transaction {
    overlay: Arc<OverlayBackend>,
    pending: Mutex<Vec<WriteSet>>,
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Transaction")
    }
}

impl Transaction {
    pub fn begin(base: Arc<dyn StorageBackend>) -> Self {
        Self {
            overlay: Arc::new(OverlayBackend::new(base)),
            pending: Mutex::new(Vec::new()),
        }
    }

    /// The view of storage with this transaction's writes applied.
    pub fn view(&self) -> Arc<dyn StorageBackend> {
        Arc::clone(&self.overlay) as Arc<dyn StorageBackend>
    }

    fn take_pending(&self) -> Vec<WriteSet> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Writes `sets` as one atomic storage write and then publishes them; inside
/// a transaction, stages them in it instead (written and published at
/// COMMIT).
pub async fn commit(
    store: &TableStore,
    sink: &dyn ChangeSink,
    transaction: Option<&Transaction>,
    sets: Vec<WriteSet>,
) -> CoreResult<()> {
    match transaction {
        Some(tx) => {
            let Some(batch) = batch_of(&sets) else {
                return Ok(());
            };
            tx.overlay.write(batch)?;
            tx.pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(sets.into_iter().filter(|s| !s.is_empty()));
            Ok(())
        }
        None => write_and_publish(store, sink, sets).await,
    }
}

/// COMMIT: everything the transaction staged, as one write, then published.
pub async fn commit_transaction(
    store: &TableStore,
    sink: &dyn ChangeSink,
    tx: &Transaction,
) -> CoreResult<()> {
    write_and_publish(store, sink, tx.take_pending()).await
}

async fn write_and_publish(
    store: &TableStore,
    sink: &dyn ChangeSink,
    sets: Vec<WriteSet>,
) -> CoreResult<()> {
    let Some(batch) = batch_of(&sets) else {
        return Ok(());
    };
    store.write_async(batch).await?;
    sink.publish(&sets);
    Ok(())
}

/// The one storage batch of `sets`; `None` when they change nothing.
fn batch_of(sets: &[WriteSet]) -> Option<Batch> {
    let rows: usize = sets.iter().map(WriteSet::len).sum();
    if rows == 0 {
        return None;
    }
    let mut batch = Batch::with_capacity(rows);
    for set in sets {
        set.to_batch(&mut batch);
    }
    Some(batch)
}

#[cfg(test)]
mod tests;

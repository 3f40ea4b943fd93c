//! The write funnel: every row a statement changes is described as a typed
//! [`RowChange`] in the statement's [`WriteSet`], and [`WriteFunnel::commit`] is the one
//! function that turns write sets into a storage write — row keys are built
//! and rows encoded here and nowhere else — and, only after that write
//! succeeded, hands them to the [`ChangeSink`]. It gives every change its
//! final `_seq` at the commit point, so `_seq` order is commit order.
//!
//! Inside `BEGIN … COMMIT` a statement's write sets go into the
//! transaction's overlay (so later statements read them) and are kept with
//! it; `COMMIT` passes all of them through the funnel as one atomic write, so
//! a change is published if and only if it was committed. ROLLBACK or a
//! failure drops overlay and write sets together.
//!
//! A write set is a plain value (table id, schema version, column ids,
//! scope, changes with their keys, values and `_seq`s) that serialises as
//! it is: the unit a replication log can carry, applied on a replica through
//! [`WriteSet::to_batch`] exactly as here. Index entries are not part of
//! it: `to_batch` derives them from the changes and the table's indexes
//! (`indexes.rs`), in the same batch as the rows.

use crate::error::{CoreError, CoreResult};
use crate::indexes::IndexCatalog;
use crate::stream_store::StreamTables;
use crate::table_store::{RowScope, TableStore, partition_prefix, row_key, seq_key};
use entries::{UniqueCheck, entry_ops, ops_to_batch};
use kalamdb_commons::snowflake::SnowflakeGenerator;
use kalamdb_commons::{TableDefinition, TableId, Value};
use kalamdb_store::row::encode_row;
use kalamdb_store::{Batch, OverlayBackend, Partition, StorageBackend};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

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
    /// What the change was computed from. The commit point checks it is
    /// still what is stored, so no write is computed from a row another
    /// commit replaced meanwhile (a lost update), and no INSERT takes a key
    /// another commit took meanwhile (a duplicate); if it is not, the commit
    /// fails with `WRITE_CONFLICT` and a single statement is re-run.
    #[serde(default)]
    pub read: Read,
}

/// What a [`RowChange`] was computed from, as the commit point checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Read {
    /// Nothing stored: the change's key is new by construction (a keyless
    /// table's row, keyed by its fresh `_seq`).
    #[default]
    Nothing,
    /// The key was free: no row there, or only a soft-deleted (or, in a
    /// STREAM table, expired) one with this `_seq`. Still free at commit if
    /// nothing, a soft-deleted row, or that same row is there.
    Free(Option<i64>),
    /// The live row with this `_seq` (with `old_values`).
    Row(i64),
}

impl Read {
    /// Whether the stored row — `(its _seq, soft-deleted)`, if there is one
    /// — is still what this read saw.
    fn holds(self, stored: Option<(i64, bool)>) -> bool {
        match self {
            Read::Nothing => true,
            Read::Free(seen) => match stored {
                None | Some((_, true)) => true,
                Some((seq, false)) => seen == Some(seq),
            },
            Read::Row(seen) => stored == Some((seen, false)),
        }
    }
}

/// What one statement changed in one table, for one scope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WriteSet {
    pub table_id: TableId,
    pub schema_version: u32,
    /// The id of each column, in the order of every change's values.
    pub column_ids: Vec<u32>,
    /// Which of the values are the primary key's columns, in key order
    /// (empty: keyed by `_seq`).
    pub primary_key: Vec<usize>,
    pub scope: RowScope,
    pub changes: Vec<RowChange>,
    /// A STREAM table's set: a DELETE removes the row at once (no soft
    /// delete, nothing to resume from).
    #[serde(default)]
    pub ephemeral: bool,
    /// The commit point ([`WriteFunnel::committed`]) taken before the
    /// changes' reads, when one writer did them all: if no commit came
    /// since, what they read is still stored and the commit skips
    /// re-reading it.
    #[serde(default)]
    pub read_at: Option<i64>,
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
            primary_key: def.primary_key_positions(),
            prefix: partition_prefix(def.table_id, &scope),
            scope,
            changes: Vec::with_capacity(rows),
            ephemeral: def.table_type == kalamdb_commons::TableType::Stream,
            read_at: None,
        }
    }

    /// The key, in this set's partition, of the row whose primary key's
    /// columns hold `key` (in key order).
    pub fn key_of(&self, key: &[Value]) -> CoreResult<Vec<u8>> {
        row_key(&self.prefix, key)
    }

    /// The key of the row holding `values` (all its columns, in declared
    /// order) in this set's partition; a keyed table's only.
    pub fn key_of_row(&self, values: &[Value]) -> CoreResult<Vec<u8>> {
        row_key(&self.prefix, self.primary_key.iter().map(|&i| &values[i]))
    }

    /// The key of a keyless table's row written with `_seq` = `seq`.
    pub fn key_of_seq(&self, seq: i64) -> Vec<u8> {
        seq_key(&self.prefix, seq)
    }

    /// The primary-key values of `change`, in key order (none for a
    /// keyless table).
    pub fn pk_of<'a>(&self, change: &'a RowChange) -> Vec<&'a Value> {
        self.primary_key
            .iter()
            .filter_map(|&i| change.values.get(i))
            .collect()
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

    /// The tombstone a keyless row leaves at its old key when it moves:
    /// the old values, deleted, with the change's `_seq`.
    fn encode_moved(&self, change: &RowChange) -> Vec<u8> {
        let old = change.old_values.as_deref().unwrap_or_default();
        encode_row(
            self.schema_version,
            change.seq,
            true,
            self.column_ids.iter().copied().zip(old.iter()),
        )
    }

    /// The stored form of one change's row as it was before (UPDATE, DELETE,
    /// ON CONFLICT DO UPDATE), with the change's `_seq`.
    pub fn encode_old(&self, change: &RowChange) -> Option<Vec<u8>> {
        let old = change.old_values.as_ref()?;
        Some(encode_row(
            self.schema_version,
            change.seq,
            false,
            self.column_ids.iter().copied().zip(old.iter()),
        ))
    }

    /// Gives every change its final `_seq` (in change order) and returns the
    /// highest. A keyless table's row is keyed by its `_seq`, so its key
    /// follows; `renamed` maps the provisional keys of this commit group to
    /// their final ones, for a row a later change of the group moves again.
    fn assign_seqs(
        &mut self,
        seqs: &SnowflakeGenerator,
        renamed: &mut HashMap<Vec<u8>, Vec<u8>>,
    ) -> i64 {
        let mut last = 0;
        let keyless = self.primary_key.is_empty();
        for i in 0..self.changes.len() {
            let seq = seqs.next_id();
            last = seq;
            if keyless {
                let key = self.key_of_seq(seq);
                let change = &mut self.changes[i];
                if let Some(from) = change.moved_from.take() {
                    change.moved_from = Some(renamed.remove(&from).unwrap_or(from));
                }
                let provisional = std::mem::replace(&mut change.key, key);
                renamed.insert(provisional, change.key.clone());
            }
            self.changes[i].seq = seq;
        }
        last
    }

    /// Adds this set's writes to `batch`, in change order, and then the
    /// entries of the table's indexes in `indexes` they change.
    pub fn to_batch(&self, batch: &mut Batch, indexes: &IndexCatalog) -> CoreResult<()> {
        self.rows_to_batch(batch);
        if let Some(defs) = indexes.of(self.table_id) {
            ops_to_batch(entry_ops(self, &defs)?, batch);
        }
        Ok(())
    }

    fn rows_to_batch(&self, batch: &mut Batch) {
        for change in &self.changes {
            if let Some(old) = &change.moved_from {
                if self.ephemeral {
                    batch.delete(Partition::Data, old.clone());
                } else {
                    // a tombstone, not a delete: the row it leaves may also
                    // be in the cold tier, which only a newer version hides
                    batch.put(Partition::Data, old.clone(), self.encode_moved(change));
                }
            }
            if self.ephemeral && change.op == ChangeOp::Delete {
                batch.delete(Partition::Data, change.key.clone());
            } else {
                batch.put(Partition::Data, change.key.clone(), self.encode(change));
            }
        }
    }
}

/// Where committed changes go (live queries). Called after the storage
/// write succeeded, with the write sets of one statement or one COMMIT, in
/// commit order (`_seq` order), while the funnel holds its commit point.
/// Must not block: it runs on the writer's path.
pub trait ChangeSink: Send + Sync {
    fn publish(&self, sets: Vec<WriteSet>);
}

/// The sink until something subscribes: drops every change.
pub struct NoChangeSink;

impl ChangeSink for NoChangeSink {
    fn publish(&self, _sets: Vec<WriteSet>) {}
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
        std::mem::take(&mut *lock(&self.pending))
    }
}

/// The one way rows reach storage: [`WriteFunnel::commit`] turns write sets
/// into an atomic storage write and, once it succeeded, publishes them.
///
/// **`_seq` order is commit order.** A statement's changes carry provisional
/// `_seq`s (a transaction's later statements read them); the funnel gives
/// every change its final `_seq` while it holds the commit point, writes,
/// publishes and only then lets the next group in. So within a table
/// partition a row never becomes visible with a lower `_seq` than one
/// already visible, and "everything after `_seq` N" is a well-defined set
/// (live-query cursors rely on it). Commits that arrive while one is being
/// written wait and go together in the next write (group commit), which
/// with `sync_writes` shares one fsync among them.
pub struct WriteFunnel {
    store: TableStore,
    /// Every table's indexes, as commits maintain them.
    indexes: Arc<IndexCatalog>,
    seqs: Arc<SnowflakeGenerator>,
    /// Told of every STREAM row removed for good (for resume checks).
    streams: Arc<StreamTables>,
    sink: OnceLock<Arc<dyn ChangeSink>>,
    /// Commits waiting for the commit point.
    queue: Mutex<Vec<Pending>>,
    /// The commit point: held while a group gets its `_seq`s, is written and
    /// is published. Holds the highest `_seq` committed so far.
    point: Mutex<i64>,
    /// The same, readable without waiting for the commit point.
    committed: std::sync::atomic::AtomicI64,
    /// Rows committed per table since its last flush was started (what a
    /// `FLUSH_POLICY 'rows:N'` counts; in memory only).
    written: dashmap::DashMap<u64, u64>,
}

/// One statement's (or one COMMIT's) sets, waiting to be written.
struct Pending {
    sets: Vec<WriteSet>,
    done: tokio::sync::oneshot::Sender<CoreResult<()>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl WriteFunnel {
    pub fn new(
        store: TableStore,
        seqs: Arc<SnowflakeGenerator>,
        streams: Arc<StreamTables>,
        indexes: Arc<IndexCatalog>,
    ) -> Self {
        Self {
            store,
            indexes,
            seqs,
            streams,
            sink: OnceLock::new(),
            queue: Mutex::new(Vec::new()),
            point: Mutex::new(0),
            committed: std::sync::atomic::AtomicI64::new(0),
            written: dashmap::DashMap::new(),
        }
    }

    /// Rows committed to table `table` since [`WriteFunnel::take_written`]
    /// last took them (since the start, at first).
    pub fn written(&self, table: u64) -> u64 {
        self.written.get(&table).map_or(0, |n| *n)
    }

    /// Takes `n` of the rows counted for `table` (a flush now covers them).
    pub fn take_written(&self, table: u64, n: u64) {
        if let Some(mut count) = self.written.get_mut(&table) {
            *count = count.saturating_sub(n);
        }
    }

    /// Wires the sink committed changes go to (once, before serving);
    /// `false` if one was set already.
    pub fn set_sink(&self, sink: Arc<dyn ChangeSink>) -> bool {
        self.sink.set(sink).is_ok()
    }

    pub fn sink(&self) -> &dyn ChangeSink {
        match self.sink.get() {
            Some(sink) => sink.as_ref(),
            None => &NoChangeSink,
        }
    }

    /// Removes soft-deleted rows for good, at the commit point: each
    /// `(key, _seq)` only if that tombstone is still what is stored there (a
    /// key written again since is left alone), in one batch with `extra`.
    /// Nothing is published: no reader sees a tombstone. Returns how many
    /// rows went.
    pub fn purge(&self, tombstones: &[(Vec<u8>, i64)], extra: Batch) -> CoreResult<usize> {
        let _point = lock(&self.point);
        let keys: Vec<Vec<u8>> = tombstones.iter().map(|(key, _)| key.clone()).collect();
        let mut gone = vec![false; keys.len()];
        self.store.get_many_with(&keys, &mut |i, bytes| {
            if let Some(bytes) = bytes {
                let row = kalamdb_store::row::RowView::decode(bytes)?;
                // a cold tombstone goes with the compaction of its segments
                gone[i] = row.deleted && row.seq == tombstones[i].1 && row.cold().is_none();
            }
            Ok(())
        })?;
        // a hot tombstone over a cold version stays until a flush moves it
        // to the cold tier: removing it would bring the cold version back
        if keys.first().map(|k| self.store.has_cold(k)).transpose()? == Some(true) {
            let stubs: Vec<Vec<u8>> = keys
                .iter()
                .map(|k| crate::cold::cold_index_key(k))
                .collect();
            let shadowed = self.store.backend().exists_many(Partition::Index, &stubs)?;
            for (gone, shadowed) in gone.iter_mut().zip(shadowed) {
                *gone &= !shadowed;
            }
        }
        let mut batch = extra;
        let mut purged = 0;
        for (key, gone) in keys.into_iter().zip(gone) {
            if gone {
                batch.delete(Partition::Data, key);
                purged += 1;
            }
        }
        if !batch.is_empty() {
            self.store.backend().write(batch)?;
        }
        Ok(purged)
    }

    /// A flush's commit, at the commit point: `install` makes the new
    /// manifest visible to readers, then one batch writes `extra` (the
    /// manifest and the cold index entries) and removes each hot row of
    /// `flushed` — `(key, _seq)` — only if that version is still the one
    /// stored (a row written again since stays hot: it is newer than its
    /// cold copy). Nothing is published: no row changed. Returns how many
    /// hot rows went.
    pub fn move_to_cold(
        &self,
        flushed: &[(Vec<u8>, i64)],
        extra: Batch,
        install: impl FnOnce(),
    ) -> CoreResult<usize> {
        let _point = lock(&self.point);
        let keys: Vec<Vec<u8>> = flushed.iter().map(|(key, _)| key.clone()).collect();
        let mut same = vec![false; keys.len()];
        self.store
            .backend()
            .get_many_with(Partition::Data, &keys, &mut |i, bytes| {
                if let Some(bytes) = bytes {
                    let row = kalamdb_store::row::RowView::decode(bytes)?;
                    same[i] = row.seq == flushed[i].1;
                }
                Ok(())
            })?;
        let mut batch = extra;
        let mut moved = 0;
        for (key, same) in keys.into_iter().zip(same) {
            if same {
                batch.delete(Partition::Data, key);
                moved += 1;
            }
        }
        install();
        self.store.backend().write(batch)?;
        Ok(moved)
    }

    /// A compaction's commit, at the commit point: if `still()` holds (the
    /// partition's manifest is still the one the compaction began from),
    /// `install` makes the new manifest visible, then `batch` (manifest and
    /// cold index entries) is written. No hot row changes and nothing is
    /// published: every row reads as before. Returns whether it committed.
    pub fn commit_cold(
        &self,
        batch: Batch,
        still: impl FnOnce() -> CoreResult<bool>,
        install: impl FnOnce(),
    ) -> CoreResult<bool> {
        let _point = lock(&self.point);
        if !still()? {
            return Ok(false);
        }
        install();
        self.store.backend().write(batch)?;
        Ok(true)
    }

    /// A RESTORE's batch, at the commit point: rows and entries written as
    /// the backup holds them, their `_seq`s (at most `max_seq`) kept, and
    /// every `_seq` given from now on greater. Nothing is published: the
    /// restored table becomes visible only when its definition commits.
    pub fn commit_restored(&self, batch: Batch, max_seq: i64) -> CoreResult<()> {
        let _point = lock(&self.point);
        self.seqs.observe(max_seq);
        self.store.backend().write(batch)?;
        Ok(())
    }

    /// The highest `_seq` committed so far; a statement that takes it before
    /// reading records it in [`WriteSet::read_at`].
    pub fn committed(&self) -> i64 {
        self.committed.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Runs `f` between two commits, with the highest `_seq` committed so
    /// far: every commit up to it is written and published, none after it
    /// has begun. A live query registers here, so that every change it is
    /// not handed is in what it reads next.
    pub fn at_commit_point<T>(&self, f: impl FnOnce(i64) -> T) -> T {
        let point = lock(&self.point);
        f(*point)
    }

    /// Writes `sets` as one atomic storage write and then publishes them;
    /// inside a transaction, stages them in it instead (written and
    /// published at COMMIT).
    pub async fn commit(
        self: &Arc<Self>,
        transaction: Option<&Transaction>,
        sets: Vec<WriteSet>,
    ) -> CoreResult<()> {
        match transaction {
            Some(tx) => {
                let Some(batch) = batch_of(&sets, &self.indexes)? else {
                    return Ok(());
                };
                // a unique index refuses the statement, as it would outside
                // a transaction (checked again at COMMIT)
                if let Some(violation) =
                    UniqueCheck::default().check(tx.overlay.as_ref(), &self.indexes, &sets)?
                {
                    return Err(violation);
                }
                tx.overlay.write(batch)?;
                lock(&tx.pending).extend(sets.into_iter().filter(|s| !s.is_empty()));
                Ok(())
            }
            None => self.write_and_publish(sets).await,
        }
    }

    /// COMMIT: everything the transaction staged, as one write, then
    /// published.
    pub async fn commit_transaction(self: &Arc<Self>, tx: &Transaction) -> CoreResult<()> {
        self.write_and_publish(tx.take_pending()).await
    }

    async fn write_and_publish(self: &Arc<Self>, sets: Vec<WriteSet>) -> CoreResult<()> {
        if sets.iter().all(WriteSet::is_empty) {
            return Ok(());
        }
        entries::check_entries(&sets, &self.indexes)?;
        let (done, written) = tokio::sync::oneshot::channel();
        lock(&self.queue).push(Pending { sets, done });
        if self.store.backend().syncs_writes() {
            // An fsync blocks: wait for it on a blocking thread, where the
            // commits queued meanwhile join the next group.
            let funnel = Arc::clone(self);
            tokio::task::spawn_blocking(move || funnel.write_group())
                .await
                .map_err(|e| CoreError::Internal(format!("write task failed: {e}")))?;
        } else {
            // A memtable insert: microseconds, done inline.
            self.write_group();
        }
        written
            .await
            .map_err(|_| CoreError::Internal("the write was abandoned".into()))?
    }

    /// Takes the commit point and writes every queued commit as one group
    /// (ours among them, unless a group before took it).
    fn write_group(&self) {
        let mut point = lock(&self.point);
        let queued = std::mem::take(&mut *lock(&self.queue));
        if queued.is_empty() {
            return;
        }
        let mut group = Vec::with_capacity(queued.len());
        // keys the commits accepted into this group write: a later commit
        // of the group that read one read it before the group's write (kept
        // only when a later commit read anything: keyless appends never do)
        let reads_after = |i: usize| queued[i + 1..].iter().any(|p| reads_rows(&p.sets));
        let track: Vec<bool> = (0..queued.len()).map(reads_after).collect();
        let mut written: std::collections::HashSet<Vec<u8>> = std::collections::HashSet::new();
        let mut unique = UniqueCheck::default();
        for (pending, track) in queued.into_iter().zip(track) {
            let refused = match self.conflict(&pending.sets, &written, *point) {
                Ok(None) => {
                    unique.check(self.store.backend().as_ref(), &self.indexes, &pending.sets)
                }
                other => other,
            };
            match refused {
                Ok(None) => {
                    if track {
                        for change in pending.sets.iter().flat_map(|s| &s.changes) {
                            written.insert(change.key.clone());
                            if let Some(from) = &change.moved_from {
                                written.insert(from.clone());
                            }
                        }
                    }
                    group.push(pending);
                }
                Ok(Some(error)) | Err(error) => {
                    let _ = pending.done.send(Err(error));
                }
            }
        }
        if group.is_empty() {
            return;
        }
        let mut renamed = HashMap::new();
        let mut last = *point;
        for pending in &mut group {
            for set in &mut pending.sets {
                last = last.max(set.assign_seqs(&self.seqs, &mut renamed));
            }
        }
        let rows = group.iter().flat_map(|p| &p.sets).map(WriteSet::len).sum();
        let mut batch = Batch::with_capacity(rows);
        let mut built = Ok(());
        for set in group.iter().flat_map(|p| &p.sets) {
            if let Err(e) = set.to_batch(&mut batch, &self.indexes) {
                built = Err(e);
                break;
            }
        }
        let written = built.and_then(|()| Ok(self.store.backend().write(batch)?));
        match written {
            Ok(()) => {
                *point = last;
                self.committed
                    .store(last, std::sync::atomic::Ordering::Release);
                for pending in group {
                    for set in &pending.sets {
                        if set.ephemeral {
                            self.note_removed(set);
                        } else {
                            *self.written.entry(set.table_id.0).or_default() +=
                                set.changes.len() as u64;
                        }
                    }
                    self.sink().publish(pending.sets);
                    let _ = pending.done.send(Ok(()));
                }
            }
            Err(e) => {
                let message = e.to_string();
                for pending in group {
                    let error = match &e {
                        CoreError::Store(_) => {
                            kalamdb_store::StoreError::Engine(message.clone()).into()
                        }
                        _ => CoreError::Internal(message.clone()),
                    };
                    let _ = pending.done.send(Err(error));
                }
            }
        }
    }
}

impl WriteFunnel {
    /// Tells the STREAM store which rows a committed set of a STREAM table
    /// removed for good (its deletes, and a keyless row's old key).
    fn note_removed(&self, set: &WriteSet) {
        let mut last = None;
        let mut oldest = i64::MAX;
        for change in &set.changes {
            if change.op == ChangeOp::Delete || change.moved_from.is_some() {
                last = Some(change.seq);
                if let Read::Row(seq) = change.read {
                    oldest = oldest.min(seq);
                }
            }
        }
        if let Some(last) = last {
            self.streams
                .note_removed(set.table_id.0, &set.scope, last, oldest);
        }
    }

    /// Whether a row a change of `sets` was computed from has been replaced
    /// since it was read (checked at the commit point, where nothing else
    /// writes). A key an earlier change of the same commit wrote is this
    /// commit's own.
    fn conflict(
        &self,
        sets: &[WriteSet],
        written_by_group: &std::collections::HashSet<Vec<u8>>,
        point: i64,
    ) -> CoreResult<Option<CoreError>> {
        if !reads_rows(sets) {
            return Ok(None);
        }
        // nothing committed since every read began: all still hold, unless
        // an earlier commit of this group wrote one of the keys
        let unchanged = sets
            .iter()
            .filter(|s| s.changes.iter().any(|c| c.read != Read::Nothing))
            .all(|s| s.read_at == Some(point));
        if unchanged && written_by_group.is_empty() {
            return Ok(None);
        }
        // the keys to check, each against what its change read: not those an
        // earlier change of this commit wrote (its own)
        let mut own: std::collections::HashSet<&[u8]> = std::collections::HashSet::new();
        let mut keys: Vec<Vec<u8>> = Vec::new();
        let mut checks: Vec<(Read, usize)> = Vec::new();
        for (at, set) in sets.iter().enumerate() {
            for change in &set.changes {
                let read_key = change.moved_from.as_deref().unwrap_or(&change.key);
                if change.read != Read::Nothing && !own.contains(read_key) {
                    if written_by_group.contains(read_key) {
                        return Ok(Some(conflict(set)));
                    }
                    keys.push(read_key.to_vec());
                    checks.push((change.read, at));
                }
                own.insert(read_key);
                own.insert(&change.key);
            }
        }
        if unchanged {
            return Ok(None);
        }
        let mut stale = None;
        self.store.get_many_with(&keys, &mut |i, bytes| {
            let stored = match bytes {
                Some(bytes) => {
                    let row = kalamdb_store::row::RowView::decode(bytes)?;
                    Some((row.seq, row.deleted))
                }
                None => None,
            };
            if stale.is_none() && !checks[i].0.holds(stored) {
                stale = Some(checks[i].1);
            }
            Ok(())
        })?;
        Ok(stale.map(|at| conflict(&sets[at])))
    }
}

/// Whether any change of `sets` was computed from a stored row.
fn reads_rows(sets: &[WriteSet]) -> bool {
    sets.iter()
        .flat_map(|s| &s.changes)
        .any(|c| c.read != Read::Nothing)
}

fn conflict(set: &WriteSet) -> CoreError {
    CoreError::WriteConflict(format!(
        "A row of table {} changed between this write's read and its commit; run it again",
        set.table_id.0
    ))
}

/// The one storage batch of `sets`; `None` when they change nothing.
fn batch_of(sets: &[WriteSet], indexes: &IndexCatalog) -> CoreResult<Option<Batch>> {
    let rows: usize = sets.iter().map(WriteSet::len).sum();
    if rows == 0 {
        return Ok(None);
    }
    let mut batch = Batch::with_capacity(rows);
    for set in sets {
        set.to_batch(&mut batch, indexes)?;
    }
    Ok(Some(batch))
}

mod entries;
#[cfg(test)]
mod tests;

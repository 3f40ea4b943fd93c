//! STREAM tables' rows: in memory only, never in RocksDB or Parquet.
//!
//! [`RowBackend`] is the storage every part of KalamDB writes and reads
//! through. It passes everything to the durable engine except the `data`
//! keys of STREAM tables, which it keeps in [`StreamTables`]: one ordered
//! map holding, like the durable layout, `table_id | user_id | key` (a
//! keyless table's key is its `_seq`, so a user's events are in `_seq`
//! order). So the row reader, the write funnel, transactions, DROP and the
//! cleanup jobs treat STREAM rows exactly as others, and none of them can
//! put one on disk by mistake. A restart starts every STREAM table empty.
//!
//! Memory is bounded per table: a table past its row cap (`MAX_ROWS`,
//! [`DEFAULT_STREAM_MAX_ROWS`] by default) is flagged here, and
//! `stream_eviction` evicts its oldest rows (lowest `_seq` first) down to
//! 90 % of the cap; rows older than the table's TTL are removed by the
//! StreamEviction job, both through the write funnel.

use crate::table_store::RowScope;
use kalamdb_commons::{TableDefinition, TableType};
use kalamdb_store::backend::{ManyVisitor, ScanVisitor};
use kalamdb_store::{Batch, Partition, StorageBackend, StoreResult};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// Row cap of a STREAM table declared without `MAX_ROWS`.
pub const DEFAULT_STREAM_MAX_ROWS: u64 = 100_000;

/// Rows a memory scan copies out per lock hold (the visitor runs unlocked).
const SCAN_CHUNK: usize = 256;

fn table_of(key: &[u8]) -> Option<u64> {
    key.get(..8)
        .map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")))
}

#[derive(Default)]
struct Rows {
    map: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Rows held per table.
    counts: HashMap<u64, u64>,
}

impl Rows {
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>, table: u64) {
        if self.map.insert(key, value).is_none() {
            *self.counts.entry(table).or_default() += 1;
        }
    }

    fn delete(&mut self, key: &[u8], table: u64) {
        if self.map.remove(key).is_some()
            && let Some(n) = self.counts.get_mut(&table)
        {
            *n = n.saturating_sub(1);
        }
    }

    fn delete_range(&mut self, start: &[u8], end: &[u8]) {
        let doomed: Vec<Vec<u8>> = self
            .map
            .range::<[u8], _>((Bound::Included(start), Bound::Excluded(end)))
            .map(|(k, _)| k.clone())
            .collect();
        for key in doomed {
            if let Some(table) = table_of(&key) {
                self.delete(&key, table);
            }
        }
    }
}

/// The STREAM tables of this process and their rows.
#[derive(Default)]
pub struct StreamTables {
    /// Table id → row cap. Ids are never reused, so a dropped table's id
    /// stays here: its leftover deletes still reach memory, never disk.
    tables: RwLock<HashMap<u64, u64>>,
    any: AtomicBool,
    rows: RwLock<Rows>,
    over_cap: Mutex<BTreeSet<u64>>,
    /// Woken when a table passes its cap.
    pub over_cap_signal: tokio::sync::Notify,
    /// Per table and user: the rows removed for good, so a resume that
    /// would miss their deletes is refused.
    removed: Mutex<HashMap<(u64, RowScope), Removals>>,
    /// The first `_seq` of this process: every STREAM row before it is gone.
    started: i64,
}

/// Hard deletes one table partition had, newest last: `(the delete's _seq,
/// the lowest _seq of a row it removed)`. A client at cursor `c` may hold a
/// removed row (its `_seq` ≤ `c`) and never hear of the delete (after `c`).
#[derive(Default)]
struct Removals {
    log: std::collections::VecDeque<(i64, i64)>,
    /// Cursors below it are refused: the log forgot what came before.
    floor: i64,
}

/// Hard deletes remembered per table partition; older ones raise the floor.
const REMOVALS_KEPT: usize = 256;

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The row cap of a STREAM table.
pub fn row_cap(def: &TableDefinition) -> u64 {
    def.options
        .max_rows
        .unwrap_or(DEFAULT_STREAM_MAX_ROWS)
        .max(1)
}

impl StreamTables {
    pub fn new() -> Self {
        Self {
            started: kalamdb_commons::snowflake::first_id_at(kalamdb_commons::now_ms() as u64),
            ..Self::default()
        }
    }

    /// Records that a commit with `_seq`s up to `seq` removed rows of a
    /// STREAM table partition, the oldest of them written at `oldest`.
    pub fn note_removed(&self, table: u64, scope: &RowScope, seq: i64, oldest: i64) {
        let mut removed = lock(&self.removed);
        let log = removed.entry((table, scope.clone())).or_default();
        log.log.push_back((seq, oldest));
        if log.log.len() > REMOVALS_KEPT
            && let Some((forgotten, _)) = log.log.pop_front()
        {
            log.floor = log.floor.max(forgotten);
        }
    }

    /// Whether a live query of a STREAM table partition can resume from
    /// cursor `from` knowing every row removed since: no row it may hold
    /// was removed for good after it, and the rows are from this process.
    pub fn answers_from(&self, table: u64, scope: &RowScope, from: i64) -> bool {
        if from < self.started {
            return false;
        }
        match lock(&self.removed).get(&(table, scope.clone())) {
            None => true,
            Some(log) => {
                from >= log.floor
                    && !log
                        .log
                        .iter()
                        .any(|&(seq, oldest)| seq > from && oldest <= from)
            }
        }
    }

    /// Routes `def`'s rows to memory if it is a STREAM table.
    pub fn register(&self, def: &TableDefinition) {
        if def.table_type == TableType::Stream {
            write(&self.tables).insert(def.table_id.0, row_cap(def));
            self.any.store(true, Ordering::Release);
        }
    }

    fn holds(&self, partition: Partition, key: &[u8]) -> bool {
        partition == Partition::Data
            && self.any.load(Ordering::Acquire)
            && table_of(key).is_some_and(|t| read(&self.tables).contains_key(&t))
    }

    /// Rows a STREAM table holds now (all users).
    pub fn row_count(&self, table: kalamdb_commons::TableId) -> u64 {
        read(&self.rows).counts.get(&table.0).copied().unwrap_or(0)
    }

    /// Rows of every STREAM table together.
    pub fn total_rows(&self) -> usize {
        read(&self.rows).map.len()
    }

    /// The tables past their cap since the last call.
    pub fn take_over_cap(&self) -> Vec<u64> {
        std::mem::take(&mut *lock(&self.over_cap))
            .into_iter()
            .collect()
    }

    fn apply(&self, ops: Vec<kalamdb_store::backend::Op>) {
        use kalamdb_store::backend::Op;
        let mut touched = BTreeSet::new();
        {
            let mut rows = write(&self.rows);
            for op in ops {
                match op {
                    Op::Put(_, key, value) => {
                        if let Some(t) = table_of(&key) {
                            touched.insert(t);
                            rows.put(key, value, t);
                        }
                    }
                    Op::Delete(_, key) => {
                        if let Some(t) = table_of(&key) {
                            rows.delete(&key, t);
                        }
                    }
                    Op::DeleteRange(_, start, end) => rows.delete_range(&start, &end),
                }
            }
            let tables = read(&self.tables);
            let over: Vec<u64> = touched
                .into_iter()
                .filter(|t| {
                    let cap = tables.get(t).copied().unwrap_or(u64::MAX);
                    rows.counts.get(t).copied().unwrap_or(0) > cap
                })
                .collect();
            if over.is_empty() {
                return;
            }
            lock(&self.over_cap).extend(over);
        }
        self.over_cap_signal.notify_one();
    }

    fn get_with(
        &self,
        key: &[u8],
        f: &mut dyn FnMut(Option<&[u8]>) -> StoreResult<()>,
    ) -> StoreResult<()> {
        let value = read(&self.rows).map.get(key).cloned();
        f(value.as_deref())
    }

    /// Visits `[start, end)` in ascending key order, or descending when
    /// `reverse`, a chunk of rows copied out of the lock at a time.
    fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        reverse: bool,
        visit: &mut ScanVisitor<'_>,
    ) -> StoreResult<()> {
        let mut low = Bound::Included(start.to_vec());
        let mut high = Bound::Excluded(end.to_vec());
        loop {
            let chunk: Vec<(Vec<u8>, Vec<u8>)> = {
                let rows = read(&self.rows);
                let range = rows.map.range((low.clone(), high.clone()));
                let copy = |(k, v): (&Vec<u8>, &Vec<u8>)| (k.clone(), v.clone());
                if reverse {
                    range.rev().take(SCAN_CHUNK).map(copy).collect()
                } else {
                    range.take(SCAN_CHUNK).map(copy).collect()
                }
            };
            let done = chunk.len() < SCAN_CHUNK;
            for (k, v) in &chunk {
                if !visit(k, v)? {
                    return Ok(());
                }
            }
            match chunk.into_iter().last() {
                Some((last, _)) if !done => {
                    if reverse {
                        high = Bound::Excluded(last);
                    } else {
                        low = Bound::Excluded(last);
                    }
                }
                _ => return Ok(()),
            }
        }
    }
}

/// The storage everything reads and writes through: the durable engine,
/// with STREAM tables' rows diverted to [`StreamTables`].
pub struct RowBackend {
    durable: Arc<dyn StorageBackend>,
    streams: Arc<StreamTables>,
}

impl RowBackend {
    pub fn new(durable: Arc<dyn StorageBackend>, streams: Arc<StreamTables>) -> Self {
        Self { durable, streams }
    }
}

impl StorageBackend for RowBackend {
    fn get_with(
        &self,
        partition: Partition,
        key: &[u8],
        f: &mut dyn FnMut(Option<&[u8]>) -> StoreResult<()>,
    ) -> StoreResult<()> {
        if self.streams.holds(partition, key) {
            return self.streams.get_with(key, f);
        }
        self.durable.get_with(partition, key, f)
    }

    fn exists_many(&self, partition: Partition, keys: &[Vec<u8>]) -> StoreResult<Vec<bool>> {
        if keys
            .first()
            .is_some_and(|k| self.streams.holds(partition, k))
        {
            let rows = read(&self.streams.rows);
            return Ok(keys.iter().map(|k| rows.map.contains_key(k)).collect());
        }
        self.durable.exists_many(partition, keys)
    }

    fn get_many_with(
        &self,
        partition: Partition,
        keys: &[Vec<u8>],
        f: &mut ManyVisitor<'_>,
    ) -> StoreResult<()> {
        if keys
            .first()
            .is_some_and(|k| self.streams.holds(partition, k))
        {
            let values: Vec<Option<Vec<u8>>> = {
                let rows = read(&self.streams.rows);
                keys.iter().map(|k| rows.map.get(k).cloned()).collect()
            };
            for (i, v) in values.iter().enumerate() {
                f(i, v.as_deref())?;
            }
            return Ok(());
        }
        self.durable.get_many_with(partition, keys, f)
    }

    fn scan_ordered(
        &self,
        partition: Partition,
        start: &[u8],
        end: &[u8],
        reverse: bool,
        visit: &mut ScanVisitor<'_>,
    ) -> StoreResult<()> {
        if self.streams.holds(partition, start) {
            return self.streams.scan(start, end, reverse, visit);
        }
        self.durable
            .scan_ordered(partition, start, end, reverse, visit)
    }

    fn write(&self, batch: Batch) -> StoreResult<()> {
        use kalamdb_store::backend::Op;
        let for_memory = |op: &Op| {
            let (partition, key) = op.target();
            self.streams.holds(partition, key)
        };
        // most writes touch no STREAM table: they pass through untouched
        if !self.streams.any.load(Ordering::Acquire) || !batch.ops().iter().any(for_memory) {
            return self.durable.write(batch);
        }
        let mut durable = Batch::new();
        let mut memory = Vec::new();
        for op in batch.into_ops() {
            if for_memory(&op) {
                memory.push(op);
            } else {
                match op {
                    Op::Put(p, k, v) => durable.put(p, k, v),
                    Op::Delete(p, k) => durable.delete(p, k),
                    Op::DeleteRange(p, s, e) => durable.delete_range(p, s, e),
                }
            }
        }
        if !durable.is_empty() {
            self.durable.write(durable)?;
        }
        if !memory.is_empty() {
            self.streams.apply(memory);
        }
        Ok(())
    }

    fn compact_range(&self, partition: Partition, start: &[u8], end: &[u8]) -> StoreResult<()> {
        self.durable.compact_range(partition, start, end)
    }

    fn approximate_size(&self, partition: Partition, start: &[u8], end: &[u8]) -> u64 {
        self.durable.approximate_size(partition, start, end)
    }

    fn memory_usage(&self) -> (u64, u64) {
        self.durable.memory_usage()
    }

    fn engine_stats(&self) -> kalamdb_store::EngineStats {
        self.durable.engine_stats()
    }

    fn sync_wal(&self) -> StoreResult<()> {
        self.durable.sync_wal()
    }

    fn syncs_writes(&self) -> bool {
        self.durable.syncs_writes()
    }

    /// STREAM rows live in memory only: a checkpoint holds the durable ones.
    fn checkpoint(&self, dir: &std::path::Path) -> StoreResult<()> {
        self.durable.checkpoint(dir)
    }
}

//! The narrow contract between KalamDB and its key-value engine.

use crate::error::StoreResult;

/// The fixed set of key spaces (RocksDB column families).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Partition {
    /// Namespaces, table definitions, users, counters.
    Meta,
    /// Table rows.
    Data,
    /// Secondary indexes (seq index).
    Index,
    /// Change log for live queries.
    Changelog,
}

impl Partition {
    pub const ALL: [Partition; 4] = [
        Partition::Meta,
        Partition::Data,
        Partition::Index,
        Partition::Changelog,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Partition::Meta => "meta",
            Partition::Data => "data",
            Partition::Index => "index",
            Partition::Changelog => "changelog",
        }
    }
}

/// One change inside a [`Batch`].
#[derive(Debug)]
pub enum Op {
    Put(Partition, Vec<u8>, Vec<u8>),
    Delete(Partition, Vec<u8>),
    DeleteRange(Partition, Vec<u8>, Vec<u8>),
}

/// Everything one statement writes; applied atomically by
/// [`StorageBackend::write`].
#[derive(Debug, Default)]
pub struct Batch {
    ops: Vec<Op>,
}

impl Batch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_capacity(n: usize) -> Self {
        Self {
            ops: Vec::with_capacity(n),
        }
    }

    pub fn put(&mut self, partition: Partition, key: Vec<u8>, value: Vec<u8>) {
        self.ops.push(Op::Put(partition, key, value));
    }

    pub fn delete(&mut self, partition: Partition, key: Vec<u8>) {
        self.ops.push(Op::Delete(partition, key));
    }

    /// Deletes every key in `[start, end)`.
    pub fn delete_range(&mut self, partition: Partition, start: Vec<u8>, end: Vec<u8>) {
        self.ops.push(Op::DeleteRange(partition, start, end));
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    pub fn into_ops(self) -> Vec<Op> {
        self.ops
    }
}

impl Op {
    /// The partition and (first) key the operation touches.
    pub fn target(&self) -> (Partition, &[u8]) {
        match self {
            Op::Put(p, k, _) | Op::Delete(p, k) | Op::DeleteRange(p, k, _) => (*p, k),
        }
    }
}

/// Visitor for [`StorageBackend::scan`]: gets each key and value in order and
/// returns whether to go on.
/// Sees each key's index and its stored bytes (`None` when absent).
pub type ManyVisitor<'a> = dyn FnMut(usize, Option<&[u8]>) -> StoreResult<()> + 'a;

pub type ScanVisitor<'a> = dyn FnMut(&[u8], &[u8]) -> StoreResult<bool> + 'a;

pub trait StorageBackend: Send + Sync {
    /// Reads one key; `f` sees the value without a copy.
    fn get_with(
        &self,
        partition: Partition,
        key: &[u8],
        f: &mut dyn FnMut(Option<&[u8]>) -> StoreResult<()>,
    ) -> StoreResult<()>;

    /// Reads one key into an owned buffer.
    fn get(&self, partition: Partition, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        let mut out = None;
        self.get_with(partition, key, &mut |v| {
            out = v.map(<[u8]>::to_vec);
            Ok(())
        })?;
        Ok(out)
    }

    /// Whether each of `keys` exists (one batched lookup).
    fn exists_many(&self, partition: Partition, keys: &[Vec<u8>]) -> StoreResult<Vec<bool>>;

    /// Reads many keys at once; `f` sees each key's index and stored bytes
    /// (`None` when absent), without copying them, in the order of `keys`.
    fn get_many_with(
        &self,
        partition: Partition,
        keys: &[Vec<u8>],
        f: &mut ManyVisitor<'_>,
    ) -> StoreResult<()>;

    /// Visits keys in `[start, end)` in ascending order — descending when
    /// `reverse` — until `visit` returns false. Memory use does not depend
    /// on the range size.
    fn scan_ordered(
        &self,
        partition: Partition,
        start: &[u8],
        end: &[u8],
        reverse: bool,
        visit: &mut ScanVisitor<'_>,
    ) -> StoreResult<()>;

    /// [`StorageBackend::scan_ordered`], ascending.
    fn scan(
        &self,
        partition: Partition,
        start: &[u8],
        end: &[u8],
        visit: &mut ScanVisitor<'_>,
    ) -> StoreResult<()> {
        self.scan_ordered(partition, start, end, false, visit)
    }

    /// [`StorageBackend::scan_ordered`], descending: from the last key
    /// before `end` down to `start`.
    fn scan_reverse(
        &self,
        partition: Partition,
        start: &[u8],
        end: &[u8],
        visit: &mut ScanVisitor<'_>,
    ) -> StoreResult<()> {
        self.scan_ordered(partition, start, end, true, visit)
    }

    /// Applies the batch atomically (one write-ahead-log record).
    fn write(&self, batch: Batch) -> StoreResult<()>;

    /// Physically rewrites `[start, end)` so deleted data there stops taking
    /// space (range deletes only add tombstones until compaction).
    fn compact_range(&self, partition: Partition, start: &[u8], end: &[u8]) -> StoreResult<()>;

    /// On-disk bytes (compressed, flushed data only) of `[start, end)`.
    fn approximate_size(&self, partition: Partition, start: &[u8], end: &[u8]) -> u64;

    /// Memory held by the engine: (memtables, block cache), in bytes.
    fn memory_usage(&self) -> (u64, u64);

    /// What the engine reports about itself, for metrics (zeros where it
    /// keeps no such figure).
    fn engine_stats(&self) -> EngineStats {
        let (memtable_bytes, block_cache_bytes) = self.memory_usage();
        EngineStats {
            memtable_bytes,
            block_cache_bytes,
            ..EngineStats::default()
        }
    }

    /// Makes everything written so far durable on disk.
    fn sync_wal(&self) -> StoreResult<()>;

    /// Whether every `write` waits for an fsync. Callers then write from a
    /// blocking thread, so concurrent writers can share one fsync.
    fn syncs_writes(&self) -> bool {
        false
    }

    /// Writes a consistent copy of the whole store, as of one instant, to
    /// the directory `dir` (which must not exist yet); on the same
    /// filesystem its immutable files are hard links. Writes go on
    /// meanwhile.
    fn checkpoint(&self, dir: &std::path::Path) -> StoreResult<()> {
        let _ = dir;
        Err(crate::StoreError::Engine(
            "this store cannot take a checkpoint".into(),
        ))
    }
}

/// A storage engine's own figures, read when metrics are scraped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    pub memtable_bytes: u64,
    pub block_cache_bytes: u64,
    /// Bytes compaction estimates it still has to rewrite.
    pub pending_compaction_bytes: u64,
    /// Time writers were slowed down or stopped by the engine, since open.
    pub write_stall_micros: u64,
    /// Times writes were delayed or stopped, since open.
    pub write_stalls: u64,
    /// Whether writes are stopped right now.
    pub writes_stopped: bool,
    /// WAL fsyncs since open.
    pub wal_syncs: u64,
}

/// The smallest key greater than every key starting with `prefix`, or `None`
/// if there is none (all bytes 0xFF).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_the_next_prefix() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[1, 0xFF]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xFF, 0xFF]), None);
    }
}

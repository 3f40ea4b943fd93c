//! [`StorageBackend`] on RocksDB: one database, one column family per
//! [`Partition`], WAL always on.

use crate::backend::{Batch, EngineStats, ManyVisitor, Op, Partition, ScanVisitor, StorageBackend};
use crate::error::{StoreError, StoreResult};
use rocksdb::{
    BlockBasedIndexType, BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DB,
    DBCompressionType, Options, ReadOptions, WriteBatch, WriteOptions,
};
use std::path::Path;

#[derive(Debug, Clone)]
pub struct RocksDbOptions {
    /// fsync the WAL on every write (group-committed across writers).
    pub sync_writes: bool,
    /// Shared block cache for all column families.
    pub block_cache_bytes: usize,
    /// Memtable size per column family.
    pub write_buffer_bytes: usize,
}

impl Default for RocksDbOptions {
    fn default() -> Self {
        Self {
            sync_writes: false,
            block_cache_bytes: 64 << 20,
            write_buffer_bytes: 32 << 20,
        }
    }
}

pub struct RocksDbBackend {
    db: DB,
    sync_writes: bool,
}

impl RocksDbBackend {
    /// Opens (or creates) the database under `path`.
    pub fn open(path: &Path, options: &RocksDbOptions) -> StoreResult<Self> {
        std::fs::create_dir_all(path)
            .map_err(|e| StoreError::Engine(format!("cannot create the data directory: {e}")))?;
        let cache = Cache::new_lru_cache(options.block_cache_bytes);
        let mut table_options = BlockBasedOptions::default();
        table_options.set_block_cache(&cache);
        table_options.set_bloom_filter(10.0, false);
        table_options.set_cache_index_and_filter_blocks(true);
        // Index and filter blocks in partitions of about a data block each,
        // with only their small top level pinned: a big file's whole
        // filter (megabytes at the bottom level) would be larger than a
        // shard of the block cache, never stay cached, and be read back
        // and checked for every lookup in that file.
        table_options.set_index_type(BlockBasedIndexType::TwoLevelIndexSearch);
        table_options.set_partition_filters(true);
        table_options.set_metadata_block_size(4096);
        table_options.set_pin_top_level_index_and_filter(true);
        table_options.set_cache_index_and_filter_blocks_with_high_priority(true);
        table_options.set_pin_l0_filter_and_index_blocks_in_cache(true);

        let cf_options = || {
            let mut o = Options::default();
            o.set_block_based_table_factory(&table_options);
            o.set_compression_type(DBCompressionType::Lz4);
            o.set_bottommost_compression_type(DBCompressionType::Zstd);
            o.set_write_buffer_size(options.write_buffer_bytes);
            o
        };
        let mut db_options = cf_options();
        db_options.create_if_missing(true);
        db_options.create_missing_column_families(true);
        db_options.set_max_background_jobs(2);
        db_options.set_keep_log_file_num(5);

        let descriptors = Partition::ALL
            .iter()
            .map(|p| ColumnFamilyDescriptor::new(p.name(), cf_options()));
        let db = DB::open_cf_descriptors(&db_options, path, descriptors)?;
        Ok(Self {
            db,
            sync_writes: options.sync_writes,
        })
    }

    /// Opens a copy made by [`StorageBackend::checkpoint`] for reading
    /// only: nothing under `path` is changed.
    pub fn open_read_only(path: &Path) -> StoreResult<Self> {
        if !path.join("CURRENT").is_file() {
            return Err(StoreError::Engine(format!(
                "no database under '{}'",
                path.display()
            )));
        }
        let descriptors = Partition::ALL
            .iter()
            .map(|p| ColumnFamilyDescriptor::new(p.name(), Options::default()));
        let db = DB::open_cf_descriptors_read_only(&Options::default(), path, descriptors, false)?;
        Ok(Self {
            db,
            sync_writes: false,
        })
    }

    fn cf(&self, partition: Partition) -> StoreResult<&ColumnFamily> {
        self.db.cf_handle(partition.name()).ok_or_else(|| {
            StoreError::Engine(format!("missing column family {}", partition.name()))
        })
    }

    /// Flushes memtables to SST files so the next start replays no WAL.
    pub fn flush_all(&self) -> StoreResult<()> {
        for p in Partition::ALL {
            self.db.flush_cf(self.cf(p)?)?;
        }
        Ok(())
    }
}

impl StorageBackend for RocksDbBackend {
    fn checkpoint(&self, dir: &Path) -> StoreResult<()> {
        // log_size_for_flush 0: memtables are flushed first, so the copy is
        // this instant and needs no WAL replay
        rocksdb::checkpoint::Checkpoint::new(&self.db)?.create_checkpoint_with_log_size(dir, 0)?;
        Ok(())
    }

    fn get_with(
        &self,
        partition: Partition,
        key: &[u8],
        f: &mut dyn FnMut(Option<&[u8]>) -> StoreResult<()>,
    ) -> StoreResult<()> {
        let value = self.db.get_pinned_cf(self.cf(partition)?, key)?;
        f(value.as_deref())
    }

    fn exists_many(&self, partition: Partition, keys: &[Vec<u8>]) -> StoreResult<Vec<bool>> {
        let cf = self.cf(partition)?;
        self.db
            .batched_multi_get_cf(cf, keys, false)
            .into_iter()
            .map(|r| r.map(|v| v.is_some()).map_err(StoreError::from))
            .collect()
    }

    fn get_many_with(
        &self,
        partition: Partition,
        keys: &[Vec<u8>],
        f: &mut ManyVisitor<'_>,
    ) -> StoreResult<()> {
        let cf = self.cf(partition)?;
        for (i, result) in self
            .db
            .batched_multi_get_cf(cf, keys, false)
            .into_iter()
            .enumerate()
        {
            f(i, result?.as_deref())?;
        }
        Ok(())
    }

    fn approximate_size(&self, partition: Partition, start: &[u8], end: &[u8]) -> u64 {
        match self.cf(partition) {
            Ok(cf) => self
                .db
                .get_approximate_sizes_cf(&cf, &[rocksdb::Range::new(start, end)])
                .first()
                .copied()
                .unwrap_or(0),
            Err(_) => 0,
        }
    }

    fn memory_usage(&self) -> (u64, u64) {
        let total = |name: &str| -> u64 {
            Partition::ALL
                .iter()
                .filter_map(|p| self.cf(*p).ok())
                .filter_map(|cf| self.db.property_int_value_cf(&cf, name).ok().flatten())
                .sum()
        };
        // The block cache is shared by every column family: read it once.
        let cache = self
            .cf(Partition::Data)
            .ok()
            .and_then(|cf| {
                self.db
                    .property_int_value_cf(&cf, "rocksdb.block-cache-usage")
                    .ok()
                    .flatten()
            })
            .unwrap_or(0);
        (total("rocksdb.cur-size-all-mem-tables"), cache)
    }

    fn engine_stats(&self) -> EngineStats {
        let (memtable_bytes, block_cache_bytes) = self.memory_usage();
        let db_total = |name: &str| -> u64 {
            Partition::ALL
                .iter()
                .filter_map(|p| self.cf(*p).ok())
                .filter_map(|cf| self.db.property_int_value_cf(&cf, name).ok().flatten())
                .sum()
        };
        // RocksDB's own DB stats (kept without `enable_statistics`, which
        // would cost every read and write)
        let db_stats = self
            .db
            .property_value("rocksdb.dbstats")
            .ok()
            .flatten()
            .unwrap_or_default();
        let (wal_syncs, write_stall_micros) = parse_db_stats(&db_stats);
        let write_stalls = Partition::ALL
            .iter()
            .filter_map(|p| self.cf(*p).ok())
            .filter_map(|cf| {
                self.db
                    .property_value_cf(&cf, "rocksdb.cf-write-stall-stats")
                    .ok()
                    .flatten()
            })
            .map(|text| stat_after(&text, "total-delays: ") + stat_after(&text, "total-stops: "))
            .sum();
        EngineStats {
            memtable_bytes,
            block_cache_bytes,
            pending_compaction_bytes: db_total("rocksdb.estimate-pending-compaction-bytes"),
            write_stall_micros,
            write_stalls,
            writes_stopped: db_total("rocksdb.is-write-stopped") > 0,
            wal_syncs,
        }
    }

    fn compact_range(&self, partition: Partition, start: &[u8], end: &[u8]) -> StoreResult<()> {
        self.db
            .compact_range_cf(self.cf(partition)?, Some(start), Some(end));
        Ok(())
    }

    fn scan_ordered(
        &self,
        partition: Partition,
        start: &[u8],
        end: &[u8],
        reverse: bool,
        visit: &mut ScanVisitor<'_>,
    ) -> StoreResult<()> {
        let mut read_options = ReadOptions::default();
        read_options.set_iterate_lower_bound(start.to_vec());
        read_options.set_iterate_upper_bound(end.to_vec());
        let mut it = self
            .db
            .raw_iterator_cf_opt(self.cf(partition)?, read_options);
        if reverse {
            it.seek_to_last();
        } else {
            it.seek(start);
        }
        while it.valid() {
            let (Some(key), Some(value)) = (it.key(), it.value()) else {
                break;
            };
            if !visit(key, value)? {
                return Ok(());
            }
            if reverse {
                it.prev();
            } else {
                it.next();
            }
        }
        it.status()?;
        Ok(())
    }

    fn write(&self, batch: Batch) -> StoreResult<()> {
        let mut wb = WriteBatch::default();
        for op in batch.into_ops() {
            match op {
                Op::Put(p, k, v) => wb.put_cf(self.cf(p)?, k, v),
                Op::Delete(p, k) => wb.delete_cf(self.cf(p)?, k),
                Op::DeleteRange(p, s, e) => wb.delete_range_cf(self.cf(p)?, s, e),
            }
        }
        let mut write_options = WriteOptions::default();
        write_options.set_sync(self.sync_writes);
        self.db.write_opt(wb, &write_options)?;
        Ok(())
    }

    fn sync_wal(&self) -> StoreResult<()> {
        self.db.flush_wal(true)?;
        Ok(())
    }

    fn syncs_writes(&self) -> bool {
        self.sync_writes
    }
}

/// The integer right after `label` in `text` (0 when absent).
fn stat_after(text: &str, label: &str) -> u64 {
    text.find(label)
        .map(|i| &text[i + label.len()..])
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// (WAL syncs, cumulative write stall in µs) from `rocksdb.dbstats`:
/// `Cumulative WAL: 12 writes, 3 syncs, …` and
/// `Cumulative stall: 00:00:1.250 H:M:S, …`.
fn parse_db_stats(text: &str) -> (u64, u64) {
    let syncs = text
        .find("Cumulative WAL: ")
        .and_then(|i| {
            text[i..]
                .find(" writes, ")
                .map(|j| i + j + " writes, ".len())
        })
        .map_or(0, |i| stat_after(&text[i..], ""));
    let stall = text
        .find("Cumulative stall: ")
        .map(|i| &text[i + "Cumulative stall: ".len()..])
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|hms| {
            let mut parts = hms.split(':');
            let h: f64 = parts.next()?.parse().ok()?;
            let m: f64 = parts.next()?.parse().ok()?;
            let s: f64 = parts.next()?.parse().ok()?;
            Some(((h * 3600.0 + m * 60.0 + s) * 1e6).round() as u64)
        })
        .unwrap_or(0);
    (syncs, stall)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &Path) -> RocksDbBackend {
        RocksDbBackend::open(dir, &RocksDbOptions::default()).unwrap()
    }

    #[test]
    fn a_checkpoint_is_one_instant_and_opens_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir.path().join("db"));
        let put = |k: &str| {
            let mut b = Batch::new();
            b.put(Partition::Data, k.as_bytes().to_vec(), b"v".to_vec());
            db.write(b).unwrap();
        };
        put("before");
        let copy = dir.path().join("copy");
        db.checkpoint(&copy).unwrap();
        put("after");
        // a second checkpoint into the same place is refused
        assert!(db.checkpoint(&copy).is_err());
        let read = RocksDbBackend::open_read_only(&copy).unwrap();
        assert!(read.get(Partition::Data, b"before").unwrap().is_some());
        assert!(read.get(Partition::Data, b"after").unwrap().is_none());
        let mut b = Batch::new();
        b.put(Partition::Data, b"x".to_vec(), b"y".to_vec());
        assert!(read.write(b).is_err(), "opened read-only");
        assert!(RocksDbBackend::open_read_only(&dir.path().join("none")).is_err());
    }

    #[test]
    fn batch_is_atomic_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = open(dir.path());
            let mut b = Batch::new();
            b.put(Partition::Data, b"k1".to_vec(), b"v1".to_vec());
            b.put(Partition::Meta, b"m".to_vec(), b"x".to_vec());
            db.write(b).unwrap();
        }
        let db = open(dir.path());
        assert_eq!(
            db.get(Partition::Data, b"k1").unwrap(),
            Some(b"v1".to_vec())
        );
        assert_eq!(db.get(Partition::Meta, b"m").unwrap(), Some(b"x".to_vec()));
        assert_eq!(
            db.get(Partition::Meta, b"k1").unwrap(),
            None,
            "partitions are separate"
        );
    }

    #[test]
    fn scan_visits_the_range_in_order_and_stops_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path());
        let mut b = Batch::new();
        for i in 0u8..10 {
            b.put(Partition::Data, vec![1, i], vec![i]);
        }
        b.put(Partition::Data, vec![2, 0], vec![99]);
        db.write(b).unwrap();

        let mut seen = Vec::new();
        db.scan(Partition::Data, &[1, 3], &[2], &mut |_, v| {
            seen.push(v[0]);
            Ok(seen.len() < 4)
        })
        .unwrap();
        assert_eq!(seen, vec![3, 4, 5, 6]);
        let mut seen = Vec::new();
        db.scan_reverse(Partition::Data, &[1, 3], &[1, 8], &mut |_, v| {
            seen.push(v[0]);
            Ok(seen.len() < 4)
        })
        .unwrap();
        assert_eq!(seen, vec![7, 6, 5, 4]);
        let mut seen = Vec::new();
        db.scan_reverse(Partition::Data, &[1], &[2, 1], &mut |_, v| {
            seen.push(v[0]);
            Ok(true)
        })
        .unwrap();
        assert_eq!(seen, vec![99, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);

        let mut b = Batch::new();
        b.delete_range(Partition::Data, vec![1], vec![2]);
        db.write(b).unwrap();
        let mut count = 0;
        db.scan(Partition::Data, &[0], &[0xFF], &mut |_, _| {
            count += 1;
            Ok(true)
        })
        .unwrap();
        assert_eq!(count, 1);
        assert_eq!(
            db.exists_many(Partition::Data, &[vec![2, 0], vec![1, 1]])
                .unwrap(),
            vec![true, false]
        );
    }

    #[test]
    fn engine_figures_come_from_rocksdb_db_stats() {
        let text = "** DB Stats **\nCumulative writes: 5 writes, 5 keys\n\
                    Cumulative WAL: 5 writes, 3 syncs, 1.67 writes per sync, written: 0.00 GB\n\
                    Cumulative stall: 00:01:2.500 H:M:S, 0.0 percent\n";
        assert_eq!(parse_db_stats(text), (3, 62_500_000));
        assert_eq!(parse_db_stats(""), (0, 0));
        assert_eq!(
            stat_after("total-delays: 4, total-stops: 2\n", "total-stops: "),
            2
        );

        let dir = tempfile::tempdir().unwrap();
        let db = RocksDbBackend::open(
            dir.path(),
            &RocksDbOptions {
                sync_writes: true,
                ..RocksDbOptions::default()
            },
        )
        .unwrap();
        let mut batch = Batch::new();
        batch.put(Partition::Data, b"k".to_vec(), b"v".to_vec());
        db.write(batch).unwrap();
        let stats = db.engine_stats();
        assert!(stats.wal_syncs >= 1, "{stats:?}");
        assert!(stats.memtable_bytes > 0);
        assert_eq!((stats.write_stalls, stats.writes_stopped), (0, false));
    }
}

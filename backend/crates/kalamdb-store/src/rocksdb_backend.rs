//! [`StorageBackend`] on RocksDB: one database, one column family per
//! [`Partition`], WAL always on.

use crate::backend::{Batch, EngineStats, ManyVisitor, Op, Partition, ScanVisitor, StorageBackend};
use crate::error::{StoreError, StoreResult};
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DB, DBCompressionType, Options,
    ReadOptions, WriteBatch, WriteOptions,
    statistics::{StatsLevel, Ticker},
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
    /// Keep RocksDB's counters (write stalls, WAL syncs) for metrics.
    pub statistics: bool,
}

impl Default for RocksDbOptions {
    fn default() -> Self {
        Self {
            sync_writes: false,
            block_cache_bytes: 64 << 20,
            write_buffer_bytes: 32 << 20,
            statistics: false,
        }
    }
}

pub struct RocksDbBackend {
    db: DB,
    sync_writes: bool,
    /// The database's options: they hold its statistics, when kept.
    db_options: Option<Options>,
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
        if options.statistics {
            // counters only: no timers or histograms on the write path
            db_options.enable_statistics();
            db_options.set_statistics_level(StatsLevel::ExceptHistogramOrTimers);
        }

        let descriptors = Partition::ALL
            .iter()
            .map(|p| ColumnFamilyDescriptor::new(p.name(), cf_options()));
        let db = DB::open_cf_descriptors(&db_options, path, descriptors)?;
        Ok(Self {
            db,
            sync_writes: options.sync_writes,
            db_options: options.statistics.then_some(db_options),
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
        let ticker = |t: Ticker| {
            self.db_options
                .as_ref()
                .map_or(0, |o| o.get_ticker_count(t))
        };
        EngineStats {
            memtable_bytes,
            block_cache_bytes,
            pending_compaction_bytes: db_total("rocksdb.estimate-pending-compaction-bytes"),
            write_stall_micros: ticker(Ticker::StallMicros),
            writes_stopped: db_total("rocksdb.is-write-stopped") > 0,
            wal_syncs: ticker(Ticker::WalFileSynced),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &Path) -> RocksDbBackend {
        RocksDbBackend::open(dir, &RocksDbOptions::default()).unwrap()
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
}

//! Row storage for USER, SHARED and STREAM tables: key construction and the scans
//! every read path uses.
//!
//! A USER table's rows live under `table_id | user_id | pk`; every read for a
//! caller starts from [`RowScope::User`] with the caller's own id, so a scan
//! is a prefix scan of that user's partition and nothing else. There is no
//! method here that scans all users of a USER table.

use crate::cold::ColdTier;
use crate::error::{CoreError, CoreResult};
use kalamdb_commons::{TableDefinition, TableId, TableType, UserId, Value};
use kalamdb_store::backend::prefix_end;
use kalamdb_store::keys::KeyBuilder;
use kalamdb_store::{Batch, Partition, StorageBackend};
use std::sync::Arc;

/// Whose rows an operation touches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum RowScope {
    Shared,
    User(UserId),
}

impl RowScope {
    /// The scope of `table` for the caller `user`.
    pub fn for_table(def: &TableDefinition, user: &UserId) -> CoreResult<Self> {
        match def.table_type {
            TableType::Shared => Ok(RowScope::Shared),
            // a STREAM table's rows are per user, like a USER table's (in
            // memory: see `stream_store`)
            TableType::User | TableType::Stream => Ok(RowScope::User(user.clone())),
            TableType::System => Err(CoreError::PermissionDenied(format!(
                "System table '{}' cannot be written",
                def.table_ref()
            ))),
        }
    }
}

/// Where every entry of one index starts: `table_id | index_id`.
pub fn index_base(table: TableId, index_id: u32) -> Vec<u8> {
    KeyBuilder::with_capacity(12)
        .u64(table.0)
        .raw(&index_id.to_be_bytes())
        .build()
}

/// Where one partition's entries of an index start: the index's base and
/// the partition's part of the row key prefix (the user id, for a USER
/// table). `row_prefix` is a [`partition_prefix`] of the same table.
pub fn index_prefix(index_base: &[u8], row_prefix: &[u8]) -> Vec<u8> {
    let mut prefix = Vec::with_capacity(index_base.len() + row_prefix.len());
    prefix.extend_from_slice(index_base);
    prefix.extend_from_slice(&row_prefix[8.min(row_prefix.len())..]);
    prefix
}

/// Key prefix of all rows of `table` in `scope`.
pub fn partition_prefix(table: TableId, scope: &RowScope) -> Vec<u8> {
    let k = KeyBuilder::with_capacity(48).u64(table.0);
    match scope {
        RowScope::Shared => k.build(),
        RowScope::User(user) => k.str(user.as_str()).build(),
    }
}

/// Where the keys under `prefix` end (exclusive).
pub fn partition_end(prefix: &[u8]) -> Vec<u8> {
    prefix_end(prefix).unwrap_or_else(|| vec![0xFF; prefix.len() + 1])
}

/// The key of one row: the partition prefix plus the encoded values of its
/// primary key's columns, in key order (each encoding is order-preserving
/// and prefix-free, so keys sort column by column).
pub fn row_key<'a>(prefix: &[u8], key: impl IntoIterator<Item = &'a Value>) -> CoreResult<Vec<u8>> {
    let mut builder = KeyBuilder::with_capacity(prefix.len() + 16).raw(prefix);
    for value in key {
        builder = builder.value(value).ok_or_else(|| {
            CoreError::TypeMismatch(format!("{value:?} cannot be a primary key value"))
        })?;
    }
    Ok(builder.build())
}

/// The key of a keyless table's row: the partition prefix plus its `_seq`.
pub fn seq_key(prefix: &[u8], seq: i64) -> Vec<u8> {
    KeyBuilder::with_capacity(prefix.len() + 8)
        .raw(prefix)
        .i64(seq)
        .build()
}

/// The key range holding every row of a table (all users).
pub fn table_range(table: TableId) -> (Vec<u8>, Vec<u8>) {
    (
        KeyBuilder::new().u64(table.0).build(),
        KeyBuilder::new().u64(table.0 + 1).build(),
    )
}

/// Deletes every row of a table (all users), and every entry of its
/// indexes, into `batch`.
pub fn delete_all_rows(batch: &mut Batch, table: TableId) {
    let (start, end) = table_range(table);
    batch.delete_range(Partition::Data, start.clone(), end.clone());
    batch.delete_range(Partition::Index, start, end);
}

/// Deletes every row of one user's partition of a USER table, hot and cold,
/// and the user's entries of its indexes, into `batch`.
pub fn delete_user_rows(batch: &mut Batch, def: &TableDefinition, user: &UserId) -> CoreResult<()> {
    let prefix = partition_prefix(def.table_id, &RowScope::User(user.clone()));
    let end = prefix_end(&prefix)
        .ok_or_else(|| CoreError::Internal("unbounded partition prefix".into()))?;
    for index in &def.indexes {
        let base = index_base(def.table_id, index.index_id);
        let start = index_prefix(&base, &prefix);
        let end = prefix_end(&start)
            .ok_or_else(|| CoreError::Internal("unbounded index prefix".into()))?;
        batch.delete_range(Partition::Index, start, end);
    }
    // the partition's cold tier: its cold index and manifest (the segment
    // files, no longer referenced, go with the next orphan sweep)
    batch.delete_range(
        Partition::Index,
        crate::cold::cold_index_key(&prefix),
        crate::cold::cold_index_key(&end),
    );
    batch.delete(Partition::Index, crate::cold::manifest_key(&prefix));
    batch.delete_range(Partition::Data, prefix, end);
    Ok(())
}

/// Visitor of stored rows: gets each key and value, returns whether to go on.
pub type RowVisitor<'a> = dyn FnMut(&[u8], &[u8]) -> CoreResult<bool> + 'a;

/// Visitor of a multi-get: each key's index and its stored value, if any.
pub type ManyRowVisitor<'a> = dyn FnMut(usize, Option<&[u8]>) -> CoreResult<()> + 'a;

/// Row-level access to the `data` partition. A key whose row moved to the
/// cold tier reads as its cold stub (see [`crate::cold`]): whoever checks a
/// key's `_seq` or whether it is deleted sees the same as before the move;
/// the row reader fetches the values.
#[derive(Clone)]
pub struct TableStore {
    backend: Arc<dyn StorageBackend>,
    cold: Arc<ColdTier>,
}

impl TableStore {
    /// A store with no cold tier.
    pub fn new(backend: Arc<dyn StorageBackend>) -> Self {
        Self::with_cold(
            backend,
            Arc::new(ColdTier::new(Arc::new(
                crate::storages::StorageRegistry::new(None),
            ))),
        )
    }

    pub fn with_cold(backend: Arc<dyn StorageBackend>, cold: Arc<ColdTier>) -> Self {
        Self { backend, cold }
    }

    /// The same store seen through `backend` (a transaction's view).
    pub fn through(&self, backend: Arc<dyn StorageBackend>) -> Self {
        Self::with_cold(backend, Arc::clone(&self.cold))
    }

    pub fn backend(&self) -> &Arc<dyn StorageBackend> {
        &self.backend
    }

    pub fn cold(&self) -> &Arc<ColdTier> {
        &self.cold
    }

    /// Whether the table the key `key` belongs to has rows in the cold tier.
    pub fn has_cold(&self, key: &[u8]) -> CoreResult<bool> {
        let Some(table) = key.get(..8) else {
            return Ok(false);
        };
        let table = u64::from_be_bytes(table.try_into().expect("8 bytes"));
        self.cold.has_cold(self.backend.as_ref(), table)
    }

    /// Visits the rows under `prefix` from `start` (inclusive, a full key, or
    /// the prefix itself) in key order until `visit` returns false.
    pub fn scan_partition(
        &self,
        prefix: &[u8],
        start: &[u8],
        visit: &mut RowVisitor<'_>,
    ) -> CoreResult<()> {
        self.scan_between(start, &partition_end(prefix), false, visit)
    }

    /// Visits the rows with keys in `[start, end)` in key order (descending
    /// when `reverse`) until `visit` returns false.
    pub fn scan_between(
        &self,
        start: &[u8],
        end: &[u8],
        reverse: bool,
        visit: &mut RowVisitor<'_>,
    ) -> CoreResult<()> {
        self.scan_in(Partition::Data, start, end, reverse, visit)
    }

    /// One ordered scan of `partition`, `visit`'s error passed through.
    fn scan_in(
        &self,
        partition: Partition,
        start: &[u8],
        end: &[u8],
        reverse: bool,
        visit: &mut RowVisitor<'_>,
    ) -> CoreResult<()> {
        let mut failure = None;
        let mut on_row = |k: &[u8], v: &[u8]| match visit(k, v) {
            Ok(go_on) => Ok(go_on),
            Err(e) => {
                failure = Some(e);
                Ok(false)
            }
        };
        self.backend
            .scan_ordered(partition, start, end, reverse, &mut on_row)?;
        failure.map_or(Ok(()), Err)
    }

    /// Visits the index entries with keys in `[start, end)` in key order
    /// (descending when `reverse`) until `visit` returns false.
    pub fn scan_index(
        &self,
        start: &[u8],
        end: &[u8],
        reverse: bool,
        visit: &mut RowVisitor<'_>,
    ) -> CoreResult<()> {
        self.scan_in(Partition::Index, start, end, reverse, visit)
    }

    /// Reads one row by key; `f` sees the stored bytes.
    pub fn get_with(
        &self,
        key: &[u8],
        f: &mut dyn FnMut(Option<&[u8]>) -> CoreResult<()>,
    ) -> CoreResult<()> {
        let mut failure = None;
        let mut missing = false;
        self.backend.get_with(Partition::Data, key, &mut |v| {
            if v.is_none() {
                missing = true;
                return Ok(());
            }
            if let Err(e) = f(v) {
                failure = Some(e);
            }
            Ok(())
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        if missing {
            let stub = if self.has_cold(key)? {
                self.backend
                    .get(Partition::Index, &crate::cold::cold_index_key(key))?
            } else {
                None
            };
            f(stub.as_deref())?;
        }
        Ok(())
    }

    /// Reads many rows by key; `f` sees each key's index and stored bytes:
    /// the keys with a hot row first, in their order, then the others.
    pub fn get_many_with(&self, keys: &[Vec<u8>], f: &mut ManyRowVisitor<'_>) -> CoreResult<()> {
        let mut failure = None;
        let mut missing = Vec::new();
        self.backend
            .get_many_with(Partition::Data, keys, &mut |i, v| {
                if v.is_none() {
                    missing.push(i);
                } else if failure.is_none()
                    && let Err(e) = f(i, v)
                {
                    failure = Some(e);
                }
                Ok(())
            })?;
        if let Some(e) = failure {
            return Err(e);
        }
        let mut stubbed = Vec::new();
        for &i in &missing {
            if self.has_cold(&keys[i])? {
                stubbed.push(i);
            } else {
                f(i, None)?;
            }
        }
        if !stubbed.is_empty() {
            // rows that are only cold read as their stubs
            let stub_keys: Vec<Vec<u8>> = stubbed
                .iter()
                .map(|&i| crate::cold::cold_index_key(&keys[i]))
                .collect();
            self.backend
                .get_many_with(Partition::Index, &stub_keys, &mut |j, v| {
                    if failure.is_none()
                        && let Err(e) = f(stubbed[j], v)
                    {
                        failure = Some(e);
                    }
                    Ok(())
                })?;
        }
        failure.map_or(Ok(()), Err)
    }

    /// Removes every row a dropped table left (all users) and compacts the
    /// range, so its space is reclaimed.
    pub fn purge_table(&self, table: TableId) -> CoreResult<()> {
        let mut batch = Batch::new();
        delete_all_rows(&mut batch, table);
        self.backend.write(batch)?;
        let (start, end) = table_range(table);
        self.backend.compact_range(Partition::Data, &start, &end)?;
        self.backend.compact_range(Partition::Index, &start, &end)?;
        Ok(())
    }

    pub fn write(&self, batch: Batch) -> CoreResult<()> {
        Ok(self.backend.write(batch)?)
    }

    /// Writes `batch` without stalling the async runtime: with fsync-per-write
    /// the write runs on a blocking thread, so many concurrent statements wait
    /// in RocksDB's write group together and share one fsync (group commit).
    /// Without fsync the write is a memtable insert and stays inline.
    pub async fn write_async(&self, batch: Batch) -> CoreResult<()> {
        if !self.backend.syncs_writes() {
            return self.write(batch);
        }
        let backend = Arc::clone(&self.backend);
        tokio::task::spawn_blocking(move || backend.write(batch))
            .await
            .map_err(|e| CoreError::Internal(format!("write task failed: {e}")))??;
        Ok(())
    }
}

//! The cold tier as the row reader sees it: which partitions have
//! segments, their manifests, the cold key index, and turning a segment's
//! row back into the stored row format.
//!
//! Layout (all in the `index` partition, under the table's id, so DROP
//! TABLE's range delete takes them with the table):
//! - `table_id | u32::MAX | partition part | pk` → a cold stub
//!   ([`kalamdb_store::row::encode_cold_stub`]): the newest cold version of
//!   the key — its `_seq`, whether it is a tombstone, its segment and row.
//!   Written in the flush's batch. Existence checks, conflict checks and
//!   point reads of a row that is only cold use it and touch no segment
//!   but the one holding the row.
//! - `table_id | u32::MAX - 1 | partition part` → the partition's
//!   [`Manifest`].
//!
//! A key's hot row, when there is one, is always newer than its cold
//! versions (a row reaches the cold tier only by leaving the hot one), so
//! a read takes the hot row first and falls back to the stub; a scan
//! merges the hot rows with every segment in key order, newest `_seq`
//! winning, tombstones hiding what they shadow.

use crate::error::{CoreError, CoreResult};
use crate::rows::from_arrow::stored_value;
use crate::storages::StorageRegistry;
use dashmap::DashMap;
use datafusion::arrow::record_batch::RecordBatch;
use kalamdb_commons::Value;
use kalamdb_filestore::{
    GroupCache, MANIFEST_FILE, Manifest, SegmentCursor, SegmentFile, SegmentMeta, Storage,
};
use kalamdb_store::row::encode_row;
use kalamdb_store::{Partition, StorageBackend};
use std::sync::Arc;

/// The index id of the cold key index.
pub const COLD_INDEX_ID: u32 = u32::MAX;
/// The index id under which partitions' manifests are kept.
pub const MANIFEST_ID: u32 = u32::MAX - 1;

fn under(id: u32, key: &[u8]) -> Vec<u8> {
    let split = 8.min(key.len());
    let mut out = Vec::with_capacity(key.len() + 4);
    out.extend_from_slice(&key[..split]);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&key[split..]);
    out
}

/// The cold index entry of the row stored under `row_key`.
pub fn cold_index_key(row_key: &[u8]) -> Vec<u8> {
    under(COLD_INDEX_ID, row_key)
}

/// Where the manifest of the partition with key prefix `prefix` is kept.
pub fn manifest_key(prefix: &[u8]) -> Vec<u8> {
    under(MANIFEST_ID, prefix)
}

/// Every manifest of table `table` (all its partitions), read from storage.
pub fn manifests_of(backend: &dyn StorageBackend, table: u64) -> CoreResult<Vec<Manifest>> {
    Ok(partition_manifests(backend, table)?
        .into_iter()
        .map(|(_, m)| m)
        .collect())
}

/// Each partition of table `table` that has a manifest: its key prefix and
/// its manifest, read from storage.
pub fn partition_manifests(
    backend: &dyn StorageBackend,
    table: u64,
) -> CoreResult<Vec<(Vec<u8>, Manifest)>> {
    let (start, end) = manifest_range(table);
    let mut out = Vec::new();
    let mut failure = None;
    backend.scan(Partition::Index, &start, &end, &mut |key, bytes| {
        match Manifest::decode(bytes) {
            Ok(m) => {
                // the key minus the index id
                let mut prefix = key[..8].to_vec();
                prefix.extend_from_slice(&key[12..]);
                out.push((prefix, m));
            }
            Err(e) => failure = Some(e),
        }
        Ok(failure.is_none())
    })?;
    match failure {
        Some(e) => Err(e.into()),
        None => Ok(out),
    }
}

/// Removes the segment files under each `(storage, prefix)` of `targets`
/// (prefix empty: the whole storage) that no manifest of `tables`
/// references, and exported manifest copies in directories left without a
/// referenced segment, that were last written before `written_before_ms` (a
/// flush uploading now has not committed its segment yet). A storage that
/// cannot be listed is reported in the log and skipped (its orphans go at
/// a later sweep). Waits for a running backup ([`ColdTier::hold_deletions`])
/// to end first. Returns how many files went.
pub async fn sweep_orphans(
    cold: &ColdTier,
    backend: &dyn StorageBackend,
    tables: impl IntoIterator<Item = u64>,
    targets: &[(String, String)],
    written_before_ms: i64,
) -> CoreResult<usize> {
    if !cold.storages.has_cold_tier() {
        return Ok(0);
    }
    // a backup copying files meanwhile finishes first
    cold.deletions_allowed().await;
    let mut referenced = std::collections::HashSet::new();
    for table in tables {
        for manifest in manifests_of(backend, table)? {
            referenced.extend(manifest.segments.into_iter().map(|s| (s.storage, s.path)));
        }
    }
    // directories holding a referenced segment keep their exported manifest
    let live_dirs: std::collections::HashSet<(String, String)> = referenced
        .iter()
        .map(|(storage, path)| (storage.clone(), parent_dir(path).to_string()))
        .collect();
    let mut removed = 0;
    for (id, under) in targets {
        let swept = async {
            let storage = cold.storages.storage(id)?;
            let mut removed = 0;
            for object in storage.list(under).await? {
                let name = object.path.rsplit('/').next().unwrap_or_default();
                let orphan = if name.starts_with("seg-") && name.ends_with(".parquet") {
                    !referenced.contains(&(id.clone(), object.path.clone()))
                } else if name == MANIFEST_FILE {
                    !live_dirs.contains(&(id.clone(), parent_dir(&object.path).to_string()))
                } else {
                    false // not ours
                };
                if orphan && object.last_modified_ms < written_before_ms {
                    storage.delete(&object.path).await?;
                    removed += 1;
                }
            }
            Ok::<_, CoreError>(removed)
        };
        match swept.await {
            Ok(n) => removed += n,
            Err(e) => tracing::warn!("cold tier: cannot sweep storage '{id}': {e}"),
        }
    }
    Ok(removed)
}

/// `a/b/seg-1.parquet` → `a/b`.
fn parent_dir(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// The key prefixes of every partition of table `table` that has a
/// manifest.
pub fn partitions_of(backend: &dyn StorageBackend, table: u64) -> CoreResult<Vec<Vec<u8>>> {
    let (first, last) = manifest_range(table);
    let mut partitions = Vec::new();
    backend.scan(Partition::Index, &first, &last, &mut |key, _| {
        let mut partition = key[..8].to_vec();
        partition.extend_from_slice(&key[12..]);
        partitions.push(partition);
        Ok(true)
    })?;
    Ok(partitions)
}

/// The keys of every manifest of table `table`.
fn manifest_range(table: u64) -> (Vec<u8>, Vec<u8>) {
    let table = table.to_be_bytes();
    (under(MANIFEST_ID, &table), under(MANIFEST_ID + 1, &table))
}

/// The cold tier of one database.
pub struct ColdTier {
    /// Where segments live.
    storages: Arc<StorageRegistry>,
    /// Per table id: whether any partition of it has a manifest.
    has_cold: DashMap<u64, bool>,
    /// Manifests by partition prefix, as committed.
    manifests: DashMap<Vec<u8>, Arc<Manifest>>,
    /// Open segments by id.
    files: DashMap<u64, Arc<SegmentFile>>,
    /// Their decoded row groups, up to [`GROUP_CACHE_BYTES`].
    groups: Arc<GroupCache>,
    /// Per table id: held by whoever changes the table's segments (a
    /// flush, a compaction), so that two never interleave their cold index
    /// writes.
    maintenance: DashMap<u64, Arc<tokio::sync::Mutex<()>>>,
    /// Segments a compaction replaced: no manifest lists them any more, but
    /// a query that began before may still read them. Deleted by
    /// [`ColdTier::reap`] once nothing holds them open.
    retired: std::sync::Mutex<Vec<Retired>>,
    /// Ids of retired segments being deleted or deleted: opening one fails
    /// with [`CoreError::SegmentRetired`], and the reader looks again.
    gone: dashmap::DashSet<u64>,
    /// While above zero, no retired segment is deleted (a backup is
    /// copying the files).
    holds: std::sync::atomic::AtomicUsize,
    /// Told when the last hold ends.
    released: tokio::sync::Notify,
}

/// How often a read looks again after a compaction replaced the segment
/// it went for (each time it finds the successor, unless yet another
/// compaction replaced that one meanwhile).
pub const RETIRED_RETRIES: usize = 8;

/// A replaced segment waiting for deletion.
struct Retired {
    meta: SegmentMeta,
    /// Deletions of it that failed so far (logged at 1, 2, 4, …: a
    /// storage that stays unreachable does not fill the log every second).
    failures: u32,
}

/// While alive, retired segments are kept ([`ColdTier::hold_deletions`]).
pub struct DeletionHold(Arc<ColdTier>);

impl Drop for DeletionHold {
    fn drop(&mut self) {
        if self
            .0
            .holds
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel)
            == 1
        {
            self.0.released.notify_waiters();
        }
    }
}

/// How many bytes of decoded row groups the cold tier keeps for reuse.
pub const GROUP_CACHE_BYTES: usize = 64 << 20;

impl std::fmt::Debug for ColdTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColdTier")
            .field("storages", &self.storages)
            .finish()
    }
}

impl ColdTier {
    pub fn new(storages: Arc<StorageRegistry>) -> Self {
        Self {
            storages,
            has_cold: DashMap::new(),
            manifests: DashMap::new(),
            files: DashMap::new(),
            groups: Arc::new(GroupCache::new(GROUP_CACHE_BYTES)),
            maintenance: DashMap::new(),
            retired: std::sync::Mutex::new(Vec::new()),
            gone: dashmap::DashSet::new(),
            holds: std::sync::atomic::AtomicUsize::new(0),
            released: tokio::sync::Notify::new(),
        }
    }

    /// The lock a flush or compaction of table `table` holds throughout.
    pub(crate) fn maintenance_lock(&self, table: u64) -> Arc<tokio::sync::Mutex<()>> {
        Arc::clone(&self.maintenance.entry(table).or_default())
    }

    /// Hands over segments a committed compaction replaced, to be deleted
    /// once no query reads them.
    pub(crate) fn retire(&self, segments: impl IntoIterator<Item = SegmentMeta>) {
        self.retired
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(
                segments
                    .into_iter()
                    .map(|meta| Retired { meta, failures: 0 }),
            );
    }

    /// How many replaced segments still wait for their last reader.
    pub fn retired_count(&self) -> usize {
        self.retired.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Keeps retired segments' files until the returned guard drops.
    pub fn hold_deletions(self: &Arc<Self>) -> DeletionHold {
        self.holds.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        DeletionHold(Arc::clone(self))
    }

    /// Returns once no deletion hold is alive (at once when none is).
    pub async fn deletions_allowed(&self) {
        loop {
            let released = self.released.notified();
            if self.holds.load(std::sync::atomic::Ordering::Acquire) == 0 {
                return;
            }
            released.await;
        }
    }

    /// Deletes the retired segments nothing reads any more: not open, or
    /// open only in the cache of open files (a running scan holds its own
    /// reference until it ends). Returns how many went; one that cannot be
    /// deleted now is tried again at the next call (and an orphan left by
    /// a crash goes with the sweep at start).
    pub async fn reap(&self) -> usize {
        let held = || self.holds.load(std::sync::atomic::Ordering::Acquire) > 0;
        if held() {
            return 0;
        }
        let candidates =
            std::mem::take(&mut *self.retired.lock().unwrap_or_else(|e| e.into_inner()));
        let mut keep = Vec::new();
        let mut deleted = 0;
        for mut retired in candidates {
            // a hold taken meanwhile stops the rest
            if held() {
                keep.push(retired);
                continue;
            }
            let meta = &retired.meta;
            // new openers fail from here on; then the cached file goes if
            // no reader holds it
            self.gone.insert(meta.id);
            let unused = match self
                .files
                .remove_if(&meta.id, |_, f| Arc::strong_count(f) == 1)
            {
                Some(_) => true,
                None => !self.files.contains_key(&meta.id),
            };
            if !unused {
                self.gone.remove(&meta.id);
                keep.push(retired);
                continue;
            }
            self.groups.forget(meta.id);
            let result = match self.storage(&meta.storage) {
                Ok(storage) => storage.delete(&meta.path).await.map_err(CoreError::from),
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => deleted += 1,
                Err(e) => {
                    retired.failures += 1;
                    if retired.failures.is_power_of_two() {
                        tracing::warn!(
                            "cold tier: cannot delete replaced segment '{}' ({} attempt(s); tried again later): {e}",
                            meta.path,
                            retired.failures
                        );
                    }
                    self.gone.remove(&meta.id);
                    keep.push(retired);
                }
            }
        }
        if !keep.is_empty() {
            self.retired
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(keep);
        }
        deleted
    }

    /// The storages segments live on.
    pub fn storages(&self) -> &Arc<StorageRegistry> {
        &self.storages
    }

    /// The open storage `id`.
    pub fn storage(&self, id: &str) -> CoreResult<Storage> {
        self.storages.storage(id)
    }

    /// Whether table `table` has flushed anything (one probe per table,
    /// then remembered).
    pub fn has_cold(&self, backend: &dyn StorageBackend, table: u64) -> CoreResult<bool> {
        if let Some(known) = self.has_cold.get(&table) {
            return Ok(*known);
        }
        let (start, end) = manifest_range(table);
        let mut any = false;
        backend.scan(Partition::Index, &start, &end, &mut |_, _| {
            any = true;
            Ok(false)
        })?;
        self.has_cold.insert(table, any);
        Ok(any)
    }

    /// The manifest of the partition with key prefix `prefix` (empty if it
    /// never flushed).
    pub fn manifest(
        &self,
        backend: &dyn StorageBackend,
        prefix: &[u8],
    ) -> CoreResult<Arc<Manifest>> {
        if let Some(m) = self.manifests.get(prefix) {
            return Ok(Arc::clone(&m));
        }
        let manifest = match backend.get(Partition::Index, &manifest_key(prefix))? {
            Some(bytes) => Manifest::decode(&bytes)?,
            None => Manifest::new(),
        };
        let manifest = Arc::new(manifest);
        self.manifests
            .insert(prefix.to_vec(), Arc::clone(&manifest));
        Ok(manifest)
    }

    /// Makes `manifest` the partition's, for every read from now on (before
    /// its commit: a reader then sees the new segment and the hot rows it
    /// copies, never neither; the merge keeps one of each key).
    pub(crate) fn install(&self, prefix: &[u8], manifest: Arc<Manifest>) {
        if let Some(table) = prefix.get(..8) {
            let table = u64::from_be_bytes(table.try_into().expect("8 bytes"));
            self.has_cold.insert(table, true);
        }
        self.manifests.insert(prefix.to_vec(), manifest);
    }

    /// Treats table `table` as having a cold tier from now on (a flush of it
    /// begins: reads check for stubs and segments before any exist).
    pub(crate) fn expect(&self, table: u64) {
        self.has_cold.insert(table, true);
    }

    /// Forgets what is cached of the partitions under `prefix` (their rows
    /// were deleted).
    pub fn forget(&self, prefix: &[u8]) {
        self.manifests.retain(|k, _| !k.starts_with(prefix));
    }

    /// Forgets everything cached, as a restart would.
    #[cfg(test)]
    pub(crate) fn clear(&self) {
        for id in self.files.iter().map(|f| *f.key()).collect::<Vec<_>>() {
            self.groups.forget(id);
        }
        self.has_cold.clear();
        self.manifests.clear();
        self.files.clear();
    }

    /// Segment `meta`, open (from the cache of open files, or opened now).
    pub(crate) fn file(&self, meta: &SegmentMeta) -> CoreResult<Arc<SegmentFile>> {
        if let Some(f) = self.files.get(&meta.id) {
            return Ok(Arc::clone(&f));
        }
        let retired = || CoreError::SegmentRetired(meta.id);
        if self.gone.contains(&meta.id) {
            return Err(retired());
        }
        let opened = self
            .storage(&meta.storage)?
            .local_copy(&meta.path)
            .and_then(|path| SegmentFile::open(meta.id, &path, Some(Arc::clone(&self.groups))));
        let file = match opened {
            Ok(file) => Arc::new(file),
            // deleted while this reader went for it
            Err(_) if self.gone.contains(&meta.id) => return Err(retired()),
            Err(e) => return Err(e.into()),
        };
        self.files.insert(meta.id, Arc::clone(&file));
        // a reap that began meanwhile may not have seen this reference
        if self.gone.contains(&meta.id) {
            self.files.remove(&meta.id);
            return Err(retired());
        }
        Ok(file)
    }

    /// The rows at `ordinals` (ascending) of segment `segment` of the
    /// partition `prefix`, each in the stored row format.
    pub fn read_rows(
        &self,
        backend: &dyn StorageBackend,
        prefix: &[u8],
        segment: u64,
        ordinals: &[u64],
    ) -> CoreResult<Vec<Vec<u8>>> {
        let manifest = self.manifest(backend, prefix)?;
        let meta = match manifest.segment(segment) {
            Some(meta) => meta.clone(),
            None => {
                // committed after this manifest was cached: read it again
                self.manifests.remove(prefix);
                let manifest = self.manifest(backend, prefix)?;
                match manifest.segment(segment) {
                    Some(meta) => meta.clone(),
                    // replaced by a compaction after the caller's lookup
                    None => self
                        .retired
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .iter()
                        .find(|s| s.meta.id == segment)
                        .map(|s| s.meta.clone())
                        .ok_or(CoreError::SegmentRetired(segment))?,
                }
            }
        };
        let file = self.file(&meta)?;
        let batch = file.read_ordinals(ordinals)?;
        (0..batch.num_rows())
            .map(|row| encode_cold_row(&file, &batch, row, meta.schema_version))
            .collect()
    }

    /// Cursors over the segments that can hold keys in `[start, end)`: of
    /// the partition `prefix` when `one_partition`, else of every
    /// partition under it (all users of a USER table).
    pub fn cursors(
        &self,
        backend: &dyn StorageBackend,
        prefix: &[u8],
        one_partition: bool,
        start: &[u8],
        end: &[u8],
        reverse: bool,
    ) -> CoreResult<Vec<(SegmentCursor, u32)>> {
        Ok(self
            .segments(backend, prefix, one_partition, start, end)?
            .into_iter()
            .map(|(file, meta)| (file.cursor(start, end, reverse), meta.schema_version))
            .collect())
    }

    /// The segments that can hold keys in `[start, end)`, open, with their
    /// descriptions (of the partition `prefix` when `one_partition`, else of
    /// every partition under it). An open segment is not deleted while its
    /// `Arc` is held.
    pub fn segments(
        &self,
        backend: &dyn StorageBackend,
        prefix: &[u8],
        one_partition: bool,
        start: &[u8],
        end: &[u8],
    ) -> CoreResult<Vec<(Arc<SegmentFile>, SegmentMeta)>> {
        let mut attempts = 0;
        loop {
            match self.try_segments(backend, prefix, one_partition, start, end) {
                // a compaction replaced a segment between the manifest and
                // the open: its successor is in the manifest now
                Err(CoreError::SegmentRetired(_)) if attempts < RETIRED_RETRIES => {
                    attempts += 1;
                    self.forget(&prefix[..8.min(prefix.len())]);
                }
                other => return other,
            }
        }
    }

    fn try_segments(
        &self,
        backend: &dyn StorageBackend,
        prefix: &[u8],
        one_partition: bool,
        start: &[u8],
        end: &[u8],
    ) -> CoreResult<Vec<(Arc<SegmentFile>, SegmentMeta)>> {
        self.segment_metas(backend, prefix, one_partition, start, end)?
            .into_iter()
            .map(|meta| Ok((self.file(&meta)?, meta)))
            .collect()
    }

    /// The manifest entries of the segments that can hold keys in
    /// `[start, end)` (of the partition `prefix` when `one_partition`, else
    /// of every partition under it), without opening them.
    pub fn segment_metas(
        &self,
        backend: &dyn StorageBackend,
        prefix: &[u8],
        one_partition: bool,
        start: &[u8],
        end: &[u8],
    ) -> CoreResult<Vec<SegmentMeta>> {
        let manifests = if one_partition {
            vec![self.manifest(backend, prefix)?]
        } else {
            // every partition of the table `prefix` names
            let table = u64::from_be_bytes(
                prefix
                    .get(..8)
                    .and_then(|t| t.try_into().ok())
                    .ok_or_else(|| CoreError::Internal("a row prefix without a table".into()))?,
            );
            let partitions = partitions_of(backend, table)?;
            partitions
                .iter()
                .map(|p| self.manifest(backend, p))
                .collect::<CoreResult<_>>()?
        };
        Ok(manifests
            .iter()
            .flat_map(|m| m.segments.iter())
            .filter(|meta| meta.max_key.as_slice() >= start && meta.min_key.as_slice() < end)
            .cloned()
            .collect())
    }
}

/// Row `row` of a segment's `batch` in the stored row format.
pub fn encode_cold_row(
    file: &SegmentFile,
    batch: &RecordBatch,
    row: usize,
    schema_version: u32,
) -> CoreResult<Vec<u8>> {
    let corrupt = |what: &str| CoreError::Internal(format!("cold tier: segment {what}"));
    let seq = stored_value(batch.column(1).as_ref(), row)?;
    let deleted = stored_value(batch.column(2).as_ref(), row)?;
    let (Value::Int64(seq), Value::Boolean(deleted)) = (seq, deleted) else {
        return Err(corrupt("row without _seq or _deleted"));
    };
    let mut values = Vec::with_capacity(batch.num_columns());
    for (i, id) in file.column_ids().iter().enumerate() {
        if let Some(id) = id {
            values.push((*id, stored_value(batch.column(i).as_ref(), row)?));
        }
    }
    Ok(encode_row(
        schema_version,
        seq,
        deleted,
        values.iter().map(|(id, v)| (*id, v)),
    ))
}

#[cfg(test)]
mod tests;

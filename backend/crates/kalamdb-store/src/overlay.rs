//! A transaction's view of the store: its own uncommitted writes laid over
//! the base store. Reads see the transaction's writes first (so a statement
//! sees what an earlier one in the same BEGIN … COMMIT wrote); nothing
//! reaches the base store until [`OverlayBackend::into_batch`] is written as
//! one atomic batch at COMMIT. Range deletes (DDL) are refused here.

use crate::backend::{Batch, ManyVisitor, Op, Partition, ScanVisitor, StorageBackend};
use crate::error::{StoreError, StoreResult};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

type Writes = BTreeMap<(&'static str, Vec<u8>), (Partition, Option<Vec<u8>>)>;

pub struct OverlayBackend {
    base: Arc<dyn StorageBackend>,
    /// Final state per key: `Some` written, `None` deleted.
    writes: Mutex<Writes>,
}

impl std::fmt::Debug for OverlayBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OverlayBackend({} pending)", self.lock().len())
    }
}

impl OverlayBackend {
    pub fn new(base: Arc<dyn StorageBackend>) -> Self {
        Self {
            base,
            writes: Mutex::new(BTreeMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Writes> {
        self.writes.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn base(&self) -> &Arc<dyn StorageBackend> {
        &self.base
    }

    /// Every pending write as one batch, for COMMIT.
    pub fn into_batch(&self) -> Batch {
        let writes = std::mem::take(&mut *self.lock());
        let mut batch = Batch::with_capacity(writes.len());
        for ((_, key), (partition, value)) in writes {
            match value {
                Some(v) => batch.put(partition, key, v),
                None => batch.delete(partition, key),
            }
        }
        batch
    }

    fn pending(&self, partition: Partition, key: &[u8]) -> Option<Option<Vec<u8>>> {
        self.lock()
            .get(&(partition.name(), key.to_vec()))
            .map(|(_, v)| v.clone())
    }
}

impl OverlayBackend {
    /// The transaction's writes in `[start, end)` merged into the base
    /// scan, in ascending key order or (`reverse`) descending: a pending
    /// write replaces or hides the base row.
    fn merged_scan(
        &self,
        partition: Partition,
        start: &[u8],
        end: &[u8],
        reverse: bool,
        visit: &mut ScanVisitor<'_>,
    ) -> StoreResult<()> {
        let mut pending: Vec<(Vec<u8>, Option<Vec<u8>>)> = self
            .lock()
            .range((partition.name(), start.to_vec())..(partition.name(), end.to_vec()))
            .map(|((_, k), (_, v))| (k.clone(), v.clone()))
            .collect();
        if reverse {
            pending.reverse();
        }
        // whether `a` comes before `b` in the scan's order
        let before = |a: &[u8], b: &[u8]| if reverse { a > b } else { a < b };
        let mut next = 0;
        let mut stopped = false;
        let mut base_visit = |key: &[u8], value: &[u8]| -> StoreResult<bool> {
            while next < pending.len() && before(&pending[next].0, key) {
                let (k, v) = &pending[next];
                next += 1;
                if let Some(v) = v
                    && !visit(k, v)?
                {
                    stopped = true;
                    return Ok(false);
                }
            }
            if next < pending.len() && pending[next].0.as_slice() == key {
                let (k, v) = &pending[next];
                next += 1;
                return match v {
                    Some(v) => {
                        let go = visit(k, v)?;
                        stopped = !go;
                        Ok(go)
                    }
                    None => Ok(true),
                };
            }
            let go = visit(key, value)?;
            stopped = !go;
            Ok(go)
        };
        if reverse {
            self.base
                .scan_reverse(partition, start, end, &mut base_visit)?;
        } else {
            self.base.scan(partition, start, end, &mut base_visit)?;
        }
        if !stopped {
            for (k, v) in &pending[next..] {
                if let Some(v) = v
                    && !visit(k, v)?
                {
                    break;
                }
            }
        }
        Ok(())
    }
}

impl StorageBackend for OverlayBackend {
    fn get_with(
        &self,
        partition: Partition,
        key: &[u8],
        f: &mut dyn FnMut(Option<&[u8]>) -> StoreResult<()>,
    ) -> StoreResult<()> {
        match self.pending(partition, key) {
            Some(value) => f(value.as_deref()),
            None => self.base.get_with(partition, key, f),
        }
    }

    fn exists_many(&self, partition: Partition, keys: &[Vec<u8>]) -> StoreResult<Vec<bool>> {
        let mut out = vec![false; keys.len()];
        self.get_many_with(partition, keys, &mut |i, v| {
            out[i] = v.is_some();
            Ok(())
        })?;
        Ok(out)
    }

    fn get_many_with(
        &self,
        partition: Partition,
        keys: &[Vec<u8>],
        f: &mut ManyVisitor<'_>,
    ) -> StoreResult<()> {
        let pending: Vec<Option<Option<Vec<u8>>>> =
            keys.iter().map(|k| self.pending(partition, k)).collect();
        let mut failure = None;
        self.base.get_many_with(partition, keys, &mut |i, base| {
            let result = match &pending[i] {
                Some(value) => f(i, value.as_deref()),
                None => f(i, base),
            };
            if let Err(e) = result {
                failure = Some(e);
            }
            Ok(())
        })?;
        failure.map_or(Ok(()), Err)
    }

    fn scan_ordered(
        &self,
        partition: Partition,
        start: &[u8],
        end: &[u8],
        reverse: bool,
        visit: &mut ScanVisitor<'_>,
    ) -> StoreResult<()> {
        self.merged_scan(partition, start, end, reverse, visit)
    }

    fn write(&self, batch: Batch) -> StoreResult<()> {
        let mut writes = self.lock();
        for op in batch.into_ops() {
            match op {
                Op::Put(p, k, v) => {
                    writes.insert((p.name(), k), (p, Some(v)));
                }
                Op::Delete(p, k) => {
                    writes.insert((p.name(), k), (p, None));
                }
                Op::DeleteRange(..) => {
                    return Err(StoreError::Engine(
                        "range deletes cannot run inside a transaction".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    fn compact_range(&self, _: Partition, _: &[u8], _: &[u8]) -> StoreResult<()> {
        Ok(())
    }

    fn approximate_size(&self, partition: Partition, start: &[u8], end: &[u8]) -> u64 {
        self.base.approximate_size(partition, start, end)
    }

    fn memory_usage(&self) -> (u64, u64) {
        self.base.memory_usage()
    }

    fn engine_stats(&self) -> crate::backend::EngineStats {
        self.base.engine_stats()
    }

    fn sync_wal(&self) -> StoreResult<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RocksDbBackend, RocksDbOptions};

    #[test]
    fn reads_see_pending_writes_and_nothing_lands_until_commit() {
        let dir = tempfile::tempdir().unwrap();
        let base: Arc<dyn StorageBackend> =
            Arc::new(RocksDbBackend::open(dir.path(), &RocksDbOptions::default()).unwrap());
        let mut b = Batch::new();
        for k in [1u8, 3, 5] {
            b.put(Partition::Data, vec![k], vec![k]);
        }
        base.write(b).unwrap();
        let tx = OverlayBackend::new(Arc::clone(&base));
        let mut b = Batch::new();
        b.put(Partition::Data, vec![2], vec![20]);
        b.put(Partition::Data, vec![3], vec![30]);
        b.delete(Partition::Data, vec![5]);
        b.put(Partition::Data, vec![7], vec![70]);
        tx.write(b).unwrap();
        let scan = |s: &dyn StorageBackend| {
            let mut out = Vec::new();
            s.scan(Partition::Data, &[0], &[255], &mut |k, v| {
                out.push((k[0], v[0]));
                Ok(true)
            })
            .unwrap();
            out
        };
        assert_eq!(scan(&tx), vec![(1, 1), (2, 20), (3, 30), (7, 70)]);
        let mut reversed = Vec::new();
        tx.scan_reverse(Partition::Data, &[0], &[255], &mut |k, v| {
            reversed.push((k[0], v[0]));
            Ok(true)
        })
        .unwrap();
        assert_eq!(reversed, vec![(7, 70), (3, 30), (2, 20), (1, 1)]);
        let mut reversed = Vec::new();
        tx.scan_reverse(Partition::Data, &[2], &[6], &mut |k, _| {
            reversed.push(k[0]);
            Ok(reversed.len() < 2)
        })
        .unwrap();
        assert_eq!(reversed, vec![3, 2]);
        assert_eq!(scan(base.as_ref()), vec![(1, 1), (3, 3), (5, 5)]);
        assert_eq!(tx.get(Partition::Data, &[5]).unwrap(), None);
        assert_eq!(tx.get(Partition::Data, &[3]).unwrap(), Some(vec![30]));
        assert_eq!(
            tx.exists_many(Partition::Data, &[vec![1], vec![2], vec![5], vec![9]])
                .unwrap(),
            vec![true, true, false, false]
        );
        // a visitor that stops early stops early
        let mut seen = 0;
        tx.scan(Partition::Data, &[0], &[255], &mut |_, _| {
            seen += 1;
            Ok(seen < 2)
        })
        .unwrap();
        assert_eq!(seen, 2);
        let mut range = Batch::new();
        range.delete_range(Partition::Data, vec![0], vec![9]);
        assert!(tx.write(range).is_err());
        base.write(tx.into_batch()).unwrap();
        assert_eq!(scan(base.as_ref()), vec![(1, 1), (2, 20), (3, 30), (7, 70)]);
    }
}

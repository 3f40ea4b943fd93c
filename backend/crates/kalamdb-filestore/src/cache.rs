//! Decoded row groups, kept for reuse up to a byte budget: a scan resumed
//! batch after batch, and point reads of neighbouring keys, decode each
//! row group once. Least recently used groups go first.

use datafusion::arrow::record_batch::RecordBatch;
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Debug)]
pub struct GroupCache {
    budget: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// (segment id, row group) → (batch, its bytes, last use)
    groups: HashMap<(u64, usize), (RecordBatch, usize, u64)>,
    bytes: usize,
    tick: u64,
}

impl GroupCache {
    /// A cache holding at most `budget` bytes of decoded batches.
    pub fn new(budget: usize) -> Self {
        Self {
            budget,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, segment: u64, group: usize) -> Option<RecordBatch> {
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        inner
            .groups
            .get_mut(&(segment, group))
            .map(|(batch, _, used)| {
                *used = tick;
                batch.clone()
            })
    }

    pub fn put(&self, segment: u64, group: usize, batch: &RecordBatch) {
        let size = batch.get_array_memory_size();
        if size > self.budget {
            return;
        }
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        if let Some((_, old, _)) = inner
            .groups
            .insert((segment, group), (batch.clone(), size, tick))
        {
            inner.bytes -= old;
        }
        inner.bytes += size;
        while inner.bytes > self.budget {
            let Some((&oldest, _)) = inner.groups.iter().min_by_key(|(_, (_, _, used))| *used)
            else {
                break;
            };
            if let Some((_, gone, _)) = inner.groups.remove(&oldest) {
                inner.bytes -= gone;
            }
        }
    }

    /// Forgets the groups of `segment` (its file is gone).
    pub fn forget(&self, segment: u64) {
        let mut inner = self.lock();
        let gone: usize = inner
            .groups
            .iter()
            .filter(|((s, _), _)| *s == segment)
            .map(|(_, (_, size, _))| *size)
            .sum();
        inner.groups.retain(|(s, _), _| *s != segment);
        inner.bytes -= gone;
    }

    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

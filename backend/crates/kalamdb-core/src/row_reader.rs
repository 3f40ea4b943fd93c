//! The row reader: the one place stored rows of USER, SHARED and STREAM tables are
//! read and decoded — one key, many keys, or a key range in order — for one
//! (table, scope). Every path that reads rows goes through it: the
//! DataFusion scan, the point-lookup fast path, the INSERT key check, ON
//! CONFLICT and UPDATE/DELETE re-reads, the ALTER TABLE and stats checks.
//! It is where the cold tier's rows join the hot ones: a key that is only
//! cold reads from its segment (through the cold index: one row group's
//! pages, no other segment), and a scan merges the hot rows with every
//! segment of the partition in key order — the newest `_seq` of a key
//! wins, a tombstone hides what it shadows — so every caller sees one
//! table (see [`crate::cold`]).
//!
//! A reader is bound to one partition (the caller's, for a USER table);
//! only [`RowReader::all_partitions`], for administrative checks that must
//! see every user's rows (ALTER TABLE, stats), reads across users, and it
//! is not reachable from a query.
//!
//! A STREAM table's rows older than its TTL are gone for every read here
//! the moment they expire, whenever the StreamEviction job reclaims them.

use crate::cold::{RETIRED_RETRIES, cold_index_key, encode_cold_row};
use crate::error::{CoreError, CoreResult};
use crate::schema::CachedTable;
use crate::table_store::{RowScope, TableStore, partition_prefix, row_key, seq_key, table_range};
use crate::write_set::Read;
use kalamdb_commons::snowflake::timestamp_ms;
use kalamdb_commons::{Value, now_ms};
use kalamdb_filestore::{SegmentCursor, SegmentFile, SegmentMeta};
use kalamdb_store::Partition;
use kalamdb_store::row::RowView;
use std::sync::Arc;

#[derive(Clone)]
pub struct RowReader {
    table: Arc<CachedTable>,
    store: TableStore,
    prefix: Vec<u8>,
    /// A STREAM table's TTL in milliseconds.
    ttl_ms: Option<i64>,
    /// Reads every partition of a USER table (not one user's).
    all: bool,
}

fn ttl_ms(table: &CachedTable) -> Option<i64> {
    let def = &table.definition;
    (def.table_type == kalamdb_commons::TableType::Stream)
        .then(|| {
            def.options
                .ttl_seconds
                .map(|s| s.saturating_mul(1000) as i64)
        })
        .flatten()
}

impl std::fmt::Debug for RowReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowReader")
            .field("table", &self.table.definition.table_ref())
            .finish()
    }
}

impl RowReader {
    /// The reader of `table`'s rows in `scope`, through `store` (the
    /// caller's transaction view inside BEGIN … COMMIT).
    pub fn new(table: Arc<CachedTable>, store: TableStore, scope: &RowScope) -> Self {
        let prefix = partition_prefix(table.definition.table_id, scope);
        Self {
            ttl_ms: ttl_ms(&table),
            table,
            store,
            prefix,
            all: false,
        }
    }

    /// A reader over every partition of `table` (all users): for checks an
    /// administrator's DDL makes, never for a query.
    pub(crate) fn all_partitions(table: Arc<CachedTable>, store: TableStore) -> Self {
        let (prefix, _) = table_range(table.definition.table_id);
        Self {
            all: table.definition.table_type == kalamdb_commons::TableType::User,
            ttl_ms: ttl_ms(&table),
            table,
            store,
            prefix,
        }
    }

    pub fn table(&self) -> &Arc<CachedTable> {
        &self.table
    }

    /// The storage this reader reads (for a secondary index's entries).
    pub fn store(&self) -> &TableStore {
        &self.store
    }

    /// The key of the row whose primary key's columns hold `key` (in key
    /// order).
    pub fn key_of(&self, key: &[Value]) -> CoreResult<Vec<u8>> {
        row_key(&self.prefix, key)
    }

    /// The key of a keyless table's row with `_seq` = `seq`.
    pub fn key_of_seq(&self, seq: i64) -> Vec<u8> {
        seq_key(&self.prefix, seq)
    }

    /// Where this reader's key range starts.
    pub fn start(&self) -> &[u8] {
        &self.prefix
    }

    /// The partition's key for an encoded primary key (or bound) `encoded`.
    pub fn key_with(&self, encoded: &[u8]) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.prefix.len() + encoded.len());
        key.extend_from_slice(&self.prefix);
        key.extend_from_slice(encoded);
        key
    }

    /// Where this reader's key range ends (exclusive).
    pub fn end(&self) -> Vec<u8> {
        crate::table_store::partition_end(&self.prefix)
    }

    /// The live row under `key` as declared-order values (columns added
    /// after it was written read as their backfill); `None` when there is
    /// none or it is soft-deleted.
    pub fn get(&self, key: &[u8]) -> CoreResult<Option<Vec<Value>>> {
        Ok(self.get_versioned(key)?.map(|(_, values)| values))
    }

    /// [`RowReader::get`] with the row's `_seq`: the version a change
    /// computed from it names ([`RowChange::read`](crate::write_set::RowChange::read)).
    pub fn get_versioned(&self, key: &[u8]) -> CoreResult<Option<(i64, Vec<Value>)>> {
        let mut found = None;
        self.get_row(key, false, &mut |row| {
            found = Some((row.seq, self.values_of(row)?));
            Ok(())
        })?;
        Ok(found)
    }

    /// Visits the row under `key`, if there is one (and it is live, unless
    /// `include_deleted`).
    pub fn get_row(
        &self,
        key: &[u8],
        include_deleted: bool,
        visit: &mut dyn FnMut(&RowView<'_>) -> CoreResult<()>,
    ) -> CoreResult<()> {
        let mut place = None;
        self.store.get_with(key, &mut |bytes| {
            let Some(bytes) = bytes else {
                return Ok(());
            };
            let row = RowView::decode(bytes)?;
            if include_deleted || self.visible(&row, self.now()) {
                match row.cold() {
                    None => visit(&row)?,
                    Some(at) => place = Some(at),
                }
            }
            Ok(())
        })?;
        if let Some(at) = place {
            let keys = [key.to_vec()];
            for (_, row) in self.read_places(&keys, vec![(0, at)])? {
                visit(&RowView::decode(&row)?)?;
            }
        }
        Ok(())
    }

    /// The rows of `keys` at their cold places `at` (`(index in keys,
    /// (segment, ordinal))`), in the stored row format, one read per
    /// segment. A place a compaction replaced meanwhile is looked up again
    /// in the cold index (a key whose entry went with it has no row).
    fn read_places(
        &self,
        keys: &[Vec<u8>],
        mut at: Vec<(usize, (u64, u64))>,
    ) -> CoreResult<Vec<(usize, Vec<u8>)>> {
        let mut attempts = 0;
        'again: loop {
            let mut by_segment: std::collections::BTreeMap<u64, Vec<(u64, usize)>> =
                Default::default();
            for &(i, (segment, ordinal)) in &at {
                by_segment.entry(segment).or_default().push((ordinal, i));
            }
            let mut out = Vec::with_capacity(at.len());
            for (segment, mut wanted) in by_segment {
                wanted.sort_unstable();
                let mut ordinals: Vec<u64> = wanted.iter().map(|(o, _)| *o).collect();
                ordinals.dedup();
                let rows = match self.read_cold(&keys[wanted[0].1], segment, &ordinals) {
                    Ok(rows) => rows,
                    Err(CoreError::SegmentRetired(_)) if attempts < RETIRED_RETRIES => {
                        attempts += 1;
                        let stubs: Vec<Vec<u8>> =
                            at.iter().map(|(i, _)| cold_index_key(&keys[*i])).collect();
                        let mut fresh = Vec::with_capacity(at.len());
                        self.store.backend().get_many_with(
                            Partition::Index,
                            &stubs,
                            &mut |j, bytes| {
                                if let Some(place) = bytes
                                    .map(RowView::decode)
                                    .transpose()?
                                    .and_then(|r| r.cold())
                                {
                                    fresh.push((at[j].0, place));
                                }
                                Ok(())
                            },
                        )?;
                        at = fresh;
                        continue 'again;
                    }
                    Err(e) => return Err(e),
                };
                // one row per ordinal: copied only where keys repeat
                let mut rows: Vec<Option<Vec<u8>>> = rows.into_iter().map(Some).collect();
                for (k, &(ordinal, i)) in wanted.iter().enumerate() {
                    let n = ordinals.partition_point(|o| *o < ordinal);
                    let repeated = wanted.get(k + 1).is_some_and(|(next, _)| *next == ordinal);
                    let row = if repeated {
                        rows[n].clone()
                    } else {
                        rows[n].take()
                    };
                    out.push((i, row.expect("each ordinal was read")));
                }
            }
            return Ok(out);
        }
    }

    /// Rows of one segment, by ordinal, in the stored row format.
    fn read_cold(&self, key: &[u8], segment: u64, ordinals: &[u64]) -> CoreResult<Vec<Vec<u8>>> {
        let partition = if self.all {
            user_partition_of(key)
        } else {
            &self.prefix
        };
        self.store
            .cold()
            .read_rows(self.store.backend().as_ref(), partition, segment, ordinals)
    }

    /// Visits the rows under `keys` that exist (and are live, unless
    /// `include_deleted`), with each one's index in `keys`: one multi-get.
    pub fn get_rows(
        &self,
        keys: &[Vec<u8>],
        include_deleted: bool,
        visit: &mut dyn FnMut(usize, &RowView<'_>) -> CoreResult<()>,
    ) -> CoreResult<()> {
        let now = self.now();
        if keys.is_empty() {
            return Ok(());
        }
        if !self.store.has_cold(&self.prefix)? {
            // a first flush of the table may commit meanwhile: its stubs
            // (only ever after every hot row) are read from the segment
            let mut stubs = Vec::new();
            self.store.get_many_with(keys, &mut |i, bytes| {
                let Some(bytes) = bytes else {
                    return Ok(());
                };
                let row = RowView::decode(bytes)?;
                if include_deleted || self.visible(&row, now) {
                    match row.cold() {
                        None => visit(i, &row)?,
                        Some(at) => stubs.push((i, at)),
                    }
                }
                Ok(())
            })?;
            for (i, row) in self.read_places(keys, stubs)? {
                visit(i, &RowView::decode(&row)?)?;
            }
            return Ok(());
        }
        // some keys may be cold: gather, fetch each segment's rows in one
        // read, then visit in the keys' order
        let mut found: Vec<Option<Vec<u8>>> = vec![None; keys.len()];
        let mut cold = Vec::new();
        self.store.get_many_with(keys, &mut |i, bytes| {
            let Some(bytes) = bytes else {
                return Ok(());
            };
            let row = RowView::decode(bytes)?;
            if include_deleted || self.visible(&row, now) {
                match row.cold() {
                    None => found[i] = Some(bytes.to_vec()),
                    Some(at) => cold.push((i, at)),
                }
            }
            Ok(())
        })?;
        for (i, row) in self.read_places(keys, cold)? {
            found[i] = Some(row);
        }
        for (i, bytes) in found.iter().enumerate() {
            if let Some(bytes) = bytes {
                visit(i, &RowView::decode(bytes)?)?;
            }
        }
        Ok(())
    }

    /// For each key, what a write computed from this read expects to find
    /// at its commit: the live row there ([`Read::Row`]) or the key free
    /// ([`Read::Free`], with the `_seq` of a soft-deleted or expired row
    /// still stored).
    pub fn slots(&self, keys: &[Vec<u8>]) -> CoreResult<Vec<Read>> {
        let mut slots = vec![Read::Free(None); keys.len()];
        let now = self.now();
        self.store.get_many_with(keys, &mut |i, bytes| {
            if let Some(bytes) = bytes {
                let row = RowView::decode(bytes)?;
                slots[i] = if self.visible(&row, now) {
                    Read::Row(row.seq)
                } else {
                    Read::Free(Some(row.seq))
                };
            }
            Ok(())
        })?;
        Ok(slots)
    }

    /// Visits the rows from `start` (a key of this partition, or
    /// [`RowReader::start`]) in key order, live ones only unless
    /// `include_deleted`, until `visit` returns false.
    pub fn scan_rows(
        &self,
        start: &[u8],
        include_deleted: bool,
        visit: &mut dyn FnMut(&[u8], &RowView<'_>) -> CoreResult<bool>,
    ) -> CoreResult<()> {
        let end = self.end();
        self.scan_range(start, &end, false, include_deleted, visit)
    }

    /// [`RowReader::scan_rows`] up to `end` (exclusive; a key of this
    /// partition or [`RowReader::end`]), in descending key order when
    /// `reverse`.
    pub fn scan_range(
        &self,
        start: &[u8],
        end: &[u8],
        reverse: bool,
        include_deleted: bool,
        visit: &mut dyn FnMut(&[u8], &RowView<'_>) -> CoreResult<bool>,
    ) -> CoreResult<()> {
        self.scan_merged(start, end, reverse, include_deleted, visit)
    }

    /// [`RowReader::scan_range`] over both tiers: the hot rows and every
    /// segment that can hold keys of the range, merged in key order. Of the
    /// versions of one key the hot row wins, else the highest `_seq`; a
    /// winning tombstone is visited only when `include_deleted`.
    ///
    /// Whether the table has a cold tier, and its segments, are looked up
    /// once the hot iteration has begun (inside its first row, or after it
    /// found none): a flush installs its segment before it removes the hot
    /// rows it copied, so whatever hot row this iteration misses is in a
    /// segment it lists. A table with no cold tier merges nothing.
    fn scan_merged(
        &self,
        start: &[u8],
        end: &[u8],
        reverse: bool,
        include_deleted: bool,
        visit: &mut dyn FnMut(&[u8], &RowView<'_>) -> CoreResult<bool>,
    ) -> CoreResult<()> {
        let now = self.now();
        let mut merge: Option<ColdMerge> = None;
        let mut stopped = false;
        let open = |merge: &mut Option<ColdMerge>| -> CoreResult<()> {
            if merge.is_none() {
                let cursors = if !self.store.has_cold(&self.prefix)? {
                    Vec::new()
                } else {
                    self.store.cold().cursors(
                        self.store.backend().as_ref(),
                        &self.prefix,
                        !self.all,
                        start,
                        end,
                        reverse,
                    )?
                };
                *merge = Some(ColdMerge {
                    cursors,
                    reverse,
                    include_deleted,
                });
            }
            Ok(())
        };
        self.store
            .scan_between(start, end, reverse, &mut |key, bytes| {
                open(&mut merge)?;
                let cold = merge.as_mut().expect("opened");
                if !cold.emit_before(Some(key), visit)? {
                    stopped = true;
                    return Ok(false);
                }
                cold.skip(key)?;
                let row = RowView::decode(bytes)?;
                if include_deleted || self.visible(&row, now) {
                    let go_on = visit(key, &row)?;
                    stopped = !go_on;
                    return Ok(go_on);
                }
                Ok(true)
            })?;
        if stopped {
            return Ok(());
        }
        open(&mut merge)?;
        merge.expect("opened").emit_before(None, visit)?;
        Ok(())
    }

    /// Where a forward read from `start` can take rows straight from one
    /// segment's columns: the stretch `[start, until)` in which no hot row
    /// and no other segment holds a key, so that segment's rows there are
    /// the table's (its tombstones aside) with no merge; else whether the
    /// read must merge at `start` (a hot row there, segments overlapping
    /// there) or the table has no cold tier at all.
    ///
    /// The hot rows are looked at before the segments are listed: a flush
    /// installs its segment before it removes the hot rows it copied, so a
    /// row gone from the hot tier meanwhile is in a listed segment.
    pub fn cold_run(&self, start: &[u8], end: &[u8]) -> CoreResult<Stretch> {
        if self.ttl_ms.is_some() || !self.store.has_cold(&self.prefix)? {
            return Ok(Stretch::NoColdTier);
        }
        if start >= end {
            return Ok(Stretch::Merge);
        }
        let mut hot: Option<Vec<u8>> = None;
        self.store.scan_between(start, end, false, &mut |key, _| {
            hot = Some(key.to_vec());
            Ok(false)
        })?;
        let bound = hot.as_deref().unwrap_or(end);
        if bound <= start {
            return Ok(Stretch::Merge);
        }
        let mut segments = self.store.cold().segments(
            self.store.backend().as_ref(),
            &self.prefix,
            !self.all,
            start,
            bound,
        )?;
        segments.sort_by(|a, b| a.1.min_key.cmp(&b.1.min_key));
        let mut segments = segments.into_iter();
        let Some((file, meta)) = segments.next() else {
            return Ok(Stretch::Merge);
        };
        let until = match segments.next() {
            Some((_, next)) if next.min_key.as_slice() < bound => next.min_key,
            _ => bound.to_vec(),
        };
        if until.as_slice() <= start || until <= meta.min_key {
            return Ok(Stretch::Merge);
        }
        Ok(Stretch::Run(Box::new(ColdRun { file, meta, until })))
    }

    /// About how many bytes of `[start, end)` the engine holds in its files
    /// (compressed; rows still only in memory are not counted), segments
    /// that can hold keys of it included.
    pub fn stored_bytes(&self, start: &[u8], end: &[u8]) -> u64 {
        let hot = self
            .store
            .backend()
            .approximate_size(kalamdb_store::Partition::Data, start, end);
        hot + self
            .segments_between(start, end)
            .iter()
            .map(|meta| meta.bytes)
            .sum::<u64>()
    }

    /// The manifest entries of the segments that can hold keys of
    /// `[start, end)` (none when that cannot be told: an estimate's input
    /// only; no segment is opened or downloaded for it).
    fn segments_between(&self, start: &[u8], end: &[u8]) -> Vec<SegmentMeta> {
        if !self.store.has_cold(&self.prefix).unwrap_or(false) {
            return Vec::new();
        }
        self.store
            .cold()
            .segment_metas(
                self.store.backend().as_ref(),
                &self.prefix,
                !self.all,
                start,
                end,
            )
            .unwrap_or_default()
    }

    /// The first and the last stored key in `[start, end)` (live or not,
    /// hot or in a segment — a segment's first and last key, as far as
    /// they fall in the range), if any: where a scan of the range can be
    /// split.
    pub fn edge_keys(&self, start: &[u8], end: &[u8]) -> CoreResult<Option<(Vec<u8>, Vec<u8>)>> {
        let edge = |reverse: bool| -> CoreResult<Option<Vec<u8>>> {
            let mut found = None;
            self.store
                .scan_between(start, end, reverse, &mut |key, _| {
                    found = Some(key.to_vec());
                    Ok(false)
                })?;
            Ok(found)
        };
        let mut edges = match (edge(false)?, edge(true)?) {
            (Some(first), Some(last)) => Some((first, last)),
            _ => None,
        };
        for meta in self.segments_between(start, end) {
            let first = meta.min_key.as_slice().max(start).to_vec();
            let last = meta.max_key.as_slice().min(end).to_vec();
            edges = Some(match edges {
                None => (first, last),
                Some((a, b)) => (a.min(first), b.max(last)),
            });
        }
        Ok(edges)
    }

    /// The time TTLs are checked against (only read for a STREAM table).
    fn now(&self) -> i64 {
        if self.ttl_ms.is_some() { now_ms() } else { 0 }
    }

    /// Whether `row` is live: not soft-deleted and, in a STREAM table, not
    /// older than the TTL at `now` (epoch milliseconds).
    fn visible(&self, row: &RowView<'_>, now: i64) -> bool {
        !row.deleted
            && self
                .ttl_ms
                .is_none_or(|ttl| timestamp_ms(row.seq) as i64 >= now.saturating_sub(ttl))
    }

    /// How many live rows there are (both tiers).
    pub fn count_live(&self) -> CoreResult<u64> {
        let mut live = 0u64;
        self.scan_rows(&self.prefix, false, &mut |_, _| {
            live += 1;
            Ok(true)
        })?;
        Ok(live)
    }

    /// A decoded row as declared-order values, with backfill.
    pub fn values_of(&self, row: &RowView<'_>) -> CoreResult<Vec<Value>> {
        let columns = &self.table.definition.columns;
        let mut values: Vec<Value> = self
            .table
            .backfill
            .iter()
            .map(|b| b.clone().unwrap_or(Value::Null))
            .collect();
        for item in row.columns() {
            let (id, value) = item?;
            if let Some(i) = columns.iter().position(|c| c.column_id == id) {
                values[i] = value.to_value();
            }
        }
        Ok(values)
    }
}

/// What a forward read finds at a key ([`RowReader::cold_run`]).
pub enum Stretch {
    /// The table has no cold tier.
    NoColdTier,
    /// Hot rows or overlapping segments: the rows there need the merge.
    Merge,
    /// One segment alone holds the keys up to a bound.
    Run(Box<ColdRun>),
}

/// A stretch of a read that one segment alone holds.
pub struct ColdRun {
    /// The segment, open (not deleted while this is held).
    pub file: Arc<SegmentFile>,
    pub meta: SegmentMeta,
    /// Where the stretch ends (exclusive).
    pub until: Vec<u8>,
}

/// The partition prefix of a USER table's row key: the table id and the
/// encoded user id (a string: ends at the first unescaped `0x00 0x01`).
fn user_partition_of(key: &[u8]) -> &[u8] {
    match key.get(8..).and_then(kalamdb_store::keys::decode_str) {
        Some((_, used)) => &key[..8 + used],
        None => key,
    }
}

/// The segments' side of a merged scan.
struct ColdMerge {
    cursors: Vec<(SegmentCursor, u32)>,
    reverse: bool,
    include_deleted: bool,
}

impl ColdMerge {
    /// Whether `key` comes before `bound` in the scan's direction.
    fn before(&self, key: &[u8], bound: &[u8]) -> bool {
        if self.reverse {
            key > bound
        } else {
            key < bound
        }
    }

    /// Visits the segments' rows before `bound` (all of them for `None`),
    /// one version per key; false once `visit` said stop.
    fn emit_before(
        &mut self,
        bound: Option<&[u8]>,
        visit: &mut dyn FnMut(&[u8], &RowView<'_>) -> CoreResult<bool>,
    ) -> CoreResult<bool> {
        loop {
            let mut best: Option<usize> = None;
            for i in 0..self.cursors.len() {
                if !self.cursors[i].0.fill()? {
                    continue;
                }
                best = match best {
                    None => Some(i),
                    Some(b) => {
                        let (c, w) = (&self.cursors[i].0, &self.cursors[b].0);
                        let better = self.before(c.key(), w.key())
                            || (c.key() == w.key() && c.seq() > w.seq());
                        Some(if better { i } else { b })
                    }
                };
            }
            let Some(b) = best else {
                return Ok(true);
            };
            let key = self.cursors[b].0.key().to_vec();
            if bound.is_some_and(|bound| !self.before(&key, bound)) {
                return Ok(true);
            }
            let winner = &self.cursors[b];
            let row = if self.include_deleted || !winner.0.deleted() {
                let (batch, at) = winner.0.row();
                Some(encode_cold_row(winner.0.file(), batch, at, winner.1)?)
            } else {
                None
            };
            self.skip(&key)?;
            if let Some(bytes) = row
                && !visit(&key, &RowView::decode(&bytes)?)?
            {
                return Ok(false);
            }
        }
    }

    /// Moves every segment past its version of `key`, if it has one (a
    /// newer version was taken).
    fn skip(&mut self, key: &[u8]) -> CoreResult<()> {
        for (cursor, _) in &mut self.cursors {
            if cursor.fill()? && cursor.key() == key {
                cursor.advance();
            }
        }
        Ok(())
    }
}

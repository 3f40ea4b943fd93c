//! Evicting STREAM rows: those past their table's TTL (the StreamEviction
//! job) and the oldest of a table past its row cap (a task the server runs).
//! Evictions are committed through the write funnel like any DELETE, so
//! subscribers see them as `delete`s.

use crate::app_context::AppContext;
use crate::error::{CoreError, CoreResult};
use crate::row_reader::RowReader;
use crate::schema::CachedTable;
use crate::stream_store::row_cap;
use crate::table_store::RowScope;
use crate::write_set::{ChangeOp, Read, RowChange, WriteSet};
use kalamdb_commons::UserId;
use kalamdb_commons::snowflake::timestamp_ms;
use kalamdb_store::keys::decode_str;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Rows one eviction commit removes at most.
const EVICT_CHUNK: usize = 4096;

/// Which of a STREAM table's rows [`evict`] removes.
#[derive(Debug, Clone, Copy)]
pub enum Evict {
    /// Rows written before this time (epoch milliseconds).
    WrittenBefore(i64),
    /// The oldest rows, until this many are left.
    DownTo(u64),
}

/// The user a STREAM row's key belongs to (`table_id | user_id | key`).
fn owner_of(key: &[u8]) -> CoreResult<UserId> {
    key.get(8..)
        .and_then(decode_str)
        .map(|(user, _)| UserId::new(user))
        .ok_or_else(|| CoreError::Internal("a STREAM row key without its user".into()))
}

/// Removes `table`'s rows that `rule` names, through the write funnel (so
/// live subscribers get a `delete` for each); returns how many.
pub async fn evict(app: &AppContext, table: &Arc<CachedTable>, rule: Evict) -> CoreResult<u64> {
    let reader = RowReader::all_partitions(Arc::clone(table), app.table_store.clone());
    // the newest `_seq` that goes: every row at or below it is evicted
    let last_doomed = match rule {
        Evict::WrittenBefore(ms) => Some((ms, i64::MAX)),
        Evict::DownTo(keep) => {
            let mut seqs = Vec::new();
            reader.scan_rows(reader.start(), true, &mut |_, row| {
                seqs.push(row.seq);
                Ok(true)
            })?;
            let excess = seqs.len().saturating_sub(keep as usize);
            if excess == 0 {
                return Ok(0);
            }
            let (_, nth, _) = seqs.select_nth_unstable(excess - 1);
            Some((i64::MAX, *nth))
        }
    };
    let Some((before_ms, max_seq)) = last_doomed else {
        return Ok(0);
    };
    let doomed = |seq: i64| seq <= max_seq && (timestamp_ms(seq) as i64) < before_ms;
    let keyless = table.keyless();
    let mut evicted = 0u64;
    let mut conflicts = 0;
    loop {
        let mut by_user: BTreeMap<UserId, WriteSet> = BTreeMap::new();
        let mut found = 0usize;
        reader.scan_rows(reader.start(), true, &mut |key, row| {
            if doomed(row.seq) {
                let user = owner_of(key)?;
                let set = by_user
                    .entry(user.clone())
                    .or_insert_with(|| WriteSet::new(&table.definition, RowScope::User(user)));
                let values = reader.values_of(row)?;
                set.push(RowChange {
                    op: ChangeOp::Delete,
                    key: key.to_vec(),
                    // a keyless row's key follows its `_seq`: name the one it leaves
                    moved_from: keyless.then(|| key.to_vec()),
                    seq: row.seq,
                    values: values.clone(),
                    old_values: Some(values),
                    read: Read::Row(row.seq),
                });
                found += 1;
            }
            Ok(found < EVICT_CHUNK)
        })?;
        if found == 0 {
            return Ok(evicted);
        }
        match app
            .writes
            .commit(None, by_user.into_values().collect())
            .await
        {
            Ok(()) => evicted += found as u64,
            // a row changed meanwhile: look again (it may no longer be due)
            Err(CoreError::WriteConflict(_)) if conflicts < 16 => conflicts += 1,
            Err(e) => return Err(e),
        }
    }
}

/// Evicts the oldest rows of every STREAM table past its cap, down to 90 %
/// of it; returns how many rows went.
pub async fn enforce_row_caps(app: &AppContext) -> CoreResult<u64> {
    let mut evicted = 0;
    for id in app.streams.take_over_cap() {
        let Some(table) = app
            .schema_registry
            .table_by_id(kalamdb_commons::TableId(id))
        else {
            continue;
        };
        let cap = row_cap(&table.definition);
        evicted += evict(app, &table, Evict::DownTo(cap - cap / 10)).await?;
    }
    Ok(evicted)
}

/// Keeps every STREAM table within its cap until `shutdown` fires.
pub async fn run_row_caps(app: Arc<AppContext>, shutdown: tokio::sync::watch::Receiver<bool>) {
    let mut shutdown = shutdown;
    loop {
        tokio::select! {
            _ = app.streams.over_cap_signal.notified() => {}
            _ = shutdown.changed() => return,
        }
        if let Err(e) = enforce_row_caps(&app).await {
            tracing::warn!("STREAM row cap eviction failed: {e}");
        }
    }
}

//! The index consistency check: every entry of every built index against
//! the rows it indexes. An entry must exist for each live row (and only
//! for live rows), point to that row, and a unique index must hold one
//! entry per value. Used after crashes (tests `kill -9` a writing server
//! and check here) and by the index tests; it reads every row of every
//! indexed table, so it is an administrator's tool, not a query.

use crate::app_context::AppContext;
use crate::error::CoreResult;
use crate::indexes::{index_range, ready, row_entry};
use crate::row_reader::RowReader;
use crate::table_store::table_range;
use kalamdb_store::Partition;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What the check found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IndexCheck {
    /// Indexes checked (built ones; one being built is not yet complete).
    pub indexes: usize,
    /// Entries read.
    pub entries: u64,
    /// Each entry or row that is not as it should be, described.
    pub problems: Vec<String>,
}

/// Checks every built index of every table.
pub fn check_indexes(app: &AppContext) -> CoreResult<IndexCheck> {
    let mut report = IndexCheck::default();
    for table in app.schema_registry.tables(None) {
        let def = &table.definition;
        for index in def.indexes.iter().filter(|i| ready(i)) {
            report.indexes += 1;
            // what the rows say the entries are (entry key → row key tail)
            let mut expected: BTreeMap<Vec<u8>, (Vec<u8>, Option<usize>)> = BTreeMap::new();
            let reader = RowReader::all_partitions(Arc::clone(&table), app.table_store.clone());
            let (start, end) = table_range(def.table_id);
            reader.scan_range(&start, &end, false, false, &mut |key, row| {
                let values = reader.values_of(row)?;
                let (entry, tail, unique) = row_entry(def, index, key, &values)?;
                expected.insert(entry, (tail, unique));
                Ok(true)
            })?;
            let (low, high) = index_range(def.table_id, index.index_id);
            let mut found: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
            app.table_store
                .backend()
                .scan(Partition::Index, &low, &high, &mut |k, v| {
                    found.insert(k.to_vec(), v.to_vec());
                    Ok(true)
                })?;
            report.entries += found.len() as u64;
            let name = format!("{}.{}", def.table_ref(), index.name);
            for (entry, (tail, _)) in &expected {
                match found.get(entry) {
                    None => report
                        .problems
                        .push(format!("{name}: no entry for the row {tail:?}")),
                    Some(stored) if stored != tail => report.problems.push(format!(
                        "{name}: entry {entry:?} points to {stored:?}, not {tail:?}"
                    )),
                    Some(_) => {}
                }
            }
            for entry in found.keys().filter(|e| !expected.contains_key(*e)) {
                report
                    .problems
                    .push(format!("{name}: entry {entry:?} has no live row"));
            }
            if index.unique {
                let mut seen: BTreeMap<&[u8], usize> = BTreeMap::new();
                for (entry, (_, unique)) in &expected {
                    if let Some(len) = unique {
                        *seen.entry(&entry[..*len]).or_default() += 1;
                    }
                }
                for (prefix, n) in seen.into_iter().filter(|(_, n)| *n > 1) {
                    report
                        .problems
                        .push(format!("{name}: {n} rows hold the unique value {prefix:?}"));
                }
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests;

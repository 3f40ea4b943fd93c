//! The manifest of one partition (a SHARED table, or one user of a USER
//! table): its segments, newest last. kalamdb-core keeps it in RocksDB (the
//! authority) and commits it in the same write batch as the hot rows a
//! flush removes; [`Manifest::encode`] is its persisted form there and in
//! the exported copy next to the segments.

use crate::stats::ColumnStats;
use crate::{FileStoreError, FileStoreResult};
use serde::{Deserialize, Serialize};

/// The manifest format this build writes and reads.
pub const MANIFEST_FORMAT_VERSION: u32 = 1;

/// The exported copy of a partition's manifest, next to its segments
/// (written after each commit that changes it; the copy in RocksDB stays the
/// authority). For backup and disaster recovery: with it, a partition's
/// directory describes itself.
pub const MANIFEST_FILE: &str = "manifest.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentMeta {
    /// Unique within the database (a snowflake id).
    pub id: u64,
    /// The storage holding it (its id).
    #[serde(default = "local_storage")]
    pub storage: String,
    /// Path on that storage, relative to its base.
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
    /// How many of the rows are tombstones.
    pub deleted: u64,
    pub min_seq: i64,
    pub max_seq: i64,
    /// The smallest and largest storage key in the segment.
    #[serde(with = "hex_bytes")]
    pub min_key: Vec<u8>,
    #[serde(with = "hex_bytes")]
    pub max_key: Vec<u8>,
    /// The table's schema version the segment was written under.
    pub schema_version: u32,
    pub created_at_ms: i64,
    /// Written by a compaction that dropped every tombstone it could below
    /// this `_seq` (the table's resume horizon then): a later compaction
    /// rewrites the segment for its tombstones only once the horizon
    /// passed this. 0: never compacted.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub purged_below: i64,
    /// Per column (by id): null count, min and max where known.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<ColumnStats>,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

fn local_storage() -> String {
    kalamdb_commons::LOCAL_STORAGE_ID.to_string()
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// Bumped by every change (flush, compaction).
    pub generation: u64,
    pub segments: Vec<SegmentMeta>,
}

impl Manifest {
    pub fn new() -> Self {
        Self {
            format: MANIFEST_FORMAT_VERSION,
            generation: 0,
            segments: Vec::new(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a manifest always serialises")
    }

    pub fn decode(bytes: &[u8]) -> FileStoreResult<Self> {
        let manifest: Manifest = serde_json::from_slice(bytes)
            .map_err(|e| FileStoreError::Invalid(format!("unreadable manifest: {e}")))?;
        if manifest.format != MANIFEST_FORMAT_VERSION {
            return Err(FileStoreError::Invalid(format!(
                "manifest format {} is not supported (this build reads {MANIFEST_FORMAT_VERSION})",
                manifest.format
            )));
        }
        Ok(manifest)
    }

    /// The manifest with `segment` added.
    pub fn with(&self, segment: SegmentMeta) -> Self {
        let mut next = self.clone();
        next.format = MANIFEST_FORMAT_VERSION;
        next.generation += 1;
        next.segments.push(segment);
        next
    }

    pub fn rows(&self) -> u64 {
        self.segments.iter().map(|s| s.rows).sum()
    }

    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    pub fn segment(&self, id: u64) -> Option<&SegmentMeta> {
        self.segments.iter().find(|s| s.id == id)
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::hex(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        super::unhex(&s).ok_or_else(|| serde::de::Error::custom("invalid hex"))
    }
}

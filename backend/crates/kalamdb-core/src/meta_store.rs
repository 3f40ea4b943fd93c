//! Typed access to the `meta` partition: namespaces, table definitions,
//! users and counters. Every value starts with a format-version byte, then
//! JSON (metadata is small, rarely written, and worth being readable).

use crate::error::{CoreError, CoreResult};
use kalamdb_commons::{NamespaceId, Role, TableDefinition, TableId, UserId};
use kalamdb_store::backend::prefix_end;
use kalamdb_store::{Batch, Partition, STORAGE_FORMAT_VERSION, StorageBackend, StoreError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

const META_VERSION: u8 = 1;
const FORMAT_KEY: &[u8] = b"format";
const NAMESPACE_PREFIX: &[u8] = b"ns/";
const TABLE_PREFIX: &[u8] = b"tbl/";
const TABLE_VERSION_PREFIX: &[u8] = b"tblv/";
const USER_PREFIX: &[u8] = b"usr/";
const COUNTER_PREFIX: &[u8] = b"ctr/";
const AUDIT_PREFIX: &[u8] = b"aud/";
const JOB_PREFIX: &[u8] = b"job/";
/// Storages made by CREATE STORAGE (the built-in `local` is not stored).
const STORAGE_PREFIX: &[u8] = b"stg/";
/// Per table: the `_seq` below which soft-deleted rows may have been purged
/// (by Retention), so a live query cannot resume from a cursor under it.
const RESUME_HORIZON_PREFIX: &[u8] = b"rh/";
/// Dropped users waiting for the UserCleanup job, by user id.
const DROPPED_USER_PREFIX: &[u8] = b"udel/";
/// Finished backups (`system.backups`), by backup id.
const BACKUP_PREFIX: &[u8] = b"bk/";

/// One entry of `system.audit_log`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// A snowflake id: unique and in time order.
    pub audit_id: i64,
    /// Epoch milliseconds.
    pub timestamp: i64,
    /// Who acted (username, or the name a failed login tried).
    pub actor: String,
    /// `CREATE TABLE`, `DROP USER`, `EXECUTE AS USER`, `LOGIN FAILED`, …
    pub action: String,
    /// What happened, in words (never a password or a hash).
    pub details: String,
    pub client_addr: Option<String>,
    /// For EXECUTE AS USER: the user acted as.
    pub as_user: Option<String>,
}

/// One finished BACKUP (`system.backups`, SHOW BACKUPS).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupRecord {
    /// The job that took it (`BK-…`).
    pub backup_id: String,
    /// `None`: the whole database.
    pub namespace: Option<String>,
    /// The directory it was written to, on the server.
    pub path: String,
    pub tables: u64,
    pub segments: u64,
    /// Every file of the backup, in bytes.
    pub bytes: u64,
    /// Epoch milliseconds: the instant it holds (its checkpoint), and when
    /// it was complete.
    pub created_at: i64,
    pub finished_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamespaceRecord {
    pub name: NamespaceId,
    /// Epoch milliseconds.
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRecord {
    pub user_id: UserId,
    pub username: String,
    pub role: Role,
    /// See `kalamdb_commons::password`; `None` for passwordless
    /// (localhost-only) accounts.
    pub password_hash: Option<String>,
    pub email: Option<String>,
    pub allow_remote: bool,
    pub created_at: i64,
    pub updated_at: i64,
    pub deleted_at: Option<i64>,
    /// Bumped when the password or role changes: a token carries the value
    /// it was issued under and is refused once it differs.
    #[serde(default)]
    pub token_generation: u64,
}

#[derive(Clone)]
pub struct MetaStore {
    store: Arc<dyn StorageBackend>,
    /// Bumped after every committed user change; credential caches compare it.
    users_generation: Arc<AtomicU64>,
}

fn encode<T: Serialize>(value: &T) -> CoreResult<Vec<u8>> {
    let mut out = vec![META_VERSION];
    serde_json::to_writer(&mut out, value)
        .map_err(|e| CoreError::Internal(format!("cannot encode metadata: {e}")))?;
    Ok(out)
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> CoreResult<T> {
    match bytes.split_first() {
        Some((&META_VERSION, json)) => serde_json::from_slice(json)
            .map_err(|e| StoreError::Corrupt(format!("metadata record: {e}")).into()),
        Some((&v, _)) => Err(StoreError::UnsupportedFormat {
            found: v,
            supported: META_VERSION,
        }
        .into()),
        None => Err(StoreError::Corrupt("empty metadata record".into()).into()),
    }
}

fn key(prefix: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut k = prefix.to_vec();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            k.push(0);
        }
        k.extend_from_slice(p);
    }
    k
}

fn table_key(ns: &str, table: &str) -> Vec<u8> {
    key(TABLE_PREFIX, &[ns.as_bytes(), table.as_bytes()])
}

fn resume_horizon_key(table: TableId) -> Vec<u8> {
    let mut k = RESUME_HORIZON_PREFIX.to_vec();
    k.extend_from_slice(&table.0.to_be_bytes());
    k
}

fn table_version_key(id: TableId, version: u32) -> Vec<u8> {
    let mut k = TABLE_VERSION_PREFIX.to_vec();
    k.extend_from_slice(&id.0.to_be_bytes());
    k.extend_from_slice(&version.to_be_bytes());
    k
}

impl MetaStore {
    pub fn new(store: Arc<dyn StorageBackend>) -> Self {
        Self {
            store,
            users_generation: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Call after committing a change to any user.
    pub fn users_changed(&self) {
        self.users_generation.fetch_add(1, Ordering::AcqRel);
    }

    pub fn users_generation(&self) -> u64 {
        self.users_generation.load(Ordering::Acquire)
    }

    pub fn backend(&self) -> &Arc<dyn StorageBackend> {
        &self.store
    }

    /// Checks (or, on a new database, writes) the storage format version.
    /// Returns true when the database was new.
    pub fn check_format(&self) -> CoreResult<bool> {
        match self.store.get(Partition::Meta, FORMAT_KEY)? {
            Some(v) if v.as_slice() == [STORAGE_FORMAT_VERSION] => Ok(false),
            Some(v) => Err(StoreError::UnsupportedFormat {
                found: v.first().copied().unwrap_or(0),
                supported: STORAGE_FORMAT_VERSION,
            }
            .into()),
            None => {
                let mut b = Batch::new();
                b.put(
                    Partition::Meta,
                    FORMAT_KEY.to_vec(),
                    vec![STORAGE_FORMAT_VERSION],
                );
                self.store.write(b)?;
                Ok(true)
            }
        }
    }

    fn scan_prefix<T: DeserializeOwned>(&self, prefix: &[u8]) -> CoreResult<Vec<T>> {
        let end = prefix_end(prefix).unwrap_or_else(|| vec![0xFF; prefix.len() + 1]);
        let mut out = Vec::new();
        let mut failure = None;
        self.store
            .scan(Partition::Meta, prefix, &end, &mut |_, v| {
                match decode(v) {
                    Ok(item) => out.push(item),
                    Err(e) => {
                        failure = Some(e);
                        return Ok(false);
                    }
                }
                Ok(true)
            })?;
        match failure {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    pub fn namespaces(&self) -> CoreResult<Vec<NamespaceRecord>> {
        self.scan_prefix(NAMESPACE_PREFIX)
    }

    pub fn tables(&self) -> CoreResult<Vec<TableDefinition>> {
        self.scan_prefix(TABLE_PREFIX)
    }

    pub fn users(&self) -> CoreResult<Vec<UserRecord>> {
        self.scan_prefix(USER_PREFIX)
    }

    pub fn user(&self, username: &str) -> CoreResult<Option<UserRecord>> {
        self.store
            .get(Partition::Meta, &key(USER_PREFIX, &[username.as_bytes()]))?
            .map(|v| decode(&v))
            .transpose()
    }

    pub fn table_versions(&self, id: TableId) -> CoreResult<Vec<TableDefinition>> {
        let mut prefix = TABLE_VERSION_PREFIX.to_vec();
        prefix.extend_from_slice(&id.0.to_be_bytes());
        self.scan_prefix(&prefix)
    }

    pub fn put_namespace(&self, batch: &mut Batch, record: &NamespaceRecord) -> CoreResult<()> {
        batch.put(
            Partition::Meta,
            key(NAMESPACE_PREFIX, &[record.name.as_str().as_bytes()]),
            encode(record)?,
        );
        Ok(())
    }

    pub fn storages(&self) -> CoreResult<Vec<kalamdb_commons::StorageDefinition>> {
        self.scan_prefix(STORAGE_PREFIX)
    }

    pub fn put_storage(
        &self,
        batch: &mut Batch,
        def: &kalamdb_commons::StorageDefinition,
    ) -> CoreResult<()> {
        batch.put(
            Partition::Meta,
            key(STORAGE_PREFIX, &[def.storage_id.as_bytes()]),
            encode(def)?,
        );
        Ok(())
    }

    pub fn delete_storage(&self, batch: &mut Batch, id: &str) {
        batch.delete(Partition::Meta, key(STORAGE_PREFIX, &[id.as_bytes()]));
    }

    pub fn delete_namespace(&self, batch: &mut Batch, name: &str) {
        batch.delete(Partition::Meta, key(NAMESPACE_PREFIX, &[name.as_bytes()]));
    }

    /// Writes the current definition and its entry in the version history.
    pub fn put_table(&self, batch: &mut Batch, def: &TableDefinition) -> CoreResult<()> {
        let value = encode(def)?;
        batch.put(
            Partition::Meta,
            table_version_key(def.table_id, def.schema_version),
            value.clone(),
        );
        batch.put(
            Partition::Meta,
            table_key(def.namespace.as_str(), &def.name),
            value,
        );
        Ok(())
    }

    /// Keeps a past schema version of a table (its current one is written
    /// by [`MetaStore::put_table`]).
    pub fn put_table_version(&self, batch: &mut Batch, def: &TableDefinition) -> CoreResult<()> {
        batch.put(
            Partition::Meta,
            table_version_key(def.table_id, def.schema_version),
            encode(def)?,
        );
        Ok(())
    }

    pub fn put_backup(&self, record: &BackupRecord) -> CoreResult<()> {
        let mut key = BACKUP_PREFIX.to_vec();
        key.extend_from_slice(record.backup_id.as_bytes());
        let mut batch = Batch::new();
        batch.put(Partition::Meta, key, encode(record)?);
        Ok(self.store.write(batch)?)
    }

    pub fn backups(&self) -> CoreResult<Vec<BackupRecord>> {
        self.scan_prefix(BACKUP_PREFIX)
    }

    /// Removes a table's definition and history.
    pub fn delete_table(&self, batch: &mut Batch, def: &TableDefinition) {
        batch.delete(
            Partition::Meta,
            table_key(def.namespace.as_str(), &def.name),
        );
        batch.delete_range(
            Partition::Meta,
            table_version_key(def.table_id, 0),
            table_version_key(def.table_id, u32::MAX),
        );
        batch.delete(Partition::Meta, table_version_key(def.table_id, u32::MAX));
        batch.delete(Partition::Meta, resume_horizon_key(def.table_id));
    }

    /// The `_seq` below which `table`'s soft-deleted rows may be gone (see
    /// [`MetaStore::put_resume_horizon`]); 0 while none was purged.
    pub fn resume_horizon(&self, table: TableId) -> CoreResult<i64> {
        match self
            .store
            .get(Partition::Meta, &resume_horizon_key(table))?
        {
            Some(v) => Ok(i64::from_be_bytes(v.as_slice().try_into().map_err(
                |_| StoreError::Corrupt(format!("resume horizon of table {}", table.0)),
            )?)),
            None => Ok(0),
        }
    }

    /// Records that soft-deleted rows of `table` older than `seq` may be
    /// purged from now on: a cursor below it can no longer learn every
    /// delete since.
    pub fn put_resume_horizon(&self, batch: &mut Batch, table: TableId, seq: i64) {
        batch.put(
            Partition::Meta,
            resume_horizon_key(table),
            seq.to_be_bytes().to_vec(),
        );
    }

    /// Stores `user` on its own (no credential-cache invalidation: for
    /// changes that keep every credential valid, such as a rehash).
    pub fn write_user(&self, user: &UserRecord) -> CoreResult<()> {
        let mut batch = Batch::new();
        self.put_user(&mut batch, user)?;
        Ok(self.store.write(batch)?)
    }

    pub fn put_user(&self, batch: &mut Batch, user: &UserRecord) -> CoreResult<()> {
        batch.put(
            Partition::Meta,
            key(USER_PREFIX, &[user.username.as_bytes()]),
            encode(user)?,
        );
        Ok(())
    }

    /// Persists a job record (its own small write).
    pub fn put_job(&self, job: &crate::jobs::Job) -> CoreResult<()> {
        let mut batch = Batch::new();
        batch.put(
            Partition::Meta,
            key(JOB_PREFIX, &[job.job_id.as_bytes()]),
            encode(job)?,
        );
        self.store.write(batch)?;
        Ok(())
    }

    pub fn job(&self, job_id: &str) -> CoreResult<Option<crate::jobs::Job>> {
        self.store
            .get(Partition::Meta, &key(JOB_PREFIX, &[job_id.as_bytes()]))?
            .map(|v| decode(&v))
            .transpose()
    }

    pub fn jobs(&self) -> CoreResult<Vec<crate::jobs::Job>> {
        self.scan_prefix(JOB_PREFIX)
    }

    /// Remembers a dropped user until its rows are purged.
    pub fn put_dropped_user(&self, batch: &mut Batch, user: &UserRecord) -> CoreResult<()> {
        batch.put(
            Partition::Meta,
            key(DROPPED_USER_PREFIX, &[user.user_id.as_str().as_bytes()]),
            encode(user)?,
        );
        Ok(())
    }

    pub fn delete_user(&self, batch: &mut Batch, username: &str) {
        batch.delete(Partition::Meta, key(USER_PREFIX, &[username.as_bytes()]));
    }

    pub fn dropped_users(&self) -> CoreResult<Vec<UserRecord>> {
        self.scan_prefix(DROPPED_USER_PREFIX)
    }

    pub fn forget_dropped_user(&self, batch: &mut Batch, user_id: &UserId) {
        batch.delete(
            Partition::Meta,
            key(DROPPED_USER_PREFIX, &[user_id.as_str().as_bytes()]),
        );
    }

    /// Appends an audit entry (its own small write).
    pub fn append_audit(&self, entry: &AuditEntry) -> CoreResult<()> {
        let mut key = AUDIT_PREFIX.to_vec();
        key.extend_from_slice(&(entry.audit_id as u64).to_be_bytes());
        let mut batch = Batch::new();
        batch.put(Partition::Meta, key, encode(entry)?);
        self.store.write(batch)?;
        Ok(())
    }

    /// All audit entries, oldest first.
    pub fn audit_entries(&self) -> CoreResult<Vec<AuditEntry>> {
        self.scan_prefix(AUDIT_PREFIX)
    }

    /// Counter `name`'s key and value (0 if never set).
    fn counter(&self, name: &str) -> CoreResult<(Vec<u8>, u64)> {
        let k = key(COUNTER_PREFIX, &[name.as_bytes()]);
        let current = match self.store.get(Partition::Meta, &k)? {
            Some(v) => u64::from_be_bytes(
                v.as_slice()
                    .try_into()
                    .map_err(|_| StoreError::Corrupt(format!("counter {name}")))?,
            ),
            None => 0,
        };
        Ok((k, current))
    }

    /// Takes `value` of counter `name` if it was never given out (the
    /// counter is below it): the counter moves to it in `batch` and `true`
    /// comes back. Callers serialize allocation (the DDL lock).
    pub fn claim_counter(&self, batch: &mut Batch, name: &str, value: u64) -> CoreResult<bool> {
        let (k, current) = self.counter(name)?;
        if value <= current {
            return Ok(false);
        }
        batch.put(Partition::Meta, k, value.to_be_bytes().to_vec());
        Ok(true)
    }

    /// Reads counter `name` (0 if never set) and writes `value + 1` into
    /// `batch`. Callers serialize allocation (the DDL lock).
    pub fn next_counter(&self, batch: &mut Batch, name: &str) -> CoreResult<u64> {
        let (k, current) = self.counter(name)?;
        let next = current + 1;
        batch.put(Partition::Meta, k, next.to_be_bytes().to_vec());
        Ok(next)
    }
}

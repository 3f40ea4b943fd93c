//! Backup (`BK`) and Restore (`RS`): `BACKUP DATABASE [ns] TO 'dir'`,
//! `RESTORE DATABASE [ns] FROM 'dir' [WITH OVERWRITE]`.
//!
//! A backup is a directory on the server:
//! - `rocksdb/`: a RocksDB checkpoint — hot rows, indexes, manifests, cold
//!   index and metadata as of one instant, taken while writes go on;
//! - `segments/<storage>/<path>`: every segment a manifest of the
//!   checkpoint references, copied from its storage. Segment deletion is
//!   held off from before the checkpoint until the copies are done, so a
//!   compaction meanwhile cannot take a file the checkpoint still names;
//! - `backup.json` ([`BackupManifest`]), written last: every file with its
//!   size and BLAKE3 checksum. A directory without it is no backup.
//!
//! A restore reads the checkpoint (opened read-only) and recreates each
//! table under a new table id: rows and index entries copied under the new
//! id with their `_seq`s, segments uploaded to the table's storage under
//! new ids and paths, manifests and cold index pointed at them; the
//! definition (with every past schema version) commits last, so a table
//! appears whole or not at all. Users, storages and namespaces the server
//! lacks come from the backup too. A table that exists is refused unless
//! `WITH OVERWRITE`, which drops it first.

use crate::app_context::AppContext;
use crate::cold::{COLD_INDEX_ID, MANIFEST_ID, manifest_key, manifests_of, partition_manifests};
use crate::error::{CoreError, CoreResult};
use crate::jobs::executor::{JobContext, JobDecision, JobExecutor};
use crate::jobs::model::{Job, JobType};
use crate::meta_store::{BackupRecord, MetaStore, NamespaceRecord, UserRecord};
use crate::schema::CachedTable;
use crate::table_store::table_range;
use async_trait::async_trait;
use kalamdb_commons::{StorageDefinition, TableDefinition, TableId, TableType};
use kalamdb_filestore::SegmentWriter;
use kalamdb_store::row::{RowView, encode_cold_stub};
use kalamdb_store::{Batch, Partition, RocksDbBackend, StorageBackend};
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The file that makes a directory a backup.
pub const BACKUP_FILE: &str = "backup.json";
const CHECKPOINT_DIR: &str = "rocksdb";
const SEGMENTS_DIR: &str = "segments";
/// Present while a backup is being written: the job writing it.
const IN_PROGRESS_FILE: &str = ".in-progress";
const BACKUP_FORMAT: u32 = 1;
/// Keys per restore batch.
const RESTORE_BATCH: usize = 4096;

/// `backup.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupManifest {
    pub format: u32,
    pub backup_id: String,
    /// `None`: every namespace.
    pub namespace: Option<String>,
    /// Epoch milliseconds of the checkpoint.
    pub created_at: i64,
    pub server_version: String,
    /// `ns.table` of every table it holds.
    pub tables: Vec<String>,
    pub segments: u64,
    pub files: Vec<BackupFile>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupFile {
    /// Relative to the backup directory, `/`-separated.
    pub path: String,
    pub bytes: u64,
    pub blake3: String,
}

/// A backup directory named in SQL: an absolute path without `..`.
pub fn backup_dir(path: &str) -> CoreResult<PathBuf> {
    let dir = PathBuf::from(path.trim());
    if !dir.is_absolute() {
        return Err(CoreError::InvalidParameter(format!(
            "'{path}': a backup path must be absolute (a directory on the server)"
        )));
    }
    if dir
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(CoreError::InvalidParameter(format!(
            "'{path}': a backup path must not contain '..'"
        )));
    }
    Ok(dir)
}

fn io(what: &str, path: &Path, e: std::io::Error) -> CoreError {
    CoreError::Execution(format!("{what} '{}': {e}", path.display()))
}

/// Refuses a target that is a file, or a directory holding anything but
/// an unfinished backup of job `job_id` (emptied then, for a retry).
fn prepare_target(dir: &Path, job_id: Option<&str>) -> CoreResult<()> {
    if !dir.exists() {
        return Ok(());
    }
    if !dir.is_dir() {
        return Err(CoreError::AlreadyExists(format!(
            "'{}' exists and is not a directory",
            dir.display()
        )));
    }
    let mut entries = std::fs::read_dir(dir).map_err(|e| io("cannot read", dir, e))?;
    if entries.next().is_none() {
        return Ok(());
    }
    let ours = std::fs::read_to_string(dir.join(IN_PROGRESS_FILE))
        .ok()
        .is_some_and(|owner| Some(owner.trim()) == job_id);
    if ours && !dir.join(BACKUP_FILE).exists() {
        std::fs::remove_dir_all(dir).map_err(|e| io("cannot empty", dir, e))?;
        return Ok(());
    }
    Err(CoreError::AlreadyExists(format!(
        "'{}' is not empty: a backup goes to a new or empty directory",
        dir.display()
    )))
}

/// BACKUP DATABASE: checks what can be checked now and starts the job.
pub fn create_backup_job(
    app: &AppContext,
    namespace: Option<String>,
    path: &str,
) -> CoreResult<String> {
    let dir = backup_dir(path)?;
    if let Some(ns) = &namespace
        && !app.schema_registry.namespace_exists(ns)
    {
        return Err(CoreError::NamespaceNotFound(ns.clone()));
    }
    prepare_target(&dir, None)?;
    let path = dir.display().to_string();
    app.job_manager.create_job(
        JobType::Backup,
        crate::jobs::JobOptions {
            parameters: json!({ "path": path, "namespace": namespace }),
            idempotency_key: Some(format!("backup:{path}")),
            namespace_id: namespace,
            max_retries: Some(2),
            ..crate::jobs::JobOptions::default()
        },
    )
}

/// RESTORE DATABASE: reads the backup and checks it can be restored
/// (refusals come now, not from the job), then starts the job.
pub fn create_restore_job(
    app: &AppContext,
    namespace: Option<String>,
    path: &str,
    overwrite: bool,
) -> CoreResult<String> {
    let dir = backup_dir(path)?;
    let manifest = read_manifest(&dir)?;
    let copy = open_copy(&dir)?;
    plan(
        app,
        &MetaStore::new(copy),
        &manifest,
        namespace.as_deref(),
        overwrite,
    )?;
    app.job_manager.create_job(
        JobType::Restore,
        crate::jobs::JobOptions {
            parameters: json!({
                "path": dir.display().to_string(),
                "namespace": namespace,
                "overwrite": overwrite,
            }),
            idempotency_key: Some("restore".into()),
            namespace_id: namespace,
            max_retries: Some(0),
            ..crate::jobs::JobOptions::default()
        },
    )
}

#[derive(Debug, Deserialize)]
struct Params {
    path: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    overwrite: bool,
}

fn params(json: &Json) -> CoreResult<Params> {
    let p: Params = serde_json::from_value(json.clone()).map_err(|e| {
        CoreError::InvalidParameter(format!(
            "expected {{\"path\": \"/dir\", \"namespace\": ns?}}: {e}"
        ))
    })?;
    backup_dir(&p.path)?;
    Ok(p)
}

fn read_manifest(dir: &Path) -> CoreResult<BackupManifest> {
    let file = dir.join(BACKUP_FILE);
    let bytes = std::fs::read(&file).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            CoreError::NotFound(format!(
                "'{}' holds no backup (no {BACKUP_FILE})",
                dir.display()
            ))
        } else {
            io("cannot read", &file, e)
        }
    })?;
    let manifest: BackupManifest = serde_json::from_slice(&bytes).map_err(|e| {
        CoreError::InvalidParameter(format!("'{}' is not a backup: {e}", file.display()))
    })?;
    if manifest.format != BACKUP_FORMAT {
        return Err(CoreError::NotSupported(format!(
            "backup format {} (this server reads format {BACKUP_FORMAT})",
            manifest.format
        )));
    }
    Ok(manifest)
}

fn open_copy(dir: &Path) -> CoreResult<Arc<dyn StorageBackend>> {
    Ok(Arc::new(RocksDbBackend::open_read_only(
        &dir.join(CHECKPOINT_DIR),
    )?))
}

/// BLAKE3 and size of a local file.
fn checksum(path: &Path) -> CoreResult<(u64, String)> {
    let mut hasher = blake3::Hasher::new();
    let file = std::fs::File::open(path).map_err(|e| io("cannot read", path, e))?;
    hasher
        .update_reader(file)
        .map_err(|e| io("cannot read", path, e))?;
    let size = std::fs::metadata(path)
        .map_err(|e| io("cannot read", path, e))?
        .len();
    Ok((size, hasher.finalize().to_hex().to_string()))
}

/// Every file under `dir`, as `/`-separated paths relative to `base`.
fn files_under(base: &Path, dir: &Path, out: &mut Vec<String>) -> CoreResult<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| io("cannot read", dir, e))? {
        let entry = entry.map_err(|e| io("cannot read", dir, e))?;
        let path = entry.path();
        if path.is_dir() {
            files_under(base, &path, out)?;
        } else {
            let relative = path.strip_prefix(base).expect("under base");
            out.push(
                relative
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/"),
            );
        }
    }
    Ok(())
}

fn in_scope(def: &TableDefinition, namespace: Option<&str>) -> bool {
    def.table_type != TableType::System && namespace.is_none_or(|ns| def.namespace.as_str() == ns)
}

// ------------------------------------------------------------------ backup

#[derive(Default)]
pub struct BackupExecutor {
    /// Where a test holds a backup between its checkpoint (`uploaded` is
    /// signalled) and the copying of segments.
    #[cfg(test)]
    pub pause: Option<Arc<super::flush::FlushPause>>,
}

impl BackupExecutor {
    async fn run(&self, ctx: &JobContext<AppContext>, job: &Job) -> CoreResult<Option<String>> {
        let app = &ctx.app;
        let p = params(&job.parameters)?;
        let dir = PathBuf::from(&p.path);
        prepare_target(&dir, Some(&job.job_id))?;
        std::fs::create_dir_all(&dir).map_err(|e| io("cannot create", &dir, e))?;
        std::fs::write(dir.join(IN_PROGRESS_FILE), &job.job_id)
            .map_err(|e| io("cannot write", &dir, e))?;
        let cold = app.table_store.cold();
        // from before the checkpoint until every segment it names is copied
        let hold = cold.hold_deletions();
        let created_at = ctx.clock.now_ms();
        let backend = Arc::clone(app.table_store.backend());
        let checkpoint = dir.join(CHECKPOINT_DIR);
        tokio::task::spawn_blocking(move || backend.checkpoint(&checkpoint))
            .await
            .map_err(|e| CoreError::Internal(format!("checkpoint task: {e}")))??;
        #[cfg(test)]
        if let Some(pause) = &self.pause {
            pause.uploaded.notify_one();
            pause.resume.notified().await;
        }
        let copy = MetaStore::new(open_copy(&dir)?);
        if let Some(ns) = &p.namespace
            && !copy.namespaces()?.iter().any(|n| n.name.as_str() == ns)
        {
            return Err(CoreError::NamespaceNotFound(ns.clone()));
        }
        let tables: Vec<TableDefinition> = copy
            .tables()?
            .into_iter()
            .filter(|t| in_scope(t, p.namespace.as_deref()))
            .collect();
        let mut files = Vec::new();
        let mut segments = 0u64;
        for table in &tables {
            for manifest in manifests_of(copy.backend().as_ref(), table.table_id.0)? {
                for segment in manifest.segments {
                    if ctx.is_cancelled() {
                        return Ok(None);
                    }
                    let relative = format!("{SEGMENTS_DIR}/{}/{}", segment.storage, segment.path);
                    let storage = cold.storage(&segment.storage)?;
                    let (bytes, blake3) = storage
                        .copy_out(&segment.path, &dir.join(&relative))
                        .await?;
                    if bytes != segment.bytes {
                        return Err(CoreError::Internal(format!(
                            "segment '{}' on storage '{}' has {bytes} bytes, its manifest says {}",
                            segment.path, segment.storage, segment.bytes
                        )));
                    }
                    files.push(BackupFile {
                        path: relative,
                        bytes,
                        blake3,
                    });
                    segments += 1;
                }
            }
        }
        drop(copy);
        drop(hold);
        let mut names = Vec::new();
        files_under(&dir, &dir.join(CHECKPOINT_DIR), &mut names)?;
        let base = dir.clone();
        let checkpoint_files = tokio::task::spawn_blocking(move || {
            names
                .into_iter()
                .map(|path| {
                    checksum(&base.join(&path)).map(|(bytes, blake3)| BackupFile {
                        path,
                        bytes,
                        blake3,
                    })
                })
                .collect::<CoreResult<Vec<_>>>()
        })
        .await
        .map_err(|e| CoreError::Internal(format!("checksum task: {e}")))??;
        files.extend(checkpoint_files);
        let manifest = BackupManifest {
            format: BACKUP_FORMAT,
            backup_id: job.job_id.clone(),
            namespace: p.namespace.clone(),
            created_at,
            server_version: env!("CARGO_PKG_VERSION").to_string(),
            tables: tables.iter().map(|t| t.table_ref().to_string()).collect(),
            segments,
            files,
        };
        let bytes: u64 = manifest.files.iter().map(|f| f.bytes).sum();
        let text = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| CoreError::Internal(format!("cannot encode {BACKUP_FILE}: {e}")))?;
        let temp = dir.join(format!("{BACKUP_FILE}.part"));
        let write = || -> std::io::Result<()> {
            std::fs::write(&temp, &text)?;
            std::fs::File::open(&temp)?.sync_all()?;
            std::fs::rename(&temp, dir.join(BACKUP_FILE))?;
            std::fs::remove_file(dir.join(IN_PROGRESS_FILE))?;
            std::fs::File::open(&dir)?.sync_all()
        };
        write().map_err(|e| io("cannot write", &dir, e))?;
        app.meta.put_backup(&BackupRecord {
            backup_id: job.job_id.clone(),
            namespace: p.namespace.clone(),
            path: p.path.clone(),
            tables: tables.len() as u64,
            segments,
            bytes,
            created_at,
            finished_at: ctx.clock.now_ms(),
        })?;
        metrics::counter!("kalamdb_backups_total").increment(1);
        Ok(Some(format!(
            "Backed up {} table(s) and {segments} segment(s), {bytes} byte(s) in {} file(s), to '{}'",
            tables.len(),
            manifest.files.len(),
            p.path
        )))
    }
}

#[async_trait]
impl JobExecutor<AppContext> for BackupExecutor {
    fn job_type(&self) -> JobType {
        JobType::Backup
    }

    fn name(&self) -> &'static str {
        "Backup"
    }

    fn validate_params(&self, params: &Json) -> CoreResult<()> {
        self::params(params).map(drop)
    }

    async fn execute(&self, ctx: &JobContext<AppContext>, job: &Job) -> JobDecision {
        let outcome = self.run(ctx, job).await;
        JobDecision::of_run(self.name(), outcome)
    }

    /// A backup begun again starts over in its own (emptied) directory.
    fn safe_to_resume(&self) -> bool {
        true
    }
}

// ----------------------------------------------------------------- restore

/// What a restore will do, decided before it changes anything.
struct Plan {
    /// From the backup, in scope.
    tables: Vec<TableDefinition>,
    /// Live tables of the same name, dropped first (WITH OVERWRITE).
    replaced: Vec<Arc<CachedTable>>,
    namespaces: Vec<NamespaceRecord>,
    /// Users the server lacks, or (WITH OVERWRITE) has under another id.
    users: Vec<UserRecord>,
    storages: Vec<StorageDefinition>,
}

fn plan(
    app: &AppContext,
    copy: &MetaStore,
    manifest: &BackupManifest,
    namespace: Option<&str>,
    overwrite: bool,
) -> CoreResult<Plan> {
    if let (Some(ns), Some(held)) = (namespace, &manifest.namespace)
        && ns != held
    {
        return Err(CoreError::InvalidParameter(format!(
            "the backup holds namespace '{held}', not '{ns}'"
        )));
    }
    let scope = namespace.or(manifest.namespace.as_deref());
    let held = copy.namespaces()?;
    if let Some(ns) = scope
        && !held.iter().any(|n| n.name.as_str() == ns)
    {
        return Err(CoreError::NamespaceNotFound(format!(
            "{ns} (in the backup)"
        )));
    }
    let mut tables: Vec<TableDefinition> = copy
        .tables()?
        .into_iter()
        .filter(|t| in_scope(t, scope))
        .collect();
    // by id: each keeps its own while the server never gave it out
    tables.sort_by_key(|t| t.table_id);
    let mut replaced = Vec::new();
    for t in &tables {
        if let Some(live) = app.schema_registry.get_table(t.namespace.as_str(), &t.name) {
            if !overwrite {
                return Err(CoreError::AlreadyExists(format!(
                    "Table '{}' exists: RESTORE … WITH OVERWRITE replaces it",
                    t.table_ref()
                )));
            }
            replaced.push(live);
        }
    }
    let namespaces = held
        .into_iter()
        .filter(|n| scope.is_none_or(|ns| n.name.as_str() == ns))
        .filter(|n| !app.schema_registry.namespace_exists(n.name.as_str()))
        .collect();
    let mut users = Vec::new();
    for user in copy.users()? {
        if user.deleted_at.is_some() {
            continue;
        }
        match app.meta.user(&user.username)? {
            None => users.push(user),
            Some(live) if live.user_id == user.user_id => {}
            Some(_) if overwrite => users.push(user),
            Some(_) => {
                return Err(CoreError::AlreadyExists(format!(
                    "User '{}' exists with another id than in the backup: \
                     RESTORE … WITH OVERWRITE replaces the account",
                    user.username
                )));
            }
        }
    }
    let storages = copy
        .storages()?
        .into_iter()
        .filter(|s| !app.table_store.cold().storages().exists(&s.storage_id))
        .collect();
    Ok(Plan {
        tables,
        replaced,
        namespaces,
        users,
        storages,
    })
}

#[derive(Default)]
struct Restored {
    keys: u64,
    segments: u64,
    bytes: u64,
}

/// `key` with its table id (the first 8 bytes) replaced.
fn rekey(key: &[u8], table: TableId) -> Vec<u8> {
    let mut out = key.to_vec();
    out[..8].copy_from_slice(&table.0.to_be_bytes());
    out
}

/// Recreates table `old` of the backup as `def` (its new id): segments,
/// manifests, rows, index entries, cold index; then the definition.
async fn restore_table(
    app: &AppContext,
    copy: &MetaStore,
    dir: &Path,
    old: &TableDefinition,
    done: &mut Restored,
) -> CoreResult<()> {
    // its own id when this server never gave that id out (a fresh
    // server): segments then copy as they are; else a new one, and each
    // segment is rewritten with its keys under it
    let mut batch = Batch::new();
    let table_id = if app
        .meta
        .claim_counter(&mut batch, "table_id", old.table_id.0)?
    {
        old.table_id
    } else {
        TableId(app.meta.next_counter(&mut batch, "table_id")?)
    };
    app.meta.backend().write(batch)?;
    let mut def = old.clone();
    def.table_id = table_id;
    let result = copy_table(app, copy, dir, old, &def, done).await;
    if let Err(e) = result {
        // what was copied goes; uploaded segments are swept at the next start
        let mut batch = Batch::new();
        crate::table_store::delete_all_rows(&mut batch, table_id);
        let _ = app.meta.backend().write(batch);
        return Err(e);
    }
    let mut batch = Batch::new();
    for mut version in copy.table_versions(old.table_id)? {
        if version.schema_version != def.schema_version {
            version.table_id = table_id;
            app.meta.put_table_version(&mut batch, &version)?;
        }
    }
    let horizon = copy.resume_horizon(old.table_id)?;
    if horizon > 0 {
        app.meta.put_resume_horizon(&mut batch, table_id, horizon);
    }
    app.meta.put_table(&mut batch, &def)?;
    app.schema_registry.commit_table(batch, def)?;
    Ok(())
}

async fn copy_table(
    app: &AppContext,
    copy: &MetaStore,
    dir: &Path,
    old: &TableDefinition,
    def: &TableDefinition,
    done: &mut Restored,
) -> CoreResult<()> {
    let cold = app.table_store.cold();
    let source = copy.backend();
    let cached = CachedTable::new(def.clone());
    let (start, end) = table_range(old.table_id);
    let mut max_seq = 0i64;
    // segments first: the cold index is rewritten to their new ids
    let mut ids: HashMap<u64, u64> = HashMap::new();
    let mut batch = Batch::new();
    for (old_prefix, mut manifest) in partition_manifests(source.as_ref(), old.table_id.0)? {
        let prefix = rekey(&old_prefix, def.table_id);
        let mut export = None;
        for segment in &mut manifest.segments {
            let storage = cold.storage(&segment.storage)?;
            let layout = cold
                .storages()
                .definition(&segment.storage)
                .ok_or_else(|| {
                    CoreError::NotFound(format!("Storage '{}' does not exist", segment.storage))
                })?;
            let seg_dir = super::flush::segment_dir(&layout, &cached, &prefix)?;
            let id = app.snowflake.next_id() as u64;
            let path = format!("{seg_dir}/seg-{id}.parquet");
            let from = dir
                .join(SEGMENTS_DIR)
                .join(&segment.storage)
                .join(&segment.path);
            let old_id = segment.id;
            if def.table_id == old.table_id {
                storage.copy_in(&from, &path).await?;
                segment.path = path;
            } else {
                *segment = SegmentWriter::rewrite(&from, &storage, path, id, segment, |k| {
                    rekey(k, def.table_id)
                })
                .await?;
            }
            ids.insert(old_id, id);
            segment.id = id;
            max_seq = max_seq.max(segment.max_seq);
            done.segments += 1;
            done.bytes += segment.bytes;
            export = Some((storage, seg_dir));
        }
        batch.put(Partition::Index, manifest_key(&prefix), manifest.encode());
        if let Some((storage, seg_dir)) = export {
            super::flush::export_manifest(&storage, &seg_dir, &manifest).await;
        }
    }
    for partition in [Partition::Data, Partition::Index] {
        let mut failure: Option<CoreError> = None;
        source.scan(partition, &start, &end, &mut |key, value| {
            let out = rekey(key, def.table_id);
            let index = (partition == Partition::Index && key.len() >= 12)
                .then(|| u32::from_be_bytes(key[8..12].try_into().expect("4 bytes")));
            let value = match index {
                Some(MANIFEST_ID) => return Ok(true), // written above
                Some(COLD_INDEX_ID) => match restub(value, &ids) {
                    Ok(v) => v,
                    Err(e) => {
                        failure = Some(e);
                        return Ok(false);
                    }
                },
                _ => value.to_vec(),
            };
            if partition == Partition::Data
                && let Ok(row) = RowView::decode(value.as_slice())
            {
                max_seq = max_seq.max(row.seq);
            }
            batch.put(partition, out, value);
            done.keys += 1;
            if batch.len() >= RESTORE_BATCH {
                let full = std::mem::take(&mut batch);
                if let Err(e) = app.writes.commit_restored(full, max_seq) {
                    failure = Some(e);
                    return Ok(false);
                }
            }
            Ok(true)
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
    }
    app.writes.commit_restored(batch, max_seq)?;
    if !ids.is_empty() {
        cold.expect(def.table_id.0);
    }
    Ok(())
}

/// A cold stub pointed at its segment's new id.
fn restub(value: &[u8], ids: &HashMap<u64, u64>) -> CoreResult<Vec<u8>> {
    let row = RowView::decode(value)?;
    let (segment, ordinal) = row
        .cold()
        .ok_or_else(|| CoreError::Internal("a cold index entry that is no stub".into()))?;
    let segment = ids.get(&segment).copied().ok_or_else(|| {
        CoreError::Internal(format!(
            "the backup's cold index names segment {segment}, which no manifest lists"
        ))
    })?;
    Ok(encode_cold_stub(
        row.schema_version,
        row.seq,
        row.deleted,
        segment,
        ordinal,
    ))
}

pub struct RestoreExecutor;

impl RestoreExecutor {
    async fn run(&self, ctx: &JobContext<AppContext>, job: &Job) -> CoreResult<Option<String>> {
        let app = &ctx.app;
        let p = params(&job.parameters)?;
        let dir = PathBuf::from(&p.path);
        let manifest = read_manifest(&dir)?;
        // every file as the backup wrote it, before anything changes
        let base = dir.clone();
        let files = manifest.files.clone();
        tokio::task::spawn_blocking(move || {
            for file in files {
                let (bytes, blake3) = checksum(&base.join(&file.path))?;
                if bytes != file.bytes || blake3 != file.blake3 {
                    return Err(CoreError::InvalidParameter(format!(
                        "the backup is damaged: '{}' does not match its checksum",
                        file.path
                    )));
                }
            }
            Ok(())
        })
        .await
        .map_err(|e| CoreError::Internal(format!("checksum task: {e}")))??;
        let copy = MetaStore::new(open_copy(&dir)?);
        let _ddl = app.ddl_lock.lock().await;
        let plan = plan(app, &copy, &manifest, p.namespace.as_deref(), p.overwrite)?;
        let mut replaced = Vec::new();
        for live in &plan.replaced {
            crate::executor::handlers::table_ddl::drop_table_now(app, &live.definition)?;
            replaced.push(live.definition.table_ref().to_string());
        }
        for storage in &plan.storages {
            let mut batch = Batch::new();
            app.meta.put_storage(&mut batch, storage)?;
            app.meta.backend().write(batch)?;
            app.table_store.cold().storages().put(storage.clone());
        }
        if !plan.users.is_empty() {
            let mut batch = Batch::new();
            for user in &plan.users {
                app.meta.put_user(&mut batch, user)?;
            }
            app.meta.backend().write(batch)?;
            app.meta.users_changed();
        }
        for ns in &plan.namespaces {
            let mut batch = Batch::new();
            app.meta.put_namespace(&mut batch, ns)?;
            app.schema_registry.commit_namespace(batch, ns.clone())?;
        }
        let mut done = Restored::default();
        for (i, table) in plan.tables.iter().enumerate() {
            if ctx.is_cancelled() {
                return Err(CoreError::Execution(format!(
                    "Restore cancelled after {i} of {} table(s)",
                    plan.tables.len()
                )));
            }
            restore_table(app, &copy, &dir, table, &mut done)
                .await
                .map_err(|e| {
                    CoreError::Execution(format!(
                        "Restore of '{}' failed after {i} of {} table(s): {e}",
                        table.table_ref(),
                        plan.tables.len()
                    ))
                })?;
            ctx.info(&format!("restored {}", table.table_ref()));
        }
        metrics::counter!("kalamdb_restores_total").increment(1);
        let mut message = format!(
            "Restored {} table(s) from backup {} ({} key(s), {} segment(s), {} byte(s)); \
             {} namespace(s), {} user(s), {} storage(s) added",
            plan.tables.len(),
            manifest.backup_id,
            done.keys,
            done.segments,
            done.bytes,
            plan.namespaces.len(),
            plan.users.len(),
            plan.storages.len()
        );
        if !replaced.is_empty() {
            message.push_str(&format!("; replaced {}", replaced.join(", ")));
        }
        Ok(Some(message))
    }
}

#[async_trait]
impl JobExecutor<AppContext> for RestoreExecutor {
    fn job_type(&self) -> JobType {
        JobType::Restore
    }

    fn name(&self) -> &'static str {
        "Restore"
    }

    fn validate_params(&self, params: &Json) -> CoreResult<()> {
        self::params(params).map(drop)
    }

    /// Never retried: a restore that stopped half way has restored some
    /// tables, and running it again would refuse them.
    async fn execute(&self, ctx: &JobContext<AppContext>, job: &Job) -> JobDecision {
        match self.run(ctx, job).await {
            Ok(Some(message)) => JobDecision::Completed { message },
            Ok(None) => JobDecision::of_run(self.name(), Ok(None)),
            Err(e) => JobDecision::Failed {
                message: format!("Restore failed: {e}"),
                exception_trace: Some(format!("{e:?}")),
            },
        }
    }
}

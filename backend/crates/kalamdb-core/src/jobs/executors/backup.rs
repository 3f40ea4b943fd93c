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
//! A restore (`restore.rs`) reads the checkpoint (opened read-only) and recreates each
//! table under a new table id: rows and index entries copied under the new
//! id with their `_seq`s, segments uploaded to the table's storage under
//! new ids and paths, manifests and cold index pointed at them; the
//! definition (with every past schema version) commits last, so a table
//! appears whole or not at all. Users, storages and namespaces the server
//! lacks come from the backup too. A table that exists is refused unless
//! `WITH OVERWRITE`, which drops it first.

use crate::app_context::AppContext;
use crate::cold::manifests_of;
use crate::error::{CoreError, CoreResult};
use crate::jobs::executor::{JobContext, JobDecision, JobExecutor};
use crate::jobs::model::{Job, JobType};
use crate::meta_store::{BackupRecord, MetaStore};
use async_trait::async_trait;
use kalamdb_commons::{TableDefinition, TableType};
use kalamdb_store::{RocksDbBackend, StorageBackend};
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The file that makes a directory a backup.
pub const BACKUP_FILE: &str = "backup.json";
pub(super) const CHECKPOINT_DIR: &str = "rocksdb";
pub(super) const SEGMENTS_DIR: &str = "segments";
/// Present while a backup is being written: the job writing it.
const IN_PROGRESS_FILE: &str = ".in-progress";
const BACKUP_FORMAT: u32 = 1;

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

pub(super) fn io(what: &str, path: &Path, e: std::io::Error) -> CoreError {
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
    // inside a storage, the orphan sweep would take its segment copies
    let storages = app.table_store.cold().storages();
    for def in storages.all() {
        let Ok(storage) = storages.storage(&def.storage_id) else {
            continue;
        };
        if let Some(base) = storage.location().strip_prefix("file://")
            && dir.starts_with(base.trim_end_matches('/'))
        {
            return Err(CoreError::InvalidParameter(format!(
                "'{}' is inside storage '{}': a backup goes outside every storage",
                dir.display(),
                def.storage_id
            )));
        }
    }
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

#[derive(Debug, Deserialize)]
pub(super) struct Params {
    pub path: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub overwrite: bool,
    /// RESTORE: the caller has the system role (may restore system accounts).
    #[serde(default)]
    pub system_accounts: bool,
}

pub(super) fn params(json: &Json) -> CoreResult<Params> {
    let p: Params = serde_json::from_value(json.clone()).map_err(|e| {
        CoreError::InvalidParameter(format!(
            "expected {{\"path\": \"/dir\", \"namespace\": ns?}}: {e}"
        ))
    })?;
    backup_dir(&p.path)?;
    Ok(p)
}

pub(super) fn read_manifest(dir: &Path) -> CoreResult<BackupManifest> {
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

pub(super) fn open_copy(dir: &Path) -> CoreResult<Arc<dyn StorageBackend>> {
    Ok(Arc::new(RocksDbBackend::open_read_only(
        &dir.join(CHECKPOINT_DIR),
    )?))
}

/// BLAKE3 and size of a local file.
pub(super) fn checksum(path: &Path) -> CoreResult<(u64, String)> {
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

pub(super) fn in_scope(def: &TableDefinition, namespace: Option<&str>) -> bool {
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

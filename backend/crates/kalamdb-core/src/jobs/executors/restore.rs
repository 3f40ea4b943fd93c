//! Restore (`RS`): `RESTORE DATABASE [ns] FROM 'dir' [WITH OVERWRITE]` — a
//! backup (see `backup.rs` for its layout) recreated table by table.

use super::backup::{
    BackupManifest, SEGMENTS_DIR, backup_dir, checksum, in_scope, open_copy, params, read_manifest,
};
use crate::app_context::AppContext;
use crate::cold::{COLD_INDEX_ID, MANIFEST_ID, manifest_key, partition_manifests};
use crate::error::{CoreError, CoreResult};
use crate::jobs::executor::{JobContext, JobDecision, JobExecutor};
use crate::jobs::model::{Job, JobType};
use crate::meta_store::{MetaStore, NamespaceRecord, UserRecord};
use crate::schema::CachedTable;
use crate::table_store::table_range;
use async_trait::async_trait;
use kalamdb_commons::{Role, StorageDefinition, TableDefinition, TableId};
use kalamdb_filestore::SegmentWriter;
use kalamdb_store::row::{RowView, encode_cold_stub};
use kalamdb_store::{Batch, Partition};
use serde_json::{Value as Json, json};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Keys per restore batch.
const RESTORE_BATCH: usize = 4096;

/// RESTORE DATABASE: reads the backup and checks it can be restored
/// (refusals come now, not from the job), then starts the job.
pub fn create_restore_job(
    app: &AppContext,
    namespace: Option<String>,
    path: &str,
    overwrite: bool,
    caller: Role,
) -> CoreResult<String> {
    let dir = backup_dir(path)?;
    let manifest = read_manifest(&dir)?;
    let copy = open_copy(&dir)?;
    let system_accounts = caller == Role::System;
    plan(
        app,
        &MetaStore::new(copy),
        &manifest,
        namespace.as_deref(),
        overwrite,
        system_accounts,
    )?;
    app.job_manager.create_job(
        JobType::Restore,
        crate::jobs::JobOptions {
            parameters: json!({
                "path": dir.display().to_string(),
                "namespace": namespace,
                "overwrite": overwrite,
                "system_accounts": system_accounts,
            }),
            idempotency_key: Some("restore".into()),
            namespace_id: namespace,
            max_retries: Some(0),
            ..crate::jobs::JobOptions::default()
        },
    )
}

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
    system_accounts: bool,
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
        let live = app.meta.user(&user.username)?;
        // a backup is a file anyone with the path could have written: only
        // the system role may bring back (or replace) a system account
        if user.role == Role::System
            && !system_accounts
            && live.as_ref().is_none_or(|l| l.user_id != user.user_id)
        {
            return Err(CoreError::PermissionDenied(format!(
                "The backup holds system account '{}': only the system role may restore it",
                user.username
            )));
        }
        match live {
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

/// A path the backup names, refused unless it stays inside the backup
/// (relative, no `..`): the backup is a directory anyone who could write
/// there may have made.
fn inside(relative: &str) -> CoreResult<&Path> {
    let path = Path::new(relative);
    let escapes = path
        .components()
        .any(|c| !matches!(c, std::path::Component::Normal(_)));
    if escapes || relative.is_empty() {
        return Err(CoreError::InvalidParameter(format!(
            "the backup is damaged: '{relative}' is not a path inside it"
        )));
    }
    Ok(path)
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
    (dir, files): (&Path, &HashSet<&str>),
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
    let result = copy_table(app, copy, (dir, files), old, &def, done).await;
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
    (dir, files): (&Path, &HashSet<&str>),
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
            // only a file the backup lists (and the restore checked)
            let listed = format!("{SEGMENTS_DIR}/{}/{}", segment.storage, segment.path);
            if !files.contains(listed.as_str()) {
                return Err(CoreError::InvalidParameter(format!(
                    "the backup is damaged: its manifests name '{listed}', which it does not list"
                )));
            }
            let from = dir.join(inside(&listed)?);
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
                let (bytes, blake3) = checksum(&base.join(inside(&file.path)?))?;
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
        let listed: HashSet<&str> = manifest.files.iter().map(|f| f.path.as_str()).collect();
        let copy = MetaStore::new(open_copy(&dir)?);
        let _ddl = app.ddl_lock.lock().await;
        let plan = plan(
            app,
            &copy,
            &manifest,
            p.namespace.as_deref(),
            p.overwrite,
            p.system_accounts,
        )?;
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
            restore_table(app, &copy, (&dir, &listed), table, &mut done)
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

#[cfg(test)]
mod tests {
    use super::inside;

    #[test]
    fn a_backup_names_only_paths_inside_itself() {
        for ok in ["segments/local/app/items/seg-1.parquet", "rocksdb/CURRENT"] {
            assert!(inside(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "../etc/passwd",
            "/etc/passwd",
            "segments/../../x",
            "./x",
        ] {
            let e = inside(bad).unwrap_err().to_string();
            assert!(e.contains("is not a path inside it"), "{bad}: {e}");
        }
    }
}

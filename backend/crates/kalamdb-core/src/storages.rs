//! The storages segments can live on: the built-in `local` (the `storage`
//! directory under the data directory) and those CREATE STORAGE made,
//! kept in the `meta` partition. Each is opened on first use and reopened
//! after ALTER STORAGE changes it.

use crate::error::{CoreError, CoreResult};
use crate::meta_store::MetaStore;
use dashmap::DashMap;
use kalamdb_commons::{LOCAL_STORAGE_ID, StorageDefinition};
use kalamdb_filestore::Storage;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::RwLock;

pub struct StorageRegistry {
    /// The server's data directory; `None`: no cold tier at all (tests on
    /// an in-memory store).
    data_dir: Option<PathBuf>,
    local: StorageDefinition,
    created: RwLock<BTreeMap<String, StorageDefinition>>,
    opened: DashMap<String, Storage>,
}

impl std::fmt::Debug for StorageRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageRegistry")
            .field("data_dir", &self.data_dir)
            .finish()
    }
}

impl StorageRegistry {
    /// `local_dir`: the `local` storage's directory (`None`: no cold tier).
    /// Relative filesystem PATHs and cloud storages' caches live under its
    /// parent, the data directory.
    pub fn new(local_dir: Option<PathBuf>) -> Self {
        let shown = local_dir
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        let data_dir = local_dir.map(|d| match d.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        });
        Self {
            data_dir,
            local: StorageDefinition::local(&shown),
            created: RwLock::new(BTreeMap::new()),
            opened: DashMap::new(),
        }
    }

    /// Reads the created storages from the metadata store.
    pub fn load(&self, meta: &MetaStore) -> CoreResult<()> {
        let mut created = self.created.write().expect("storages lock");
        created.clear();
        for def in meta.storages()? {
            created.insert(def.storage_id.clone(), def);
        }
        Ok(())
    }

    pub fn exists(&self, id: &str) -> bool {
        id == LOCAL_STORAGE_ID || self.created.read().expect("storages lock").contains_key(id)
    }

    /// Refuses a table option naming a storage that does not exist.
    pub fn require(&self, id: &str) -> CoreResult<()> {
        if self.exists(id) {
            return Ok(());
        }
        let available: Vec<String> = self.all().into_iter().map(|s| s.storage_id).collect();
        Err(CoreError::InvalidSql(format!(
            "Storage '{id}' does not exist (available: {})",
            available.join(", ")
        )))
    }

    pub fn definition(&self, id: &str) -> Option<StorageDefinition> {
        if id == LOCAL_STORAGE_ID {
            return Some(self.local.clone());
        }
        self.created.read().expect("storages lock").get(id).cloned()
    }

    /// Every storage, `local` first, then by id.
    pub fn all(&self) -> Vec<StorageDefinition> {
        let mut out = vec![self.local.clone()];
        out.extend(
            self.created
                .read()
                .expect("storages lock")
                .values()
                .cloned(),
        );
        out
    }

    /// Opens `def` without registering it (CREATE/ALTER STORAGE check the
    /// result before committing).
    pub fn build(&self, def: &StorageDefinition) -> CoreResult<Storage> {
        let data_dir = self.data_dir.as_ref().ok_or_else(no_cold_tier)?;
        let cache = data_dir.join("cache").join(&def.storage_id);
        Ok(Storage::open(def, data_dir, &cache)?)
    }

    /// The open storage `id`.
    pub fn storage(&self, id: &str) -> CoreResult<Storage> {
        if let Some(s) = self.opened.get(id) {
            return Ok(s.clone());
        }
        let def = self
            .definition(id)
            .ok_or_else(|| CoreError::NotFound(format!("Storage '{id}' does not exist")))?;
        let storage = if id == LOCAL_STORAGE_ID {
            self.data_dir.as_ref().ok_or_else(no_cold_tier)?;
            Storage::filesystem(&self.local.base_directory)?
        } else {
            self.build(&def)?
        };
        Ok(self.opened.entry(id.to_string()).or_insert(storage).clone())
    }

    /// Makes `def` (just committed) the storage's definition.
    pub fn put(&self, def: StorageDefinition) {
        self.opened.remove(&def.storage_id);
        self.created
            .write()
            .expect("storages lock")
            .insert(def.storage_id.clone(), def);
    }

    /// Forgets storage `id` (just dropped).
    pub fn remove(&self, id: &str) {
        self.opened.remove(id);
        self.created.write().expect("storages lock").remove(id);
    }

    /// Where a cloud storage's downloaded segments are kept.
    pub fn cache_dir(&self, id: &str) -> Option<PathBuf> {
        self.data_dir.as_ref().map(|d| d.join("cache").join(id))
    }

    pub fn has_cold_tier(&self) -> bool {
        self.data_dir.is_some()
    }
}

fn no_cold_tier() -> CoreError {
    CoreError::NotSupported("This database has no storage for a cold tier".into())
}

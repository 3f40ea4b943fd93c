//! Where a table's segments live: a base location reached through
//! `object_store`. Writes always go through the object store (multipart
//! uploads, so a segment is never held whole in memory); reads of a
//! filesystem storage open the file directly, synchronously, which is what
//! the row reader's callbacks need.

use crate::{FileStoreError, FileStoreResult};
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    base: PathBuf,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage").field("base", &self.base).finish()
    }
}

/// An object listed under a prefix: its path and when it was last written.
#[derive(Debug, Clone)]
pub struct Listed {
    pub path: String,
    pub last_modified_ms: i64,
}

impl Storage {
    /// A storage on the local filesystem under `base` (created if missing).
    pub fn filesystem(base: impl Into<PathBuf>) -> FileStoreResult<Self> {
        let base = base.into();
        std::fs::create_dir_all(&base)?;
        let base = base.canonicalize()?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(&base)?;
        Ok(Self {
            store: Arc::new(store),
            base,
        })
    }

    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The object path of `path` (relative to the base).
    pub fn object_path(path: &str) -> FileStoreResult<ObjectPath> {
        ObjectPath::parse(path)
            .map_err(|e| FileStoreError::Invalid(format!("invalid storage path '{path}': {e}")))
    }

    /// Where `path` is on the local filesystem.
    pub fn local_path(&self, path: &str) -> PathBuf {
        self.base.join(path)
    }

    /// Makes `path` and its directory entry durable (an object store's
    /// local filesystem does not fsync).
    pub fn sync(&self, path: &str) -> FileStoreResult<()> {
        let local = self.local_path(path);
        std::fs::File::open(&local)?.sync_all()?;
        if let Some(dir) = local.parent() {
            sync_dir(dir)?;
        }
        Ok(())
    }

    pub async fn size(&self, path: &str) -> FileStoreResult<u64> {
        Ok(self.store.head(&Self::object_path(path)?).await?.size)
    }

    /// Removes `path`; one already gone is not an error.
    pub async fn delete(&self, path: &str) -> FileStoreResult<()> {
        match self.store.delete(&Self::object_path(path)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Every object under `prefix`.
    pub async fn list(&self, prefix: &str) -> FileStoreResult<Vec<Listed>> {
        let prefix = Self::object_path(prefix)?;
        let objects: Vec<_> = self.store.list(Some(&prefix)).try_collect().await?;
        Ok(objects
            .into_iter()
            .map(|o| Listed {
                path: o.location.to_string(),
                last_modified_ms: o.last_modified.timestamp_millis(),
            })
            .collect())
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

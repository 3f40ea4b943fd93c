//! Where a table's segments live: a base location reached through
//! `object_store` — a directory, or a bucket and prefix on S3, GCS or Azure.
//!
//! Writes always go through the object store (multipart uploads, so a
//! segment is never held whole in memory). Reads need a file the row
//! reader's synchronous callbacks can open: on a filesystem storage that is
//! the segment itself; on a cloud storage the segment is downloaded once
//! into a local cache directory (segments are immutable, so a cached copy
//! never goes stale) and read from there.
//!
//! Every request to a cloud storage runs on one dedicated I/O runtime
//! ([`io_runtime`]), whatever runtime (or plain thread) asks for it: a
//! pooled connection never outlives the runtime that opened it, and a
//! synchronous caller can wait for a download without a reactor of its own.

use crate::{FileStoreError, FileStoreResult};
use futures::TryStreamExt;
use kalamdb_commons::{StorageDefinition, StorageType};
use object_store::client::SpawnedReqwestConnector;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, RetryConfig};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// The runtime every cloud storage request runs on.
pub fn io_runtime() -> &'static tokio::runtime::Runtime {
    static IO: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kalamdb-io")
            .enable_all()
            .build()
            .expect("the I/O runtime starts")
    });
    &IO
}

/// How long a reachability check of a storage may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Clone)]
pub struct Storage {
    id: String,
    store: Arc<dyn ObjectStore>,
    place: Place,
}

#[derive(Clone, Debug)]
enum Place {
    /// A directory: segments are read where they are.
    Local(PathBuf),
    /// A cloud bucket: segments are read from copies under this directory.
    Remote { cache: PathBuf, location: String },
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("id", &self.id)
            .field("place", &self.place)
            .finish()
    }
}

/// An object listed under a prefix: its path and when it was last written.
#[derive(Debug, Clone)]
pub struct Listed {
    pub path: String,
    pub last_modified_ms: i64,
}

fn invalid(message: impl Into<String>) -> FileStoreError {
    FileStoreError::Invalid(message.into())
}

impl Storage {
    /// A storage on the local filesystem under `base` (created if missing).
    pub fn filesystem(base: impl Into<PathBuf>) -> FileStoreResult<Self> {
        let base = base.into();
        std::fs::create_dir_all(&base)?;
        let base = base.canonicalize()?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(&base)?;
        Ok(Self {
            id: kalamdb_commons::LOCAL_STORAGE_ID.to_string(),
            store: Arc::new(store),
            place: Place::Local(base),
        })
    }

    /// Opens the storage `def` describes. A relative filesystem PATH is
    /// under `data_dir`; a cloud storage caches the segments it reads under
    /// `cache_dir`. Unknown CONFIG / CREDENTIALS keys are refused here.
    /// Nothing is contacted yet ([`Storage::check`] does).
    pub fn open(
        def: &StorageDefinition,
        data_dir: &Path,
        cache_dir: &Path,
    ) -> FileStoreResult<Self> {
        let url = def.base_directory.trim();
        let options = def.config.iter().chain(def.credentials.0.iter());
        let retry = RetryConfig {
            max_retries: 3,
            retry_timeout: Duration::from_secs(20),
            ..RetryConfig::default()
        };
        let unknown = |key: &str, e: object_store::Error| {
            invalid(format!(
                "Storage '{}': unknown option '{key}' for a {} storage ({e})",
                def.storage_id,
                def.storage_type.as_str()
            ))
        };
        // the three cloud builders differ in type only
        macro_rules! cloud {
            ($builder:expr, $key:ty) => {{
                let mut builder = $builder;
                for (key, value) in options {
                    let k = <$key>::from_str(key).map_err(|e| unknown(key, e))?;
                    builder = builder.with_config(k, value);
                }
                Arc::new(
                    builder
                        .with_retry(retry)
                        .with_http_connector(SpawnedReqwestConnector::new(
                            io_runtime().handle().clone(),
                        ))
                        .build()?,
                )
            }};
        }
        let store: Arc<dyn ObjectStore> = match def.storage_type {
            StorageType::Filesystem => {
                let dir = url.strip_prefix("file://").unwrap_or(url);
                if let Some((key, _)) = options.into_iter().next() {
                    return Err(invalid(format!(
                        "Storage '{}': a filesystem storage takes no option '{key}'",
                        def.storage_id
                    )));
                }
                let mut storage = Self::filesystem(data_dir.join(dir))?;
                storage.id = def.storage_id.clone();
                return Ok(storage);
            }
            StorageType::S3 => cloud!(
                object_store::aws::AmazonS3Builder::new().with_url(url),
                object_store::aws::AmazonS3ConfigKey
            ),
            StorageType::Gcs => cloud!(
                object_store::gcp::GoogleCloudStorageBuilder::new().with_url(url),
                object_store::gcp::GoogleConfigKey
            ),
            StorageType::Azure => cloud!(
                object_store::azure::MicrosoftAzureBuilder::new().with_url(url),
                object_store::azure::AzureConfigKey
            ),
        };
        // the bucket is the URL's host; what follows it is a prefix
        let prefix = url
            .split_once("://")
            .map(|(_, rest)| rest)
            .and_then(|rest| rest.split_once('/'))
            .map(|(_, prefix)| prefix.trim_matches('/'))
            .unwrap_or("");
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            store
        } else {
            Arc::new(PrefixStore::new(store, Self::object_path(prefix)?))
        };
        Ok(Self {
            id: def.storage_id.clone(),
            store,
            place: Place::Remote {
                cache: cache_dir.to_path_buf(),
                location: location(url),
            },
        })
    }

    /// The storage's id (`local` for [`Storage::filesystem`]).
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Where the storage's objects are, normalised so that one storage's
    /// location starting with another's means they overlap:
    /// `file:///abs/dir/` or `s3://bucket/prefix/`.
    pub fn location(&self) -> String {
        match &self.place {
            Place::Local(base) => format!(
                "file://{}/",
                base.display().to_string().trim_end_matches('/')
            ),
            Place::Remote { location, .. } => location.clone(),
        }
    }

    /// The object path of `path` (relative to the base).
    pub fn object_path(path: &str) -> FileStoreResult<ObjectPath> {
        ObjectPath::parse(path).map_err(|e| invalid(format!("invalid storage path '{path}': {e}")))
    }

    /// Checks that the storage answers (lists its base), within
    /// [`CHECK_TIMEOUT`].
    pub async fn check(&self) -> FileStoreResult<()> {
        let store = Arc::clone(&self.store);
        let listing = io_runtime().spawn(async move {
            let mut objects = store.list(None);
            objects.try_next().await.map(drop)
        });
        match tokio::time::timeout(CHECK_TIMEOUT, listing).await {
            Ok(Ok(result)) => Ok(result?),
            Ok(Err(e)) => Err(invalid(format!("storage check failed: {e}"))),
            Err(_) => Err(invalid(format!(
                "no answer within {} s",
                CHECK_TIMEOUT.as_secs()
            ))),
        }
    }

    /// A local file holding segment `path`: the segment itself on a
    /// filesystem storage; on a cloud storage a cached copy, downloaded
    /// first if missing (blocking the calling thread meanwhile).
    pub fn local_copy(&self, path: &str) -> FileStoreResult<PathBuf> {
        match &self.place {
            Place::Local(base) => Ok(base.join(path)),
            Place::Remote { cache, .. } => {
                let local = cache.join(path);
                if local.exists() {
                    return Ok(local);
                }
                if let Some(dir) = local.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                self.download(path, &local)?;
                Ok(local)
            }
        }
    }

    fn download(&self, path: &str, to: &Path) -> FileStoreResult<()> {
        static PARTS: AtomicU64 = AtomicU64::new(0);
        let part = to.with_extension(format!(
            "part-{}-{}",
            std::process::id(),
            PARTS.fetch_add(1, Ordering::Relaxed)
        ));
        let store = Arc::clone(&self.store);
        let location = Self::object_path(path)?;
        let (target, temp) = (to.to_path_buf(), part.clone());
        let task = io_runtime().spawn(async move {
            let mut body = store.get(&location).await?.into_stream();
            let mut file = tokio::fs::File::create(&temp).await?;
            while let Some(chunk) = body.try_next().await? {
                file.write_all(&chunk).await?;
            }
            file.flush().await?;
            drop(file);
            tokio::fs::rename(&temp, &target).await?;
            Ok::<_, FileStoreError>(())
        });
        let result = futures::executor::block_on(task)
            .unwrap_or_else(|e| Err(invalid(format!("download of '{path}' failed: {e}"))));
        if result.is_err() {
            let _ = std::fs::remove_file(&part);
        }
        result
    }

    /// Makes `path` and its directory entry durable (object_store's local
    /// filesystem does not fsync; a completed cloud upload already is).
    pub fn sync(&self, path: &str) -> FileStoreResult<()> {
        let Place::Local(base) = &self.place else {
            return Ok(());
        };
        let local = base.join(path);
        std::fs::File::open(&local)?.sync_all()?;
        if let Some(dir) = local.parent() {
            sync_dir(dir)?;
        }
        Ok(())
    }

    /// Writes a small object at `path` in one request (replacing one there;
    /// a local file is written whole, then renamed into place, and synced).
    pub async fn put(&self, path: &str, bytes: Vec<u8>) -> FileStoreResult<()> {
        self.store
            .put(&Self::object_path(path)?, bytes.into())
            .await?;
        self.sync(path)
    }

    pub async fn size(&self, path: &str) -> FileStoreResult<u64> {
        Ok(self.store.head(&Self::object_path(path)?).await?.size)
    }

    /// Removes `path` (and a cached copy); one already gone is not an error.
    pub async fn delete(&self, path: &str) -> FileStoreResult<()> {
        if let Place::Remote { cache, .. } = &self.place {
            match std::fs::remove_file(cache.join(path)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
        }
        match self.store.delete(&Self::object_path(path)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Copies object `path` into the local file `to` (its directory made;
    /// the file must not exist), streamed, and returns its size and BLAKE3
    /// checksum. Used by BACKUP.
    pub async fn copy_out(&self, path: &str, to: &Path) -> FileStoreResult<(u64, String)> {
        if let Some(dir) = to.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        let mut body = self
            .store
            .get(&Self::object_path(path)?)
            .await?
            .into_stream();
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(to)
            .await?;
        let mut hasher = blake3::Hasher::new();
        let mut size = 0u64;
        while let Some(chunk) = body.try_next().await? {
            hasher.update(&chunk);
            size += chunk.len() as u64;
            file.write_all(&chunk).await?;
        }
        file.sync_all().await?;
        Ok((size, hasher.finalize().to_hex().to_string()))
    }

    /// Uploads the local file `from` to object `path` (a multipart upload
    /// for a large file, never held whole in memory), made durable, and
    /// returns its size and BLAKE3 checksum. Used by RESTORE.
    pub async fn copy_in(&self, from: &Path, path: &str) -> FileStoreResult<(u64, String)> {
        use tokio::io::AsyncReadExt;
        let mut file = tokio::fs::File::open(from).await?;
        let mut upload = object_store::buffered::BufWriter::new(
            Arc::clone(&self.store),
            Self::object_path(path)?,
        );
        let mut hasher = blake3::Hasher::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            size += n as u64;
            if let Err(e) = upload.write_all(&buf[..n]).await {
                let _ = upload.abort().await;
                return Err(e.into());
            }
        }
        upload.shutdown().await?;
        self.sync(path)?;
        Ok((size, hasher.finalize().to_hex().to_string()))
    }

    /// Every object under `prefix`.
    pub async fn list(&self, prefix: &str) -> FileStoreResult<Vec<Listed>> {
        let prefix = (!prefix.is_empty())
            .then(|| Self::object_path(prefix))
            .transpose()?;
        let objects: Vec<_> = self.store.list(prefix.as_ref()).try_collect().await?;
        Ok(objects
            .into_iter()
            .map(|o| Listed {
                path: o.location.to_string(),
                last_modified_ms: o.last_modified.timestamp_millis(),
            })
            .collect())
    }
}

fn location(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "s3a" => "s3".to_string(),
        "azure" | "abfs" | "abfss" => "az".to_string(),
        other => other.to_string(),
    };
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    format!("{scheme}://{}/", parts.join("/"))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

//! Kiln's artifact storage.
//!
//! Kiln keeps the files it manages (deployed model versions now; job outputs later) under one root,
//! addressed by keys like `projects/p/models/m/versions/v1/`. Sources and the managed root are both
//! reached through the `object_store` crate, so a `gs://` or `s3://` source and a local directory
//! take the same code path.
//!
//! # Layout
//! - [`uri`]: parsing a user's URI (`/abs/path`, `file://`, `gs://`, `s3://`) to a store and prefix.
//! - [`paths`]: [`PathPolicy`], the locations a project may read and write.
//! - [`bucket`]: files in buckets that jobs use, brought to the local disk.
//! - [`ArtifactStore`] (this file): the managed root: import a directory, remove it, find it on disk.
//! - `copy`: a local directory copied in without following links.

pub mod bucket;
mod copy;
pub mod paths;
pub mod uri;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

pub use paths::PathPolicy;
pub use uri::{Location, parse};

/// Most files a deployed model directory may hold (ML Engine's limit).
pub const MAX_FILES: usize = 1000;
/// Largest total size of a deployed model directory (ML Engine's limit for N1 machines).
pub const MAX_BYTES: u64 = 10 << 30;

/// Errors from artifact storage.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// The URI cannot be used; the message says why.
    #[error("{0}")]
    InvalidUri(String),
    /// The source holds nothing, too many files or too many bytes.
    #[error("{0}")]
    InvalidSource(String),
    /// Reading or writing failed.
    #[error("{0}")]
    Storage(String),
}

impl From<object_store::Error> for ArtifactError {
    fn from(error: object_store::Error) -> Self {
        ArtifactError::Storage(error.to_string())
    }
}

/// What an import copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Imported {
    /// Files copied.
    pub files: usize,
    /// Bytes copied.
    pub bytes: u64,
}

/// The managed root: a local directory, or a bucket prefix with a local cache of what this
/// server serves.
#[derive(Debug, Clone)]
pub struct ArtifactStore {
    /// The local directory: the managed root itself, or the cache of a bucket root.
    root: PathBuf,
    /// The bucket root, when the managed files are in one.
    bucket: Option<Bucket>,
}

/// A managed root in a bucket.
#[derive(Debug, Clone)]
struct Bucket {
    uri: String,
    location: Location,
}

/// The file a complete local copy of a key holds, with the stamp of what was copied: a copy cut
/// short, or of an earlier resource of the same name, is made again.
const COMPLETE: &str = ".kiln-complete";

impl ArtifactStore {
    /// Opens (creating) a local root directory.
    pub fn open(root: &Path) -> Result<Self, ArtifactError> {
        std::fs::create_dir_all(root)
            .map_err(|error| ArtifactError::Storage(format!("{}: {error}", root.display())))?;
        Ok(Self {
            root: root.to_path_buf(),
            bucket: None,
        })
    }

    /// Opens a root at `uri`: a bucket prefix (`gs://`, `s3://`), whose files are copied into
    /// `cache` where they are used, or else a local directory (`cache` is then unused).
    pub async fn open_at(uri: &str, cache: &Path) -> Result<Self, ArtifactError> {
        if !bucket::is_bucket(uri) {
            return Self::open(Path::new(uri.strip_prefix("file://").unwrap_or(uri)));
        }
        let location = parse(uri)?;
        // Reading the root now makes a bucket that does not exist or denies access stop the
        // server at startup rather than fail its first version.
        if let Some(Err(error)) = location.store.list(Some(&location.prefix)).next().await {
            return Err(ArtifactError::Storage(format!("{uri}: {error}")));
        }
        let mut store = Self::open(cache)?;
        store.bucket = Some(Bucket {
            uri: uri.trim_end_matches('/').to_string(),
            location,
        });
        Ok(store)
    }

    /// Where the files of `key` are on the local disk (for a bucket root, once
    /// [`ArtifactStore::local`] has copied them there).
    pub fn local_path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    /// The files of `key` on the local disk: for a bucket root, copied from the bucket unless
    /// a complete copy stamped `stamp` (what tells one resource of that name from a later one,
    /// such as its creation time) is there already.
    pub async fn local(&self, key: &str, stamp: &str) -> Result<PathBuf, ArtifactError> {
        let path = self.local_path(key);
        let Some(bucket) = &self.bucket else {
            return Ok(path);
        };
        if std::fs::read_to_string(path.join(COMPLETE)).is_ok_and(|found| found == stamp) {
            return Ok(path);
        }
        let partial = self.root.join(format!("{key}.kiln-partial"));
        let _ = std::fs::remove_dir_all(&partial);
        let source = format!("{}/{key}", bucket.uri);
        let copied = bucket::mirror(&source, &partial, "").await?;
        if copied == 0 {
            return Err(ArtifactError::InvalidSource(format!(
                "{source} holds no files"
            )));
        }
        let failed =
            |error: std::io::Error| ArtifactError::Storage(format!("{}: {error}", path.display()));
        std::fs::write(partial.join(COMPLETE), stamp).map_err(failed)?;
        let _ = std::fs::remove_dir_all(&path);
        std::fs::rename(&partial, &path).map_err(failed)?;
        Ok(path)
    }

    /// The key of a local path under the root ([`ArtifactStore::local_path`]), if it is one.
    pub fn key_of(&self, path: &Path) -> Option<String> {
        path.strip_prefix(&self.root)
            .ok()
            .map(|key| key.to_string_lossy().into_owned())
    }

    /// Copies every file under `source_uri` to `key/`, keeping relative paths; for a bucket root,
    /// the copy on the local disk is then put into the bucket and stamped `stamp`. A local
    /// source (an absolute path, as [`PathPolicy::check`] returns it) is copied without following
    /// links; a bucket is copied through `object_store`.
    pub async fn import(
        &self,
        source_uri: &str,
        key: &str,
        stamp: &str,
    ) -> Result<Imported, ArtifactError> {
        let destination = self.local_path(key);
        let imported = if source_uri.starts_with('/') {
            let (source, destination) = (PathBuf::from(source_uri), destination.clone());
            let what = format!("deploymentUri {source_uri:?}");
            tokio::task::spawn_blocking(move || copy::copy_tree(&source, &destination, &what))
                .await
                .map_err(|error| ArtifactError::Storage(error.to_string()))??
        } else {
            copy_objects(source_uri, &self.root, key).await?
        };
        if let Some(bucket) = &self.bucket {
            let target = Location {
                store: Arc::clone(&bucket.location.store),
                prefix: objects_path(&bucket.location.prefix, key),
            };
            bucket::put_tree(&destination, &target).await?;
            std::fs::write(destination.join(COMPLETE), stamp).map_err(|error| {
                ArtifactError::Storage(format!("{}: {error}", destination.display()))
            })?;
        }
        Ok(imported)
    }

    /// Whether a bucket location can be read and holds a file: lists its first object, so a
    /// bucket that does not exist or denies access is refused with the store's words before any
    /// work starts. Local paths are checked when they are copied.
    pub async fn probe(source_uri: &str) -> Result<(), ArtifactError> {
        if source_uri.starts_with('/') {
            return Ok(());
        }
        let Location { store, prefix } = parse(source_uri)?;
        match store.list(Some(&prefix)).next().await {
            Some(Ok(_)) => Ok(()),
            Some(Err(error)) => Err(ArtifactError::Storage(format!("{source_uri}: {error}"))),
            None => Err(ArtifactError::InvalidSource(format!(
                "{source_uri} holds no files"
            ))),
        }
    }

    /// Removes everything under `key/` (in the bucket and the local copy, for a bucket root);
    /// absent keys are fine.
    pub async fn remove(&self, key: &str) -> Result<(), ArtifactError> {
        if let Some(bucket) = &self.bucket {
            let prefix = objects_path(&bucket.location.prefix, key);
            let objects: Vec<_> = bucket
                .location
                .store
                .list(Some(&prefix))
                .try_collect()
                .await?;
            for object in objects {
                bucket.location.store.delete(&object.location).await?;
            }
        }
        let path = self.local_path(key);
        match std::fs::remove_dir_all(&path) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(ArtifactError::Storage(format!(
                "{}: {error}",
                path.display()
            ))),
        }
    }
}

/// `prefix/key` as an object path.
fn objects_path(prefix: &ObjectPath, key: &str) -> ObjectPath {
    key.split('/')
        .filter(|part| !part.is_empty())
        .fold(prefix.clone(), |path, part| path.join(part))
}

/// Copies every object under bucket location `source_uri` to `key/` under the local directory
/// `root`, within the limits of a deployed model directory.
async fn copy_objects(source_uri: &str, root: &Path, key: &str) -> Result<Imported, ArtifactError> {
    let target = LocalFileSystem::new_with_prefix(root)?;
    let Location { store, prefix } = parse(source_uri)?;
    let objects: Vec<_> = store.list(Some(&prefix)).try_collect().await?;
    if objects.is_empty() {
        return Err(ArtifactError::InvalidSource(format!(
            "deploymentUri {source_uri:?} holds no files"
        )));
    }
    if objects.len() > MAX_FILES {
        return Err(ArtifactError::InvalidSource(format!(
            "deploymentUri {source_uri:?} holds {} files, more than the limit of {MAX_FILES}",
            objects.len()
        )));
    }
    let total: u64 = objects.iter().map(|object| object.size).sum();
    if total > MAX_BYTES {
        return Err(ArtifactError::InvalidSource(format!(
            "deploymentUri {source_uri:?} holds {total} bytes, more than the limit of {MAX_BYTES}"
        )));
    }
    let destination = objects_path(&ObjectPath::default(), key);
    for object in &objects {
        let relative: Vec<_> = object
            .location
            .prefix_match(&prefix)
            .into_iter()
            .flatten()
            .collect();
        let path = relative.iter().fold(destination.clone(), |path, part| {
            path.clone().join(part.as_ref())
        });
        let bytes = store.get(&object.location).await?.bytes().await?;
        target.put(&path, PutPayload::from(bytes)).await?;
    }
    Ok(Imported {
        files: objects.len(),
        bytes: total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn imports_a_directory_tree_and_removes_it() {
        let source = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(source.path().join("variables")).unwrap();
        std::fs::write(source.path().join("kiln_model.json"), b"{}").unwrap();
        std::fs::write(source.path().join("variables/w.bin"), b"1234").unwrap();
        let root = tempfile::tempdir().unwrap();
        let store = ArtifactStore::open(root.path()).unwrap();
        let uri = format!("file://{}", source.path().display());
        let imported = store
            .import(&uri, "projects/p/models/m/versions/v1", "")
            .await
            .unwrap();
        assert_eq!(imported, Imported { files: 2, bytes: 6 });
        let copied = store.local_path("projects/p/models/m/versions/v1");
        assert_eq!(
            std::fs::read(copied.join("variables/w.bin")).unwrap(),
            b"1234"
        );
        store
            .remove("projects/p/models/m/versions/v1")
            .await
            .unwrap();
        assert!(!copied.exists());
        store
            .remove("projects/p/models/m/versions/v1")
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn an_empty_or_missing_source_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let store = ArtifactStore::open(root.path()).unwrap();
        let error = store
            .import("/no/such/dir", "k", "")
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("holds no files"), "{error}");
    }

    #[tokio::test]
    async fn a_link_inside_a_local_source_is_refused_not_followed() {
        let source = tempfile::tempdir().unwrap();
        let secret = tempfile::tempdir().unwrap();
        std::fs::write(secret.path().join("kiln.db"), b"secret").unwrap();
        std::fs::write(source.path().join("model.onnx"), b"model").unwrap();
        std::os::unix::fs::symlink(secret.path().join("kiln.db"), source.path().join("weights"))
            .unwrap();
        let root = tempfile::tempdir().unwrap();
        let store = ArtifactStore::open(root.path()).unwrap();
        let source_path = source.path().canonicalize().unwrap();
        let error = store
            .import(
                &source_path.display().to_string(),
                "projects/p/models/m/versions/v1",
                "",
            )
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("symbolic link, weights"), "{error}");
        std::fs::remove_file(source.path().join("weights")).unwrap();
        let imported = store
            .import(
                &source_path.display().to_string(),
                "projects/p/models/m/versions/v1",
                "",
            )
            .await
            .unwrap();
        assert_eq!(imported, Imported { files: 1, bytes: 5 });
    }
}

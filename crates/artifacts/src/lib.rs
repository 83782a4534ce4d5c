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

/// The managed root.
#[derive(Debug, Clone)]
pub struct ArtifactStore {
    root: PathBuf,
    managed: Arc<LocalFileSystem>,
}

impl ArtifactStore {
    /// Opens (creating) the root directory.
    pub fn open(root: &Path) -> Result<Self, ArtifactError> {
        std::fs::create_dir_all(root)
            .map_err(|error| ArtifactError::Storage(format!("{}: {error}", root.display())))?;
        let managed = LocalFileSystem::new_with_prefix(root)?;
        Ok(Self {
            root: root.to_path_buf(),
            managed: Arc::new(managed),
        })
    }

    /// Where the files of `key` are on the local disk.
    pub fn local_path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    /// Copies every file under `source_uri` to `key/`, keeping relative paths.
    /// A local source (an absolute path, as [`PathPolicy::check`] returns it) is copied without
    /// following links; a bucket is copied through `object_store`.
    pub async fn import(&self, source_uri: &str, key: &str) -> Result<Imported, ArtifactError> {
        if source_uri.starts_with('/') {
            let source = PathBuf::from(source_uri);
            let destination = self.local_path(key);
            let what = format!("deploymentUri {source_uri:?}");
            return tokio::task::spawn_blocking(move || {
                copy::copy_tree(&source, &destination, &what)
            })
            .await
            .map_err(|error| ArtifactError::Storage(error.to_string()))?;
        }
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
        let destination =
            ObjectPath::parse(key).map_err(|error| ArtifactError::InvalidUri(error.to_string()))?;
        for object in &objects {
            let relative: Vec<_> = object
                .location
                .prefix_match(&prefix)
                .into_iter()
                .flatten()
                .collect();
            let target = relative.iter().fold(destination.clone(), |path, part| {
                path.clone().join(part.as_ref())
            });
            let bytes = store.get(&object.location).await?.bytes().await?;
            self.managed.put(&target, PutPayload::from(bytes)).await?;
        }
        Ok(Imported {
            files: objects.len(),
            bytes: total,
        })
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

    /// Removes everything under `key/`; absent keys are fine.
    pub async fn remove(&self, key: &str) -> Result<(), ArtifactError> {
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
            .import(&uri, "projects/p/models/m/versions/v1")
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
            .import("/no/such/dir", "k")
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
            )
            .await
            .unwrap();
        assert_eq!(imported, Imported { files: 1, bytes: 5 });
    }
}

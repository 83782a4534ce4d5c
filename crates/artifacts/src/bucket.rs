//! Files in buckets that jobs use, brought to the local disk and back: a package to install, a
//! batch prediction's inputs and outputs, and the event files a job writes under a bucket
//! `jobDir`, mirrored so that the readers of local event files (training curves, a tuning job's
//! metrics) read them unchanged.

use std::path::{Path, PathBuf};

use futures::TryStreamExt;
use object_store::{ObjectStoreExt, PutPayload};

use crate::{ArtifactError, Location, parse};

/// Whether `uri` names a bucket location (`gs://`, `s3://`) rather than a local one.
pub fn is_bucket(uri: &str) -> bool {
    uri.starts_with("gs://") || uri.starts_with("s3://")
}

/// Downloads the object at bucket location `uri` into `dir` under its own file name; the local
/// file.
pub async fn fetch(uri: &str, dir: &Path) -> Result<PathBuf, ArtifactError> {
    let Location { store, prefix } = parse(uri)?;
    let name = prefix
        .filename()
        .filter(|name| plain(name))
        .ok_or_else(|| ArtifactError::InvalidUri(format!("{uri:?} names no file")))?;
    let bytes = store
        .get(&prefix)
        .await
        .map_err(|error| ArtifactError::Storage(format!("{uri}: {error}")))?
        .bytes()
        .await?;
    let target = dir.join(name);
    write(&target, &bytes)?;
    Ok(target)
}

/// Downloads into `dir` the objects a bucket input pattern names: one object, or with a `*` at
/// the end (`s3://b/in/part-*`) every object directly under that prefix's directory whose name
/// starts with what precedes the `*`. The local files, by name.
pub async fn fetch_matching(pattern: &str, dir: &Path) -> Result<Vec<PathBuf>, ArtifactError> {
    let Some(stem) = pattern.strip_suffix('*') else {
        return Ok(vec![fetch(pattern, dir).await?]);
    };
    let (folder, start) = stem
        .rsplit_once('/')
        .ok_or_else(|| ArtifactError::InvalidUri(format!("{pattern:?} names no directory")))?;
    let Location { store, prefix } = parse(folder)?;
    let mut objects: Vec<_> = store
        .list(Some(&prefix))
        .try_collect()
        .await
        .map_err(|error| ArtifactError::Storage(format!("{pattern}: {error}")))?;
    objects.sort_by(|a, b| a.location.cmp(&b.location));
    let mut files = Vec::new();
    for object in objects {
        let parts: Vec<String> = object
            .location
            .prefix_match(&prefix)
            .into_iter()
            .flatten()
            .map(|part| part.as_ref().to_string())
            .collect();
        let [name] = parts.as_slice() else {
            continue;
        };
        if !name.starts_with(start) || !plain(name) {
            continue;
        }
        let bytes = store.get(&object.location).await?.bytes().await?;
        let target = dir.join(name);
        write(&target, &bytes)?;
        files.push(target);
    }
    Ok(files)
}

/// Uploads every file under `dir` to bucket location `uri`, keeping its path below `dir`; how
/// many.
pub async fn upload(dir: &Path, uri: &str) -> Result<usize, ArtifactError> {
    put_tree(dir, &parse(uri)?).await
}

/// Puts every file under `dir` into `location`, keeping its path below `dir`; how many.
pub(crate) async fn put_tree(dir: &Path, location: &Location) -> Result<usize, ArtifactError> {
    let mut uploaded = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let failed = |error: std::io::Error| {
            ArtifactError::Storage(format!("{}: {error}", folder.display()))
        };
        for entry in std::fs::read_dir(&folder).map_err(failed)? {
            let path = entry.map_err(failed)?.path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let relative = path.strip_prefix(dir).unwrap_or(&path);
            let target = relative
                .components()
                .fold(location.prefix.clone(), |object, part| {
                    object.join(part.as_os_str().to_string_lossy().as_ref())
                });
            let bytes = std::fs::read(&path).map_err(failed)?;
            location
                .store
                .put(&target, PutPayload::from(bytes))
                .await
                .map_err(|error| ArtifactError::Storage(format!("{target}: {error}")))?;
            uploaded += 1;
        }
    }
    Ok(uploaded)
}

/// Copies into `dir` the objects under bucket location `uri` whose file name contains `marker`,
/// keeping their paths below `uri`; only those whose size differs from the local copy are read
/// again. Returns how many were copied.
pub async fn mirror(uri: &str, dir: &Path, marker: &str) -> Result<usize, ArtifactError> {
    let Location { store, prefix } = parse(uri)?;
    let objects: Vec<_> = store
        .list(Some(&prefix))
        .try_collect()
        .await
        .map_err(|error| ArtifactError::Storage(format!("{uri}: {error}")))?;
    let mut copied = 0;
    for object in objects {
        let Some(parts) = object.location.prefix_match(&prefix) else {
            continue;
        };
        let parts: Vec<String> = parts.map(|part| part.as_ref().to_string()).collect();
        let named = parts.last().is_some_and(|name| name.contains(marker));
        if !named || !parts.iter().all(|part| plain(part)) {
            continue;
        }
        let target = parts
            .iter()
            .fold(dir.to_path_buf(), |path, part| path.join(part));
        let local = std::fs::metadata(&target).map(|meta| meta.len()).ok();
        if local == Some(object.size) {
            continue;
        }
        let bytes = store.get(&object.location).await?.bytes().await?;
        write(&target, &bytes)?;
        copied += 1;
    }
    Ok(copied)
}

/// Whether an object name's segment can be a local file name as it is.
fn plain(part: &str) -> bool {
    !part.is_empty() && part != "." && part != ".." && !part.contains(['/', '\\', '\0'])
}

/// Writes `bytes` to `target` through a temporary file, so a reader never sees half of it.
fn write(target: &Path, bytes: &[u8]) -> Result<(), ArtifactError> {
    let failed =
        |error: std::io::Error| ArtifactError::Storage(format!("{}: {error}", target.display()));
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(failed)?;
    }
    let partial = target.with_extension("kiln-partial");
    std::fs::write(&partial, bytes).map_err(failed)?;
    std::fs::rename(&partial, target).map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn mirrors_matching_files_once_and_fetches_one() {
        let source = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(source.path().join("train")).unwrap();
        std::fs::write(source.path().join("train/events.out.tfevents.1"), b"abc").unwrap();
        std::fs::write(source.path().join("model.bin"), b"weights").unwrap();
        let copy = tempfile::tempdir().unwrap();
        let uri = format!("file://{}", source.path().display());
        assert_eq!(mirror(&uri, copy.path(), "tfevents").await.unwrap(), 1);
        assert_eq!(
            std::fs::read(copy.path().join("train/events.out.tfevents.1")).unwrap(),
            b"abc"
        );
        assert!(
            !copy.path().join("model.bin").exists(),
            "only matching files"
        );
        assert_eq!(
            mirror(&uri, copy.path(), "tfevents").await.unwrap(),
            0,
            "unchanged"
        );
        std::fs::write(source.path().join("train/events.out.tfevents.1"), b"abcdef").unwrap();
        assert_eq!(
            mirror(&uri, copy.path(), "tfevents").await.unwrap(),
            1,
            "grown"
        );
        let fetched = fetch(&format!("{uri}/model.bin"), copy.path())
            .await
            .unwrap();
        assert_eq!(std::fs::read(fetched).unwrap(), b"weights");
    }
}

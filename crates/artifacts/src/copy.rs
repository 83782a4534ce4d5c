//! Copying a local directory tree into the managed root without following links.
//!
//! A deployed directory is copied file by file. A symbolic link anywhere in it is refused rather
//! than followed, and every file is opened without following a link and then checked to still lie
//! under the source, so a link made after the location was checked (or a directory swapped for
//! one mid-copy) cannot bring another project's files, or the server's, into a version.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::{ArtifactError, Imported, MAX_BYTES, MAX_FILES};

/// The regular files under `source`, as paths relative to it, refusing links and anything that is
/// neither a file nor a directory.
fn files(source: &Path, what: &str) -> Result<Vec<(PathBuf, u64)>, ArtifactError> {
    let unreadable =
        |error: std::io::Error| ArtifactError::InvalidSource(format!("{what}: {error}"));
    let mut found = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        for entry in std::fs::read_dir(source.join(&relative)).map_err(unreadable)? {
            let entry = entry.map_err(unreadable)?;
            let path = relative.join(entry.file_name());
            let kind = entry.file_type().map_err(unreadable)?;
            if kind.is_symlink() {
                return Err(ArtifactError::InvalidSource(format!(
                    "{what} holds a symbolic link, {}; links are not copied (put the files themselves there)",
                    path.display()
                )));
            } else if kind.is_dir() {
                pending.push(path);
            } else if kind.is_file() {
                let size = entry.metadata().map(|meta| meta.len()).unwrap_or(0);
                found.push((path, size));
            } else {
                return Err(ArtifactError::InvalidSource(format!(
                    "{what} holds {}, which is not a regular file",
                    path.display()
                )));
            }
            if found.len() > MAX_FILES {
                return Err(ArtifactError::InvalidSource(format!(
                    "{what} holds more than the limit of {MAX_FILES} files"
                )));
            }
        }
    }
    Ok(found)
}

/// Opens `relative` under `source` without following a link at its end, and checks that the file
/// opened lies under `source` (no directory on the way was swapped for a link).
fn open_inside(source: &Path, relative: &Path, what: &str) -> Result<File, ArtifactError> {
    let path = source.join(relative);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|error| {
            ArtifactError::InvalidSource(format!("{what}: {}: {error}", relative.display()))
        })?;
    let opened = std::fs::read_link(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&file)
    ))
    .map_err(|error| ArtifactError::Storage(format!("{}: {error}", path.display())))?;
    match opened.starts_with(source) {
        true => Ok(file),
        false => Err(ArtifactError::InvalidSource(format!(
            "{what}: {} changed into a link while it was copied",
            relative.display()
        ))),
    }
}

/// Copies every regular file under `source` (a resolved directory) to `destination`.
pub(crate) fn copy_tree(
    source: &Path,
    destination: &Path,
    what: &str,
) -> Result<Imported, ArtifactError> {
    let source = source.canonicalize().map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => {
            ArtifactError::InvalidSource(format!("{what} holds no files (it does not exist)"))
        }
        _ => ArtifactError::InvalidSource(format!("{what}: {error}")),
    })?;
    if !source.is_dir() {
        return Err(ArtifactError::InvalidSource(format!(
            "{what} is not a directory"
        )));
    }
    let found = files(&source, what)?;
    if found.is_empty() {
        return Err(ArtifactError::InvalidSource(format!(
            "{what} holds no files"
        )));
    }
    let total: u64 = found.iter().map(|(_, size)| size).sum();
    if total > MAX_BYTES {
        return Err(ArtifactError::InvalidSource(format!(
            "{what} holds {total} bytes, more than the limit of {MAX_BYTES}"
        )));
    }
    let mut bytes = 0;
    for (relative, _) in &found {
        let mut file = open_inside(&source, relative, what)?;
        let target = destination.join(relative);
        let storage = |error: std::io::Error| {
            ArtifactError::Storage(format!("{}: {error}", target.display()))
        };
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(storage)?;
        }
        let mut out = File::create(&target).map_err(storage)?;
        bytes +=
            std::io::copy(&mut (&mut file).take(MAX_BYTES - bytes), &mut out).map_err(storage)?;
    }
    Ok(Imported {
        files: found.len(),
        bytes,
    })
}

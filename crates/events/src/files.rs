//! Input files named by patterns, as ML Engine takes them (`gs://bucket/data/part-*`): a path, or
//! a path whose last component ends in `*`; and opening them, gzip or not. Batch prediction and
//! training read their inputs through these, so both accept the same names.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// The files `pattern` names: itself, or with a trailing `*` every file in its directory whose name
/// starts with the rest, sorted.
pub fn expand(pattern: &str) -> Result<Vec<PathBuf>, String> {
    let pattern = pattern.strip_prefix("file://").unwrap_or(pattern);
    let Some((dir, prefix)) = wildcard(pattern)? else {
        return Ok(vec![PathBuf::from(pattern)]);
    };
    let entries = std::fs::read_dir(dir).map_err(|error| format!("{dir}: {error}"))?;
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_file()))
        .filter(|entry| entry.file_name().to_string_lossy().starts_with(prefix))
        .map(|entry| entry.path())
        .collect();
    files.sort();
    Ok(files)
}

/// The directory and file-name prefix of a pattern ending in `*`; `None` for a pattern without a
/// wildcard, an error for one with a wildcard anywhere else.
pub fn wildcard(pattern: &str) -> Result<Option<(&str, &str)>, String> {
    let Some(star) = pattern.find('*') else {
        return Ok(None);
    };
    if star + 1 != pattern.len() {
        return Err(format!(
            "{pattern:?}: a wildcard is allowed only at the end"
        ));
    }
    Ok(Some(match pattern[..star].rsplit_once('/') {
        Some(("", prefix)) => ("/", prefix),
        Some(split) => split,
        None => (".", &pattern[..star]),
    }))
}

/// Opens a file for reading, decompressing it when its name ends in `.gz`.
pub fn open(path: &Path) -> std::io::Result<Box<dyn BufRead + Send>> {
    let file = File::open(path)?;
    let reader: Box<dyn Read + Send> = match path.extension().is_some_and(|ext| ext == "gz") {
        true => Box::new(flate2::read::MultiGzDecoder::new(file)),
        false => Box::new(file),
    };
    Ok(Box::new(BufReader::with_capacity(1 << 16, reader)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_split_at_the_last_slash_and_only_at_the_end() {
        assert_eq!(wildcard("/in/part-*"), Ok(Some(("/in", "part-"))));
        assert_eq!(wildcard("/in/*"), Ok(Some(("/in", ""))));
        assert_eq!(wildcard("/part*"), Ok(Some(("/", "part"))));
        assert_eq!(wildcard("/in/part-1.json"), Ok(None));
        assert!(wildcard("/in/*/x").unwrap_err().contains("only at the end"));
        assert!(wildcard("/in/a*b*").is_err());
    }

    #[test]
    fn expands_a_trailing_star_to_the_sorted_files() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["part-2", "part-1", "other"] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        std::fs::create_dir(dir.path().join("part-dir")).unwrap();
        let pattern = format!("{}/part-*", dir.path().display());
        let names: Vec<String> = expand(&pattern)
            .unwrap()
            .iter()
            .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["part-1", "part-2"]);
    }
}

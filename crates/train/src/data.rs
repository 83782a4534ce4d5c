//! Reading CSV training data.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use crate::TrainError;

/// Raw rows of one or more CSV files, cells as strings with surrounding whitespace removed.
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// Column names (from the header, or given by the caller).
    pub names: Vec<String>,
    /// Rows, each with `names.len()` cells.
    pub rows: Vec<Vec<String>>,
}

/// Opens a file, decompressing it when its name ends in `.gz`.
pub fn open(path: &Path) -> Result<Box<dyn BufRead>, TrainError> {
    let file = File::open(path).map_err(|source| TrainError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let reader: Box<dyn Read> = match path.extension().is_some_and(|ext| ext == "gz") {
        true => Box::new(MultiGzDecoder::new(file)),
        false => Box::new(file),
    };
    Ok(Box::new(BufReader::new(reader)))
}

/// Reads `files` as CSV.
///
/// With `header == Some(true)` the first line of each file names the columns (they must agree);
/// with `Some(false)` the columns are `names`. With `None` a first line equal to `names`, or any first
/// line when `names` is empty, is taken as a header.
pub fn read_csv(
    files: &[PathBuf],
    names: &[String],
    header: Option<bool>,
    delimiter: u8,
) -> Result<Table, TrainError> {
    let mut table = Table {
        names: names.to_vec(),
        rows: Vec::new(),
    };
    for path in files {
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .has_headers(false)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(open(path)?);
        for (line, record) in reader.records().enumerate() {
            let record = record.map_err(|error| {
                TrainError::Data(format!("{}:{}: {error}", path.display(), line + 1))
            })?;
            let cells: Vec<String> = record.iter().map(str::to_string).collect();
            if cells.iter().all(String::is_empty) {
                continue;
            }
            if line == 0 {
                let is_header = match header {
                    Some(header) => header,
                    None => table.names.is_empty() || cells == table.names,
                };
                if is_header {
                    if table.names.is_empty() {
                        table.names = cells;
                    } else if cells != table.names {
                        return Err(TrainError::Data(format!(
                            "{}: header {cells:?} differs from {:?}",
                            path.display(),
                            table.names
                        )));
                    }
                    continue;
                }
            }
            if cells.len() != table.names.len() {
                return Err(TrainError::Data(format!(
                    "{}:{}: {} cells, expected {} ({})",
                    path.display(),
                    line + 1,
                    cells.len(),
                    table.names.len(),
                    table.names.join(", ")
                )));
            }
            table.rows.push(cells);
        }
    }
    if table.rows.is_empty() {
        return Err(TrainError::Data(format!("no data rows in {files:?}")));
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn header_is_detected_and_cells_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), "a.csv", "x, y\n1, a\n\n2,  b\n");
        let table = read_csv(&[file], &[], None, b',').unwrap();
        assert_eq!(table.names, vec!["x", "y"]);
        assert_eq!(table.rows, vec![vec!["1", "a"], vec!["2", "b"]]);
    }

    #[test]
    fn headerless_files_use_the_given_names_and_ragged_rows_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["x".to_string(), "y".to_string()];
        let file = write(dir.path(), "a.csv", "1,a\n2,b,extra\n");
        let error = read_csv(&[file], &names, None, b',')
            .unwrap_err()
            .to_string();
        assert!(error.contains("a.csv:2: 3 cells, expected 2"), "{error}");
    }
}

//! Reading tabular training data: CSV (any delimiter), JSON lines and TFRecord files of
//! `tf.train.Example`, plain or gzip, named by paths or trailing-`*` patterns. Every format comes
//! out as rows of text cells in the schema's column order, so the rest of training sees one shape.
//!
//! The format follows from the file name: `*.json*` is JSON lines (one object a line, fields named
//! as the columns), `*.tfrecord*`/`*.tfr*` TFRecord, anything else CSV.

use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

use kiln_events::example::Feature;
use serde_json::Value;

use crate::TrainError;

/// Raw rows held in memory, cells as strings with surrounding whitespace removed.
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// Column names (from the header, or given by the caller).
    pub names: Vec<String>,
    /// Rows, each with `names.len()` cells.
    pub rows: Vec<Vec<String>>,
}

/// Opens a file, decompressing it when its name ends in `.gz`.
pub fn open(path: &Path) -> Result<Box<dyn BufRead + Send>, TrainError> {
    kiln_events::files::open(path).map_err(|source| TrainError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// The files `patterns` name, in order: a trailing `*` takes every file with that prefix, sorted.
/// A pattern that matches nothing is an error.
pub fn expand(patterns: &[PathBuf]) -> Result<Vec<PathBuf>, TrainError> {
    let mut paths = Vec::new();
    for pattern in patterns {
        let found =
            kiln_events::files::expand(&pattern.display().to_string()).map_err(TrainError::Data)?;
        if found.is_empty() {
            return Err(TrainError::Data(format!(
                "{}: no file matches",
                pattern.display()
            )));
        }
        paths.extend(found);
    }
    Ok(paths)
}

/// What [`Files::scan`] calls with each row's cells; it returns whether to go on.
pub type Visit<'a> = dyn FnMut(Vec<String>) -> Result<bool, TrainError> + 'a;

/// How a file is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Csv,
    JsonLines,
    TfRecord,
}

impl Format {
    /// The format a file's name says.
    pub(crate) fn of(path: &Path) -> Self {
        let name = path
            .file_name()
            .map(|name| name.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        if name.contains(".json") {
            Format::JsonLines
        } else if name.contains(".tfrecord") || name.contains(".tfr") {
            Format::TfRecord
        } else {
            Format::Csv
        }
    }
}

/// The input files of a run and how to read them.
#[derive(Debug, Clone)]
pub struct Files {
    /// The files, patterns expanded, in order.
    pub paths: Vec<PathBuf>,
    /// Column names, in the order rows are given.
    pub names: Vec<String>,
    /// Whether each CSV file starts with a header line; `None` detects it (a first line equal to
    /// `names`).
    header: Option<bool>,
    delimiter: u8,
}

impl Files {
    /// The files `patterns` name (a trailing `*` takes every file with that prefix, sorted).
    /// With no `names`, the first CSV file's header line names the columns.
    pub fn new(
        patterns: &[PathBuf],
        names: &[String],
        header: Option<bool>,
        delimiter: u8,
    ) -> Result<Self, TrainError> {
        let mut files = Self {
            paths: expand(patterns)?,
            names: names.to_vec(),
            header,
            delimiter,
        };
        if files.names.is_empty() {
            let first = files.paths.first().ok_or_else(|| {
                TrainError::Data("no training files (--training_data_path)".into())
            })?;
            if Format::of(first) != Format::Csv {
                return Err(TrainError::Data(format!(
                    "{}: JSON lines and TFRecord input needs a schema that lists the columns",
                    first.display()
                )));
            }
            if header == Some(false) {
                return Err(TrainError::Data(
                    "CSV without a header needs a schema that lists the columns".into(),
                ));
            }
            let mut reader = csv_reader(open(first)?, delimiter);
            let record = reader
                .records()
                .next()
                .transpose()
                .map_err(|error| TrainError::Data(format!("{}:1: {error}", first.display())))?;
            files.names = record
                .map(|record| record.iter().map(str::to_string).collect())
                .unwrap_or_default();
            files.header = Some(true);
        }
        Ok(files)
    }

    /// Calls `visit` with every row's cells, in file order, until it returns `false`. Rows that
    /// cannot be read are errors naming the file and line (`file:line`) or record (`file#record`).
    pub fn scan(&self, visit: &mut Visit) -> Result<(), TrainError> {
        for path in &self.paths {
            let keep_going = match Format::of(path) {
                Format::Csv => self.scan_csv(path, visit)?,
                Format::JsonLines => self.scan_json_lines(path, visit)?,
                Format::TfRecord => self.scan_tfrecord(path, visit)?,
            };
            if !keep_going {
                break;
            }
        }
        Ok(())
    }

    /// Reads up to `limit` rows (all without one) into memory.
    pub fn read(&self, limit: Option<usize>) -> Result<Table, TrainError> {
        let mut table = Table {
            names: self.names.clone(),
            rows: Vec::new(),
        };
        self.scan(&mut |cells| {
            table.rows.push(cells);
            Ok(limit.is_none_or(|limit| table.rows.len() < limit))
        })?;
        if table.rows.is_empty() {
            return Err(TrainError::Data(format!(
                "no data rows in {:?}",
                self.paths
            )));
        }
        Ok(table)
    }

    fn scan_csv(&self, path: &Path, visit: &mut Visit) -> Result<bool, TrainError> {
        let mut reader = csv_reader(open(path)?, self.delimiter);
        let mut record = csv::StringRecord::new();
        let mut line = 0usize;
        loop {
            line += 1;
            let at = || format!("{}:{line}", path.display());
            match reader.read_record(&mut record) {
                Ok(false) => return Ok(true),
                Ok(true) => {}
                Err(error) => return Err(TrainError::Data(format!("{}: {error}", at()))),
            }
            if record.iter().all(str::is_empty) {
                continue;
            }
            if line == 1 {
                let is_header = match self.header {
                    Some(header) => header,
                    None => record.iter().eq(self.names.iter().map(String::as_str)),
                };
                if is_header {
                    if !record.iter().eq(self.names.iter().map(String::as_str)) {
                        return Err(TrainError::Data(format!(
                            "{}: header {:?} differs from {:?}",
                            path.display(),
                            record.iter().collect::<Vec<_>>(),
                            self.names
                        )));
                    }
                    continue;
                }
            }
            if record.len() != self.names.len() {
                return Err(TrainError::Data(format!(
                    "{}: {} cells, expected {} ({})",
                    at(),
                    record.len(),
                    self.names.len(),
                    self.names.join(", ")
                )));
            }
            if !visit(record.iter().map(str::to_string).collect())? {
                return Ok(false);
            }
        }
    }

    fn scan_json_lines(&self, path: &Path, visit: &mut Visit) -> Result<bool, TrainError> {
        for (index, line) in open(path)?.lines().enumerate() {
            let at = || format!("{}:{}", path.display(), index + 1);
            let line = line.map_err(|error| TrainError::Data(format!("{}: {error}", at())))?;
            if line.trim().is_empty() {
                continue;
            }
            let object: serde_json::Map<String, Value> = serde_json::from_str(&line)
                .map_err(|error| TrainError::Data(format!("{}: {error}", at())))?;
            let cells = self
                .names
                .iter()
                .map(|name| match object.get(name) {
                    None | Some(Value::Null) => Ok(String::new()),
                    Some(Value::String(text)) => Ok(text.trim().to_string()),
                    Some(Value::Number(number)) => Ok(number.to_string()),
                    Some(Value::Bool(flag)) => Ok(flag.to_string()),
                    Some(other) => Err(TrainError::Data(format!(
                        "{}: field {name:?} holds {other}; give a number or a string",
                        at()
                    ))),
                })
                .collect::<Result<Vec<_>, _>>()?;
            if !visit(cells)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn scan_tfrecord(&self, path: &Path, visit: &mut Visit) -> Result<bool, TrainError> {
        let reader: Box<dyn Read> = open(path)?;
        for (index, record) in kiln_events::record::Records::new(reader).enumerate() {
            let at = || format!("{}#{}", path.display(), index + 1);
            let bytes = record.map_err(|error| TrainError::Data(format!("{}: {error}", at())))?;
            let features = kiln_events::example::decode(&bytes)
                .ok_or_else(|| TrainError::Data(format!("{}: not a tf.train.Example", at())))?;
            let cells = self
                .names
                .iter()
                .map(|name| {
                    match features
                        .iter()
                        .find(|(feature, _)| feature == name)
                        .map(|(_, value)| value)
                    {
                        Some(Feature::Bytes(values)) => values
                            .first()
                            .map(|value| String::from_utf8_lossy(value).trim().to_string()),
                        Some(Feature::Floats(values)) => values.first().map(f32::to_string),
                        Some(Feature::Ints(values)) => values.first().map(i64::to_string),
                        None => None,
                    }
                    .unwrap_or_default()
                })
                .collect();
            if !visit(cells)? {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

fn csv_reader(reader: impl Read, delimiter: u8) -> csv::Reader<impl Read> {
    csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(reader)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|name| name.to_string()).collect()
    }

    #[test]
    fn header_is_detected_and_cells_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), "a.csv", "x, y\n1, a\n\n2,  b\n");
        let table = Files::new(&[file], &[], None, b',')
            .unwrap()
            .read(None)
            .unwrap();
        assert_eq!(table.names, vec!["x", "y"]);
        assert_eq!(table.rows, vec![vec!["1", "a"], vec!["2", "b"]]);
    }

    #[test]
    fn headerless_files_use_the_given_names_and_ragged_rows_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), "a.csv", "1,a\n2,b,extra\n");
        let error = Files::new(&[file], &names(&["x", "y"]), None, b',')
            .unwrap()
            .read(None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("a.csv:2: 3 cells, expected 2"), "{error}");
    }

    #[test]
    fn patterns_json_lines_and_tfrecords_give_the_same_rows() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "part-1.csv", "1,a\n");
        write(
            dir.path(),
            "part-2.json",
            "{\"y\": \"b\", \"x\": 2}\n{\"x\": 3.5}\n",
        );
        let mut tfrecord = Vec::new();
        let example = kiln_events::example::encode(&[
            ("x", Feature::Ints(vec![4])),
            ("y", Feature::Bytes(vec![b"d".to_vec()])),
        ]);
        tfrecord.extend(kiln_events::record::frame(&example));
        std::fs::write(dir.path().join("part-3.tfrecord"), tfrecord).unwrap();
        let pattern = dir.path().join("part-*");
        let files = Files::new(&[pattern], &names(&["x", "y"]), Some(false), b',').unwrap();
        assert_eq!(files.paths.len(), 3);
        let table = files.read(None).unwrap();
        assert_eq!(
            table.rows,
            [["1", "a"], ["2", "b"], ["3.5", ""], ["4", "d"]].map(|row| names(&row))
        );
        assert_eq!(files.read(Some(2)).unwrap().rows.len(), 2);
        let error = Files::new(&[dir.path().join("nothing-*")], &names(&["x"]), None, b',')
            .unwrap_err()
            .to_string();
        assert!(error.ends_with("nothing-*: no file matches"), "{error}");
    }
}

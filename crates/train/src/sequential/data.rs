//! Reading examples for Sequential models: MNIST-style IDX files, CSV rows of numbers and JSON
//! lines, plain or gzip. The format follows from the file name: `*idx*ubyte*` is IDX (its labels
//! in a second IDX file), `*.jsonl`/`*.json` JSON lines, anything else CSV.

use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

use serde_json::Value;

use kiln_model::sequential::input::flatten_numbers;

use crate::TrainError;
use crate::data::open;

/// One example's input before preprocessing.
#[derive(Debug, Clone, PartialEq)]
pub enum Raw {
    /// Numbers (pixels row by row, channels last, or a plain vector).
    Values(Vec<f32>),
    /// A text.
    Text(String),
}

/// Where examples come from and which fields hold what.
#[derive(Debug, Clone, Default)]
pub struct Source {
    /// Data files.
    pub files: Vec<PathBuf>,
    /// IDX label files, one per IDX data file.
    pub label_files: Vec<PathBuf>,
    /// CSV column of the label; negative counts from the end (ML Engine's default is 0, the first).
    pub label_column: i64,
    /// JSON lines: the field holding the label.
    pub label_field: String,
    /// JSON lines: the field holding the input.
    pub input_field: String,
}

/// Examples as read: inputs and their labels as text.
#[derive(Debug, Clone, Default)]
pub struct Examples {
    /// Inputs.
    pub inputs: Vec<Raw>,
    /// Labels, as written in the data.
    pub labels: Vec<String>,
}

impl Source {
    /// Reads every file.
    pub fn read(&self) -> Result<Examples, TrainError> {
        let mut examples = Examples::default();
        let mut label_files = self.label_files.iter();
        for path in &self.files {
            let name = path
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name.contains("idx") && name.contains("ubyte") {
                let labels = label_files.next().ok_or_else(|| {
                    TrainError::Config(format!(
                        "{} is an IDX file: give its labels with --training_labels_path / --validation_labels_path",
                        path.display()
                    ))
                })?;
                read_idx(path, labels, &mut examples)?;
            } else if name.contains(".json") {
                self.read_json_lines(path, &mut examples)?;
            } else {
                self.read_csv(path, &mut examples)?;
            }
        }
        Ok(examples)
    }

    fn read_json_lines(&self, path: &Path, examples: &mut Examples) -> Result<(), TrainError> {
        let at = |line: usize, message: String| {
            TrainError::Data(format!("{}:{}: {message}", path.display(), line + 1))
        };
        for (line, content) in open(path)?.lines().enumerate() {
            let content = content.map_err(|error| at(line, error.to_string()))?;
            if content.trim().is_empty() {
                continue;
            }
            let record: Value =
                serde_json::from_str(&content).map_err(|error| at(line, error.to_string()))?;
            let label = match record.get(&self.label_field) {
                Some(Value::String(label)) => label.clone(),
                Some(Value::Number(number)) => number.to_string(),
                Some(other) => {
                    return Err(at(
                        line,
                        format!("label field {:?} holds {other}", self.label_field),
                    ));
                }
                None => return Err(at(line, format!("no label field {:?}", self.label_field))),
            };
            let input = match record.get(&self.input_field) {
                Some(Value::String(text)) => Raw::Text(text.clone()),
                Some(value @ (Value::Array(_) | Value::Number(_))) => {
                    let mut numbers = Vec::new();
                    flatten_numbers(value, &mut numbers)
                        .map_err(|got| at(line, format!("expected numbers, got {got}")))?;
                    Raw::Values(numbers)
                }
                Some(other) => {
                    return Err(at(
                        line,
                        format!("input field {:?} holds {other}", self.input_field),
                    ));
                }
                None => return Err(at(line, format!("no input field {:?}", self.input_field))),
            };
            examples.inputs.push(input);
            examples.labels.push(label);
        }
        Ok(())
    }

    fn read_csv(&self, path: &Path, examples: &mut Examples) -> Result<(), TrainError> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .trim(csv::Trim::All)
            .from_reader(open(path)?);
        for (line, record) in reader.records().enumerate() {
            let at = |message: String| {
                TrainError::Data(format!("{}:{}: {message}", path.display(), line + 1))
            };
            let record = record.map_err(|error| at(error.to_string()))?;
            let width = record.len() as i64;
            let label_index = match self.label_column {
                index if index < 0 => width + index,
                index => index,
            };
            if !(0..width).contains(&label_index) {
                return Err(at(format!(
                    "--label_column {} is outside the {width} columns",
                    self.label_column
                )));
            }
            let mut values = Vec::with_capacity(record.len().saturating_sub(1));
            for (index, cell) in record.iter().enumerate() {
                if index as i64 == label_index {
                    continue;
                }
                values.push(
                    cell.parse::<f32>().map_err(|_| {
                        at(format!("column {} is {cell:?}, not a number", index + 1))
                    })?,
                );
            }
            examples
                .labels
                .push(record[label_index as usize].to_string());
            examples.inputs.push(Raw::Values(values));
        }
        Ok(())
    }
}

/// Reads an IDX file: the magic number's last byte is the rank, then one big-endian u32 per
/// dimension, then unsigned bytes.
fn idx(path: &Path, rank: u8) -> Result<(Vec<usize>, Vec<u8>), TrainError> {
    let mut bytes = Vec::new();
    open(path)?
        .read_to_end(&mut bytes)
        .map_err(|source| TrainError::Io {
            path: path.display().to_string(),
            source,
        })?;
    let bad = |why: &str| {
        TrainError::Data(format!(
            "{}: not an IDX file of unsigned bytes: {why}",
            path.display()
        ))
    };
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 0x08 {
        return Err(bad("wrong magic number"));
    }
    if bytes[3] != rank {
        return Err(bad(&format!("rank {} where {rank} was expected", bytes[3])));
    }
    let header = 4 + 4 * rank as usize;
    if bytes.len() < header {
        return Err(bad("truncated header"));
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|chunk| u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) as usize)
        .collect();
    let expected: usize = dims.iter().product();
    if bytes.len() - header != expected {
        return Err(bad(&format!(
            "{} data bytes for dimensions {dims:?}",
            bytes.len() - header
        )));
    }
    bytes.drain(..header);
    Ok((dims, bytes))
}

/// Reads IDX images (`[n, rows, columns]`) and their labels (`[n]`).
fn read_idx(images: &Path, labels: &Path, examples: &mut Examples) -> Result<(), TrainError> {
    let (dims, pixels) = idx(images, 3)?;
    let (label_dims, label_bytes) = idx(labels, 1)?;
    if label_dims[0] != dims[0] {
        return Err(TrainError::Data(format!(
            "{} has {} images but {} has {} labels",
            images.display(),
            dims[0],
            labels.display(),
            label_dims[0]
        )));
    }
    let size = dims[1] * dims[2];
    for (image, label) in pixels.chunks_exact(size.max(1)).zip(label_bytes) {
        examples.inputs.push(Raw::Values(
            image.iter().map(|&pixel| f32::from(pixel)).collect(),
        ));
        examples.labels.push(label.to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_idx_pairs_and_refuses_mismatches() {
        let dir = tempfile::tempdir().unwrap();
        let images = dir.path().join("train-images-idx3-ubyte");
        let labels = dir.path().join("train-labels-idx1-ubyte");
        let mut bytes = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2];
        bytes.extend([1, 2, 3, 4]);
        std::fs::write(&images, &bytes).unwrap();
        std::fs::write(&labels, [0, 0, 8, 1, 0, 0, 0, 2, 7, 9]).unwrap();
        let source = Source {
            files: vec![images.clone()],
            label_files: vec![labels.clone()],
            ..Source::default()
        };
        let examples = source.read().unwrap();
        assert_eq!(examples.inputs[1], Raw::Values(vec![3.0, 4.0]));
        assert_eq!(examples.labels, ["7", "9"]);

        std::fs::write(&labels, [0, 0, 8, 1, 0, 0, 0, 3, 7, 9, 1]).unwrap();
        let error = source.read().unwrap_err().to_string();
        assert!(
            error.contains("has 2 images but") && error.contains("3 labels"),
            "{error}"
        );
        let error = Source {
            label_files: vec![],
            ..source
        }
        .read()
        .unwrap_err()
        .to_string();
        assert!(error.contains("--training_labels_path"), "{error}");
    }

    #[test]
    fn reads_csv_with_the_label_anywhere_and_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("digits.csv");
        std::fs::write(&csv, "1,2,3\n4,5,x\n").unwrap();
        let last = Source {
            files: vec![csv.clone()],
            label_column: -1,
            ..Source::default()
        }
        .read()
        .unwrap();
        assert_eq!(last.labels, ["3", "x"]);
        assert_eq!(last.inputs[1], Raw::Values(vec![4.0, 5.0]));
        let error = Source {
            files: vec![csv],
            ..Source::default()
        }
        .read()
        .unwrap_err()
        .to_string();
        assert!(
            error.ends_with("digits.csv:2: column 3 is \"x\", not a number"),
            "{error}"
        );
        let jsonl = dir.path().join("news.jsonl");
        std::fs::write(
            &jsonl,
            "{\"group\": \"a\", \"text\": \"hello\"}\n\n{\"group\": 2, \"text\": [1, 2]}\n",
        )
        .unwrap();
        let examples = Source {
            files: vec![jsonl],
            label_field: "group".into(),
            input_field: "text".into(),
            ..Source::default()
        }
        .read()
        .unwrap();
        assert_eq!(
            examples.inputs,
            [Raw::Text("hello".into()), Raw::Values(vec![1.0, 2.0])]
        );
        assert_eq!(examples.labels, ["a", "2"]);
    }
}

//! Reading examples for Sequential models: MNIST-style IDX files, CSV rows of numbers, JSON lines
//! and TFRecord files of `tf.train.Example`, plain or gzip. The format follows from the file name:
//! `*idx*ubyte*` is IDX (its labels in a second IDX file), the rest as for tabular data
//! (`*.json*` JSON lines, `*.tfrecord*`/`*.tfr*` TFRecord, anything else CSV). Every reader
//! streams, one example at a time, so files larger than memory can be read again each epoch.

use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

use kiln_events::example::Feature;
use serde_json::Value;

use kiln_model::sequential::input::{flatten_numbers, pixels_to_f32};

use crate::TrainError;
use crate::data::{Format, open};
use crate::stream::Split;

/// One example's input before preprocessing.
#[derive(Debug, Clone, PartialEq)]
pub enum Raw {
    /// Numbers (pixels row by row, channels last, or a plain vector).
    Values(Vec<f32>),
    /// A text.
    Text(String),
    /// A TFRecord byte string: raw pixels, an image file or UTF-8 text.
    Bytes(Vec<u8>),
}

/// What [`Source::scan`] calls with each example's input and label as written; it returns whether
/// to go on.
pub type Visit<'a> = dyn FnMut(Raw, String) -> Result<bool, TrainError> + 'a;

/// Where examples come from and which fields hold what.
#[derive(Debug, Clone, Default)]
pub struct Source {
    /// Data files.
    pub files: Vec<PathBuf>,
    /// IDX label files, one per IDX data file.
    pub label_files: Vec<PathBuf>,
    /// CSV column of the label; negative counts from the end (ML Engine's default is 0, the first).
    pub label_column: i64,
    /// JSON lines and TFRecord: the field holding the label.
    pub label_field: String,
    /// JSON lines and TFRecord: the field holding the input.
    pub input_field: String,
}

impl Source {
    /// Calls `visit` with the examples `split` takes, in file order, until it returns `false`.
    pub fn scan(&self, split: Split, visit: &mut Visit) -> Result<(), TrainError> {
        let mut label_files = self.label_files.iter();
        let mut index = 0usize;
        let mut take = |raw: Raw, label: String| {
            index += 1;
            match split.takes(index - 1) {
                true => visit(raw, label),
                false => Ok(true),
            }
        };
        for path in &self.files {
            let name = path
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default();
            let go_on = if name.contains("idx") && name.contains("ubyte") {
                let labels = label_files.next().ok_or_else(|| {
                    TrainError::Config(format!(
                        "{} is an IDX file: give its labels with --training_labels_path / --validation_labels_path",
                        path.display()
                    ))
                })?;
                scan_idx(path, labels, &mut take)?
            } else {
                match Format::of(path) {
                    Format::JsonLines => self.scan_json_lines(path, &mut take)?,
                    Format::TfRecord => self.scan_tfrecord(path, &mut take)?,
                    Format::Csv => self.scan_csv(path, &mut take)?,
                }
            };
            if !go_on {
                break;
            }
        }
        Ok(())
    }

    fn scan_json_lines(&self, path: &Path, visit: &mut Visit) -> Result<bool, TrainError> {
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
            if !visit(input, label)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn scan_csv(&self, path: &Path, visit: &mut Visit) -> Result<bool, TrainError> {
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
            let label = record[label_index as usize].to_string();
            if !visit(Raw::Values(values), label)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// TFRecord files of `tf.train.Example`: the input feature is a byte string (raw pixels, an
    /// image file or text) or a list of numbers; the label feature's first value is the label.
    fn scan_tfrecord(&self, path: &Path, visit: &mut Visit) -> Result<bool, TrainError> {
        let reader: Box<dyn Read> = open(path)?;
        for (index, record) in kiln_events::record::Records::new(reader).enumerate() {
            let at = |message: String| {
                TrainError::Data(format!("{}#{}: {message}", path.display(), index + 1))
            };
            let bytes = record.map_err(|error| at(error.to_string()))?;
            let mut features = kiln_events::example::decode(&bytes)
                .ok_or_else(|| at("not a tf.train.Example".into()))?;
            let mut take = |name: &str| {
                let position = features.iter().position(|(feature, _)| feature == name);
                match position {
                    Some(position) => Ok(features.swap_remove(position).1),
                    None => Err(at(format!(
                        "no feature {name:?}; it has {}",
                        features
                            .iter()
                            .map(|(feature, _)| feature.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))),
                }
            };
            let label = match take(&self.label_field)? {
                Feature::Bytes(values) => values
                    .first()
                    .map(|value| String::from_utf8_lossy(value).trim().to_string()),
                Feature::Floats(values) => values.first().map(f32::to_string),
                Feature::Ints(values) => values.first().map(i64::to_string),
            };
            let label = label
                .ok_or_else(|| at(format!("the label feature {:?} is empty", self.label_field)))?;
            let input = match take(&self.input_field)? {
                Feature::Bytes(mut values) if values.len() == 1 => Raw::Bytes(values.remove(0)),
                Feature::Bytes(values) => {
                    return Err(at(format!(
                        "the input feature {:?} holds {} byte strings; one is an example",
                        self.input_field,
                        values.len()
                    )));
                }
                Feature::Floats(values) => Raw::Values(values),
                Feature::Ints(values) => {
                    Raw::Values(values.into_iter().map(|value| value as f32).collect())
                }
            };
            if !visit(input, label)? {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// Reads an IDX header: the magic number's last byte is the rank, then one big-endian u32 per
/// dimension; unsigned bytes follow.
fn idx_header(reader: &mut impl Read, path: &Path, rank: u8) -> Result<Vec<usize>, TrainError> {
    let bad = |why: &str| {
        TrainError::Data(format!(
            "{}: not an IDX file of unsigned bytes: {why}",
            path.display()
        ))
    };
    let mut magic = [0u8; 4];
    reader
        .read_exact(&mut magic)
        .map_err(|_| bad("wrong magic number"))?;
    if magic[..3] != [0, 0, 0x08] {
        return Err(bad("wrong magic number"));
    }
    if magic[3] != rank {
        return Err(bad(&format!("rank {} where {rank} was expected", magic[3])));
    }
    let mut dims = vec![0u8; 4 * rank as usize];
    reader
        .read_exact(&mut dims)
        .map_err(|_| bad("truncated header"))?;
    Ok(dims
        .chunks_exact(4)
        .map(|chunk| u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) as usize)
        .collect())
}

/// Reads IDX images (`[n, rows, columns]`) and their labels (`[n]`), one image at a time.
fn scan_idx(images: &Path, labels: &Path, visit: &mut Visit) -> Result<bool, TrainError> {
    let mut image_reader = open(images)?;
    let dims = idx_header(&mut image_reader, images, 3)?;
    let mut label_reader = open(labels)?;
    let label_dims = idx_header(&mut label_reader, labels, 1)?;
    if label_dims[0] != dims[0] {
        return Err(TrainError::Data(format!(
            "{} has {} images but {} has {} labels",
            images.display(),
            dims[0],
            labels.display(),
            label_dims[0]
        )));
    }
    let length = |path: &Path, read: usize, more: bool| {
        TrainError::Data(format!(
            "{}: not an IDX file of unsigned bytes: its header announces {} records; it has {}{read}",
            path.display(),
            dims[0],
            if more { "more than " } else { "" }
        ))
    };
    let mut image = vec![0u8; dims[1] * dims[2]];
    let mut label = [0u8];
    for read in 0..dims[0] {
        image_reader
            .read_exact(&mut image)
            .map_err(|_| length(images, read, false))?;
        label_reader
            .read_exact(&mut label)
            .map_err(|_| length(labels, read, false))?;
        if !visit(Raw::Values(pixels_to_f32(&image)), label[0].to_string())? {
            return Ok(false);
        }
    }
    for (reader, path) in [(&mut image_reader, images), (&mut label_reader, labels)] {
        if reader.read(&mut [0u8]).is_ok_and(|read| read > 0) {
            return Err(length(path, dims[0], true));
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Source {
        /// Every example, as read.
        fn read(&self) -> Result<(Vec<Raw>, Vec<String>), TrainError> {
            let (mut inputs, mut labels) = (Vec::new(), Vec::new());
            self.scan(Split::All, &mut |raw, label| {
                inputs.push(raw);
                labels.push(label);
                Ok(true)
            })?;
            Ok((inputs, labels))
        }
    }

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
        let (inputs, read_labels) = source.read().unwrap();
        assert_eq!(inputs[1], Raw::Values(vec![3.0, 4.0]));
        assert_eq!(read_labels, ["7", "9"]);

        // Files shorter or longer than their headers say.
        for (extra, says) in [(&[5][..], "it has more than 2"), (&[][..], "it has 1")] {
            let data = match extra.is_empty() {
                true => &bytes[..bytes.len() - 1],
                false => &bytes[..],
            };
            std::fs::write(&images, [data, extra].concat()).unwrap();
            let error = source.read().unwrap_err().to_string();
            assert!(
                error.contains("train-images-idx3-ubyte: not an IDX file") && error.ends_with(says),
                "{error}"
            );
        }
        std::fs::write(&images, &bytes).unwrap();

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
        assert_eq!(last.1, ["3", "x"]);
        assert_eq!(last.0[1], Raw::Values(vec![4.0, 5.0]));
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
        let (inputs, labels) = Source {
            files: vec![jsonl],
            label_field: "group".into(),
            input_field: "text".into(),
            ..Source::default()
        }
        .read()
        .unwrap();
        assert_eq!(
            inputs,
            [Raw::Text("hello".into()), Raw::Values(vec![1.0, 2.0])]
        );
        assert_eq!(labels, ["a", "2"]);
    }

    #[test]
    fn reads_tfrecord_examples_of_bytes_or_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("digits.tfrecord");
        let mut file = Vec::new();
        for features in [
            vec![
                ("image", Feature::Bytes(vec![vec![0, 255]])),
                ("label", Feature::Ints(vec![3])),
            ],
            vec![
                ("label", Feature::Bytes(vec![b"seven".to_vec()])),
                ("image", Feature::Floats(vec![0.5, 1.5])),
            ],
            vec![("image", Feature::Ints(vec![1, 2]))],
        ] {
            file.extend(kiln_events::record::frame(&kiln_events::example::encode(
                &features,
            )));
        }
        std::fs::write(&path, file).unwrap();
        let source = Source {
            files: vec![path],
            label_field: "label".into(),
            input_field: "image".into(),
            ..Source::default()
        };
        let (mut inputs, mut labels) = (Vec::new(), Vec::new());
        let error = source
            .scan(Split::All, &mut |raw, label| {
                inputs.push(raw);
                labels.push(label);
                Ok(true)
            })
            .unwrap_err()
            .to_string();
        assert_eq!(
            inputs,
            [Raw::Bytes(vec![0, 255]), Raw::Values(vec![0.5, 1.5])]
        );
        assert_eq!(labels, ["3", "seven"]);
        assert!(
            error.ends_with("digits.tfrecord#3: no feature \"label\"; it has image"),
            "{error}"
        );
    }
}

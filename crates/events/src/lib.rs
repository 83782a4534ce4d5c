//! TFRecord files: TensorBoard event files (`events.out.tfevents.*`, scalars in and out) and the
//! `tf.train.Example` records of batch prediction and training inputs; and the input files
//! themselves, named by patterns and gzip or not.
//!
//! # Layout
//! - this file: event files: [`Writer`], [`Tail`], [`find`].
//! - [`record`]: TFRecord framing, and [`record::Records`], which streams a file's records.
//! - [`example`]: `tf.train.Example` decoding and encoding.
//! - [`files`]: input file patterns (a trailing `*`) and opening files, gzip or not.
//! - `proto`: the protobuf wire-format helpers all of them share.
//!
//! An event file is a TFRecord stream (`u64` length, masked CRC-32C of the length, the bytes, masked
//! CRC-32C of the bytes) of `tensorflow.Event` protocol buffers. Kiln needs only scalar summaries —
//! a tuning trial's metric, a training curve — so this crate decodes the few protobuf fields
//! involved by hand instead of carrying generated code: `Event.wall_time` (1), `Event.step` (2),
//! `Event.summary` (5) → `Summary.value` (1) → `Value.tag` (1), `Value.simple_value` (2) or
//! `Value.tensor` (8, TF 2's scalars: `float_val` / `double_val` / `tensor_content`).
//!
//! [`Tail`] reads a growing file incrementally: a record still being written is left for the next
//! read, so a trainer's events can be followed while it runs.

pub mod example;
pub mod files;
mod proto;
pub mod record;

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use proto::{Field, fields, put_bytes, put_fixed64, put_key, put_varint};

/// Why an event file cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    /// The file system failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A record's checksum does not match: the file is not an event file or is damaged.
    #[error("corrupt record at byte {0}")]
    Corrupt(u64),
}

/// One scalar of one event.
#[derive(Debug, Clone, PartialEq)]
pub struct Scalar {
    /// Summary tag, e.g. `accuracy` or `epoch_loss`.
    pub tag: String,
    /// Training step.
    pub step: i64,
    /// Seconds since the epoch when it was written.
    pub wall_time: f64,
    /// The value.
    pub value: f64,
}

/// Appends event records to a file, one per [`Writer::scalars`] call, flushed at once so a reader
/// sees whole steps.
pub struct Writer {
    file: std::fs::File,
}

impl Writer {
    /// Creates `events.out.tfevents.{seconds}.kiln.{pid}` in `dir` (TensorFlow names them by
    /// time, host and process) and writes the file-version event.
    pub fn create(dir: &Path, wall_time: f64) -> Result<Self, EventsError> {
        std::fs::create_dir_all(dir)?;
        let name = format!(
            "events.out.tfevents.{}.kiln.{}",
            wall_time as u64,
            std::process::id()
        );
        let mut writer = Self {
            file: std::fs::File::create(dir.join(name))?,
        };
        let mut event = Vec::new();
        put_fixed64(&mut event, 1, wall_time.to_bits());
        put_bytes(&mut event, 3, b"brain.Event:2");
        writer.record(&event)?;
        Ok(writer)
    }

    /// Writes one event with a scalar per `(tag, value)` at `step`.
    pub fn scalars(
        &mut self,
        step: i64,
        wall_time: f64,
        values: &[(&str, f64)],
    ) -> Result<(), EventsError> {
        let mut summary = Vec::new();
        for (tag, value) in values {
            let mut entry = Vec::new();
            put_bytes(&mut entry, 1, tag.as_bytes());
            put_key(&mut entry, 2, 5);
            entry.extend_from_slice(&(*value as f32).to_le_bytes());
            put_bytes(&mut summary, 1, &entry);
        }
        let mut event = Vec::new();
        put_fixed64(&mut event, 1, wall_time.to_bits());
        put_key(&mut event, 2, 0);
        put_varint(&mut event, step as u64);
        put_bytes(&mut event, 5, &summary);
        self.record(&event)
    }

    fn record(&mut self, data: &[u8]) -> Result<(), EventsError> {
        self.file.write_all(&record::frame(data))?;
        self.file.flush()?;
        Ok(())
    }
}

/// The event files (`*tfevents*`) under `dir`, at most `depth` directories down, sorted by path.
pub fn find(dir: &Path, depth: usize) -> Vec<PathBuf> {
    fn walk(dir: &Path, depth: usize, found: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(kind) if kind.is_dir() && depth > 0 => walk(&path, depth - 1, found),
                Ok(kind)
                    if kind.is_file()
                        && entry.file_name().to_string_lossy().contains("tfevents") =>
                {
                    found.push(path)
                }
                _ => {}
            }
        }
    }
    let mut found = Vec::new();
    walk(dir, depth, &mut found);
    found.sort();
    found
}

/// Follows one event file: each [`Tail::read`] returns the scalars of the records completed since the
/// last.
#[derive(Debug, Default, Clone)]
pub struct Tail {
    offset: u64,
}

impl Tail {
    /// Reads the complete records after the last read.
    pub fn read(&mut self, path: &Path) -> Result<Vec<Scalar>, EventsError> {
        let mut file = std::fs::File::open(path)?;
        file.seek(SeekFrom::Start(self.offset))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let mut scalars = Vec::new();
        let mut at = 0usize;
        while bytes.len() >= at + 12 {
            let Some(end) = record::header_length(&bytes[at..at + 12])
                .and_then(|length| usize::try_from(length).ok())
                .and_then(|length| (at + 12).checked_add(length))
            else {
                return Err(EventsError::Corrupt(self.offset + at as u64));
            };
            if bytes.len() < end + 4 {
                break;
            }
            let data = &bytes[at + 12..end];
            if !record::body_matches(data, &bytes[end..end + 4]) {
                return Err(EventsError::Corrupt(self.offset + at as u64));
            }
            scalars.extend(event_scalars(data));
            at = end + 4;
        }
        self.offset += at as u64;
        Ok(scalars)
    }
}

fn event_scalars(event: &[u8]) -> Vec<Scalar> {
    let (mut step, mut wall_time, mut summaries) = (0i64, 0.0, Vec::new());
    for (number, field) in fields(event) {
        match (number, field) {
            (1, Field::Fixed64(bits)) => wall_time = f64::from_bits(bits),
            (2, Field::Varint(value)) => step = value as i64,
            (5, Field::Bytes(summary)) => summaries.push(summary),
            _ => {}
        }
    }
    summaries
        .into_iter()
        .flat_map(fields)
        .filter_map(|(number, field)| match (number, field) {
            (1, Field::Bytes(value)) => summary_value(value),
            _ => None,
        })
        .map(|(tag, value)| Scalar {
            tag,
            step,
            wall_time,
            value,
        })
        .collect()
}

/// `(tag, value)` of a `Summary.Value` holding a scalar.
fn summary_value(bytes: &[u8]) -> Option<(String, f64)> {
    let (mut tag, mut value) = (None, None);
    for (number, field) in fields(bytes) {
        match (number, field) {
            (1, Field::Bytes(text)) => tag = Some(String::from_utf8_lossy(text).into_owned()),
            (2, Field::Fixed32(bits)) => value = Some(f64::from(f32::from_bits(bits))),
            (8, Field::Bytes(tensor)) => value = tensor_scalar(tensor),
            _ => {}
        }
    }
    Some((tag?, value?))
}

/// The single value of a scalar `TensorProto` (float, double, int32 or int64).
fn tensor_scalar(bytes: &[u8]) -> Option<f64> {
    let mut dtype = 0;
    let mut value = None;
    for (number, field) in fields(bytes) {
        match (number, field) {
            (1, Field::Varint(kind)) => dtype = kind,
            (4, Field::Bytes(content)) => {
                value = match (dtype, content.len()) {
                    (1, 4) => Some(f64::from(f32::from_le_bytes(content.try_into().ok()?))),
                    (2, 8) => Some(f64::from_le_bytes(content.try_into().ok()?)),
                    (3, 4) => Some(f64::from(i32::from_le_bytes(content.try_into().ok()?))),
                    (9, 8) => Some(i64::from_le_bytes(content.try_into().ok()?) as f64),
                    _ => value,
                }
            }
            (5, Field::Bytes(packed)) if packed.len() == 4 => {
                value = Some(f64::from(f32::from_le_bytes(packed.try_into().ok()?)))
            }
            (5, Field::Fixed32(bits)) => value = Some(f64::from(f32::from_bits(bits))),
            (6, Field::Bytes(packed)) if packed.len() == 8 => {
                value = Some(f64::from_le_bytes(packed.try_into().ok()?))
            }
            (6, Field::Fixed64(bits)) => value = Some(f64::from_bits(bits)),
            _ => {}
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one file a writer made in `dir`.
    fn only_file(dir: &Path) -> std::path::PathBuf {
        std::fs::read_dir(dir)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path()
    }

    #[test]
    fn written_scalars_read_back_incrementally() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = Writer::create(dir.path(), 1_700_000_000.0).unwrap();
        writer
            .scalars(10, 1_700_000_001.0, &[("loss", 0.5), ("accuracy", 0.75)])
            .unwrap();
        let path = only_file(dir.path());
        assert!(
            path.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("events.out.tfevents.")
        );
        let mut tail = Tail::default();
        let first = tail.read(&path).unwrap();
        assert_eq!(first.len(), 2);
        assert_eq!(
            (first[1].tag.as_str(), first[1].step, first[1].value),
            ("accuracy", 10, 0.75)
        );
        assert!(tail.read(&path).unwrap().is_empty());
        writer
            .scalars(20, 1_700_000_002.0, &[("loss", 0.25)])
            .unwrap();
        let second = tail.read(&path).unwrap();
        assert_eq!((second[0].step, second[0].value), (20, 0.25));
    }

    #[test]
    fn a_half_written_record_waits_and_a_damaged_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = Writer::create(dir.path(), 0.0).unwrap();
        writer.scalars(1, 0.0, &[("m", 1.0)]).unwrap();
        let path = only_file(dir.path());
        let whole = std::fs::read(&path).unwrap();
        let partial = dir.path().join("partial");
        std::fs::write(&partial, &whole[..whole.len() - 3]).unwrap();
        let mut tail = Tail::default();
        assert_eq!(tail.read(&partial).unwrap().len(), 0);
        std::fs::write(&partial, &whole).unwrap();
        assert_eq!(tail.read(&partial).unwrap().len(), 1);
        let mut damaged = whole.clone();
        let last = damaged.len() - 6;
        damaged[last] ^= 0xff;
        std::fs::write(&partial, &damaged).unwrap();
        assert!(matches!(
            Tail::default().read(&partial),
            Err(EventsError::Corrupt(_))
        ));
    }

    #[test]
    fn tensor_scalars_of_tf2_are_read() {
        // Summary.Value { tag: "acc", tensor: { dtype: DT_FLOAT, float_val: [0.5] } }, packed.
        let mut tensor = Vec::new();
        put_key(&mut tensor, 1, 0);
        put_varint(&mut tensor, 1);
        put_bytes(&mut tensor, 5, &0.5f32.to_le_bytes());
        let mut value = Vec::new();
        put_bytes(&mut value, 1, b"acc");
        put_bytes(&mut value, 8, &tensor);
        assert_eq!(summary_value(&value), Some(("acc".to_string(), 0.5)));
    }
}

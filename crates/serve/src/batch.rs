//! Batch prediction over files: the engine of a batch prediction job, run by the `kiln
//! batch-predict` replica. It uses the same runtimes as online prediction.
//!
//! One reader streams records from the input files (JSON lines, CSV lines, or TFRecord files of
//! `tf.train.Example`, plain or gzip) in batches through a bounded channel to `workers` threads;
//! each worker predicts and writes its own shard, `prediction.results-0000K-of-0000N` (one JSON
//! prediction per line, ML Engine's names), and `prediction.errors_stats-0000K-of-0000N` (one JSON
//! line per record that could not be read or predicted, naming the file and line or record). A bad
//! record never stops the job; a batch that fails on one instance is retried without it. An
//! instance's `key` field is not given to the model but copied to its result, so results (whose
//! order across shards is not the input's) can be joined back to their inputs.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Instant;

use serde_json::{Value, json};

use crate::{ModelRuntime, ServeError};

/// How input files are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    /// One JSON instance per line.
    JsonLines,
    /// One CSV record per line, passed to the model as a text instance.
    Csv,
    /// TFRecord of `tf.train.Example`, each turned into an object of named inputs.
    TfRecord,
    /// The same, gzip-compressed.
    TfRecordGzip,
}

impl InputFormat {
    /// The format an API or command-line name means: `JSON`, `TEXT` (JSON lines too), `CSV`,
    /// `TF_RECORD`, `TF_RECORD_GZIP`, in any case, with `-` for `_` (gcloud's `tf-record`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name.trim().to_ascii_uppercase().replace('-', "_").as_str() {
            "JSON" | "TEXT" => Some(Self::JsonLines),
            "CSV" => Some(Self::Csv),
            "TF_RECORD" => Some(Self::TfRecord),
            "TF_RECORD_GZIP" => Some(Self::TfRecordGzip),
            _ => None,
        }
    }
}

/// What to read and where to write the results (the model is given to [`run`]).
#[derive(Debug, Clone)]
pub struct BatchJob {
    /// Input format.
    pub format: InputFormat,
    /// Input files; a trailing `*` in the last segment matches any suffix.
    pub inputs: Vec<String>,
    /// Directory the shards are written to (created).
    pub output_dir: PathBuf,
    /// Worker threads, one output shard each.
    pub workers: usize,
    /// Instances per model call.
    pub batch_size: usize,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchSummary {
    /// Instances predicted.
    pub prediction_count: u64,
    /// Records that could not be read or predicted.
    pub error_count: u64,
    /// Input files read.
    pub files: usize,
    /// Output shards (workers).
    pub shards: usize,
    /// Wall time.
    pub seconds: f64,
}

/// Seconds between progress lines.
const PROGRESS_SECONDS: f64 = 2.0;

/// One input record as read: decoding it into an instance is the worker's job, so the one
/// reader thread only splits files into records.
struct Record {
    source: Source,
    content: Content,
}

/// Where a record came from, written to the errors file as `file:line` or `file#record`.
#[derive(Clone)]
struct Source {
    /// The file, shared by its records.
    file: Arc<str>,
    /// `:` before a line number, `#` before a TFRecord's number.
    tag: char,
    /// The line or record number, from 1.
    number: usize,
}

impl std::fmt::Display for Source {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}{}{}", self.file, self.tag, self.number)
    }
}

enum Content {
    Json(String),
    Csv(String),
    Example(Vec<u8>),
    /// Unusable as read, and why.
    Bad(String),
}

impl Record {
    /// The instance, or why there is none.
    fn instance(self) -> Result<Value, String> {
        match self.content {
            Content::Json(line) => {
                serde_json::from_str(&line).map_err(|error| format!("not a JSON instance: {error}"))
            }
            Content::Csv(line) => Ok(Value::String(line)),
            Content::Example(bytes) => example_instance(&bytes),
            Content::Bad(message) => Err(message),
        }
    }
}

/// Runs `job` with `runtime`, calling `progress` with a line now and then.
pub fn run(
    job: &BatchJob,
    runtime: Arc<dyn ModelRuntime>,
    progress: &mut dyn FnMut(&str),
) -> Result<BatchSummary, ServeError> {
    let started = Instant::now();
    let mut files = Vec::new();
    for pattern in &job.inputs {
        let found = kiln_events::files::expand(pattern).map_err(ServeError::Request)?;
        if found.is_empty() {
            return Err(ServeError::Request(format!("{pattern:?} matches no file")));
        }
        files.extend(found);
    }
    std::fs::create_dir_all(&job.output_dir)
        .map_err(|error| ServeError::Request(format!("{}: {error}", job.output_dir.display())))?;
    let workers = job.workers.max(1);
    let batch_size = job.batch_size.max(1);
    let predicted = AtomicU64::new(0);
    let failed = AtomicU64::new(0);
    let (send, receive) = mpsc::sync_channel::<Vec<Record>>(workers * 2);
    let receive = std::sync::Mutex::new(receive);
    let outcome = std::thread::scope(|scope| -> Result<(), ServeError> {
        let mut handles = Vec::new();
        for shard in 0..workers {
            let (runtime, receive, predicted, failed) = (&runtime, &receive, &predicted, &failed);
            let output_dir = &job.output_dir;
            handles.push(scope.spawn(move || -> Result<(), ServeError> {
                let mut shard = Shard::create(output_dir, shard, workers)?;
                loop {
                    let batch = match receive.lock() {
                        Ok(receiver) => receiver.recv(),
                        Err(_) => return Ok(()),
                    };
                    let Ok(batch) = batch else {
                        return shard.finish();
                    };
                    let (good, bad) = shard.predict(runtime.as_ref(), batch)?;
                    predicted.fetch_add(good, Ordering::Relaxed);
                    failed.fetch_add(bad, Ordering::Relaxed);
                }
            }));
        }
        let mut batch = Vec::with_capacity(batch_size);
        let mut read = 0u64;
        let mut last_report = Instant::now();
        for file in &files {
            let mut on_record = |record: Record| -> bool {
                batch.push(record);
                read += 1;
                if batch.len() >= batch_size {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(batch_size));
                    if send.send(full).is_err() {
                        return false;
                    }
                    if last_report.elapsed().as_secs_f64() >= PROGRESS_SECONDS {
                        progress(&report(read, &predicted, &failed, started));
                        last_report = Instant::now();
                    }
                }
                true
            };
            if !read_file(file, job.format, &mut on_record)? {
                break;
            }
        }
        if !batch.is_empty() {
            let _ = send.send(batch);
        }
        drop(send);
        for handle in handles {
            handle
                .join()
                .map_err(|_| ServeError::Request("a batch prediction worker panicked".into()))??;
        }
        progress(&report(read, &predicted, &failed, started));
        Ok(())
    });
    outcome?;
    Ok(BatchSummary {
        prediction_count: predicted.load(Ordering::Relaxed),
        error_count: failed.load(Ordering::Relaxed),
        files: files.len(),
        shards: workers,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn report(read: u64, predicted: &AtomicU64, failed: &AtomicU64, started: Instant) -> String {
    let done = predicted.load(Ordering::Relaxed);
    format!(
        "read {read} records: {done} predicted, {} errors ({:.0} predictions/s)",
        failed.load(Ordering::Relaxed),
        done as f64 / started.elapsed().as_secs_f64().max(1e-9)
    )
}

/// Streams the records of one file to `on_record` until it returns false; `Ok(false)` then.
/// An unreadable file is an error of the job; a bad record is an error record.
fn read_file(
    path: &Path,
    format: InputFormat,
    on_record: &mut dyn FnMut(Record) -> bool,
) -> Result<bool, ServeError> {
    let file = File::open(path)
        .map_err(|error| ServeError::Request(format!("{}: {error}", path.display())))?;
    let file_name: Arc<str> = path.display().to_string().into();
    let record = |tag, number: usize, content| Record {
        source: Source {
            file: Arc::clone(&file_name),
            tag,
            number: number + 1,
        },
        content,
    };
    match format {
        InputFormat::JsonLines | InputFormat::Csv => {
            for (number, line) in BufReader::new(file).lines().enumerate() {
                let content = match line {
                    Err(error) => Content::Bad(format!("unreadable line: {error}")),
                    Ok(line) if line.trim().is_empty() => continue,
                    Ok(line) if format == InputFormat::Csv => Content::Csv(line),
                    Ok(line) => Content::Json(line),
                };
                if !on_record(record(':', number, content)) {
                    return Ok(false);
                }
            }
        }
        InputFormat::TfRecord | InputFormat::TfRecordGzip => {
            let reader: Box<dyn Read> = match format {
                InputFormat::TfRecordGzip => {
                    Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(file)))
                }
                _ => Box::new(BufReader::new(file)),
            };
            for (number, bytes) in kiln_events::record::Records::new(reader).enumerate() {
                match bytes {
                    // A damaged frame ends the file: what follows cannot be found reliably.
                    Err(error) => {
                        let message = format!("damaged TFRecord, rest of file skipped: {error}");
                        on_record(record('#', number, Content::Bad(message)));
                        return Ok(true);
                    }
                    Ok(bytes) => {
                        if !on_record(record('#', number, Content::Example(bytes))) {
                            return Ok(false);
                        }
                    }
                }
            }
        }
    }
    Ok(true)
}

/// A `tf.train.Example` as an object of named inputs: single values as scalars, longer lists as
/// arrays, bytes as UTF-8 text.
fn example_instance(bytes: &[u8]) -> Result<Value, String> {
    use kiln_events::example::Feature;
    let features = kiln_events::example::decode(bytes).ok_or("not a tf.train.Example")?;
    let mut instance = serde_json::Map::new();
    for (name, feature) in features {
        let mut values: Vec<Value> = match feature {
            Feature::Bytes(values) => values
                .into_iter()
                .map(|bytes| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
                .collect(),
            Feature::Floats(values) => values.into_iter().map(|v| json!(v)).collect(),
            Feature::Ints(values) => values.into_iter().map(|v| json!(v)).collect(),
        };
        let value = match values.len() {
            1 => values.remove(0),
            _ => Value::Array(values),
        };
        instance.insert(name, value);
    }
    Ok(Value::Object(instance))
}

/// One worker's output files.
struct Shard {
    results: BufWriter<File>,
    errors: BufWriter<File>,
}

impl Shard {
    fn create(dir: &Path, index: usize, count: usize) -> Result<Self, ServeError> {
        let open = |kind: &str| {
            let path = dir.join(format!("prediction.{kind}-{index:05}-of-{count:05}"));
            File::create(&path)
                .map(BufWriter::new)
                .map_err(|error| ServeError::Request(format!("{}: {error}", path.display())))
        };
        Ok(Self {
            results: open("results")?,
            errors: open("errors_stats")?,
        })
    }

    /// Predicts a batch, writing results and errors; returns (predicted, failed).
    fn predict(
        &mut self,
        runtime: &dyn ModelRuntime,
        batch: Vec<Record>,
    ) -> Result<(u64, u64), ServeError> {
        if let Some(predicted) = self.predict_text(runtime, &batch)? {
            return Ok((predicted, 0));
        }
        let mut failed = 0u64;
        let (mut sources, mut keys, mut instances) = (Vec::new(), Vec::new(), Vec::new());
        for record in batch {
            let source = record.source.clone();
            match record.instance() {
                Ok(mut instance) => {
                    let key = instance
                        .as_object_mut()
                        .and_then(|fields| fields.remove("key"));
                    sources.push(source);
                    keys.push(key);
                    instances.push(instance);
                }
                Err(message) => {
                    self.error(&source, &message)?;
                    failed += 1;
                }
            }
        }
        while !instances.is_empty() {
            match runtime.predict(&instances) {
                Ok(predictions) => {
                    for (key, prediction) in keys.iter().zip(predictions) {
                        self.result(key.as_ref(), prediction)?;
                    }
                    return Ok((instances.len() as u64, failed));
                }
                Err(ServeError::Instance { index, message }) if index < instances.len() => {
                    let source = sources.remove(index);
                    keys.remove(index);
                    instances.remove(index);
                    self.error(&source, &message)?;
                    failed += 1;
                }
                Err(error) => {
                    for source in &sources {
                        self.error(source, &error.to_string())?;
                    }
                    return Ok((0, failed + instances.len() as u64));
                }
            }
        }
        Ok((0, failed))
    }

    /// Predicts a batch of JSON lines without keys from their text, as online prediction does (an
    /// ONNX model reads it straight into tensors; parsing each line into values first took most
    /// of the job's time). `None`, having written nothing, for any other batch and for any
    /// failure: the value path then predicts it and words each record's error. (A line that
    /// names a `key`, or might through an escape, takes the value path, which keeps the key.)
    fn predict_text(
        &mut self,
        runtime: &dyn ModelRuntime,
        batch: &[Record],
    ) -> Result<Option<u64>, ServeError> {
        let lines: Option<Vec<&str>> = batch
            .iter()
            .map(|record| match &record.content {
                Content::Json(line) if !line.contains("\"key\"") && !line.contains('\\') => {
                    Some(line.as_str())
                }
                _ => None,
            })
            .collect();
        let Some(Ok(predictions)) = lines.map(|lines| runtime.predict_json(&lines)) else {
            return Ok(None);
        };
        let predicted = predictions.len() as u64;
        for prediction in predictions {
            self.result(None, prediction)?;
        }
        Ok(Some(predicted))
    }

    /// Writes a prediction with its instance's `key`, so results can be joined back to inputs.
    /// A prediction that is not an object (a single-output model's bare value) is written as
    /// `{"key": ..., "prediction": ...}` when there is a key to keep.
    fn result(&mut self, key: Option<&Value>, mut prediction: Value) -> Result<(), ServeError> {
        match (key, &mut prediction) {
            (Some(key), Value::Object(fields)) => {
                fields.entry("key").or_insert_with(|| key.clone());
            }
            (Some(key), _) => prediction = json!({"key": key, "prediction": prediction}),
            (None, _) => {}
        }
        writeln!(self.results, "{prediction}").map_err(write_error)
    }

    fn error(&mut self, source: &Source, message: &str) -> Result<(), ServeError> {
        writeln!(
            self.errors,
            "{}",
            json!({"input": source.to_string(), "error": message})
        )
        .map_err(write_error)
    }

    fn finish(mut self) -> Result<(), ServeError> {
        self.results.flush().map_err(write_error)?;
        self.errors.flush().map_err(write_error)
    }
}

fn write_error(error: std::io::Error) -> ServeError {
    ServeError::Request(format!("writing the results: {error}"))
}

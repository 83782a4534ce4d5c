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
//!
//! A job may be one part of several, each run by its own process (on its own node): part `k` of
//! `n` reads every `n`-th input file from the `k`-th when there are at least `n` files, else every
//! `n`-th record, and numbers its shards after those of the parts before it, so the parts' shards
//! together are named as one run's would be.

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Instant;

use kiln_api::cursor::Cursor;
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
    /// Which part of the job this is, and of how many: `(0, 1)` for the whole job.
    pub part: (usize, usize),
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

impl BatchSummary {
    /// Where part `rank` of a job in several parts writes its summary, given the job's `file`:
    /// `<file>.<rank>`.
    pub fn part_file(file: &Path, rank: usize) -> PathBuf {
        let mut path = file.as_os_str().to_owned();
        path.push(format!(".{rank}"));
        PathBuf::from(path)
    }
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
    let (part, parts) = (job.part.0, job.part.1.max(1));
    // With a file for each part, a part reads whole files; else every part reads every file and
    // keeps every `parts`-th record.
    let by_file = files.len() >= parts;
    if by_file {
        files = files
            .into_iter()
            .enumerate()
            .filter(|(index, _)| index % parts == part)
            .map(|(_, file)| file)
            .collect();
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
                let mut shard = Shard::create(output_dir, part * workers + shard, parts * workers)?;
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
        let mut seen = 0usize;
        let mut last_report = Instant::now();
        for file in &files {
            let mut on_record = |record: Record| -> bool {
                seen += 1;
                if !by_file && (seen - 1) % parts != part {
                    return true;
                }
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

    /// Predicts a batch of JSON lines from their text, as online prediction does (an ONNX model
    /// reads it straight into tensors; parsing each line into values first took most of the
    /// job's time), each line without its `key`, which goes to its result. `None`, having
    /// written nothing, for any other batch and for any failure: the value path then predicts it
    /// and words each record's error.
    fn predict_text(
        &mut self,
        runtime: &dyn ModelRuntime,
        batch: &[Record],
    ) -> Result<Option<u64>, ServeError> {
        let mut lines = Vec::with_capacity(batch.len());
        for record in batch {
            let Content::Json(line) = &record.content else {
                return Ok(None);
            };
            let Some(split) = without_key(line) else {
                return Ok(None);
            };
            lines.push(split);
        }
        let texts: Vec<&str> = lines.iter().map(|(text, _)| text.as_ref()).collect();
        let Ok(predictions) = runtime.predict_json(&texts) else {
            return Ok(None);
        };
        let predicted = predictions.len() as u64;
        for ((_, key), prediction) in lines.iter().zip(predictions) {
            self.result(key.as_ref(), prediction)?;
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

/// A JSON line as the model reads it, without a top-level `key` field, and that key: what the
/// value path gets by parsing the line and removing the field. `None` when a plain reading
/// cannot tell (an escape anywhere, a repeated key, a key that is not JSON): the value path then
/// reads the line.
fn without_key(line: &str) -> Option<(Cow<'_, str>, Option<Value>)> {
    if line.contains('\\') {
        return None;
    }
    let mut cursor = Cursor::new(line);
    // Without escapes, a `key` field names itself plainly.
    if !line.contains("\"key\"") || !cursor.eat(b'{')? {
        return Some((Cow::Borrowed(line), None));
    }
    // Each field's span, from its name's quote to the end of its value, and the key's index.
    let (mut fields, mut key) = (Vec::new(), None);
    if !cursor.eat(b'}')? {
        loop {
            cursor.skip_space();
            let start = cursor.at;
            let name = cursor.string()?;
            cursor.expect(b':')?;
            let value = cursor.at;
            cursor.skip_value()?;
            if name == "key" {
                if key.is_some() {
                    return None;
                }
                key = Some((fields.len(), value..cursor.at));
            }
            fields.push(start..cursor.at);
            if !cursor.more(b'}')? {
                break;
            }
        }
    }
    cursor.skip_space();
    if !cursor.at_end() {
        return None;
    }
    let Some((index, value)) = key else {
        return Some((Cow::Borrowed(line), None));
    };
    let key: Value = serde_json::from_str(line.get(value)?).ok()?;
    // The field and the comma on one side of it.
    let cut = match (fields.get(index + 1), index.checked_sub(1)) {
        (Some(next), _) => fields[index].start..next.start,
        (None, Some(previous)) => fields[previous].end..fields[index].end,
        (None, None) => fields[index].clone(),
    };
    let text = [line.get(..cut.start)?, line.get(cut.end..)?].concat();
    Some((Cow::Owned(text), Some(key)))
}

fn write_error(error: std::io::Error) -> ServeError {
    ServeError::Request(format!("writing the results: {error}"))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// What the value path gives the model and the result for `line`: the parsed line without
    /// its top-level `key`, and that key.
    fn value_path(line: &str) -> (Value, Option<Value>) {
        let mut instance: Value = serde_json::from_str(line).unwrap();
        let key = instance
            .as_object_mut()
            .and_then(|fields| fields.remove("key"));
        (instance, key)
    }

    /// Holds `without_key` to the value path wherever it reads a line; returns whether it did.
    fn same_as_value_path(line: &str) -> bool {
        let Some((text, key)) = without_key(line) else {
            return false;
        };
        let read: Value =
            serde_json::from_str(&text).unwrap_or_else(|error| panic!("{text}: {error}"));
        assert_eq!((read, key), value_path(line), "{line} -> {text}");
        true
    }

    #[test]
    fn takes_the_key_out_of_a_line_as_the_value_path_does() {
        for line in [
            r#"{"key": 1, "x": [1, 2]}"#,
            r#"{"x": [1, 2], "key": "a", "y": {"key": 3}}"#,
            r#"{"x": [1, 2] , "key" : [7, {"b": "]}"}] }"#,
            r#"{"key": {"nested": [1]}}"#,
            r#" { "y": "key", "x": 1 } "#,
            r#"{"x": {"key": 1}}"#,
            r#"["key", 1]"#,
            r#"{}"#,
            r#"{"x": 1}"#,
        ] {
            assert!(same_as_value_path(line), "{line}");
        }
        for line in [
            r#"{"key": 1, "key": 2}"#,
            r#"{"k\u0065y": 1, "x": 2}"#,
            r#"{"key": 1, "x": 2} trailing"#,
            r#"{"key": tru, "x": 2}"#,
        ] {
            assert_eq!(without_key(line), None, "{line}");
        }
    }

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<i32>().prop_map(Value::from),
            "[a-z ,:{}\\[\\]]{0,6}".prop_map(Value::from),
            Just(Value::Null),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map("(key|[a-z]{1,3})", inner, 0..4)
                    .prop_map(|fields| Value::Object(fields.into_iter().collect())),
            ]
        })
    }

    /// Predicts each instance's `x`.
    struct Echo;

    impl ModelRuntime for Echo {
        fn predict(&self, instances: &[Value]) -> Result<Vec<Value>, ServeError> {
            Ok(instances
                .iter()
                .map(|instance| instance["x"].clone())
                .collect())
        }
    }

    /// Runs every part of `parts` over `files` files of `per_file` instances each; the keys each
    /// part predicted, and the shard names written.
    fn run_parts(files: usize, per_file: usize, parts: usize) -> (Vec<Vec<u64>>, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        for file in 0..files {
            let text: String = (0..per_file)
                .map(|line| {
                    let key = file * per_file + line;
                    format!("{{\"key\": {key}, \"x\": {key}}}\n")
                })
                .collect();
            std::fs::write(dir.path().join(format!("in-{file}.json")), text).unwrap();
        }
        let out = dir.path().join("out");
        let mut predicted = Vec::new();
        for part in 0..parts {
            let job = BatchJob {
                format: InputFormat::JsonLines,
                inputs: vec![format!("{}/in-*", dir.path().display())],
                output_dir: out.join(part.to_string()),
                workers: 2,
                batch_size: 3,
                part: (part, parts),
            };
            run(&job, Arc::new(Echo), &mut |_| {}).unwrap();
            let mut keys: Vec<u64> = Vec::new();
            for entry in std::fs::read_dir(out.join(part.to_string())).unwrap() {
                let path = entry.unwrap().path();
                for line in std::fs::read_to_string(&path).unwrap().lines() {
                    let result: Value = serde_json::from_str(line).unwrap();
                    keys.extend(result["key"].as_u64());
                }
            }
            keys.sort_unstable();
            predicted.push(keys);
        }
        let mut shards: Vec<String> = (0..parts)
            .flat_map(|part| std::fs::read_dir(out.join(part.to_string())).unwrap())
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with("prediction.results-"))
            .collect();
        shards.sort();
        (predicted, shards)
    }

    #[test]
    fn parts_split_files_or_records_and_number_their_shards_as_one_run() {
        // Three files for two parts: whole files each.
        let (predicted, shards) = run_parts(3, 4, 2);
        assert_eq!(predicted[0], [0, 1, 2, 3, 8, 9, 10, 11]);
        assert_eq!(predicted[1], [4, 5, 6, 7]);
        assert_eq!(
            shards,
            (0..4)
                .map(|index| format!("prediction.results-{index:05}-of-00004"))
                .collect::<Vec<_>>()
        );
        // One file for three parts: every third record each, all of them once.
        let (predicted, _) = run_parts(1, 10, 3);
        assert_eq!(predicted, [vec![0, 3, 6, 9], vec![1, 4, 7], vec![2, 5, 8]]);
    }

    proptest! {
        #[test]
        fn takes_any_key_out_as_the_value_path_does(
            fields in prop::collection::btree_map("(key|[a-z]{1,3})", json(), 0..6),
            pretty in any::<bool>(),
        ) {
            let line = Value::Object(fields.into_iter().collect());
            let line = match pretty {
                true => serde_json::to_string_pretty(&line).unwrap(),
                false => line.to_string(),
            };
            prop_assert!(same_as_value_path(&line));
        }
    }
}

//! One framework worker process: `predictor.py` serving one model over length-prefixed frames on
//! its stdin and stdout (JSON, and after a request for a matrix of rows, the rows' raw bytes).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::ServeError;

/// Lines of a worker's stderr kept for the error that reports its death.
const STDERR_LINES: usize = 20;

/// What one call sends: the instances' JSON text, or, for a model of feature rows, the rows as
/// one matrix (sent raw after the request: the worker reads it without parsing numbers, which is
/// most of a large call's time in Python).
pub enum Batch<'a> {
    /// The instances as requests carried them.
    Json(&'a [&'a str]),
    /// `values.len() / width` rows of `width` values, row after row.
    Rows {
        /// The values.
        values: &'a [f64],
        /// Values per row.
        width: usize,
        /// Sent as `float32` (the model computes in it) rather than `float64`.
        float32: bool,
    },
}

/// A started worker that has loaded its model.
pub struct Worker {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
    stderr: Arc<Stderr>,
}

/// The last lines a worker wrote to stderr, and whether it closed it.
#[derive(Default)]
struct Stderr {
    tail: Mutex<VecDeque<String>>,
    closed: AtomicBool,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Worker {
    /// Starts `command` (the interpreter running the worker script, confined by the caller) and
    /// waits for its model to load. Returns the worker and what its model described.
    pub fn start(mut command: Command) -> Result<(Self, Value), ServeError> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|error| ServeError::Load(format!("starting the framework worker: {error}")))?;
        let (Some(input), Some(output), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(ServeError::Load("the framework worker has no pipes".into()));
        };
        let tail = Arc::new(Stderr::default());
        let kept = Arc::clone(&tail);
        std::thread::Builder::new()
            .name("kiln-framework-stderr".into())
            .spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    tracing::debug!(target: "kiln_serve::framework_worker", "{line}");
                    let mut lines = kept
                        .tail
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                    if lines.len() == STDERR_LINES {
                        lines.pop_front();
                    }
                    lines.push_back(line);
                }
                kept.closed.store(true, Ordering::Release);
            })
            .map_err(|error| ServeError::Load(format!("starting the framework worker: {error}")))?;
        let mut worker = Self {
            child,
            input,
            output: BufReader::new(output),
            stderr: tail,
        };
        let mut hello = worker
            .receive()
            .map_err(|cause| ServeError::Load(format!("the framework worker {cause}")))?;
        match (hello.get_mut("ready").map(Value::take), hello.get("error")) {
            (Some(described), _) => Ok((worker, described)),
            (None, Some(error)) => Err(ServeError::Load(
                error.as_str().unwrap_or_default().to_string(),
            )),
            (None, None) => Err(ServeError::Load(format!(
                "the framework worker answered {hello} instead of loading the model"
            ))),
        }
    }

    /// Sends one call and reads its answer: one prediction per instance.
    pub fn predict(
        &mut self,
        batch: &Batch<'_>,
        signature: Option<&str>,
    ) -> Result<Vec<Value>, ServeError> {
        let signature = serde_json::to_string(&signature).unwrap_or_default();
        let (body, data, count) = match batch {
            Batch::Json(instances) => {
                let mut body = Vec::with_capacity(
                    instances.iter().map(|text| text.len() + 1).sum::<usize>() + 64,
                );
                body.extend_from_slice(b"{\"instances\":[");
                for (index, text) in instances.iter().enumerate() {
                    if index > 0 {
                        body.push(b',');
                    }
                    body.extend_from_slice(text.as_bytes());
                }
                body.extend_from_slice(b"],\"signature\":");
                body.extend_from_slice(signature.as_bytes());
                body.push(b'}');
                (body, None, instances.len())
            }
            Batch::Rows {
                values,
                width,
                float32,
            } => {
                let rows = values.len() / (*width).max(1);
                let dtype = if *float32 { "<f4" } else { "<f8" };
                let body = format!(
                    "{{\"rows\":[{rows},{width}],\"dtype\":\"{dtype}\",\"signature\":{signature}}}"
                );
                let data: Vec<u8> = match float32 {
                    true => values
                        .iter()
                        .flat_map(|value| (*value as f32).to_le_bytes())
                        .collect(),
                    false => values
                        .iter()
                        .flat_map(|value| value.to_le_bytes())
                        .collect(),
                };
                (body.into_bytes(), Some(data), rows)
            }
        };
        let sent = self
            .send(&body)
            .and_then(|()| data.as_deref().map_or(Ok(()), |data| self.send(data)));
        if let Err(error) = sent {
            // Its input is closed: it exited, or is about to.
            return Err(ServeError::Worker(format!(
                "the framework worker exited{} (sending it the request: {error})",
                self.exit()
            )));
        }
        let mut answer = self
            .receive()
            .map_err(|cause| ServeError::Worker(format!("the framework worker {cause}")))?;
        if let Some(predictions) = answer.get_mut("predictions").map(Value::take) {
            return match predictions {
                Value::Array(predictions) if predictions.len() == count => Ok(predictions),
                other => Err(ServeError::Worker(format!(
                    "the framework worker returned {} predictions for {count} instances",
                    other.as_array().map_or(0, Vec::len),
                ))),
            };
        }
        let message = answer
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("the model failed without a message")
            .to_string();
        Err(match answer.get("index").and_then(Value::as_u64) {
            Some(index) => ServeError::Instance {
                index: index as usize,
                message,
            },
            None => ServeError::Request(message),
        })
    }

    fn send(&mut self, body: &[u8]) -> std::io::Result<()> {
        self.input
            .write_all(format!("{}\n", body.len()).as_bytes())?;
        self.input.write_all(body)?;
        self.input.flush()
    }

    /// Reads one frame; the error says what went wrong, as the end of a sentence about the worker.
    fn receive(&mut self) -> Result<Value, String> {
        let mut header = String::new();
        match self.output.read_line(&mut header) {
            Ok(0) | Err(_) => return Err(format!("exited{}", self.exit())),
            Ok(_) => {}
        }
        let length: usize = header
            .trim()
            .parse()
            .map_err(|_| format!("wrote {:?} where a frame length belongs", header.trim()))?;
        let mut body = vec![0; length];
        self.output
            .read_exact(&mut body)
            .map_err(|_| format!("exited in the middle of an answer{}", self.exit()))?;
        serde_json::from_slice(&body)
            .map_err(|error| format!("wrote an unreadable answer: {error}"))
    }

    /// How the process ended and its last stderr lines, as a clause (empty while it runs).
    fn exit(&mut self) -> String {
        let status = match self.child.try_wait() {
            Ok(Some(status)) => status,
            _ => {
                // It closed its output: give it a moment to end, then make sure it has.
                std::thread::sleep(Duration::from_millis(100));
                match self.child.try_wait() {
                    Ok(Some(status)) => status,
                    _ => {
                        let _ = self.child.kill();
                        match self.child.wait() {
                            Ok(status) => status,
                            Err(_) => return String::new(),
                        }
                    }
                }
            }
        };
        // Its last words may still be in the pipe.
        for _ in 0..20 {
            if self.stderr.closed.load(Ordering::Acquire) {
                break;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let tail = self
            .stderr
            .tail
            .lock()
            .map(|lines| lines.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default();
        match tail.is_empty() {
            true => format!(" ({status})"),
            false => format!(" ({status}); its last output:\n{tail}"),
        }
    }

    /// Whether the process still runs.
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

//! The log: `tracing` events to stderr, as text or JSON lines, filtered by `RUST_LOG`.
//!
//! The server logs every request (the access log), so its log goes through [`Buffered`]: events
//! are appended to a buffer in memory that a thread of its own writes out every
//! [`FLUSH_EVERY`], and the request path makes no system call for its line. What is buffered
//! when the process ends normally is written by the [`Flush`] guard; a crash loses at most the
//! last [`FLUSH_EVERY`] of log.

use std::io::Write as _;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// How often the server's buffered log is written out.
const FLUSH_EVERY: Duration = Duration::from_millis(50);

/// A buffer this large is written out by the event that filled it, so the log never holds more.
const MOST_BUFFERED: usize = 1 << 20;

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, the event's fields at the top level.
    Json,
}

/// Installs the log subscriber: `RUST_LOG`'s filter (default `info`), to stderr, as `format`,
/// colored only on a terminal; through a buffer written every [`FLUSH_EVERY`] when `buffered`.
/// Keep the returned guard until the end of `main`: it writes what is left.
pub fn init(format: LogFormat, buffered: bool) -> Flush {
    // The platform verifier logs every certificate it refuses; the CLI says why, once.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,rustls_platform_verifier=off")
    });
    let writer = BUFFER.get_or_init(Buffered::default).clone();
    let flush = Flush(buffered.then(|| writer.clone()));
    if buffered {
        writer.start_flushing();
    }
    let writer =
        tracing_subscriber::fmt::writer::BoxMakeWriter::new(move || -> Box<dyn std::io::Write> {
            match buffered {
                true => Box::new(writer.clone()),
                false => Box::new(std::io::stderr()),
            }
        });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(writer);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
    }
    flush
}

/// The process's log buffer.
static BUFFER: OnceLock<Buffered> = OnceLock::new();

/// Writes whole lines to the log, as its events are written (the server's access log).
pub fn sink() -> kiln_server::access::Sink {
    let buffered = BUFFER.get_or_init(Buffered::default).clone();
    Arc::new(move |line: &[u8]| {
        let _ = buffered.append(line);
    })
}

/// Log lines waiting to be written to stderr.
#[derive(Clone, Default)]
struct Buffered {
    lines: Arc<Mutex<Vec<u8>>>,
}

impl Buffered {
    /// Writes out the buffer every [`FLUSH_EVERY`] from a thread of its own.
    fn start_flushing(&self) {
        let buffered = self.clone();
        let started = std::thread::Builder::new()
            .name("kiln-log".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(FLUSH_EVERY);
                    buffered.flush_out();
                }
            });
        if let Err(error) = started {
            eprintln!("the log is written when the process ends: no thread to write it ({error})");
        }
    }

    /// Adds `bytes` to the buffer, writing it out when it has grown to [`MOST_BUFFERED`].
    fn append(&self, bytes: &[u8]) -> std::io::Result<()> {
        let mut lines = self
            .lines
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        lines.extend_from_slice(bytes);
        if lines.len() >= MOST_BUFFERED {
            std::io::stderr().write_all(&lines)?;
            lines.clear();
        }
        Ok(())
    }

    /// Writes the buffer to stderr and empties it.
    fn flush_out(&self) {
        let lines = std::mem::take(
            &mut *self
                .lines
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        if !lines.is_empty() {
            let _ = std::io::stderr().write_all(&lines);
        }
    }
}

impl std::io::Write for Buffered {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.append(bytes)?;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes what the log still buffers when dropped.
pub struct Flush(Option<Buffered>);

impl Drop for Flush {
    fn drop(&mut self) {
        if let Some(buffered) = &self.0 {
            buffered.flush_out();
        }
    }
}

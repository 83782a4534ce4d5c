//! A job's log: one JSON line per output line of any replica, in arrival order.
//!
//! ```json
//! {"timestamp": "2026-11-22T01:02:03.456789Z", "severity": "INFO", "taskName": "master-replica-0", "message": "step 100 ..."}
//! ```
//! stdout lines are `INFO`, stderr lines `ERROR`, as ML Engine recorded them. The file lives in the data
//! directory, so logs survive server restarts.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::SchedulerError;

/// Log lines of a failing replica or install step quoted in a job's `errorMessage`.
pub const ERROR_LOG_LINES: usize = 10;

/// The log of one job, appended to by the launchers of its replicas and by the server.
#[derive(Debug, Clone)]
pub struct JobLog {
    path: PathBuf,
    /// Appends from several replicas interleave whole lines, never bytes.
    file: Arc<Mutex<File>>,
}

/// One page of log entries.
#[derive(Debug, Clone, PartialEq)]
pub struct LogPage {
    /// The entries.
    pub entries: Vec<Value>,
    /// Line number to continue from (more lines may arrive while the job runs).
    pub next: usize,
}

impl JobLog {
    /// Opens (creating) the log at `path` for appending.
    pub fn open(path: &Path) -> Result<Self, SchedulerError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|error| SchedulerError::Io(format!("{}: {error}", parent.display())))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|error| SchedulerError::Io(format!("{}: {error}", path.display())))?;
        Ok(Self {
            path: path.to_path_buf(),
            file: Arc::new(Mutex::new(file)),
        })
    }

    /// Appends one line of a replica's output.
    pub fn append(&self, task_name: &str, severity: &str, message: &str) {
        let entry = json!({
            "timestamp": kiln_api::now(),
            "severity": severity,
            "taskName": task_name,
            "message": message,
        });
        // One write per line: launchers on several nodes append to the same file, and an append
        // made by one write(2) is never interleaved with another's.
        let line = format!("{entry}\n");
        let mut file = self
            .file
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Err(error) = file.write_all(line.as_bytes()) {
            tracing::warn!(path = %self.path.display(), %error, "cannot append to a job log");
        }
    }

    /// Reads up to `limit` entries from line `start`, keeping those of `task_name` when given.
    pub fn read(
        path: &Path,
        start: usize,
        limit: usize,
        task_name: Option<&str>,
    ) -> Result<LogPage, SchedulerError> {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(LogPage {
                    entries: Vec::new(),
                    next: start,
                });
            }
            Err(error) => return Err(SchedulerError::Io(format!("{}: {error}", path.display()))),
        };
        let mut entries = Vec::new();
        let mut next = start;
        for line in BufReader::new(file).lines().skip(start) {
            let Ok(line) = line else { break };
            if !line.ends_with('}') || entries.len() >= limit {
                break;
            }
            next += 1;
            let Ok(entry) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if task_name.is_none_or(|name| entry["taskName"] == name) {
                entries.push(entry);
            }
        }
        Ok(LogPage { entries, next })
    }

    /// The last `count` messages of `task_name`, for error messages.
    pub fn tail(path: &Path, task_name: &str, count: usize) -> Vec<String> {
        let page = JobLog::read(path, 0, usize::MAX, Some(task_name))
            .map(|page| page.entries)
            .unwrap_or_default();
        let start = page.len().saturating_sub(count);
        page[start..]
            .iter()
            .filter_map(|entry| entry["message"].as_str().map(str::to_string))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_pages_filters_and_tails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobs/j/log.jsonl");
        let log = JobLog::open(&path).unwrap();
        for index in 0..5 {
            log.append("master-replica-0", "INFO", &format!("line {index}"));
            log.append("worker-replica-0", "ERROR", &format!("worker {index}"));
        }
        let page = JobLog::read(&path, 0, 3, None).unwrap();
        assert_eq!(page.entries.len(), 3);
        assert_eq!(page.next, 3);
        let rest = JobLog::read(&path, page.next, 100, Some("master-replica-0")).unwrap();
        assert_eq!(rest.entries.len(), 3, "lines 3..10 hold three master lines");
        assert_eq!(rest.next, 10);
        assert_eq!(
            JobLog::tail(&path, "worker-replica-0", 2),
            ["worker 3", "worker 4"]
        );
        assert_eq!(
            JobLog::read(&dir.path().join("absent"), 4, 10, None)
                .unwrap()
                .entries
                .len(),
            0
        );
    }
}

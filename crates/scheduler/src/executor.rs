//! Starting replicas: the `Executor` trait and the local process executor.

use std::future::Future;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use crate::SchedulerError;
use crate::logs::JobLog;
use crate::sandbox::{Confinement, Sandbox};

/// Everything needed to start one replica.
#[derive(Debug, Clone)]
pub struct ReplicaSpec {
    /// `master-replica-0`, ... (also the log's task name).
    pub task_name: String,
    /// Program to run.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Its environment (nothing of the server's is inherited beyond `PASSED_ENV`).
    pub env: Vec<(String, String)>,
    /// Working directory.
    pub working_dir: PathBuf,
    /// What the replica may reach besides the system, where the executor confines it.
    pub confinement: Confinement,
}

/// How a replica ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitReport {
    /// Exit code, when it exited.
    pub code: Option<i32>,
    /// Signal, when one killed it.
    pub signal: Option<i32>,
}

impl ExitReport {
    /// Whether it exited with status 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// The cause in words, for `errorMessage`.
    pub fn describe(&self) -> String {
        match (self.code, self.signal) {
            (Some(code), _) => format!("exited with a non-zero status of {code}"),
            (None, Some(libc::SIGKILL)) => {
                "was killed by signal 9 (SIGKILL; the machine may have run out of memory)".into()
            }
            (None, Some(signal)) => format!("was killed by signal {signal}"),
            (None, None) => "ended for an unknown reason".into(),
        }
    }
}

/// A started replica.
pub trait Replica: Send {
    /// An id that outlives the server, in the executor's own terms (for local processes, the
    /// process group id; a Slurm job step or a Ray submission id elsewhere).
    fn id(&self) -> String;
    /// Resolves when the replica ends.
    fn wait(&mut self) -> Pin<Box<dyn Future<Output = ExitReport> + Send + '_>>;
}

/// Starts replicas somewhere: local processes now; Slurm, Ray or Kubernetes later.
pub trait Executor: Send + Sync + 'static {
    /// Starts a replica whose output goes to `log`.
    fn launch(&self, spec: ReplicaSpec, log: JobLog) -> Result<Box<dyn Replica>, SchedulerError>;
    /// Asks a running replica to stop (SIGTERM for local processes).
    fn terminate(&self, id: &str);
    /// Forces a running replica to stop (SIGKILL for local processes). Callers only kill replicas
    /// that have not reported their exit, so an id is never signalled after it may be reused.
    fn kill(&self, id: &str);
    /// Kills what a previous server started for `job_id` under `id`, if it is still that job's
    /// (a restarted server has no handles, and the id may belong to someone else by now).
    fn reclaim(&self, id: &str, job_id: &str);
}

/// Server environment variables a replica inherits; everything else is withheld so no server
/// secret reaches user code.
pub const PASSED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TZ",
    "TMPDIR",
    "PYENV_ROOT",
    "PYENV_VERSION",
    "RAYON_NUM_THREADS",
];

/// The values of `PASSED_ENV` that the server has.
pub fn passed_env() -> impl Iterator<Item = (&'static str, String)> {
    PASSED_ENV
        .iter()
        .filter_map(|name| std::env::var(name).ok().map(|value| (*name, value)))
}

/// Runs each replica as a local process in its own process group, confined by its sandbox.
#[derive(Debug, Clone)]
pub struct LocalExecutor {
    sandbox: Sandbox,
}

impl LocalExecutor {
    /// An executor whose replicas `sandbox` confines.
    pub fn new(sandbox: Sandbox) -> Self {
        Self { sandbox }
    }
}

struct LocalReplica {
    child: tokio::process::Child,
    pgid: u32,
    /// The tasks copying the replica's output into the job log.
    pumps: Vec<tokio::task::JoinHandle<()>>,
}

impl Replica for LocalReplica {
    fn id(&self) -> String {
        self.pgid.to_string()
    }

    fn wait(&mut self) -> Pin<Box<dyn Future<Output = ExitReport> + Send + '_>> {
        Box::pin(async move {
            let report = match self.child.wait().await {
                Ok(status) => ExitReport {
                    code: status.code(),
                    signal: status.signal(),
                },
                Err(_) => ExitReport {
                    code: None,
                    signal: None,
                },
            };
            // Children the replica left behind go with it.
            signal_group(self.pgid, libc::SIGKILL);
            // The exit is reported once the replica's last lines are in the log, so a failure
            // message quotes them. The bound covers a descendant that escaped the group and
            // still holds the pipes.
            for pump in self.pumps.drain(..) {
                let _ = tokio::time::timeout(std::time::Duration::from_secs(2), pump).await;
            }
            report
        })
    }
}

/// The process group a replica id names (0, which signals nothing, for an id not ours).
fn process_group(id: &str) -> u32 {
    id.parse().unwrap_or(0)
}

/// Sends `signal` to a process group; a group that is gone already is fine.
fn signal_group(pgid: u32, signal: i32) {
    if pgid == 0 {
        return;
    }
    // SAFETY: kill(2) with a negative pid signals a process group; it touches no memory of ours.
    unsafe {
        libc::kill(-(pgid as i32), signal);
    }
}

/// Copies a replica's output stream into the job log, line by line.
fn pump(
    reader: impl AsyncRead + Unpin + Send + 'static,
    log: JobLog,
    task_name: String,
    severity: &'static str,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(reader).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            log.append(&task_name, severity, &line);
        }
    })
}

impl Executor for LocalExecutor {
    fn launch(&self, spec: ReplicaSpec, log: JobLog) -> Result<Box<dyn Replica>, SchedulerError> {
        let mut command = tokio::process::Command::new(&spec.program);
        command
            .args(&spec.args)
            .env_clear()
            .envs(passed_env())
            .envs(
                spec.env
                    .iter()
                    .map(|(name, value)| (name.as_str(), value.as_str())),
            )
            .current_dir(&spec.working_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        self.sandbox
            .prepare(&spec.confinement)?
            .install(&mut command);
        let mut child = command.spawn().map_err(|error| {
            SchedulerError::Io(format!(
                "cannot start {} ({}): {error}",
                spec.task_name,
                spec.program.display()
            ))
        })?;
        let pgid = child.id().unwrap_or_default();
        let mut pumps = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            pumps.push(pump(stdout, log.clone(), spec.task_name.clone(), "INFO"));
        }
        if let Some(stderr) = child.stderr.take() {
            pumps.push(pump(stderr, log, spec.task_name.clone(), "ERROR"));
        }
        Ok(Box::new(LocalReplica { child, pgid, pumps }))
    }

    fn terminate(&self, id: &str) {
        signal_group(process_group(id), libc::SIGTERM);
    }

    fn kill(&self, id: &str) {
        signal_group(process_group(id), libc::SIGKILL);
    }

    fn reclaim(&self, id: &str, job_id: &str) {
        let id = process_group(id);
        // The group leader's environment names its job (CLOUD_ML_JOB_ID is set for every replica).
        let marker = format!("CLOUD_ML_JOB_ID={job_id}");
        let owned = std::fs::read(format!("/proc/{id}/environ")).is_ok_and(|environ| {
            environ
                .split(|byte| *byte == 0)
                .any(|entry| entry == marker.as_bytes())
        });
        if owned {
            signal_group(id, libc::SIGKILL);
        }
    }
}

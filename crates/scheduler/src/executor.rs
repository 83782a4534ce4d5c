//! The boundary between a job's lifecycle and where its replicas run: the [`Executor`] trait.
//!
//! An executor places a whole [`Gang`] at once, all replicas or none, and for each one starts the
//! per-replica launcher (`kiln replica`, [`crate::launcher`]) on the node it chose. The launcher
//! does what is the same everywhere: it picks a port on its node and meets the others, sets
//! `TF_CONFIG` and PyTorch's variables, confines and runs the trainer, appends its output to the job
//! log and records how it ended in the gang's directory. So an executor only decides where, and
//! tells how a replica ended when the launcher could not (the engine's own cause: out of memory, a
//! time limit, a lost node).

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

use crate::SchedulerError;
use crate::cluster::{Resources, TaskType};
use crate::gang::Gang;
use crate::sandbox::Confinement;

/// Everything needed to start one replica.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplicaSpec {
    /// `master-replica-0`, ... (also the log's task name).
    pub task_name: String,
    /// Role.
    pub task: TaskType,
    /// Index within its role.
    pub index: usize,
    /// Machine type (for ML units).
    pub machine_type: String,
    /// What it asks of its node.
    pub resources: Resources,
    /// Program to run.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Its environment besides what its place in the cluster sets (nothing of the server's is
    /// inherited beyond `PASSED_ENV`).
    pub env: Vec<(String, String)>,
    /// Working directory.
    pub working_dir: PathBuf,
    /// What the replica may reach besides the system, where the executor confines it.
    pub confinement: Confinement,
}

/// How a replica ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitReport {
    /// Exit code, when it exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    /// Signal, when one killed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// Why it ended in the engine's or the launcher's words, when it did not exit by itself (a
    /// Slurm job's `NODE_FAIL`, a rendezvous that timed out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl ExitReport {
    /// How a waited-for process ended.
    pub fn of(status: std::io::Result<std::process::ExitStatus>) -> Self {
        use std::os::unix::process::ExitStatusExt;
        match status {
            Ok(status) => ExitReport {
                code: status.code(),
                signal: status.signal(),
                reason: None,
            },
            Err(error) => ExitReport {
                reason: Some(format!("could not be waited for: {error}")),
                ..ExitReport::default()
            },
        }
    }

    /// Whether it exited with status 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// The cause in words, for `errorMessage`.
    pub fn describe(&self) -> String {
        if let Some(reason) = &self.reason {
            return reason.clone();
        }
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

/// A future an executor returns.
pub type Pending<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Places replicas somewhere: local processes, a Slurm cluster or a Ray cluster.
pub trait Executor: Send + Sync + 'static {
    /// Starts every replica of `gang`, all or none; the replicas are returned by rank.
    fn launch<'a>(
        &'a self,
        gang: &'a Gang,
    ) -> Pending<'a, Result<Vec<Box<dyn Replica>>, SchedulerError>>;
    /// The replicas of `gang` that a previous server started under `ids` (by rank), so that this one
    /// watches them to their end.
    fn attach(&self, gang: &Gang, ids: &[String]) -> Vec<Box<dyn Replica>>;
    /// Asks a running replica to stop (SIGTERM to its processes).
    fn terminate(&self, id: &str);
    /// Forces a running replica to stop (SIGKILL). Callers only kill replicas that have not
    /// reported their exit, so an id is never signalled after it may be reused.
    fn kill(&self, id: &str);
    /// Kills what a previous server started for `job_id` under `id`, if it is still that job's
    /// (the id may belong to someone else by now).
    fn reclaim(&self, id: &str, job_id: &str);
    /// The largest node a replica may ask for, when the executor knows one: a job that asks for
    /// more is refused when it is submitted.
    fn largest_node(&self) -> Option<Resources> {
        None
    }
    /// Why the engine has not started replica `id` yet, in its words, while it waits for
    /// resources (`None` when it is not waiting, or cannot say).
    fn waiting<'a>(&'a self, id: &'a str) -> Pending<'a, Option<String>> {
        let _ = id;
        Box::pin(std::future::ready(None))
    }
    /// Whether replicas may run on other nodes than the server's: a batch prediction job then
    /// runs as replicas that predict a part each, rather than as threads of one.
    fn spans_nodes(&self) -> bool {
        false
    }
    /// No more gangs will be launched in `pool` ([`Gang::pool`]): an executor that keeps an engine
    /// job for them lets it end once their replicas have.
    fn pool_done(&self, pool: &std::path::Path) {
        let _ = pool;
    }
}

/// Runs `work` on the current Tokio runtime without waiting for it: the executor's methods that
/// stop replicas return at once, while a cluster engine is asked over the network. Outside a
/// runtime there is nothing to ask with, and nothing runs.
pub(crate) fn detached(work: impl Future<Output = ()> + Send + 'static) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(work);
    }
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

/// The values of `PASSED_ENV` that this process has, and on a Slurm node Slurm's description of
/// the job and the task (`SLURM_*` and `SLURMD_NODENAME`, less any token), which trainers may read.
pub fn passed_env() -> impl Iterator<Item = (String, String)> {
    std::env::vars().filter(|(name, _)| {
        PASSED_ENV.contains(&name.as_str())
            || name == "SLURMD_NODENAME"
            || (name.starts_with("SLURM_") && !name.contains("JWT") && !name.contains("TOKEN"))
    })
}

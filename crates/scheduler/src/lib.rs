//! Kiln's job runtime: how the replicas of a training job are planned, started, watched and stopped.
//!
//! # Layout (reading order)
//! - [`cluster`]: from a `TrainingInput` to a list of replicas (scale tiers, CUSTOM counts, machine
//!   types and their ML units), and each replica's `TF_CONFIG` once their addresses are known.
//! - [`program`]: what a replica runs: a built-in algorithm (the `kiln` binary itself), a container
//!   command run directly, or `python -m MODULE` with the job's packages on `PYTHONPATH`.
//! - [`gang`]: every replica of one run of a job as executors place it: saved where every node
//!   sees it, and where the replicas publish their addresses and exits.
//! - [`executor`]: the `Executor` trait: places a gang, all or none, and watches its replicas end.
//! - [`launcher`]: `kiln replica`, started by every executor for each replica on its node: the
//!   rendezvous, `TF_CONFIG` and PyTorch's variables, the sandbox, the log, the recorded exit.
//! - [`local`]: `LocalExecutor`, the embedded default: launchers as local process groups.
//! - [`slurm`]: `SlurmExecutor`: each gang one Slurm job, through slurmrestd.
//! - [`ray`]: `RayExecutor`: each gang one Ray job, through the Ray Jobs API, placed as one
//!   placement group by Kiln's driver.
//! - [`sandbox`]: what a job's processes may reach (Landlock, and a user namespace under root),
//!   applied by the launcher to every trainer and by the registry to every pip install.
//! - [`logs`]: the per-job log file (JSON lines, one per output line of any replica) and its pages.
//! - [`metrics`]: a tuning trial's metric as the trainer reports it (hypertune file, event files).
//!
//! **Architecture invariant:** the job lifecycle (states, cancel, limits) lives in `kiln-registry`;
//! it launches replicas only through [`Executor`], so Slurm, Ray or Kubernetes executors slot in
//! without touching it. Nothing here knows about HTTP.

mod answers;
pub mod cluster;
pub mod executor;
pub mod gang;
pub mod launcher;
pub mod local;
pub mod logs;
pub mod metrics;
pub mod program;
pub mod ray;
mod rest;
pub mod sandbox;
pub mod slurm;

pub use cluster::{ReplicaPlan, TaskType, plan};
pub use executor::{Executor, ExitReport, Pending, Replica, ReplicaSpec};
pub use gang::Gang;
pub use local::LocalExecutor;
pub use logs::JobLog;
pub use ray::{RayConfig, RayExecutor};
pub use sandbox::{Confinement, Sandbox};
pub use slurm::{SlurmConfig, SlurmExecutor};

/// Errors from planning or running replicas.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// The job's input does not describe something Kiln can run; the messages name the fields.
    #[error("{}", .0.join("; "))]
    Invalid(Vec<String>),
    /// A replica could not be started or a log could not be written.
    #[error("{0}")]
    Io(String),
}

//! A gang: every replica of one run of a job (the whole job, or one trial of a tuning job), as an
//! executor places it and the per-replica launcher ([`crate::launcher`]) runs it.
//!
//! An executor saves the gang as `gang.json` in the gang's directory, which lies on storage every
//! node sees, and starts one launcher per replica wherever it places them. The directory is also
//! where the replicas meet:
//! - `<rank>.addr`: written by a replica's launcher once it holds a port: `host:port` and, on the
//!   next line, the node's name.
//! - `<rank>.exit`: written by a replica's launcher when its trainer ended: an [`ExitReport`].
//! - `ids.json`: the ids the executor gave the replicas, by rank, recorded by the server that
//!   launched them, so a restarted server attaches to each gang on its own.
//! - `stop`: written by an executor that cannot signal the replicas' processes itself (Slurm's
//!   REST API only cancels): `SIGTERM` or `SIGKILL`, which each launcher sends to its trainer.
//!
//! Each file is written under a temporary name and renamed, so a reader sees it whole or not at all.
//! Nothing here needs the server: a restarted server reads the same files to learn how replicas
//! that outlived its predecessor ended.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::SchedulerError;
use crate::cluster::{Member, Resources, TaskType};
use crate::executor::{ExitReport, ReplicaSpec};

/// The gang's description in its directory.
pub const GANG_FILE: &str = "gang.json";

/// Every replica of one run of a job, and what they share.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Gang {
    /// The job.
    pub job_id: String,
    /// The trial, in a tuning job.
    pub trial: Option<String>,
    /// The job's `trainingInput` as the API shows it (`TF_CONFIG`'s `job`).
    pub job: Value,
    /// `useChiefInTfConfig`.
    pub use_chief: bool,
    /// Whether replicas get `CLUSTER_SPEC` (container commands do).
    pub cluster_spec: bool,
    /// The replicas, by rank: the master first.
    pub replicas: Vec<ReplicaSpec>,
    /// Where the gang's files are and the replicas meet.
    pub dir: PathBuf,
    /// The job log, which each launcher appends its trainer's output to.
    pub log: PathBuf,
    /// Whether launchers confine their trainers ([`crate::Sandbox`]); a node that cannot refuses
    /// to start them.
    pub confine: bool,
    /// The `kiln` binary and the Python interpreter, which confined trainers may read.
    pub kiln: PathBuf,
    /// See `kiln`.
    pub python: PathBuf,
    /// How long a launcher waits for the others to publish their addresses.
    pub rendezvous_seconds: u64,
    /// `scheduling.maxRunningTime`: a cluster engine's own time limit for the gang.
    pub max_running_seconds: u64,
    /// Where the gangs of one tuning job's trials may share one engine job, so that a trial starts
    /// without the engine's start-up of a job (see [`crate::Executor::pool_done`]); `None`
    /// outside tuning jobs.
    #[serde(default)]
    pub pool: Option<PathBuf>,
}

impl Gang {
    /// Writes `gang.json` into the gang's directory (created), removing files of an earlier run.
    pub fn save(&self) -> Result<PathBuf, SchedulerError> {
        let io =
            |error: std::io::Error| SchedulerError::Io(format!("{}: {error}", self.dir.display()));
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        for rank in 0..self.replicas.len() {
            let _ = std::fs::remove_file(self.address_file(rank));
            let _ = std::fs::remove_file(self.exit_file(rank));
        }
        let text =
            serde_json::to_string(self).map_err(|error| SchedulerError::Io(error.to_string()))?;
        let path = self.dir.join(GANG_FILE);
        write_whole(&path, &text).map_err(io)?;
        Ok(path)
    }

    /// Reads the gang saved in `dir`.
    pub fn load(dir: &Path) -> Result<Self, SchedulerError> {
        let path = dir.join(GANG_FILE);
        let text = std::fs::read_to_string(&path)
            .map_err(|error| SchedulerError::Io(format!("{}: {error}", path.display())))?;
        serde_json::from_str(&text)
            .map_err(|error| SchedulerError::Io(format!("{}: {error}", path.display())))
    }

    /// What each replica asks of a node when one size is given to all: the most any asks.
    pub fn largest_need(&self) -> Resources {
        Resources::largest(self.replicas.iter().map(|replica| replica.resources))
    }

    /// Where replica `rank` publishes its address.
    pub fn address_file(&self, rank: usize) -> PathBuf {
        self.dir.join(format!("{rank}.addr"))
    }

    /// Where replica `rank`'s launcher records how its trainer ended.
    pub fn exit_file(&self, rank: usize) -> PathBuf {
        self.dir.join(format!("{rank}.exit"))
    }

    /// How replica `rank` ended, once its launcher recorded it.
    pub fn exit(&self, rank: usize) -> Option<ExitReport> {
        let text = std::fs::read_to_string(self.exit_file(rank)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Records the ids the executor gave the replicas, by rank.
    pub fn record_ids(&self, ids: &[String]) -> std::io::Result<()> {
        let text = serde_json::to_string(ids).map_err(std::io::Error::other)?;
        write_whole(&self.dir.join("ids.json"), &text)
    }

    /// The ids recorded for the replicas, by rank.
    pub fn ids(&self) -> Option<Vec<String>> {
        let text = std::fs::read_to_string(self.dir.join("ids.json")).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Records how replica `rank` ended.
    pub fn record_exit(&self, rank: usize, report: &ExitReport) -> std::io::Result<()> {
        let text = serde_json::to_string(report).map_err(std::io::Error::other)?;
        write_whole(&self.exit_file(rank), &text)
    }

    /// Publishes replica `rank`'s address and node.
    pub fn publish(&self, rank: usize, address: &str, node: &str) -> std::io::Result<()> {
        write_whole(&self.address_file(rank), &format!("{address}\n{node}\n"))
    }

    /// Every replica's address and node, once all have published.
    pub fn members(&self) -> Option<Vec<(Member, String)>> {
        self.replicas
            .iter()
            .enumerate()
            .map(|(rank, replica)| {
                let text = std::fs::read_to_string(self.address_file(rank)).ok()?;
                let mut lines = text.lines();
                let address = lines.next()?.to_string();
                let node = lines.next().unwrap_or_default().to_string();
                let member = Member {
                    task: replica.task,
                    index: replica.index,
                    address,
                };
                Some((member, node))
            })
            .collect()
    }

    /// The environment a replica's trainer gets from its place in the cluster: `TF_CONFIG`,
    /// `CLUSTER_SPEC` for container commands, and PyTorch's `MASTER_ADDR`, `MASTER_PORT`,
    /// `WORLD_SIZE` and `RANK` (the master is rank 0, worker `i` rank `i + 1`, as Vertex AI sets
    /// them; parameter servers and evaluators take no part in `torch.distributed`).
    pub fn cluster_env(&self, members: &[Member], rank: usize) -> Vec<(String, String)> {
        let job = crate::cluster::TfJob {
            input: &self.job,
            job_id: &self.job_id,
            trial: self.trial.as_deref(),
            use_chief: self.use_chief,
        };
        let config = crate::cluster::tf_config(members, rank, job);
        let mut env = Vec::new();
        if self.cluster_spec {
            let spec = serde_json::json!({
                "cluster": config["cluster"],
                "task": config["task"],
                "job": config["job"],
            });
            env.push(("CLUSTER_SPEC".into(), spec.to_string()));
        }
        env.push(("TF_CONFIG".into(), config.to_string()));
        let torch: Vec<&Member> = members
            .iter()
            .filter(|member| matches!(member.task, TaskType::Master | TaskType::Worker))
            .collect();
        let member = &members[rank];
        if let (Some(master), Some(position)) = (
            torch.first(),
            torch.iter().position(|candidate| *candidate == member),
        ) {
            let (host, port) = master
                .address
                .rsplit_once(':')
                .unwrap_or((master.address.as_str(), ""));
            env.push(("MASTER_ADDR".into(), host.to_string()));
            env.push(("MASTER_PORT".into(), port.to_string()));
            env.push(("WORLD_SIZE".into(), torch.len().to_string()));
            env.push(("RANK".into(), position.to_string()));
        }
        env
    }
}

/// The gang directories of the engine jobs an executor follows, by the engine's job id, so that a
/// replica known only by its id can be asked to stop through its gang's `stop` file.
#[derive(Debug)]
pub(crate) struct Followed<K: Eq + std::hash::Hash> {
    dirs: std::sync::Mutex<std::collections::HashMap<K, PathBuf>>,
}

impl<K: Eq + std::hash::Hash + Clone> Followed<K> {
    pub(crate) fn new() -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self {
            dirs: std::sync::Mutex::new(std::collections::HashMap::new()),
        })
    }

    fn dirs(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<K, PathBuf>> {
        self.dirs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Follows engine job `key` of the gang in `dir` until the returned guard, shared by the
    /// job's replicas, is dropped.
    pub(crate) fn follow(
        self: &std::sync::Arc<Self>,
        key: K,
        dir: &Path,
    ) -> std::sync::Arc<Following<K>> {
        self.dirs().insert(key.clone(), dir.to_path_buf());
        std::sync::Arc::new(Following {
            followed: std::sync::Arc::clone(self),
            key,
        })
    }

    /// Asks the launchers of engine job `key` to send `signal` to their trainers.
    pub(crate) fn request_stop(&self, key: &K, signal: &str) -> std::io::Result<()> {
        let dir = self.dirs().get(key).cloned();
        match dir {
            Some(dir) => request_stop(&dir, signal),
            None => Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the job is not followed",
            )),
        }
    }
}

/// Forgets its engine job when the last of its replicas is dropped.
#[derive(Debug)]
pub(crate) struct Following<K: Eq + std::hash::Hash + Clone> {
    followed: std::sync::Arc<Followed<K>>,
    key: K,
}

impl<K: Eq + std::hash::Hash + Clone> Drop for Following<K> {
    fn drop(&mut self) {
        self.followed.dirs().remove(&self.key);
    }
}

/// How long a cluster engine may stay unreachable before a running replica is given up.
const UNREACHABLE_FOR: std::time::Duration = std::time::Duration::from_secs(30);

/// What an engine says of the job that ran a gang, once that job is over (or unknown to it).
#[derive(Debug, Clone)]
pub(crate) struct EngineEnd {
    /// The engine's state and reason, in its words.
    pub(crate) words: String,
    /// Whether the engine ended it (a lost node, a time limit, the out-of-memory killer,
    /// preemption), rather than its processes ending or a cancel.
    pub(crate) engine_fault: bool,
}

/// Waits for replica `rank` of `gang` to end when it runs on a cluster engine: its launcher's
/// record, or, when the engine says the job that ran it is over and there is none, the engine's
/// words. A replica killed by a signal while the engine ended its job (a lost node, a time limit)
/// ends with the engine's words. `ask` asks the engine: `Ok(None)` while the job runs or waits,
/// `Err` when the engine cannot be reached (given up after a while, naming the engine, and the
/// gang's launchers asked to stop their trainers).
pub(crate) async fn follow<F, Fut>(gang: &Gang, rank: usize, mut ask: F) -> ExitReport
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<EngineEnd>, SchedulerError>>,
{
    use std::time::{Duration, Instant};
    let mut reachable = Instant::now();
    let mut asked = Instant::now();
    loop {
        if let Some(report) = gang.exit(rank) {
            return explained(report, &mut ask).await;
        }
        if asked.elapsed() >= Duration::from_secs(1) {
            asked = Instant::now();
            match ask().await {
                // The launcher records the exit before its task ends.
                Ok(Some(end)) => {
                    return gang.exit(rank).unwrap_or(ExitReport {
                        reason: Some(end.words),
                        ..ExitReport::default()
                    });
                }
                Ok(None) => reachable = Instant::now(),
                Err(error) if reachable.elapsed() > UNREACHABLE_FOR => {
                    // Given up on: its launcher stops the trainer, which needs no engine.
                    let _ = request_stop(&gang.dir, "SIGTERM");
                    return ExitReport {
                        reason: Some(format!(
                            "could not be followed: {error} (for {} s)",
                            UNREACHABLE_FOR.as_secs()
                        )),
                        ..ExitReport::default()
                    };
                }
                Err(_) => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How long a replica killed by a signal waits for its engine's verdict. A lost node reaches the
/// trainer as a signal before the engine records why (Slurm marks the node down, kills its tasks,
/// then requeues the job), and on a loaded controller that takes seconds.
const VERDICT_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// A replica killed by a signal may have been killed by its engine: waits up to
/// [`VERDICT_WITHIN`] for the engine's verdict while the engine says the job still runs (or does
/// not answer) and, when the engine ended the job itself, ends with its words.
async fn explained<F, Fut>(report: ExitReport, ask: &mut F) -> ExitReport
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<EngineEnd>, SchedulerError>>,
{
    if report.signal.is_none() {
        return report;
    }
    let deadline = std::time::Instant::now() + VERDICT_WITHIN;
    while std::time::Instant::now() < deadline {
        match ask().await {
            Ok(Some(end)) if end.engine_fault => {
                return ExitReport {
                    reason: Some(end.words),
                    ..report
                };
            }
            // Still running, or the engine did not answer this time.
            Ok(None) | Err(_) => tokio::time::sleep(std::time::Duration::from_millis(300)).await,
            Ok(Some(_)) => break,
        }
    }
    report
}

/// The file that asks the launchers of the gang in `dir` to stop their trainers.
pub fn stop_file(dir: &Path) -> PathBuf {
    dir.join("stop")
}

/// Asks the launchers of the gang in `dir` to send `signal` (`SIGTERM` or `SIGKILL`) to their
/// trainers.
pub fn request_stop(dir: &Path, signal: &str) -> std::io::Result<()> {
    write_whole(&stop_file(dir), &format!("{signal}\n"))
}

/// Writes `text` to `path` through a temporary file and a rename.
pub(crate) fn write_whole(path: &Path, text: &str) -> std::io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    std::fs::write(&temporary, text)?;
    std::fs::rename(&temporary, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Confinement;

    fn replica(task: TaskType, index: usize) -> ReplicaSpec {
        ReplicaSpec {
            task_name: format!("{}-replica-{index}", task.name(false)),
            task,
            index,
            machine_type: "standard".into(),
            resources: Default::default(),
            program: "/bin/true".into(),
            args: Vec::new(),
            env: Vec::new(),
            working_dir: "/tmp".into(),
            confinement: Confinement::default(),
        }
    }

    fn gang(dir: &Path) -> Gang {
        Gang {
            job_id: "j1".into(),
            trial: None,
            job: serde_json::json!({"scaleTier": "CUSTOM"}),
            use_chief: false,
            cluster_spec: true,
            replicas: vec![
                replica(TaskType::Master, 0),
                replica(TaskType::Worker, 0),
                replica(TaskType::Ps, 0),
                replica(TaskType::Worker, 1),
            ],
            dir: dir.to_path_buf(),
            log: dir.join("log.jsonl"),
            confine: false,
            kiln: "/bin/kiln".into(),
            python: "/bin/python3".into(),
            rendezvous_seconds: 5,
            max_running_seconds: 60,
            pool: None,
        }
    }

    #[test]
    fn replicas_meet_through_files_and_get_tf_and_torch_environments() {
        let dir = tempfile::tempdir().unwrap();
        let gang = gang(dir.path());
        gang.save().unwrap();
        let loaded = Gang::load(dir.path()).unwrap();
        assert_eq!(loaded.replicas.len(), 4);
        assert!(loaded.members().is_none(), "nobody has published yet");
        for rank in 0..4 {
            loaded
                .publish(rank, &format!("10.0.0.{rank}:2000"), &format!("n{rank}"))
                .unwrap();
        }
        let members: Vec<Member> = loaded
            .members()
            .unwrap()
            .into_iter()
            .map(|(m, _)| m)
            .collect();
        let env = |rank: usize| -> std::collections::HashMap<String, String> {
            loaded.cluster_env(&members, rank).into_iter().collect()
        };
        let worker = env(3);
        let config: Value = serde_json::from_str(&worker["TF_CONFIG"]).unwrap();
        assert_eq!(config["task"]["type"], "worker");
        assert_eq!(config["task"]["index"], 1);
        assert_eq!(
            config["cluster"]["worker"],
            serde_json::json!(["10.0.0.1:2000", "10.0.0.3:2000"])
        );
        assert!(worker.contains_key("CLUSTER_SPEC"));
        assert_eq!(worker["MASTER_ADDR"], "10.0.0.0");
        assert_eq!(worker["MASTER_PORT"], "2000");
        assert_eq!(worker["WORLD_SIZE"], "3");
        assert_eq!(worker["RANK"], "2");
        assert_eq!(env(0)["RANK"], "0");
        assert!(
            !env(2).contains_key("RANK"),
            "a parameter server has no torch rank"
        );

        let report = ExitReport {
            code: Some(3),
            signal: None,
            reason: None,
        };
        assert_eq!(loaded.exit(1), None);
        loaded.record_exit(1, &report).unwrap();
        assert_eq!(loaded.exit(1), Some(report));
        gang.save().unwrap();
        assert_eq!(
            loaded.exit(1),
            None,
            "a new run starts without the old files"
        );
        assert!(loaded.members().is_none());
    }
}

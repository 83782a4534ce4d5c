//! Running a job's replicas once (the whole job, or one trial of a tuning job): the gang of each
//! replica's command and environment, its launch through the `Executor`, and the verdict when the
//! master ends, a replica fails, the job is stopped or its time runs out. A restarted server watches
//! replicas its predecessor started the same way ([`Jobs::watch`]).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kiln_api::job::{BuiltInAlgorithmOutput, JobState};
use kiln_scheduler::cluster::units_per_hour;
use kiln_scheduler::logs::ERROR_LOG_LINES;
use kiln_scheduler::program::{self, Program, Runtime};
use kiln_scheduler::{
    Confinement, ExitReport, Gang, JobLog, Replica, ReplicaPlan, ReplicaSpec, TaskType,
};
use tokio::sync::{mpsc, watch};

use super::{Jobs, StopReason};

impl Jobs {
    /// Runs the job's replicas once (the whole job, or one trial of a tuning job) until the master
    /// ends, a replica fails, the job is stopped or the deadline passes.
    pub(crate) async fn supervise(
        &self,
        plan: &JobPlan<'_>,
        trial: Option<&TrialLaunch>,
        stopped: watch::Receiver<Option<StopReason>>,
    ) -> Attempt {
        let gang = self.gang(plan, trial);
        let replicas = match self.executor.launch(&gang).await {
            Ok(replicas) => replicas,
            Err(error) => {
                return Attempt::failed(format!("The job's replicas could not start: {error}"));
            }
        };
        let ids: Vec<String> = replicas.iter().map(|replica| replica.id()).collect();
        self.track(plan.project, plan.job_id, &ids, true);
        if let Err(error) = gang.record_ids(&ids) {
            tracing::warn!(job = plan.job_id, %error, "could not record replica ids; a restarted server cannot take the job over");
        }
        self.watch(&plan.watched(trial.is_some()), &gang, replicas, stopped)
            .await
    }

    /// Watches a gang's started replicas until the master ends, a replica fails, the job is
    /// stopped or the deadline passes; stops the rest then. The job is RUNNING once every replica
    /// has started (published its address); until then, while the engine says it waits for
    /// resources, it is QUEUED with the engine's words in `errorMessage`.
    pub(crate) async fn watch(
        &self,
        watched: &Watched<'_>,
        gang: &Gang,
        replicas: Vec<Box<dyn Replica>>,
        mut stopped: watch::Receiver<Option<StopReason>>,
    ) -> Attempt {
        let (project, job_id) = (watched.project, watched.job_id);
        let (exits, mut exited) = mpsc::unbounded_channel::<(usize, ExitReport, Duration)>();
        let ids: Vec<String> = replicas.iter().map(|replica| replica.id()).collect();
        for (index, mut replica) in replicas.into_iter().enumerate() {
            let exits = exits.clone();
            let launched = Instant::now();
            tokio::spawn(async move {
                let report = replica.wait().await;
                let _ = exits.send((index, report, launched.elapsed()));
            });
        }
        let mut units = 0.0;
        // Replicas that have not reported their exit: only these are ever signalled, so a
        // process-group id is never signalled after its process is gone and the id may be reused.
        let mut running = vec![true; ids.len()];
        let mut kill_at: Option<tokio::time::Instant> = None;
        let mut verdict: Option<(JobState, String)> = None;
        let mut stop_reason: Option<StopReason> = None;
        let mut placed = false;
        let mut asked = Instant::now();
        let stop = |running: &[bool], kill_at: &mut Option<tokio::time::Instant>| {
            for (id, _) in ids.iter().zip(running).filter(|(_, alive)| **alive) {
                self.executor.terminate(id);
            }
            kill_at.get_or_insert(tokio::time::Instant::now() + self.settings.stop_grace);
        };
        while running.iter().any(|alive| *alive) {
            let settled = verdict.is_some() || stop_reason.is_some();
            tokio::select! {
                Some((index, report, ran)) = exited.recv() => {
                    running[index] = false;
                    let replica = &gang.replicas[index];
                    units += units_per_hour(&replica.machine_type).unwrap_or(0.0) * ran.as_secs_f64() / 3600.0;
                    if settled {
                        continue;
                    }
                    if !report.success() {
                        let name = &replica.task_name;
                        let tail = JobLog::tail(watched.log_path, name, ERROR_LOG_LINES);
                        let message = format!(
                            "The replica {} {}. Last {} log lines of {name}:\n{}",
                            name.replace("-replica-", " "),
                            report.describe(),
                            tail.len(),
                            tail.join("\n")
                        );
                        verdict = Some((JobState::Failed, message));
                        stop(&running, &mut kill_at);
                    } else if watched.all_finish {
                        if !running.contains(&true) {
                            verdict = Some((JobState::Succeeded, String::new()));
                        }
                    } else if replica.task == TaskType::Master {
                        verdict = Some((JobState::Succeeded, String::new()));
                        stop(&running, &mut kill_at);
                    }
                }
                () = tokio::time::sleep(PLACEMENT_POLL), if !placed && !settled => {
                    if gang.members().is_some() {
                        placed = true;
                        let _ = self.update(project, job_id, |job| {
                            if matches!(job.state, JobState::Preparing | JobState::Queued) {
                                job.state = JobState::Running;
                                job.error_message.clear();
                            }
                        });
                    } else if !watched.trial && asked.elapsed() >= ENGINE_POLL {
                        asked = Instant::now();
                        if let Some(words) = self.executor.waiting(&ids[0]).await {
                            let _ = self.update(project, job_id, |job| {
                                if matches!(job.state, JobState::Preparing | JobState::Queued) {
                                    job.state = JobState::Queued;
                                    job.error_message.clone_from(&words);
                                }
                            });
                        }
                    }
                }
                changed = stopped.changed(), if !settled => {
                    if changed.is_ok() {
                        stop_reason = *stopped.borrow();
                        stop(&running, &mut kill_at);
                    }
                }
                () = tokio::time::sleep_until(watched.deadline), if !settled => {
                    stop_reason = Some(StopReason::TimedOut(watched.max_running));
                    let _ = self.update(project, job_id, |job| job.state = JobState::Cancelling);
                    stop(&running, &mut kill_at);
                }
                () = tokio::time::sleep_until(kill_at.unwrap_or_else(tokio::time::Instant::now)), if kill_at.is_some() => {
                    kill_at = None;
                    for (id, _) in ids.iter().zip(&running).filter(|(_, alive)| **alive) {
                        self.executor.kill(id);
                    }
                }
            }
        }
        self.track(project, job_id, &ids, false);
        Attempt {
            verdict,
            stop_reason,
            units,
        }
    }

    /// The gang of one run of the job's replicas: each replica's command and environment, where
    /// they meet (`gang/` in the job's working directory, or in the trial's), how they are confined.
    fn gang(&self, plan: &JobPlan<'_>, trial: Option<&TrialLaunch>) -> Gang {
        let dir = gang_dir(plan.working_dir, trial.map(|trial| trial.id.as_str()));
        Gang {
            job_id: plan.job_id.to_string(),
            trial: trial.map(|trial| trial.id.clone()),
            job: serde_json::to_value(plan.input).unwrap_or_default(),
            use_chief: plan.input.use_chief_in_tf_config,
            cluster_spec: matches!(plan.program, Program::Command { .. }),
            replicas: plan
                .replicas
                .iter()
                .map(|replica| replica_spec(plan, replica, trial))
                .collect(),
            dir,
            log: plan.log_path.to_path_buf(),
            confine: self.settings.sandbox.is_on(),
            kiln: plan.runtime.kiln.clone(),
            python: plan.runtime.python.clone(),
            rendezvous_seconds: RENDEZVOUS_SECONDS,
            max_running_seconds: plan.max_running.as_secs(),
            pool: trial.map(|_| trials_dir(plan.working_dir)),
        }
    }
}

/// Where a tuning job's trials keep their files, each under its id; also where they may share an
/// engine job ([`Gang::pool`]).
pub(crate) fn trials_dir(working_dir: &Path) -> PathBuf {
    working_dir.join("trials")
}

/// Where the gang of a job (or of one of its trials) is.
pub(crate) fn gang_dir(working_dir: &Path, trial: Option<&str>) -> PathBuf {
    match trial {
        Some(trial) => trials_dir(working_dir).join(trial).join("gang"),
        None => working_dir.join("gang"),
    }
}

/// How long a replica's launcher waits for the others to start.
const RENDEZVOUS_SECONDS: u64 = 600;

/// How often a gang that has not started yet is checked.
const PLACEMENT_POLL: Duration = Duration::from_millis(20);

/// How often the engine is asked why a gang has not started yet.
const ENGINE_POLL: Duration = Duration::from_secs(1);

/// A gang's replicas that a previous server started, attached to by this one.
pub(crate) struct Attached {
    pub(crate) gang: Gang,
    pub(crate) replicas: Vec<Box<dyn Replica>>,
}

/// What watching a job's replicas needs to know of the job.
pub(crate) struct Watched<'a> {
    pub(crate) project: &'a str,
    pub(crate) job_id: &'a str,
    pub(crate) log_path: &'a Path,
    /// `scheduling.maxRunningTime`, and when it runs out.
    pub(crate) max_running: Duration,
    pub(crate) deadline: tokio::time::Instant,
    /// Whether the replicas are one trial of a tuning job (whose state is the job's, not theirs).
    pub(crate) trial: bool,
    /// Whether the job succeeds once every replica has (the parts of a batch prediction), rather
    /// than once its master has.
    pub(crate) all_finish: bool,
}

/// What every replica of one job shares.
pub(crate) struct JobPlan<'a> {
    pub(crate) project: &'a str,
    pub(crate) replicas: &'a [ReplicaPlan],
    pub(crate) input: &'a kiln_api::TrainingInput,
    pub(crate) program: &'a Program,
    pub(crate) job_id: &'a str,
    pub(crate) working_dir: &'a Path,
    pub(crate) runtime: &'a Runtime,
    /// What the job's processes may reach ([`Jobs::confinement`]).
    pub(crate) confinement: &'a Confinement,
    /// Environment every replica gets besides its own (the sandbox's `HOME` and `TMPDIR`).
    pub(crate) env: &'a [(String, String)],
    pub(crate) log_path: &'a Path,
    /// `scheduling.maxRunningTime`, and when it runs out.
    pub(crate) max_running: Duration,
    pub(crate) deadline: tokio::time::Instant,
}

impl<'a> JobPlan<'a> {
    /// What watching the job's replicas (or one trial's, when `trial`) needs to know of it.
    pub(crate) fn watched(&self, trial: bool) -> Watched<'a> {
        Watched {
            project: self.project,
            job_id: self.job_id,
            log_path: self.log_path,
            max_running: self.max_running,
            deadline: self.deadline,
            trial,
            all_finish: matches!(self.program, Program::BatchPredict { .. }),
        }
    }
}

/// What makes one trial's replicas different from another's.
pub(crate) struct TrialLaunch {
    /// `"1"`, `"2"`, ...
    pub(crate) id: String,
    /// `--name=value` per hyperparameter.
    pub(crate) flags: Vec<String>,
    /// `CLOUD_ML_HP_METRIC_FILE`.
    pub(crate) metric_file: PathBuf,
    /// `--job-dir` of a built-in algorithm's trial (`<jobDir>/<trialId>`); other trainers get the
    /// job's and append the trial id themselves, as on ML Engine.
    pub(crate) job_dir: Option<String>,
    /// What the trial's replicas send measurements with (`KILN_ENDPOINT`, `KILN_TOKEN`, ...).
    pub(crate) env: Vec<(String, String)>,
}

/// How one run of the replicas ended.
#[derive(Debug)]
pub(crate) struct Attempt {
    pub(crate) verdict: Option<(JobState, String)>,
    pub(crate) stop_reason: Option<StopReason>,
    pub(crate) units: f64,
}

impl Attempt {
    fn failed(message: String) -> Self {
        Self {
            verdict: Some((JobState::Failed, message)),
            stop_reason: None,
            units: 0.0,
        }
    }

    /// The final state and message of a job that ran this way.
    pub(crate) fn verdict(&self) -> (JobState, String) {
        match (self.stop_reason, &self.verdict) {
            (Some(reason), _) => reason.outcome(),
            (None, Some(verdict)) => verdict.clone(),
            (None, None) => (
                JobState::Failed,
                "the job's replicas ended without a verdict".into(),
            ),
        }
    }
}

impl StopReason {
    /// The final state and message of a job (or trial) stopped for this reason.
    pub(crate) fn outcome(self) -> (JobState, String) {
        match self {
            StopReason::Cancelled | StopReason::WaitedTooLong(_) => (
                JobState::Cancelled,
                "Job was cancelled by a user request.".to_string(),
            ),
            StopReason::TimedOut(limit) => (
                JobState::Cancelled,
                format!(
                    "Job exceeded scheduling.maxRunningTime ({}s) and was cancelled.",
                    limit.as_secs_f64()
                ),
            ),
            StopReason::EarlyStopped => (JobState::Succeeded, String::new()),
        }
    }
}

pub(crate) fn round_units(units: f64) -> f64 {
    (units * 1e4).round() / 1e4
}

/// Where a built-in algorithm's run exported its model.
pub(crate) fn built_in_output(
    input: &kiln_api::TrainingInput,
    job_dir: &Path,
) -> BuiltInAlgorithmOutput {
    BuiltInAlgorithmOutput {
        framework: "KILN".into(),
        runtime_version: input.runtime_version.clone(),
        python_version: input.python_version.clone(),
        model_path: job_dir.join("model").display().to_string(),
    }
}

/// The command and environment of one replica besides its place in the cluster (which its
/// launcher adds): CLOUD_ML_JOB_ID, and in a trial CLOUD_ML_TRIAL_ID, CLOUD_ML_HP_METRIC_FILE, what
/// it reports measurements with, and the hyperparameter flags.
fn replica_spec(
    plan: &JobPlan<'_>,
    replica: &ReplicaPlan,
    trial: Option<&TrialLaunch>,
) -> ReplicaSpec {
    let mut input = plan.input.clone();
    if let Some(job_dir) = trial.and_then(|trial| trial.job_dir.clone()) {
        input.job_dir = job_dir;
    }
    let (program_path, mut args, mut env) =
        program::command(plan.program, &replica.config, &input, plan.runtime);
    env.extend(plan.env.iter().cloned());
    env.push(("CLOUD_ML_JOB_ID".into(), plan.job_id.to_string()));
    let mut task_name = replica.task_name();
    if let Some(trial) = trial {
        args.extend(trial.flags.iter().cloned());
        env.push(("CLOUD_ML_TRIAL_ID".into(), trial.id.clone()));
        env.push((
            "CLOUD_ML_HP_METRIC_FILE".into(),
            trial.metric_file.display().to_string(),
        ));
        env.extend(trial.env.iter().cloned());
        task_name = format!("trial-{}-{task_name}", trial.id);
    }
    ReplicaSpec {
        task_name,
        task: replica.task,
        index: replica.index,
        machine_type: replica.machine_type.clone(),
        resources: replica.resources(),
        program: program_path,
        args,
        env,
        working_dir: plan.working_dir.to_path_buf(),
        confinement: plan.confinement.clone(),
    }
}

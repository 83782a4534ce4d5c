//! Running a job's replicas once (the whole job, or one trial of a tuning job): each replica's
//! command and environment, its launch through the `Executor`, and the verdict when the master ends,
//! a replica fails, the job is stopped or its time runs out.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kiln_api::job::{BuiltInAlgorithmOutput, JobState};
use kiln_scheduler::cluster::{assign_ports, cluster_spec, tf_config, units_per_hour};
use kiln_scheduler::logs::ERROR_LOG_LINES;
use kiln_scheduler::program::{self, Program, Runtime};
use kiln_scheduler::{Confinement, ExitReport, JobLog, ReplicaPlan, ReplicaSpec, TaskType};
use tokio::sync::{mpsc, watch};

use super::{Jobs, StopReason};

impl Jobs {
    /// Runs the job's replicas once (the whole job, or one trial of a tuning job) until the master
    /// ends, a replica fails, the job is stopped or the deadline passes.
    pub(crate) async fn supervise(
        &self,
        plan: &JobPlan<'_>,
        trial: Option<&TrialLaunch>,
        mut stopped: watch::Receiver<Option<StopReason>>,
    ) -> Attempt {
        let (project, job_id) = (plan.project, plan.job_id);
        let mut replicas = plan.replicas.to_vec();
        if let Err(error) = assign_ports(&mut replicas) {
            return Attempt::failed(format!("cannot allocate loopback ports: {error}"));
        }
        let (exits, mut exited) = mpsc::unbounded_channel::<(usize, ExitReport, Duration)>();
        let mut ids = Vec::new();
        let mut task_names = Vec::new();
        for (index, replica) in replicas.iter().enumerate() {
            let spec = replica_spec(plan, &replicas, replica, trial);
            task_names.push(spec.task_name.clone());
            match self.executor.launch(spec, plan.log.clone()) {
                Ok(mut started) => {
                    ids.push(started.id());
                    let exits = exits.clone();
                    let launched = Instant::now();
                    tokio::spawn(async move {
                        let report = started.wait().await;
                        let _ = exits.send((index, report, launched.elapsed()));
                    });
                }
                Err(error) => {
                    // Every replica started so far is still running (none has reported).
                    for id in &ids {
                        self.executor.kill(id);
                    }
                    return Attempt::failed(format!(
                        "The replica {} could not start: {error}",
                        task_names[index]
                    ));
                }
            }
        }
        self.track(project, job_id, &ids, true);
        let _ = self.update(project, job_id, |job| {
            if job.state == JobState::Preparing {
                job.state = JobState::Running;
            }
        });

        let mut units = 0.0;
        // Replicas that have not reported their exit: only these are ever signalled, so a
        // process-group id is never signalled after its process is gone and the id may be reused.
        let mut running = vec![true; ids.len()];
        let mut kill_at: Option<tokio::time::Instant> = None;
        let mut verdict: Option<(JobState, String)> = None;
        let mut stop_reason: Option<StopReason> = None;
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
                    let replica = &replicas[index];
                    units += units_per_hour(&replica.machine_type).unwrap_or(0.0) * ran.as_secs_f64() / 3600.0;
                    if settled {
                        continue;
                    }
                    if !report.success() {
                        let name = &task_names[index];
                        let tail = JobLog::tail(plan.log_path, name, ERROR_LOG_LINES);
                        let message = format!(
                            "The replica {} {}. Last {} log lines of {name}:\n{}",
                            name.replace("-replica-", " "),
                            report.describe(),
                            tail.len(),
                            tail.join("\n")
                        );
                        verdict = Some((JobState::Failed, message));
                        stop(&running, &mut kill_at);
                    } else if replica.task == TaskType::Master {
                        verdict = Some((JobState::Succeeded, String::new()));
                        stop(&running, &mut kill_at);
                    }
                }
                changed = stopped.changed(), if !settled => {
                    if changed.is_ok() {
                        stop_reason = *stopped.borrow();
                        stop(&running, &mut kill_at);
                    }
                }
                () = tokio::time::sleep_until(plan.deadline), if !settled => {
                    stop_reason = Some(StopReason::TimedOut(plan.max_running));
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
    pub(crate) log: &'a JobLog,
    pub(crate) log_path: &'a Path,
    /// `scheduling.maxRunningTime`, and when it runs out.
    pub(crate) max_running: Duration,
    pub(crate) deadline: tokio::time::Instant,
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

/// The command and environment of one replica: TF_CONFIG as ML Engine sets it (with `task.trial`
/// in a trial), CLUSTER_SPEC for container commands, CLOUD_ML_JOB_ID, and in a trial
/// CLOUD_ML_TRIAL_ID, CLOUD_ML_HP_METRIC_FILE and the hyperparameter flags.
fn replica_spec(
    plan: &JobPlan<'_>,
    replicas: &[ReplicaPlan],
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
    let config = tf_config(
        replicas,
        replica,
        plan.input,
        plan.job_id,
        trial.map(|t| t.id.as_str()),
    );
    if let Program::Command { .. } = plan.program {
        let cluster = serde_json::json!({
            "cluster": cluster_spec(replicas, plan.input.use_chief_in_tf_config),
            "task": config["task"],
            "job": config["job"],
        });
        env.push(("CLUSTER_SPEC".into(), cluster.to_string()));
    }
    env.push(("TF_CONFIG".into(), config.to_string()));
    env.push(("CLOUD_ML_JOB_ID".into(), plan.job_id.to_string()));
    let mut task_name = replica.task_name();
    if let Some(trial) = trial {
        args.extend(trial.flags.iter().cloned());
        env.push(("CLOUD_ML_TRIAL_ID".into(), trial.id.clone()));
        env.push((
            "CLOUD_ML_HP_METRIC_FILE".into(),
            trial.metric_file.display().to_string(),
        ));
        task_name = format!("trial-{}-{task_name}", trial.id);
    }
    ReplicaSpec {
        task_name,
        program: program_path,
        args,
        env,
        working_dir: plan.working_dir.to_path_buf(),
        confinement: plan.confinement.clone(),
    }
}

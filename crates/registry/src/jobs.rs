//! `projects.jobs`: training jobs from submission to a final state.
//!
//! States follow ML Engine: `QUEUED → PREPARING → RUNNING → SUCCEEDED | FAILED`, and
//! `CANCELLING → CANCELLED` on cancel or when `scheduling.maxRunningTime` passes. A job stays QUEUED
//! until the [`Queue`] admits it under the ML-unit quota (or `maxWaitTime` cancels it). The job ends
//! when its master (chief) replica ends; any replica that fails fails the job, with an `errorMessage`
//! naming the replica, the exit cause and its last log lines. Replicas start only through an
//! `Executor`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kiln_api::ListJobsResponse;
use kiln_api::job::{BuiltInAlgorithmOutput, Job, JobState, TrainingOutput};
use kiln_api::names::{check_name, check_project};
use kiln_artifacts::PathPolicy;
use kiln_scheduler::cluster::{assign_ports, cluster_spec, tf_config, units_per_hour};
use kiln_scheduler::logs::{ERROR_LOG_LINES, LogPage};
use kiln_scheduler::metrics::MetricWatch;
use kiln_scheduler::program::{self, Program, Runtime};
use kiln_scheduler::{
    Confinement, Executor, ExitReport, JobLog, ReplicaPlan, ReplicaSpec, Sandbox, TaskType,
};
use kiln_store::Store;
use tokio::sync::{mpsc, watch};

use crate::batch::{self, PredictionPlan};
use crate::queue::Queue;
use crate::registry::Registry;
use crate::tuning::{self, TuningPlan};
use crate::{ListParams, RegistryError};

/// Longest running time when the job sets none (ML Engine's default: 7 days).
pub const DEFAULT_MAX_RUNNING_TIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// Where jobs keep their files and what they run with.
#[derive(Debug, Clone)]
pub struct JobSettings {
    /// Data directory: logs under `logs/`, working directories under `jobs/`.
    pub data_dir: PathBuf,
    /// The `kiln` binary and the Python interpreter.
    pub runtime: Runtime,
    /// Time between SIGTERM and SIGKILL when a job is stopped.
    pub stop_grace: Duration,
    /// ML units that may run at once; more waits in the queue.
    pub quota: f64,
    /// Where `jobDir` and `packageUris` may point.
    pub paths: PathPolicy,
    /// How job processes are confined.
    pub sandbox: Sandbox,
    /// Whether commands and Python packages may run where `sandbox` cannot confine them.
    pub allow_unconfined: bool,
}

/// What a validated job will run.
#[derive(Clone)]
struct Launch {
    replicas: Vec<ReplicaPlan>,
    program: Program,
    max_running: Duration,
    max_wait: Option<Duration>,
    /// ML units per hour of all replicas together: what the job takes from the quota.
    units: f64,
    /// A tuning job's search.
    tuning: Option<TuningPlan>,
    /// A batch prediction job's output.
    prediction: Option<PredictionPlan>,
}

/// Checks a training input and decides how to run it, collecting every problem. Replaces `jobDir`
/// and `packageUris` by the locations `paths` resolved them to.
fn validate(
    input: &mut kiln_api::TrainingInput,
    paths: &PathPolicy,
    project: &str,
    job_id: &str,
) -> Result<Launch, Vec<String>> {
    let mut problems = Vec::new();
    if !input.job_dir.is_empty() {
        match paths.check(project, "training_input.job_dir", &input.job_dir) {
            Ok(checked) => input.job_dir = checked,
            Err(problem) => problems.push(problem),
        }
    }
    let packages = std::mem::take(&mut input.package_uris);
    for (index, uri) in packages.iter().enumerate() {
        match paths.check(
            project,
            &format!("training_input.package_uris[{index}]"),
            uri,
        ) {
            Ok(checked) => input.package_uris.push(checked),
            Err(problem) => problems.push(problem),
        }
    }
    let replicas = kiln_scheduler::plan(input)
        .map_err(|found| problems.extend(found))
        .ok();
    let program = program::decide(input)
        .map_err(|found| problems.extend(found))
        .ok();
    if matches!(program, Some(Program::BuiltIn { .. })) {
        let checked = program::built_in_locations(&input.args, |name, location| {
            batch::checked_input(
                location,
                project,
                paths,
                &format!("training_input.args[--{name}]"),
            )
        });
        match checked {
            Ok(args) => input.args = args,
            Err(found) => problems.extend(found),
        }
    }
    if matches!(program, Some(Program::BuiltIn { .. }))
        && replicas.as_ref().is_some_and(|replicas| replicas.len() > 1)
    {
        problems.push("Field: training_input.scale_tier Error: built-in algorithms run on one replica; use BASIC".into());
    }
    let scheduling = input.scheduling.clone().unwrap_or_default();
    let max_running = parse_duration("max_running_time", &scheduling.max_running_time)
        .map_err(|problem| problems.push(problem))
        .ok()
        .flatten();
    let max_wait = parse_duration("max_wait_time", &scheduling.max_wait_time)
        .map_err(|problem| problems.push(problem))
        .ok()
        .flatten();
    let tuning = input.hyperparameters.as_ref().and_then(|spec| {
        tuning::plan(spec, job_id)
            .map_err(|found| problems.extend(found))
            .ok()
    });
    match (replicas, program, problems.is_empty()) {
        (Some(replicas), Some(program), true) => Ok(Launch {
            units: units(&replicas),
            replicas,
            program,
            max_running: max_running.unwrap_or(DEFAULT_MAX_RUNNING_TIME),
            max_wait,
            tuning,
            prediction: None,
        }),
        _ => Err(problems),
    }
}

/// ML units per hour of all `replicas` together: what a job takes from the quota.
fn units(replicas: &[ReplicaPlan]) -> f64 {
    replicas
        .iter()
        .map(|replica| units_per_hour(&replica.machine_type).unwrap_or(0.0))
        .sum()
}

/// Checks a batch prediction input and decides how to run it: one `standard` replica.
fn validate_prediction(
    input: &kiln_api::PredictionInput,
    settings: &JobSettings,
    registry: &Registry,
    project: &str,
    summary: &Path,
) -> Result<Launch, Vec<String>> {
    let (program, prediction) = batch::plan(input, project, &settings.paths, registry, summary)?;
    let replicas = kiln_scheduler::plan(&kiln_api::TrainingInput::default())?;
    Ok(Launch {
        units: units(&replicas),
        replicas,
        program,
        max_running: DEFAULT_MAX_RUNNING_TIME,
        max_wait: None,
        tuning: None,
        prediction: Some(prediction),
    })
}

/// Why a running job (or trial) is being stopped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum StopReason {
    Cancelled,
    /// The median rule stopped a trial.
    EarlyStopped,
    TimedOut(Duration),
    WaitedTooLong(Duration),
}

/// The jobs service.
pub struct Jobs {
    store: Arc<dyn Store>,
    /// Where batch prediction jobs find deployed versions' files.
    registry: Arc<Registry>,
    executor: Arc<dyn Executor>,
    settings: JobSettings,
    queue: Queue,
    /// Stop signals of running jobs by `project/jobId`; held only to insert, remove or signal.
    running: Mutex<HashMap<String, watch::Sender<Option<StopReason>>>>,
    /// Live process groups of running jobs by `project/jobId` (a tuning job's trials overlap).
    processes: Mutex<HashMap<String, Vec<u32>>>,
}

fn parse_duration(field: &str, text: &str) -> Result<Option<Duration>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    text.strip_suffix('s')
        .and_then(|seconds| seconds.parse::<f64>().ok())
        .filter(|seconds| seconds.is_finite() && *seconds > 0.0)
        .map(|seconds| Some(Duration::from_secs_f64(seconds)))
        .ok_or_else(|| format!("Field: training_input.scheduling.{field} Error: {text:?} is not a duration such as \"7200s\""))
}

impl Jobs {
    /// A jobs service over a store and an executor.
    pub fn new(
        store: Arc<dyn Store>,
        registry: Arc<Registry>,
        executor: Arc<dyn Executor>,
        settings: JobSettings,
    ) -> Arc<Self> {
        let queue = Queue::new(settings.quota);
        Arc::new(Self {
            store,
            registry,
            executor,
            settings,
            queue,
            running: Mutex::new(HashMap::new()),
            processes: Mutex::new(HashMap::new()),
        })
    }

    fn log_path(&self, project: &str, job_id: &str) -> PathBuf {
        self.settings
            .data_dir
            .join("logs/projects")
            .join(project)
            .join("jobs")
            .join(format!("{job_id}.jsonl"))
    }

    fn working_dir(&self, project: &str, job_id: &str) -> PathBuf {
        self.settings
            .data_dir
            .join("jobs/projects")
            .join(project)
            .join(job_id)
    }

    /// Ends what a previous server left running: replicas it started are stopped and their jobs
    /// fail with a reason naming the restart; jobs still QUEUED are queued again. Returns how many
    /// jobs failed.
    pub fn recover(self: &Arc<Self>) -> Result<usize, RegistryError> {
        let mut failed = 0;
        for (project, mut job) in self.store.active_jobs()? {
            if job.state == JobState::Queued {
                match self.launch(&project, &mut job.clone()) {
                    Ok(launch) => {
                        self.start(&project, job, launch);
                        continue;
                    }
                    Err(problems) => {
                        job.error_message = format!(
                            "The job can no longer run after a server restart: {}",
                            problems.join("; ")
                        )
                    }
                }
            } else {
                for process in self.store.job_processes(&project, &job.job_id)? {
                    self.executor.reclaim(process, &job.job_id);
                }
                job.error_message = format!(
                    "The Kiln server restarted while the job was {:?}; its replicas were stopped. Submit the job again.",
                    job.state
                );
            }
            job.state = JobState::Failed;
            job.end_time = kiln_api::now();
            // A tuning job keeps its finished trials; the ones that were running failed with it.
            for trial in job
                .training_output
                .iter_mut()
                .flat_map(|output| output.trials.iter_mut())
                .filter(|trial| !trial.state.is_final())
            {
                trial.state = JobState::Failed;
                trial.end_time = job.end_time.clone();
                trial.error_message = job.error_message.clone();
            }
            self.store.update_job(&project, &job)?;
            failed += 1;
        }
        Ok(failed)
    }

    /// `projects.jobs.create`: validates, stores the job as QUEUED and starts it.
    pub async fn create(
        self: &Arc<Self>,
        project: &str,
        mut job: Job,
    ) -> Result<Job, RegistryError> {
        check_project(project).map_err(RegistryError::InvalidArgument)?;
        let mut problems = Vec::new();
        if let Err(problem) = check_name("jobId", &job.job_id) {
            problems.push(problem);
        }
        problems.extend(kiln_api::names::check_labels("job.labels", &job.labels));
        let launch = self
            .launch(project, &mut job)
            .map_err(|found| problems.extend(found))
            .ok();
        let Some(launch) = launch.filter(|_| problems.is_empty()) else {
            return Err(RegistryError::InvalidArgument(problems.join("; ")));
        };
        if let Some(tuning) = &launch.tuning
            && !tuning.resume.is_empty()
        {
            self.check_resume(project, &job, tuning)?;
        }
        if launch.program.runs_user_code()
            && !self.settings.sandbox.is_on()
            && !self.settings.allow_unconfined
        {
            return Err(RegistryError::FailedPrecondition(
                "this server does not confine a job's processes (its kernel has no Landlock, or \
                 it runs with --sandbox off), so containerCommand and Python packages would run \
                 with the server's privileges; the administrator may allow that with kiln server \
                 --allow-unconfined-code"
                    .into(),
            ));
        }
        if launch.units > self.queue.quota() + 1e-9 {
            return Err(RegistryError::InvalidArgument(format!(
                "the job's replicas need {:.4} ML units at once, more than this server's quota of {:.4} \
                 (kiln server --quota-ml-units)",
                launch.units,
                self.queue.quota()
            )));
        }
        job.state = JobState::Queued;
        job.create_time = kiln_api::now();
        job.start_time.clear();
        job.end_time.clear();
        job.error_message.clear();
        job.job_position = 0;
        job.training_output = None;
        job.prediction_output = None;
        job.etag = crate::registry::etag(&job);
        let (stored_project, stored) = (project.to_string(), job.clone());
        crate::registry::on_store(&self.store, move |store| {
            Ok(store.create_job(&stored_project, &stored)?)
        })
        .await?;
        self.start(project, job.clone(), launch);
        Ok(self.with_position(project, job))
    }

    /// Checks a job's input and decides how to run it; a training input's locations are replaced
    /// by the checked ones.
    fn launch(&self, project: &str, job: &mut Job) -> Result<Launch, Vec<String>> {
        match (job.training_input.as_mut(), &job.prediction_input) {
            (Some(_), Some(_)) => Err(vec![
                "Field: job Error: give a trainingInput or a predictionInput, not both".into(),
            ]),
            (Some(input), None) => validate(input, &self.settings.paths, project, &job.job_id),
            (None, Some(input)) => validate_prediction(
                input,
                &self.settings,
                &self.registry,
                project,
                &self.working_dir(project, &job.job_id).join(BATCH_SUMMARY),
            ),
            (None, None) => Err(vec![
                "Field: job.training_input Error: a job needs a trainingInput or a predictionInput"
                    .into(),
            ]),
        }
    }

    /// Queues a stored job and runs it when admitted.
    fn start(self: &Arc<Self>, project: &str, job: Job, launch: Launch) {
        let key = format!("{project}/{}", job.job_id);
        let (stop, stopped) = watch::channel(None);
        self.running_map().insert(key.clone(), stop);
        let admitted = self.queue.enqueue(&key, launch.units);
        let jobs = Arc::clone(self);
        let project = project.to_string();
        tokio::spawn(async move {
            let job_id = job.job_id.clone();
            let units = launch.units;
            if jobs
                .admit(&project, &key, admitted, &launch, stopped.clone())
                .await
            {
                jobs.run(&project, job, launch, stopped).await;
                jobs.queue.release(units);
            }
            jobs.running_map().remove(&format!("{project}/{job_id}"));
        });
    }

    /// Waits for the queue to admit the job; `false` when it was cancelled or waited too long (the
    /// job is then recorded as CANCELLED).
    async fn admit(
        &self,
        project: &str,
        key: &str,
        admitted: tokio::sync::oneshot::Receiver<()>,
        launch: &Launch,
        mut stopped: watch::Receiver<Option<StopReason>>,
    ) -> bool {
        let job_id = key.split_once('/').map(|(_, id)| id).unwrap_or(key);
        let max_wait = async {
            match launch.max_wait {
                Some(limit) => {
                    tokio::time::sleep(limit).await;
                    limit
                }
                None => std::future::pending().await,
            }
        };
        let reason = tokio::select! {
            result = admitted => match result {
                Ok(()) => return true,
                Err(_) => StopReason::Cancelled,
            },
            _ = stopped.changed() => StopReason::Cancelled,
            limit = max_wait => StopReason::WaitedTooLong(limit),
        };
        if !self.queue.withdraw(key) {
            self.queue.release(launch.units);
        }
        let message = match reason {
            StopReason::WaitedTooLong(limit) => format!(
                "Job waited longer than scheduling.maxWaitTime ({}s) in the queue and was cancelled.",
                limit.as_secs_f64()
            ),
            _ => "Job was cancelled by a user request.".to_string(),
        };
        self.finish(
            project,
            job_id,
            JobState::Cancelled,
            message,
            Output::NotStarted,
        );
        false
    }

    /// Fills in `jobPosition` of a queued job from the live queue.
    fn with_position(&self, project: &str, mut job: Job) -> Job {
        job.job_position = match job.state {
            JobState::Queued => self
                .queue
                .position(&format!("{project}/{}", job.job_id))
                .unwrap_or(0) as i64,
            _ => 0,
        };
        job
    }

    fn running_map(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, watch::Sender<Option<StopReason>>>> {
        self.running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Applies `change` to the stored job (re-read first, so concurrent label patches survive).
    fn update(
        &self,
        project: &str,
        job_id: &str,
        change: impl FnOnce(&mut Job),
    ) -> Result<Job, RegistryError> {
        let mut job = self
            .store
            .get_job(project, job_id)?
            .ok_or_else(|| RegistryError::NotFound(format!("job \"{job_id}\" was not found")))?;
        change(&mut job);
        job.etag = crate::registry::etag(&job);
        self.store.update_job(project, &job)?;
        Ok(job)
    }

    /// How job processes are confined, in words for the server's start-up lines.
    pub fn sandbox_summary(&self) -> &'static str {
        match (
            self.settings.sandbox.is_on(),
            self.settings.allow_unconfined,
        ) {
            (true, _) => {
                "confined (Landlock: each job reaches only its directories and its project's)"
            }
            (false, false) => {
                "NOT confined (no Landlock in this kernel, or --sandbox off): containerCommand and \
                 Python packages are refused"
            }
            (false, true) => {
                "NOT confined (no Landlock in this kernel, or --sandbox off), and commands and \
                 packages run with the server's privileges (--allow-unconfined-code)"
            }
        }
    }

    /// What a job's processes may reach besides the system, the interpreter and the `kiln` binary
    /// (which every confined process reads): its working directory and `jobDir`, its project's
    /// allowed local roots and workspace (read and write), and what its program reads.
    fn confinement(
        &self,
        project: &str,
        input: &kiln_api::TrainingInput,
        program: &Program,
        working_dir: &Path,
    ) -> Confinement {
        let mut write = vec![working_dir.to_path_buf()];
        if input.job_dir.starts_with('/') {
            write.push(PathBuf::from(&input.job_dir));
        }
        write.extend(self.settings.paths.local_roots(project));
        Confinement {
            read: program.reads(),
            write,
        }
    }

    /// `HOME` and `TMPDIR` in the job's working directory when its processes are confined (they
    /// may not write the server's), created here.
    fn sandbox_env(&self, working_dir: &Path) -> Result<Vec<(String, String)>, String> {
        if !self.settings.sandbox.is_on() {
            return Ok(Vec::new());
        }
        let tmp = working_dir.join("tmp");
        std::fs::create_dir_all(&tmp).map_err(|error| format!("{}: {error}", tmp.display()))?;
        Ok(vec![
            ("HOME".into(), working_dir.display().to_string()),
            ("TMPDIR".into(), tmp.display().to_string()),
        ])
    }

    async fn run(
        &self,
        project: &str,
        job: Job,
        launch: Launch,
        stopped: watch::Receiver<Option<StopReason>>,
    ) {
        let Launch {
            replicas,
            program,
            max_running,
            tuning,
            prediction,
            ..
        } = launch;
        let job_id = job.job_id.clone();
        let input = job.training_input.clone().unwrap_or_default();
        let outcome = self.update(project, &job_id, |job| {
            job.state = JobState::Preparing;
            job.start_time = kiln_api::now();
        });
        if outcome.is_err() || stopped.borrow().is_some() {
            self.finish(
                project,
                &job_id,
                JobState::Cancelled,
                "Job was cancelled before it started.".into(),
                Output::NotStarted,
            );
            return;
        }
        let log_path = self.log_path(project, &job_id);
        let working_dir = self.working_dir(project, &job_id);
        let prepared = (|| -> Result<JobLog, String> {
            std::fs::create_dir_all(&working_dir)
                .map_err(|error| format!("{}: {error}", working_dir.display()))?;
            if !input.job_dir.is_empty() {
                std::fs::create_dir_all(&input.job_dir)
                    .map_err(|error| format!("job dir {}: {error}", input.job_dir))?;
            }
            JobLog::open(&log_path).map_err(|error| error.to_string())
        })();
        let log = match prepared {
            Ok(log) => log,
            Err(message) => {
                return self.fail(project, &job_id, message);
            }
        };

        let confinement = self.confinement(project, &input, &program, &working_dir);
        let env = match self.sandbox_env(&working_dir) {
            Ok(env) => env,
            Err(message) => return self.fail(project, &job_id, message),
        };
        let mut runtime = self.settings.runtime.clone();
        if let Program::Python { packages, .. } = &program
            && !packages.is_empty()
        {
            let confined = (&self.settings.sandbox, &confinement);
            match program::install(
                &runtime.python,
                packages,
                &working_dir,
                &log,
                confined,
                &env,
            )
            .await
            {
                Ok(python) => runtime.python = python,
                Err(message) => {
                    return self.fail(project, &job_id, message);
                }
            }
        }
        let plan = JobPlan {
            project,
            replicas: &replicas,
            input: &input,
            program: &program,
            job_id: &job_id,
            working_dir: &working_dir,
            runtime: &runtime,
            confinement: &confinement,
            env: &env,
            log: &log,
            log_path: &log_path,
            max_running,
            deadline: tokio::time::Instant::now() + max_running,
        };
        let is_built_in = matches!(program, Program::BuiltIn { .. });
        let (state, message, output) = match tuning {
            Some(tuning) => {
                let (state, message, output) = self.tune(&plan, &tuning, stopped).await;
                (state, message, Output::Training(output))
            }
            None => {
                let attempt = self.supervise(&plan, None, stopped).await;
                let (state, message) = attempt.verdict();
                let output = match &prediction {
                    Some(prediction) => Output::Prediction(batch::output(prediction)),
                    None => Output::Training(TrainingOutput {
                        consumed_m_l_units: round_units(attempt.units),
                        is_built_in_algorithm_job: is_built_in,
                        built_in_algorithm_output: (is_built_in && state == JobState::Succeeded)
                            .then(|| built_in_output(&input, Path::new(&input.job_dir))),
                        ..TrainingOutput::default()
                    }),
                };
                (state, message, output)
            }
        };
        self.finish(project, &job_id, state, message, output);
    }

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
                        self.executor.kill(*id);
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
                self.executor.terminate(*id);
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
                        self.executor.kill(*id);
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

    /// Keeps the store's list of the job's live process groups (all trials' together) current, so
    /// a restarted server can stop what this one left running.
    fn track(&self, project: &str, job_id: &str, ids: &[u32], started: bool) {
        let key = format!("{project}/{job_id}");
        let mut processes = self
            .processes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let live = processes.entry(key.clone()).or_default();
        if started {
            live.extend_from_slice(ids);
        } else {
            live.retain(|id| !ids.contains(id));
        }
        let _ = self.store.set_job_processes(project, job_id, live);
        if live.is_empty() {
            processes.remove(&key);
        }
    }

    fn fail(&self, project: &str, job_id: &str, message: String) {
        self.finish(
            project,
            job_id,
            JobState::Failed,
            message,
            Output::NotStarted,
        );
    }

    fn finish(
        &self,
        project: &str,
        job_id: &str,
        state: JobState,
        message: String,
        output: Output,
    ) {
        let result = self.update(project, job_id, |job| {
            job.state = state;
            job.error_message = message;
            job.end_time = kiln_api::now();
            match output {
                Output::Training(output) => job.training_output = Some(output),
                Output::Prediction(output) => job.prediction_output = Some(output),
                Output::NotStarted if job.prediction_input.is_none() => {
                    job.training_output = Some(TrainingOutput::default());
                }
                Output::NotStarted => {}
            }
        });
        if let Err(error) = result {
            tracing::error!(job = job_id, %error, "could not record the end of a job");
        }
        let _ = self.store.set_job_processes(project, job_id, &[]);
    }

    /// `projects.jobs.get`.
    pub fn get(&self, project: &str, job_id: &str) -> Result<Job, RegistryError> {
        check_project(project).map_err(RegistryError::InvalidArgument)?;
        let job = self.store.get_job(project, job_id)?.ok_or_else(|| {
            RegistryError::NotFound(format!(
                "Field: name Error: The job resource: \"{job_id}\" was not found."
            ))
        })?;
        Ok(self.with_position(project, job))
    }

    /// `projects.jobs.list`.
    pub fn list(
        &self,
        project: &str,
        params: &ListParams,
    ) -> Result<ListJobsResponse, RegistryError> {
        check_project(project).map_err(RegistryError::InvalidArgument)?;
        let jobs = self
            .store
            .list_jobs(project)?
            .into_iter()
            .map(|job| self.with_position(project, job))
            .collect();
        let page = params.page(jobs, |job: &Job| job.job_id.clone())?;
        Ok(ListJobsResponse {
            jobs: page.items,
            next_page_token: page.next_page_token,
        })
    }

    /// `projects.jobs.cancel`.
    pub fn cancel(&self, project: &str, job_id: &str) -> Result<(), RegistryError> {
        let job = self.get(project, job_id)?;
        if job.state.is_final() || job.state == JobState::Cancelling {
            return Err(RegistryError::FailedPrecondition(format!(
                "Cannot cancel job \"{job_id}\": it is already {:?}",
                job.state
            )));
        }
        self.update(project, job_id, |job| job.state = JobState::Cancelling)?;
        if let Some(stop) = self.running_map().get(&format!("{project}/{job_id}")) {
            let _ = stop.send(Some(StopReason::Cancelled));
        }
        Ok(())
    }

    /// `projects.jobs.patch`: `labels` by `updateMask`, with an etag check.
    pub fn patch(
        &self,
        project: &str,
        job_id: &str,
        patch: Job,
        update_mask: &str,
    ) -> Result<Job, RegistryError> {
        let current = self.get(project, job_id)?;
        if !patch.etag.is_empty() && patch.etag != current.etag {
            return Err(RegistryError::Aborted(format!(
                "etag {:?} does not match the job's current etag",
                patch.etag
            )));
        }
        for path in update_mask
            .split(',')
            .map(str::trim)
            .filter(|path| !path.is_empty())
        {
            if path != "labels" && path != "etag" {
                return Err(RegistryError::InvalidArgument(format!(
                    "updateMask field {path:?} cannot be updated; allowed: labels, etag"
                )));
            }
        }
        if !update_mask.contains("labels") {
            return Err(RegistryError::InvalidArgument(
                "updateMask is required and must name labels".into(),
            ));
        }
        crate::registry::refuse_all(kiln_api::names::check_labels("job.labels", &patch.labels))?;
        self.update(project, job_id, |job| job.labels = patch.labels)
    }

    /// A page of the job's log (a Kiln extension: ML Engine sent logs to Cloud Logging).
    pub fn logs(
        &self,
        project: &str,
        job_id: &str,
        start: usize,
        limit: usize,
        task_name: Option<&str>,
    ) -> Result<LogPage, RegistryError> {
        self.get(project, job_id)?;
        JobLog::read(&self.log_path(project, job_id), start, limit, task_name)
            .map_err(|error| RegistryError::Internal(error.to_string()))
    }
}

/// What a finished job records beside its state.
enum Output {
    /// A training job's `trainingOutput`.
    Training(TrainingOutput),
    /// A batch prediction job's `predictionOutput`.
    Prediction(kiln_api::PredictionOutput),
    /// The job ended before anything ran: a training job still shows an empty `trainingOutput`.
    NotStarted,
}

/// The file in a batch prediction job's working directory its replica writes its counts to.
const BATCH_SUMMARY: &str = "batch_summary.json";

/// How often a running trial's metric is read (and early stopping considered).
const METRIC_POLL: Duration = Duration::from_secs(1);

impl Jobs {
    /// Checks that the job a tuning job resumes is a finished tuning job of the same project over
    /// the same parameters.
    fn check_resume(
        &self,
        project: &str,
        job: &Job,
        tuning: &TuningPlan,
    ) -> Result<(), RegistryError> {
        let field = "Field: training_input.hyperparameters.resume_previous_job_id Error:";
        let invalid =
            |message: String| RegistryError::InvalidArgument(format!("{field} {message}"));
        let previous = self
            .store
            .get_job(project, &tuning.resume)?
            .ok_or_else(|| {
                invalid(format!(
                    "job {:?} was not found in project {project:?}",
                    tuning.resume
                ))
            })?;
        let spec = |job: &Job| {
            job.training_input
                .as_ref()
                .and_then(|input| input.hyperparameters.as_ref())
                .map(|spec| spec.params.clone())
        };
        if spec(&previous).is_none() {
            return Err(invalid(format!(
                "job {:?} is not a hyperparameter tuning job",
                tuning.resume
            )));
        }
        if !previous.state.is_final() {
            return Err(invalid(format!(
                "job {:?} is {:?}; only a finished job can be resumed",
                tuning.resume, previous.state
            )));
        }
        if spec(&previous) != spec(job) {
            return Err(invalid(format!(
                "job {:?} tuned different params; a resumed job must search the same space",
                tuning.resume
            )));
        }
        Ok(())
    }

    /// Runs a tuning job: asks the tuner for trials, keeps up to `maxParallelTrials` running, reads
    /// their metric while they run (stopping clearly bad ones when early stopping is on), and
    /// records every trial in `trainingOutput.trials` as it goes.
    async fn tune(
        &self,
        plan: &JobPlan<'_>,
        tuning: &TuningPlan,
        mut stopped: watch::Receiver<Option<StopReason>>,
    ) -> (JobState, String, TrainingOutput) {
        use futures::StreamExt;
        use futures::stream::FuturesUnordered;

        let (project, job_id) = (plan.project, plan.job_id);
        let space = tuning.tuner.space().clone();
        let goal = tuning.tuner.goal();
        // The job resumed was checked when this one was created; finished jobs do not change.
        let previous = match tuning.resume.is_empty() {
            true => Vec::new(),
            false => self
                .store
                .get_job(project, &tuning.resume)
                .ok()
                .flatten()
                .and_then(|job| job.training_output)
                .map(|output| output.trials)
                .unwrap_or_default(),
        };
        let mut history: Vec<kiln_tuner::Trial> = previous
            .iter()
            .filter_map(|trial| tuning::observation(&space, trial))
            .collect();
        let mut curves: Vec<Vec<kiln_tuner::Measurement>> = previous.iter().map(curve).collect();
        let first_id = previous
            .iter()
            .filter_map(|trial| trial.trial_id.parse::<usize>().ok())
            .max()
            .unwrap_or(0)
            + 1;
        let is_built_in = matches!(plan.program, Program::BuiltIn { .. });
        let mut output = TrainingOutput {
            is_hyperparameter_tuning_job: true,
            is_built_in_algorithm_job: is_built_in,
            hyperparameter_metric_tag: tuning.tag.clone(),
            ..TrainingOutput::default()
        };
        // Running trials: index into output.trials → their metric watch and stop signal.
        let mut live: HashMap<usize, (MetricWatch, watch::Sender<Option<StopReason>>)> =
            HashMap::new();
        let mut running = FuturesUnordered::new();
        let (mut started, mut failed, mut exhausted) = (0usize, 0usize, false);
        let mut job_stop: Option<StopReason> = None;
        let mut last_failure = String::new();
        let mut poll = tokio::time::interval(METRIC_POLL);
        loop {
            while job_stop.is_none()
                && !exhausted
                && running.len() < tuning.max_parallel
                && started < tuning.max_trials
                && failed < tuning.max_failed
            {
                let pending: Vec<Vec<kiln_tuner::Value>> = live
                    .keys()
                    .filter_map(|index| tuning::values(&space, &output.trials[*index]))
                    .collect();
                let (tuner, completed) = (Arc::clone(&tuning.tuner), history.clone());
                let suggestion =
                    tokio::task::spawn_blocking(move || tuner.suggest(&completed, &pending, 1))
                        .await;
                let Some(values) = suggestion
                    .ok()
                    .and_then(Result::ok)
                    .and_then(|mut found| found.pop())
                else {
                    exhausted = true;
                    break;
                };
                let trial = tuning::new_trial(&space, first_id + started, &values);
                let trial_dir = plan.working_dir.join("trials").join(&trial.trial_id);
                let launch = TrialLaunch {
                    id: trial.trial_id.clone(),
                    flags: tuning::flags(&space, &trial),
                    metric_file: trial_dir.join("hypertune").join("output.metrics"),
                    job_dir: (is_built_in && !plan.input.job_dir.is_empty())
                        .then(|| trial_dir_of(plan.input, &trial).display().to_string()),
                };
                let events_dir =
                    (!plan.input.job_dir.is_empty()).then(|| trial_dir_of(plan.input, &trial));
                // A second of slack for clocks that round (event wall times are doubles).
                let since = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0.0, |now| now.as_secs_f64() - 1.0);
                let watch_metric =
                    MetricWatch::new(&tuning.tag, launch.metric_file.clone(), events_dir, since);
                let (stop, trial_stopped) = watch::channel(None);
                let index = output.trials.len();
                output.trials.push(trial);
                live.insert(index, (watch_metric, stop));
                started += 1;
                running.push(async move {
                    (
                        index,
                        self.supervise(plan, Some(&launch), trial_stopped).await,
                    )
                });
                self.record_output(project, job_id, &output, goal);
            }
            if running.is_empty() {
                break;
            }
            tokio::select! {
                Some((index, attempt)) = running.next() => {
                    let Some((mut watch_metric, _)) = live.remove(&index) else { continue };
                    let reports = watch_metric.poll();
                    let trial = &mut output.trials[index];
                    tuning::record_reports(trial, &reports);
                    output.consumed_m_l_units += attempt.units;
                    trial.end_time = kiln_api::now();
                    let (state, message) = attempt.verdict();
                    trial.is_trial_stopped_early = attempt.stop_reason == Some(StopReason::EarlyStopped);
                    (trial.state, trial.error_message) = match state {
                        JobState::Succeeded if trial.final_metric.is_none() => (JobState::Failed, format!(
                            "The trial ended without reporting the metric {:?}: report it with cloudml-hypertune's \
                             report_hyperparameter_tuning_metric (CLOUD_ML_HP_METRIC_FILE), or write it as a TensorFlow \
                             summary with that tag under {}",
                            tuning.tag,
                            trial_dir_of(plan.input, trial).display()
                        )),
                        other => (other, message),
                    };
                    if is_built_in && trial.state == JobState::Succeeded {
                        trial.built_in_algorithm_output = Some(built_in_output(plan.input, &trial_dir_of(plan.input, trial)));
                    }
                    if trial.state == JobState::Failed {
                        failed += 1;
                        last_failure = format!("trial {}: {}", trial.trial_id, trial.error_message);
                    }
                    history.extend(tuning::observation(&space, trial));
                    curves.push(curve(trial));
                    self.record_output(project, job_id, &output, goal);
                }
                _ = poll.tick() => {
                    let mut changed = false;
                    for (index, (watch_metric, stop)) in &mut live {
                        let reports = watch_metric.poll();
                        let trial = &mut output.trials[*index];
                        if reports.len() != trial.all_metrics.len() {
                            tuning::record_reports(trial, &reports);
                            changed = true;
                            let measurements = curve(trial);
                            if tuning.early_stopping
                                && stop.borrow().is_none()
                                && kiln_tuner::should_stop(goal, &measurements, &curves)
                            {
                                let _ = stop.send(Some(StopReason::EarlyStopped));
                            }
                        }
                    }
                    if changed {
                        self.record_output(project, job_id, &output, goal);
                    }
                }
                changed = stopped.changed(), if job_stop.is_none() => {
                    if changed.is_ok() {
                        job_stop = *stopped.borrow();
                        for (_, stop) in live.values() {
                            let _ = stop.send(job_stop);
                        }
                    }
                }
                () = tokio::time::sleep_until(plan.deadline), if job_stop.is_none() => {
                    job_stop = Some(StopReason::TimedOut(plan.max_running));
                }
            }
        }
        let output = summary(&output, goal);
        let succeeded = output.completed_trial_count;
        let (state, message) = match job_stop {
            Some(reason) => reason.outcome(),
            None if failed >= tuning.max_failed => (
                JobState::Failed,
                format!(
                    "{failed} trials failed, reaching maxFailedTrials ({}). Last failure, {last_failure}",
                    tuning.max_failed
                ),
            ),
            None if succeeded == 0 => (
                JobState::Failed,
                format!("No trial succeeded. Last failure, {last_failure}"),
            ),
            None => (JobState::Succeeded, String::new()),
        };
        (state, message, output)
    }

    /// Stores the tuning job's output so far (trials best first), so `jobs describe` follows it.
    fn record_output(
        &self,
        project: &str,
        job_id: &str,
        output: &TrainingOutput,
        goal: kiln_tuner::Goal,
    ) {
        let output = summary(output, goal);
        if let Err(error) = self.update(project, job_id, |job| job.training_output = Some(output)) {
            tracing::warn!(job = job_id, %error, "could not record tuning progress");
        }
    }
}

/// A tuning job's output as stored: ML units rounded, succeeded trials counted, trials best first.
fn summary(output: &TrainingOutput, goal: kiln_tuner::Goal) -> TrainingOutput {
    let mut output = output.clone();
    output.consumed_m_l_units = round_units(output.consumed_m_l_units);
    output.completed_trial_count = output
        .trials
        .iter()
        .filter(|trial| trial.state == JobState::Succeeded)
        .count() as i64;
    tuning::sort_best_first(&mut output.trials, goal);
    output
}

/// `<jobDir>/<trialId>`: where ML Engine trainers write a trial's output (and its event files).
fn trial_dir_of(
    input: &kiln_api::TrainingInput,
    trial: &kiln_api::job::HyperparameterOutput,
) -> PathBuf {
    Path::new(&input.job_dir).join(&trial.trial_id)
}

/// A trial's reports as the early-stopping rule reads them.
fn curve(trial: &kiln_api::job::HyperparameterOutput) -> Vec<kiln_tuner::Measurement> {
    trial
        .all_metrics
        .iter()
        .map(|metric| kiln_tuner::Measurement {
            step: metric.training_step as f64,
            value: metric.objective_value,
        })
        .collect()
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
    fn outcome(self) -> (JobState, String) {
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

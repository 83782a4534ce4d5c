//! `projects.jobs`: training jobs from submission to a final state.
//!
//! States follow ML Engine: `QUEUED → PREPARING → RUNNING → SUCCEEDED | FAILED`, and
//! `CANCELLING → CANCELLED` on cancel or when `scheduling.maxRunningTime` passes. A job stays QUEUED
//! until the [`Queue`] admits it under the ML-unit quota (or `maxWaitTime` cancels it). The job ends
//! when its master (chief) replica ends; any replica that fails fails the job, with an `errorMessage`
//! naming the replica, the exit cause and its last log lines. Replicas start only through an
//! `Executor`.
//!
//! This file holds the lifecycle (create, queue, prepare, run, finish); `launch` checks a job's
//! input and decides what will run, `supervise` runs its replicas once and judges how they ended,
//! `recover` takes over the jobs a previous server left, `api` answers the methods on stored jobs.
//! A tuning job's loop is `tuning::run`.

mod api;
mod launch;
mod recover;
mod supervise;
mod watchers;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kiln_api::job::{Job, JobState, TrainingOutput};
use kiln_api::names::{check_name, check_project};
use kiln_artifacts::{PathPolicy, bucket};
use kiln_iam::Principal;
use kiln_scheduler::program::{self, Program, Runtime};
use kiln_scheduler::{Confinement, Executor, JobLog, Sandbox};
use kiln_store::{Store, StoreError};
use tokio::sync::watch;

use crate::batch;
use crate::queue::Queue;
use crate::registry::Registry;
use crate::{Access, RegistryError};

pub use launch::built_in_algorithms;
use launch::{Launch, validate, validate_prediction};
pub(crate) use supervise::{
    Attached, Attempt, JobPlan, TrialLaunch, built_in_output, round_units, trials_dir,
};

/// Longest running time when the job sets none (ML Engine's default: 7 days).
pub const DEFAULT_MAX_RUNNING_TIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// Where jobs keep their files and what they run with.
#[derive(Debug, Clone)]
pub struct JobSettings {
    /// Where job logs (`logs/`) and working directories (`jobs/`) live: the data directory, or a
    /// directory every node of a cluster sees (`--cluster-shared-dir`).
    pub shared_dir: PathBuf,
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
    /// Variables every job process gets (`--job-env`): the credentials of the buckets jobs
    /// use, as the administrator chose to pass them on.
    pub job_env: Vec<(String, String)>,
    /// The URL job processes reach this server at (`--advertise-url`), given to tuning trials as
    /// `KILN_ENDPOINT` to send measurements to; `None`: trials report through files only.
    pub endpoint: Option<String>,
}

/// Why a running job (or trial) is being stopped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum StopReason {
    Cancelled,
    /// The early-stopping rule stopped a trial.
    EarlyStopped,
    TimedOut(Duration),
    WaitedTooLong(Duration),
}

/// The jobs service.
pub struct Jobs {
    pub(crate) store: Arc<dyn Store>,
    /// Where batch prediction jobs find deployed versions' files.
    pub(crate) registry: Arc<Registry>,
    pub(crate) executor: Arc<dyn Executor>,
    pub(crate) settings: JobSettings,
    pub(crate) queue: Queue,
    /// The jobs this server watches, by `project/jobId`.
    pub(crate) watchers: watchers::Watchers,
    /// Live process groups of running jobs by `project/jobId` (a tuning job's trials overlap).
    pub(crate) processes: Mutex<HashMap<String, Vec<String>>>,
}

impl Jobs {
    /// A jobs service over a store and an executor.
    pub fn new(
        store: Arc<dyn Store>,
        registry: Arc<Registry>,
        executor: Arc<dyn Executor>,
        settings: JobSettings,
    ) -> Arc<Self> {
        let queue = match settings.quota.is_finite() {
            false => Queue::new(settings.quota),
            true => {
                let (shared, quota) = (Arc::clone(&store), micro_units(settings.quota));
                Queue::gated(
                    settings.quota,
                    Box::new(move |key, _| {
                        let (project, job_id) = key.split_once('/').unwrap_or(("", key));
                        shared
                            .admit_job(project, job_id, quota)
                            .unwrap_or_else(|error| {
                                tracing::warn!(job = key, %error, "could not admit a job");
                                false
                            })
                    }),
                )
            }
        };
        Arc::new(Self {
            store,
            registry,
            executor,
            settings,
            queue,
            watchers: watchers::Watchers::default(),
            processes: Mutex::new(HashMap::new()),
        })
    }

    fn log_path(&self, project: &str, job_id: &str) -> PathBuf {
        self.settings
            .shared_dir
            .join("logs/projects")
            .join(project)
            .join("jobs")
            .join(format!("{job_id}.jsonl"))
    }

    pub(crate) fn working_dir(&self, project: &str, job_id: &str) -> PathBuf {
        self.settings
            .shared_dir
            .join("jobs/projects")
            .join(project)
            .join(job_id)
    }

    /// `projects.jobs.create`: validates, stores the job as QUEUED, its creator as its owner, and
    /// starts it.
    pub async fn create(
        self: &Arc<Self>,
        project: &str,
        mut job: Job,
        creator: &Principal,
    ) -> Result<Job, RegistryError> {
        let launch = self.admissible(project, &mut job, creator)?;
        let job = queued(job);
        let (stored_project, stored) = (project.to_string(), job.clone());
        let owner = self.registry.identity().as_str().to_string();
        let policy = Access::creator_policy(creator, kiln_iam::roles::JOB_OWNER);
        crate::registry::on_store(&self.store, move |store| {
            Ok(store.create_job(&stored_project, &stored, &owner, &policy)?)
        })
        .await?;
        self.registry
            .access()
            .created(&job_name(project, &job.job_id));
        self.start(project, job.clone(), launch);
        Ok(self.with_position(project, job))
    }

    /// `projects.jobs.create` with `validateOnly`: every check `create` makes, without storing or
    /// starting anything; answers the job as `create` would have stored it.
    pub fn validate(
        &self,
        project: &str,
        mut job: Job,
        creator: &Principal,
    ) -> Result<Job, RegistryError> {
        self.admissible(project, &mut job, creator)?;
        if self.store.get_job(project, &job.job_id)?.is_some() {
            // Refused in the words the store's refusal of `create` has.
            return Err(StoreError::AlreadyExists(job_name(project, &job.job_id)).into());
        }
        Ok(queued(job))
    }

    /// Checks a new job as `create` does and decides how to run it. The jobs and studies a tuning
    /// job starts from must be readable by its creator.
    fn admissible(
        &self,
        project: &str,
        job: &mut Job,
        creator: &Principal,
    ) -> Result<Launch, RegistryError> {
        check_project(project).map_err(RegistryError::InvalidArgument)?;
        let mut problems = Vec::new();
        if let Err(problem) = check_name("jobId", &job.job_id) {
            problems.push(problem);
        }
        problems.extend(kiln_api::names::check_labels("job.labels", &job.labels));
        let launch = self
            .launch(project, job)
            .map_err(|found| problems.extend(found))
            .ok();
        let Some(launch) = launch.filter(|_| problems.is_empty()) else {
            return Err(RegistryError::InvalidArgument(problems.join("; ")));
        };
        if let Some(tuning) = &launch.tuning {
            let access = self.registry.access();
            if !tuning.resume.is_empty() {
                access.authorize(creator, "ml.jobs.get", &job_name(project, &tuning.resume))?;
                self.check_resume(project, job, tuning)?;
            }
            crate::tuning::prior::check(
                &tuning.priors,
                self.store.as_ref(),
                access,
                creator,
                (tuning.tuner.space(), std::slice::from_ref(&tuning.tag)),
                "training_input.hyperparameters.transfer_learning_config",
            )?;
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
        Ok(launch)
    }

    /// Checks a job's input and decides how to run it; a training input's locations are replaced
    /// by the checked ones. A replica larger than the executor's largest node is refused.
    fn launch(&self, project: &str, job: &mut Job) -> Result<Launch, Vec<String>> {
        let launch = self.decide(project, job)?;
        match self.executor.largest_node() {
            Some(largest) => {
                let problems = launch::too_large(&launch.replicas, &largest);
                match problems.is_empty() {
                    true => Ok(launch),
                    false => Err(problems),
                }
            }
            None => Ok(launch),
        }
    }

    fn decide(&self, project: &str, job: &mut Job) -> Result<Launch, Vec<String>> {
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
                self.executor.spans_nodes(),
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
        let stopped = self.watchers.insert(&key, launch.units);
        let admitted = self.enqueue(project, &job.job_id, launch.units, false);
        let jobs = Arc::clone(self);
        let project = project.to_string();
        let watched = key.clone();
        self.watchers.spawn(&watched, async move {
            let job_id = job.job_id.clone();
            let units = launch.units;
            if jobs
                .admit(&project, &key, admitted, &launch, stopped.clone())
                .await
            {
                jobs.run(&project, job, launch, stopped).await;
                jobs.queue.release(units);
            }
            jobs.watchers.remove(&format!("{project}/{job_id}"));
        });
    }

    /// Puts a job in the queue, recording the units it needs for the quota the servers share:
    /// as in use already when `running` (a job taken over), else as waiting.
    fn enqueue(
        &self,
        project: &str,
        job_id: &str,
        units: f64,
        running: bool,
    ) -> tokio::sync::oneshot::Receiver<()> {
        if let Err(error) = self
            .store
            .set_job_units(project, job_id, micro_units(units), running)
        {
            tracing::warn!(job = job_id, %error, "could not record the units a job needs");
        }
        self.queue.enqueue(&format!("{project}/{job_id}"), units)
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

    /// Signals a job this server runs to stop, unless it was already.
    fn stop(&self, project: &str, job_id: &str, reason: StopReason) {
        self.watchers.stop(&format!("{project}/{job_id}"), reason);
    }

    /// Applies `change` to the stored job in one store transaction, so that changes made
    /// meanwhile through any server (a label patch, a cancel) survive; `change` may run more than
    /// once. The job as stored afterwards.
    pub(crate) fn update(
        &self,
        project: &str,
        job_id: &str,
        mut change: impl FnMut(&mut Job) + Send,
    ) -> Result<Job, RegistryError> {
        let mut unchanged = None;
        let written = self.store.update_job_with(project, job_id, &mut |job| {
            let before = job.clone();
            change(job);
            // Each write waits for the disk; a change that changes nothing is not one.
            if *job == before {
                unchanged = Some(before);
                return false;
            }
            job.etag = crate::registry::etag(job);
            true
        });
        match written {
            Ok(job) => Ok(job.or(unchanged).ok_or_else(|| {
                RegistryError::Internal(format!("job \"{job_id}\" was neither changed nor left"))
            })?),
            Err(kiln_store::StoreError::NotFound(_)) => Err(RegistryError::NotFound(format!(
                "job \"{job_id}\" was not found"
            ))),
            Err(error) => Err(error.into()),
        }
    }

    /// Whether the executor's nodes have GPUs, which jobs may then ask for.
    pub fn nodes_have_gpus(&self) -> bool {
        self.executor
            .largest_node()
            .is_some_and(|node| node.gpus > 0)
    }

    /// Whether job processes are confined (the kernel has Landlock and the sandbox is on).
    pub fn confines_jobs(&self) -> bool {
        self.settings.sandbox.is_on()
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

    /// The `kiln` binary and the interpreter of a job whose working directory is `working_dir`:
    /// the job's virtual environment's once its packages are installed there.
    fn job_runtime(&self, working_dir: &Path) -> Runtime {
        let mut runtime = self.settings.runtime.clone();
        let venv = program::venv_python(working_dir);
        if venv.exists() {
            runtime.python = venv;
        }
        runtime
    }

    /// What a job's processes get in their environment besides the server's few passed
    /// variables: the administrator's `--job-env` (such as the credentials of the buckets jobs
    /// use), and `HOME` and `TMPDIR` in the job's working directory when its processes are
    /// confined (they may not write the server's), created here.
    fn replica_env(&self, working_dir: &Path) -> Result<Vec<(String, String)>, String> {
        let mut env = self.settings.job_env.clone();
        if self.settings.sandbox.is_on() {
            let tmp = working_dir.join("tmp");
            std::fs::create_dir_all(&tmp).map_err(|error| format!("{}: {error}", tmp.display()))?;
            env.extend([
                ("HOME".into(), working_dir.display().to_string()),
                ("TMPDIR".into(), tmp.display().to_string()),
            ]);
        }
        Ok(env)
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
            // A bucket's "directories" need no making; the trainer writes there itself.
            if !input.job_dir.is_empty() && !bucket::is_bucket(&input.job_dir) {
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

        if let Program::BatchPredict { model_dir, .. } = &program
            && let Err(error) = self.registry.ensure_local(model_dir).await
        {
            return self.fail(project, &job_id, format!("the model's files: {error}"));
        }
        if let (Some(spec), Some(root)) = (
            prediction.as_ref().and_then(|plan| plan.environment),
            self.registry.runtime_environments(),
        ) {
            log.append(
                "service",
                "INFO",
                &format!(
                    "preparing the runtime environment {}",
                    spec.dir(root).display()
                ),
            );
            let root = root.to_path_buf();
            let built = tokio::task::spawn_blocking(move || {
                kiln_serve::python::environment::ensure(&root, &spec).map(|_| ())
            })
            .await
            .map_err(|error| error.to_string())
            .and_then(|built| built.map_err(|error| error.to_string()));
            if let Err(error) = built {
                return self.fail(project, &job_id, error);
            }
        }
        let confinement = self.confinement(project, &input, &program, &working_dir);
        let env = match self.replica_env(&working_dir) {
            Ok(env) => env,
            Err(message) => return self.fail(project, &job_id, message),
        };
        let mut runtime = self.settings.runtime.clone();
        if let Program::Python {
            packages, fetched, ..
        } = &program
            && !(packages.is_empty() && fetched.is_empty())
        {
            let mut packages = packages.clone();
            for uri in fetched {
                log.append("service", "INFO", &format!("downloading {uri}"));
                match bucket::fetch(uri, &working_dir.join("packages")).await {
                    Ok(path) => packages.push(path),
                    Err(error) => {
                        return self.fail(project, &job_id, format!("package {uri}: {error}"));
                    }
                }
            }
            let confined = (&self.settings.sandbox, &confinement);
            match program::install(
                &runtime.python,
                &packages,
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
            log_path: &log_path,
            max_running,
            deadline: tokio::time::Instant::now() + max_running,
        };
        let (state, message, output) = match tuning {
            Some(tuning) => {
                let (state, message, output) = self.tune(&plan, &tuning, stopped, None).await;
                (state, message, Output::Training(output))
            }
            None => {
                let attempt = self.supervise(&plan, None, stopped).await;
                concluded(&attempt, &input, &program, prediction.as_ref())
            }
        };
        self.finish(project, &job_id, state, message, output);
    }

    /// Keeps the store's list of the job's live process groups (all trials' together) current, so
    /// a restarted server can stop what this one left running.
    fn track(&self, project: &str, job_id: &str, ids: &[String], started: bool) {
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
            job.error_message.clone_from(&message);
            job.end_time = kiln_api::now();
            match &output {
                Output::Training(output) => job.training_output = Some(output.clone()),
                Output::Prediction(output) => job.prediction_output = Some(output.clone()),
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
}

/// The final state, message and output of a job (not a tuning job) whose replicas ran as `attempt`.
fn concluded(
    attempt: &supervise::Attempt,
    input: &kiln_api::TrainingInput,
    program: &Program,
    prediction: Option<&batch::PredictionPlan>,
) -> (JobState, String, Output) {
    let (state, message) = attempt.verdict();
    let is_built_in = matches!(program, Program::BuiltIn { .. });
    let output = match prediction {
        Some(prediction) => Output::Prediction(batch::output(prediction)),
        None => Output::Training(TrainingOutput {
            consumed_m_l_units: round_units(attempt.units),
            is_built_in_algorithm_job: is_built_in,
            built_in_algorithm_output: (is_built_in && state == JobState::Succeeded)
                .then(|| built_in_output(input, Path::new(&input.job_dir))),
            ..TrainingOutput::default()
        }),
    };
    (state, message, output)
}

/// ML units in millionths, as the store counts them.
fn micro_units(units: f64) -> i64 {
    (units * 1e6).round() as i64
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

/// A job's resource name: `projects/{project}/jobs/{job_id}`.
pub(crate) fn job_name(project: &str, job_id: &str) -> String {
    format!("projects/{project}/jobs/{job_id}")
}

/// A new job as it is stored: QUEUED, created now, with no outcome yet.
fn queued(mut job: Job) -> Job {
    job.state = JobState::Queued;
    job.create_time = kiln_api::now();
    job.start_time.clear();
    job.end_time.clear();
    job.error_message.clear();
    job.job_position = 0;
    job.training_output = None;
    job.prediction_output = None;
    job.etag = crate::registry::etag(&job);
    job
}

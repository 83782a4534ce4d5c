//! A tuning job's loop: up to `maxParallelTrials` trials at once, each suggested by the tuner from the
//! finished and running ones, run through the job's supervision, watched for its metric (and early
//! stopping), and recorded best first after every change.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kiln_api::job::{Job, JobState, TrainingOutput};
use kiln_scheduler::metrics::MetricWatch;
use kiln_scheduler::program::Program;
use tokio::sync::watch;

use super::TuningPlan;

use crate::RegistryError;
use crate::curves::{events_root, mirror_events};
use crate::jobs::{
    Attached, Attempt, JobPlan, Jobs, StopReason, TrialLaunch, built_in_output, round_units,
    trials_dir,
};

/// How often a running trial's metric is read (and early stopping considered): a trial stopped early
/// runs at most this long past the report that stops it.
const METRIC_POLL: Duration = Duration::from_millis(100);

/// A bucket `jobDir`'s event files are mirrored every this many polls (once a second): each mirror
/// lists the bucket.
const MIRROR_EVERY: u32 = 10;

/// A running trial's end: its index in the output, and how its replicas ended.
type Running<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = (usize, Attempt)> + Send + 'a>>;

/// What a previous server left of a tuning job: its output so far, and the replicas of each trial
/// still running (by trial id), attached to by this server's executor.
pub(crate) struct Resumed {
    pub(crate) output: TrainingOutput,
    pub(crate) attached: Vec<(String, Attached)>,
}

impl Jobs {
    /// Checks that the job a tuning job resumes is a finished tuning job of the same project over
    /// the same parameters.
    pub(crate) fn check_resume(
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
    pub(crate) async fn tune(
        &self,
        plan: &JobPlan<'_>,
        tuning: &TuningPlan,
        mut stopped: watch::Receiver<Option<StopReason>>,
        resumed: Option<Resumed>,
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
            .filter_map(|trial| crate::tuning::observation(&space, trial))
            .collect();
        history.extend(crate::tuning::prior::observations(
            &tuning.priors,
            self.store.as_ref(),
            &space,
            std::slice::from_ref(&tuning.tag),
        ));
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
        let mut running: FuturesUnordered<Running<'_>> = FuturesUnordered::new();
        let (mut started, mut failed, mut exhausted) = (0usize, 0usize, false);
        if let Some(resumed) = resumed {
            // A previous server's trials: the finished ones inform the tuner, the running ones
            // are watched again.
            output = resumed.output;
            started = output.trials.len();
            failed = output
                .trials
                .iter()
                .filter(|trial| trial.state == JobState::Failed)
                .count();
            for trial in output.trials.iter().filter(|trial| trial.state.is_final()) {
                history.extend(crate::tuning::observation(&space, trial));
                curves.push(curve(trial));
            }
            for (trial_id, Attached { gang, replicas }) in resumed.attached {
                let Some(index) = output
                    .trials
                    .iter()
                    .position(|trial| trial.trial_id == trial_id)
                else {
                    continue;
                };
                let watch_metric = metric_watch(plan, &tuning.tag, &output.trials[index], 0.0);
                let (stop, trial_stopped) = watch::channel(None);
                live.insert(index, (watch_metric, stop));
                let watched = plan.watched(true);
                running.push(Box::pin(async move {
                    (
                        index,
                        self.watch(&watched, &gang, replicas, trial_stopped).await,
                    )
                }));
            }
        }
        let mut job_stop: Option<StopReason> = None;
        let mut last_failure = String::new();
        // Whether `output` has changed since it was last recorded.
        let mut unrecorded = false;
        let mut poll = tokio::time::interval(METRIC_POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut polls = 0u32;
        loop {
            while job_stop.is_none()
                && !exhausted
                && running.len() < tuning.max_parallel
                && started < tuning.max_trials
                && failed < tuning.max_failed
            {
                let pending: Vec<Vec<kiln_tuner::Value>> = live
                    .keys()
                    .filter_map(|index| crate::tuning::values(&space, &output.trials[*index]))
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
                let trial = crate::tuning::new_trial(&space, first_id + started, &values);
                let launch = TrialLaunch {
                    id: trial.trial_id.clone(),
                    flags: crate::tuning::flags(&space, &trial),
                    metric_file: metric_file(plan.working_dir, &trial.trial_id),
                    job_dir: (is_built_in && !plan.input.job_dir.is_empty())
                        .then(|| trial_dir_of(plan.input, &trial).display().to_string()),
                    env: self.reporting_env(plan, &trial.trial_id),
                };
                // A second of slack for clocks that round (event wall times are doubles).
                let since = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0.0, |now| now.as_secs_f64() - 1.0);
                let watch_metric = metric_watch(plan, &tuning.tag, &trial, since);
                let (stop, trial_stopped) = watch::channel(None);
                let index = output.trials.len();
                output.trials.push(trial);
                live.insert(index, (watch_metric, stop));
                started += 1;
                running.push(Box::pin(async move {
                    (
                        index,
                        self.supervise(plan, Some(&launch), trial_stopped).await,
                    )
                }));
                // Recorded before it launches (futures run only when polled below), so a restarted
                // server knows every trial whose replicas may run.
                unrecorded = true;
            }
            // One write for all that changed since the last: trials ended, and trials started.
            if std::mem::take(&mut unrecorded) {
                self.record_output(project, job_id, &output, goal);
            }
            if running.is_empty() {
                break;
            }
            tokio::select! {
                Some((index, attempt)) = running.next() => {
                    let Some((mut watch_metric, _)) = live.remove(&index) else { continue };
                    self.end_reporting(plan.working_dir, &output.trials[index].trial_id);
                    mirror_events(&plan.input.job_dir, plan.working_dir, &output.trials[index].trial_id).await;
                    let reports = watch_metric.poll();
                    let trial = &mut output.trials[index];
                    crate::tuning::record_reports(trial, &reports);
                    output.consumed_m_l_units += attempt.units;
                    trial.end_time = kiln_api::now();
                    let (state, message) = attempt.verdict();
                    trial.is_trial_stopped_early = attempt.stop_reason == Some(StopReason::EarlyStopped);
                    (trial.state, trial.error_message) = match state {
                        JobState::Succeeded if trial.final_metric.is_none() => (JobState::Failed, format!(
                            "The trial ended without reporting the metric {:?}: report it with cloudml-hypertune's \
                             report_hyperparameter_tuning_metric (CLOUD_ML_HP_METRIC_FILE), send it to the trial's \
                             :addMeasurement ($KILN_ENDPOINT, $KILN_TOKEN), or write it as a TensorFlow summary with \
                             that tag under {}",
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
                    history.extend(crate::tuning::observation(&space, trial));
                    curves.push(curve(trial));
                    unrecorded = true;
                }
                _ = poll.tick() => {
                    let mut changed = false;
                    polls = polls.wrapping_add(1);
                    for (index, (watch_metric, stop)) in &mut live {
                        if polls.is_multiple_of(MIRROR_EVERY) {
                            mirror_events(&plan.input.job_dir, plan.working_dir, &output.trials[*index].trial_id).await;
                        }
                        let reports = watch_metric.poll();
                        let trial = &mut output.trials[*index];
                        if reports.len() != trial.all_metrics.len() {
                            crate::tuning::record_reports(trial, &reports);
                            changed = true;
                            let measurements = curve(trial);
                            if tuning.early_stopping
                                && stop.borrow().is_none()
                                && kiln_tuner::StoppingRule::Halving.should_stop(goal, &measurements, &curves)
                            {
                                let _ = stop.send(Some(StopReason::EarlyStopped));
                            }
                        }
                    }
                    unrecorded |= changed;
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
        self.executor.pool_done(&trials_dir(plan.working_dir));
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
        if let Err(error) = self.update(project, job_id, |job| {
            job.training_output = Some(output.clone())
        }) {
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
    crate::tuning::sort_best_first(&mut output.trials, goal);
    output
}

/// Where a trial's trainer writes its hypertune metric (`CLOUD_ML_HP_METRIC_FILE`).
fn metric_file(working_dir: &Path, trial_id: &str) -> PathBuf {
    trials_dir(working_dir)
        .join(trial_id)
        .join("hypertune")
        .join("output.metrics")
}

/// A trial's metric as its trainer reports it: its hypertune file, the measurements it sent, and
/// the event files under `<jobDir>/<trialId>` when the job has a `jobDir` (their mirror for a
/// bucket); event files' reports older than `since` are ignored.
fn metric_watch(
    plan: &JobPlan<'_>,
    tag: &str,
    trial: &kiln_api::job::HyperparameterOutput,
    since: f64,
) -> MetricWatch {
    let events_dir = (!plan.input.job_dir.is_empty())
        .then(|| events_root(&plan.input.job_dir, plan.working_dir).join(&trial.trial_id));
    MetricWatch::new(
        tag,
        vec![
            metric_file(plan.working_dir, &trial.trial_id),
            crate::tuning::pushed_file(plan.working_dir, &trial.trial_id),
        ],
        events_dir,
        since,
    )
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

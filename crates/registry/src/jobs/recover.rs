//! Taking over what a gone server left: jobs outlive the server that started them.
//!
//! A replica's launcher needs nothing from the server, so replicas run on when it dies. A server
//! that takes over a job (a restarted one, or another sharing the database: see
//! [`crate::owners`]) finds the gang of each running job (`gang/gang.json` in its working
//! directory) and the ids the owner stored, has the executor attach to those replicas, and
//! watches them to the end as if it had started them: the log goes on, cancel works, the final
//! state and exit cause are recorded. A tuning job goes on: its finished trials inform the tuner
//! again (it is seeded by the job, so it suggests as before), its running trials are watched
//! again through their gangs (`trials/<id>/gang`), and new ones start. Jobs still QUEUED are
//! queued again. What cannot be taken over fails with a reason naming the stop, and its replicas
//! are stopped: a job that was still PREPARING, or whose gang's files are gone.

use std::sync::Arc;
use std::time::Duration;

use kiln_api::job::{Job, JobState};
use kiln_scheduler::program::Program;
use kiln_scheduler::{Gang, JobLog};
use kiln_store::Owned;
use tokio::sync::watch;

use super::launch::Launch;
use super::supervise::{Attached, JobPlan, Watched, gang_dir};
use super::{Jobs, Output, StopReason, concluded};
use crate::RegistryError;
use crate::owners::Roll;
use crate::tuning::Resumed;

/// How long a job taken over after its deadline waits for its replicas' own reports.
const REPORT_GRACE: Duration = Duration::from_secs(5);

impl Jobs {
    /// Takes over the jobs whose owners are gone by `roll` (a previous process of this server
    /// included): running ones are watched again, queued ones queued again, the rest fail. Passes
    /// on to this server's jobs the cancels another server recorded. Returns how many jobs failed.
    pub fn recover(self: &Arc<Self>, roll: &Roll<'_>) -> Result<usize, RegistryError> {
        let server = self.registry.identity();
        let mut orphans = Vec::new();
        for owned in self.store.active_jobs()? {
            if owned.owner == server.as_str() {
                if owned.value.state == JobState::Cancelling {
                    self.stop(&owned.project, &owned.id, StopReason::Cancelled);
                }
                continue;
            }
            self.let_go(&owned);
            if roll.is_gone(&owned.owner) {
                orphans.push(owned);
            }
        }
        // Running jobs take their place under the quota before queued ones are admitted.
        orphans.sort_by_key(|owned| owned.value.state == JobState::Queued);
        let mut failed = 0;
        for owned in orphans {
            let Owned {
                project,
                id,
                owner,
                value: mut job,
            } = owned;
            if !self
                .store
                .claim_job(&project, &id, &owner, server.as_str())?
            {
                continue;
            }
            let taken = match owner.as_str() {
                "" => format!("Kiln server {} took over the job", server.as_str()),
                owner => format!(
                    "Kiln server {} took over the job from {owner}, which stopped",
                    server.as_str()
                ),
            };
            tracing::info!(project, job = id, "{taken}");
            if let Ok(log) = JobLog::open(&self.log_path(&project, &id)) {
                log.append("service", "INFO", &taken);
            }
            if job.state == JobState::Queued {
                match self.launch(&project, &mut job.clone()) {
                    Ok(launch) => {
                        self.start(&project, job, launch);
                        continue;
                    }
                    Err(problems) => {
                        job.error_message = format!(
                            "The job can no longer run after the server that queued it stopped: {}",
                            problems.join("; ")
                        )
                    }
                }
            } else {
                let ids = self.store.job_processes(&project, &job.job_id)?;
                match self.reattach(&project, &job, &ids) {
                    Ok(()) => continue,
                    Err(why) => {
                        for id in &ids {
                            self.executor.reclaim(id, &job.job_id);
                        }
                        job.error_message = format!(
                            "The Kiln server running the job stopped while it was {:?}, and the \
                             job could not be taken over ({why}); its replicas were stopped. \
                             Submit the job again.",
                            job.state
                        );
                    }
                }
            }
            let (message, end_time) = (job.error_message, kiln_api::now());
            self.update(&project, &id, |job| {
                job.state = JobState::Failed;
                job.error_message.clone_from(&message);
                job.end_time.clone_from(&end_time);
                // A tuning job keeps its finished trials; the ones that were running failed with it.
                for trial in job
                    .training_output
                    .iter_mut()
                    .flat_map(|output| output.trials.iter_mut())
                    .filter(|trial| !trial.state.is_final())
                {
                    trial.state = JobState::Failed;
                    trial.end_time.clone_from(&end_time);
                    trial.error_message.clone_from(&message);
                }
            })?;
            failed += 1;
        }
        // Units another server freed let waiting jobs in.
        self.queue.retry();
        Ok(failed)
    }

    /// Lets go of a job another server owns, if this one still watches it (it stalled past its
    /// lease and the job was taken over): stops watching it, leaving its replicas to the new
    /// owner, and frees its place in the queue.
    fn let_go(&self, owned: &Owned<Job>) {
        let key = format!("{}/{}", owned.project, owned.id);
        let Some(units) = self.watchers.let_go(&key) else {
            return;
        };
        if !self.queue.withdraw(&key) {
            self.queue.release(units);
        }
        let message = format!(
            "Kiln server {} stopped watching the job: it stalled past its lease and {} took the \
             job over",
            self.registry.identity().as_str(),
            owned.owner
        );
        tracing::warn!(project = owned.project, job = owned.id, "{message}");
        if let Ok(log) = JobLog::open(&self.log_path(&owned.project, &owned.id)) {
            log.append("service", "WARNING", &message);
        }
    }

    /// Watches the replicas of a job another server started, to its end (a tuning job's
    /// search goes on from the trials it recorded); `Err` says why it cannot be taken over.
    fn reattach(self: &Arc<Self>, project: &str, job: &Job, ids: &[String]) -> Result<(), String> {
        if !matches!(job.state, JobState::Running | JobState::Cancelling) {
            return Err("its replicas had not started".into());
        }
        let launch = self
            .launch(project, &mut job.clone())
            .map_err(|problems| problems.join("; "))?;
        let working_dir = self.working_dir(project, &job.job_id);
        let taken = match &launch.tuning {
            None => {
                let gang =
                    Gang::load(&gang_dir(&working_dir, None)).map_err(|error| error.to_string())?;
                let ids = gang.ids().unwrap_or_else(|| ids.to_vec());
                if ids.len() != gang.replicas.len() {
                    return Err(format!(
                        "{} of its {} replicas were recorded",
                        ids.len(),
                        gang.replicas.len()
                    ));
                }
                let replicas = self.executor.attach(&gang, &ids);
                self.track(project, &job.job_id, &ids, true);
                Taken::Job(Box::new(Attached { gang, replicas }))
            }
            Some(_) => {
                let mut trials = Vec::new();
                let running = job
                    .training_output
                    .iter()
                    .flat_map(|output| &output.trials)
                    .filter(|trial| !trial.state.is_final());
                for trial in running {
                    let gang = Gang::load(&gang_dir(&working_dir, Some(&trial.trial_id)))
                        .map_err(|error| format!("trial {}: {error}", trial.trial_id))?;
                    let ids = gang
                        .ids()
                        .filter(|ids| ids.len() == gang.replicas.len())
                        .ok_or_else(|| {
                            format!("trial {}'s replicas were not recorded", trial.trial_id)
                        })?;
                    let replicas = self.executor.attach(&gang, &ids);
                    self.track(project, &job.job_id, &ids, true);
                    trials.push((trial.trial_id.clone(), Attached { gang, replicas }));
                }
                Taken::Trials(trials)
            }
        };
        let key = format!("{project}/{}", job.job_id);
        let stopped = self.watchers.insert(&key, launch.units);
        if job.state == JobState::Cancelling {
            self.watchers.stop(&key, StopReason::Cancelled);
        }
        let admitted = self.enqueue(project, &job.job_id, launch.units, true);
        let ran_for = chrono::DateTime::parse_from_rfc3339(&job.start_time)
            .ok()
            .and_then(|start| (chrono::Utc::now() - start.to_utc()).to_std().ok())
            .unwrap_or_default();
        // A job whose deadline passed (or nearly) while no server watched it ends with what its
        // replicas say when they have ended already (a cluster engine's own time limit, say),
        // given a moment to say it.
        let remaining = launch.max_running.saturating_sub(ran_for);
        let deadline = tokio::time::Instant::now() + remaining.max(REPORT_GRACE);
        let (jobs, project, job) = (Arc::clone(self), project.to_string(), job.clone());
        let watched = key.clone();
        self.watchers.spawn(&watched, async move {
            let _ = admitted.await;
            let units = launch.units;
            let (state, message, output) = match taken {
                Taken::Job(attached) => {
                    jobs.rewatch(&project, &job, launch, deadline, *attached, stopped)
                        .await
                }
                Taken::Trials(trials) => {
                    jobs.retune(&project, &job, launch, deadline, trials, stopped)
                        .await
                }
            };
            jobs.finish(&project, &job.job_id, state, message, output);
            jobs.queue.release(units);
            jobs.watchers.remove(&key);
        });
        Ok(())
    }

    /// Watches a job's replicas a previous server started, to the job's end.
    async fn rewatch(
        &self,
        project: &str,
        job: &Job,
        launch: Launch,
        deadline: tokio::time::Instant,
        Attached { gang, replicas }: Attached,
        stopped: watch::Receiver<Option<StopReason>>,
    ) -> (JobState, String, Output) {
        let log_path = self.log_path(project, &job.job_id);
        let watched = Watched {
            project,
            job_id: &job.job_id,
            log_path: &log_path,
            max_running: launch.max_running,
            deadline,
            trial: false,
            all_finish: matches!(launch.program, Program::BatchPredict { .. }),
        };
        let attempt = self.watch(&watched, &gang, replicas, stopped).await;
        let input = job.training_input.clone().unwrap_or_default();
        concluded(
            &attempt,
            &input,
            &launch.program,
            launch.prediction.as_ref(),
        )
    }

    /// Goes on with a tuning job a previous server ran: its running trials are watched again and
    /// new ones started as the search goes on.
    async fn retune(
        &self,
        project: &str,
        job: &Job,
        launch: Launch,
        deadline: tokio::time::Instant,
        trials: Vec<(String, Attached)>,
        stopped: watch::Receiver<Option<StopReason>>,
    ) -> (JobState, String, Output) {
        let input = job.training_input.clone().unwrap_or_default();
        let working_dir = self.working_dir(project, &job.job_id);
        let log_path = self.log_path(project, &job.job_id);
        let confinement = self.confinement(project, &input, &launch.program, &working_dir);
        let env = match self.replica_env(&working_dir) {
            Ok(env) => env,
            Err(message) => return (JobState::Failed, message, Output::NotStarted),
        };
        let runtime = self.job_runtime(&working_dir);
        let Some(tuning) = launch.tuning.as_ref() else {
            return (
                JobState::Failed,
                "not a tuning job".into(),
                Output::NotStarted,
            );
        };
        let plan = JobPlan {
            project,
            replicas: &launch.replicas,
            input: &input,
            program: &launch.program,
            job_id: &job.job_id,
            working_dir: &working_dir,
            runtime: &runtime,
            confinement: &confinement,
            env: &env,
            log_path: &log_path,
            max_running: launch.max_running,
            deadline,
        };
        let resumed = Resumed {
            output: job.training_output.clone().unwrap_or_default(),
            attached: trials,
        };
        let (state, message, output) = self.tune(&plan, tuning, stopped, Some(resumed)).await;
        (state, message, Output::Training(output))
    }
}

/// What a restarted server takes over: a job's replicas, or a tuning job's running trials', by
/// trial id.
enum Taken {
    Job(Box<Attached>),
    Trials(Vec<(String, Attached)>),
}

//! Taking over what a previous server left: jobs outlive the server that started them.
//!
//! A replica's launcher needs nothing from the server, so replicas run on when it dies. A restarted
//! server finds each running job's gang (`gang/gang.json` in its working directory) and the ids
//! its predecessor stored, has the executor attach to those replicas, and watches them to the end
//! as if it had started them: the log goes on, cancel works, the final state and exit cause are
//! recorded. Jobs still QUEUED are queued again. What cannot be taken over fails with a reason
//! naming the restart, and its replicas are stopped: a job that was still PREPARING, and a tuning
//! job (its tuner's state lives only in the server).

use std::sync::Arc;
use std::time::Duration;

use kiln_api::job::{Job, JobState};
use kiln_scheduler::Gang;
use tokio::sync::watch;

use super::launch::Launch;
use super::supervise::Watched;
use super::{Jobs, StopReason, concluded};
use crate::RegistryError;

impl Jobs {
    /// Takes over the jobs a previous server left: running ones are watched again, queued ones
    /// queued again, the rest fail. Returns how many jobs failed.
    pub fn recover(self: &Arc<Self>) -> Result<usize, RegistryError> {
        let mut failed = 0;
        let mut jobs = self.store.active_jobs()?;
        // Running jobs take their place under the quota before queued ones are admitted.
        jobs.sort_by_key(|(_, job)| job.state == JobState::Queued);
        for (project, mut job) in jobs {
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
                let ids = self.store.job_processes(&project, &job.job_id)?;
                match self.reattach(&project, &job, &ids) {
                    Ok(()) => continue,
                    Err(why) => {
                        for id in &ids {
                            self.executor.reclaim(id, &job.job_id);
                        }
                        job.error_message = format!(
                            "The Kiln server restarted while the job was {:?} and could not take \
                             it over ({why}); its replicas were stopped. Submit the job again.",
                            job.state
                        );
                    }
                }
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

    /// Watches the replicas of a job a previous server started, to its end; `Err` says why it
    /// cannot be taken over.
    fn reattach(self: &Arc<Self>, project: &str, job: &Job, ids: &[String]) -> Result<(), String> {
        if !matches!(job.state, JobState::Running | JobState::Cancelling) {
            return Err("its replicas had not started".into());
        }
        let launch = self
            .launch(project, &mut job.clone())
            .map_err(|problems| problems.join("; "))?;
        if launch.tuning.is_some() {
            return Err("a tuning job's search cannot be resumed".into());
        }
        let gang = Gang::load(&self.working_dir(project, &job.job_id).join("gang"))
            .map_err(|error| error.to_string())?;
        if ids.len() != gang.replicas.len() {
            return Err(format!(
                "{} of its {} replicas were recorded",
                ids.len(),
                gang.replicas.len()
            ));
        }
        let key = format!("{project}/{}", job.job_id);
        let (stop, stopped) = watch::channel(None);
        if job.state == JobState::Cancelling {
            let _ = stop.send(Some(StopReason::Cancelled));
        }
        self.running_map().insert(key.clone(), stop);
        let admitted = self.queue.enqueue(&key, launch.units);
        let replicas = self.executor.attach(&gang, ids);
        self.track(project, &job.job_id, ids, true);
        let ran_for = chrono::DateTime::parse_from_rfc3339(&job.start_time)
            .ok()
            .and_then(|start| (chrono::Utc::now() - start.to_utc()).to_std().ok())
            .unwrap_or_default();
        let remaining = launch.max_running.saturating_sub(ran_for);
        let (jobs, project, job) = (Arc::clone(self), project.to_string(), job.clone());
        tokio::spawn(async move {
            let _ = admitted.await;
            let Launch {
                max_running,
                program,
                prediction,
                units,
                ..
            } = launch;
            let log_path = jobs.log_path(&project, &job.job_id);
            let watched = Watched {
                project: &project,
                job_id: &job.job_id,
                log_path: &log_path,
                max_running,
                deadline: tokio::time::Instant::now() + remaining.max(Duration::from_millis(1)),
                trial: false,
            };
            let attempt = jobs.watch(&watched, &gang, replicas, stopped).await;
            let input = job.training_input.clone().unwrap_or_default();
            let (state, message, output) =
                concluded(&attempt, &input, &program, prediction.as_ref());
            jobs.finish(&project, &job.job_id, state, message, output);
            jobs.queue.release(units);
            jobs.running_map().remove(&key);
        });
        Ok(())
    }
}

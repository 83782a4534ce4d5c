//! Measurements a tuning trial's trainer sends over HTTP (`projects.jobs.trials.addMeasurement`, a
//! Kiln extension), and the token it sends them with.
//!
//! Each trial's replicas get `KILN_ENDPOINT` (the URL this server advertises to job processes),
//! `KILN_PROJECT` and `KILN_TOKEN`: a token made for the trial alone, which holds
//! `roles/kiln.trialReporter` on `projects/p/jobs/j/trials/t` and nothing else, expires when the
//! job's `maxRunningTime` would end it, and is revoked when the trial ends. A measurement is
//! appended to the trial's `pushed.metrics` as a hypertune line, which the trial's `MetricWatch`
//! reads with the hypertune file and the event files: however a trainer reports, one reader turns
//! its reports into `allMetrics`, early stopping and the final metric, and a server that takes the
//! job over reads them again.

use std::io::Write;
use std::path::{Path, PathBuf};

use kiln_api::job::JobState;
use kiln_api::study::AddMeasurementRequest;
use kiln_api::{Token, TokenGrant};
use kiln_iam::roles::TRIAL_REPORTER;

use crate::RegistryError;
use crate::jobs::{JobPlan, Jobs, job_name, trials_dir};
use crate::studies::check_elapsed_time;

/// The service account of the tokens trials report with.
const TRIAL_ACCOUNT: &str = "kiln-trial";

/// Where the measurements a trial's trainer sent are kept, one hypertune line each.
pub(crate) fn pushed_file(working_dir: &Path, trial_id: &str) -> PathBuf {
    trials_dir(working_dir)
        .join(trial_id)
        .join("hypertune")
        .join("pushed.metrics")
}

/// The id (not the secret) of the token a trial reports with, so that whichever server sees the
/// trial end revokes it.
fn token_file(working_dir: &Path, trial_id: &str) -> PathBuf {
    trials_dir(working_dir).join(trial_id).join("token")
}

impl Jobs {
    /// `projects.jobs.trials.addMeasurement`: appends a running trial's measurement to what its
    /// trainer reported. The measurement must hold the job's metric; other metrics are ignored.
    pub fn add_measurement(
        &self,
        project: &str,
        job_id: &str,
        trial_id: &str,
        request: AddMeasurementRequest,
    ) -> Result<(), RegistryError> {
        let job = self.get(project, job_id)?;
        let Some(spec) = job
            .training_input
            .as_ref()
            .and_then(|input| input.hyperparameters.as_ref())
        else {
            return Err(RegistryError::FailedPrecondition(format!(
                "job {job_id:?} is not a hyperparameter tuning job; only its trials take measurements"
            )));
        };
        let trial = job
            .training_output
            .as_ref()
            .and_then(|output| output.trials.iter().find(|t| t.trial_id == trial_id))
            .ok_or_else(|| {
                RegistryError::NotFound(format!(
                    "trial {trial_id:?} of job {job_id:?} was not found"
                ))
            })?;
        if job.state != JobState::Running || trial.state != JobState::Running {
            return Err(RegistryError::FailedPrecondition(format!(
                "trial {trial_id:?} of job {job_id:?} is {:?}; only a running trial takes measurements",
                match job.state {
                    JobState::Running => trial.state,
                    state => state,
                }
            )));
        }
        let measurement = request.measurement;
        let tag = crate::tuning::metric_tag(spec);
        let value = crate::studies::space::value(&measurement, tag).ok_or_else(|| {
            RegistryError::InvalidArgument(format!(
                "Field: measurement.metrics Error: the measurement has no finite value of the \
                 job's hyperparameterMetricTag {tag:?}"
            ))
        })?;
        if measurement.step_count < 0 {
            return Err(RegistryError::InvalidArgument(format!(
                "Field: measurement.step_count Error: must not be negative, got {}",
                measurement.step_count
            )));
        }
        check_elapsed_time(&measurement)?;
        let working_dir = self.working_dir(project, job_id);
        if !trials_dir(&working_dir).join(trial_id).is_dir() {
            return Err(RegistryError::FailedPrecondition(format!(
                "trial {trial_id:?} of job {job_id:?} runs from another server's data directory; \
                 send its measurements to that server (its --advertise-url)"
            )));
        }
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |now| now.as_secs_f64());
        let mut line = serde_json::json!({
            "timestamp": time,
            "global_step": measurement.step_count,
            "trial": trial_id,
        });
        line[tag] = value.into();
        append_line(&pushed_file(&working_dir, trial_id), &line.to_string()).map_err(|error| {
            RegistryError::Internal(format!(
                "could not record the measurement of trial {trial_id:?}: {error}"
            ))
        })
    }

    /// The variables a trial's replicas report measurements with; makes the trial's token (when
    /// this server authenticates requests). A token that cannot be made leaves the trial to report
    /// through files only.
    pub(crate) fn reporting_env(
        &self,
        plan: &JobPlan<'_>,
        trial_id: &str,
    ) -> Vec<(String, String)> {
        let mut env = vec![("KILN_PROJECT".to_string(), plan.project.to_string())];
        if let Some(endpoint) = &self.settings.endpoint {
            env.push(("KILN_ENDPOINT".into(), endpoint.clone()));
        }
        let access = self.registry.access();
        if !access.authenticates() {
            return env;
        }
        let resource = format!("{}/trials/{trial_id}", job_name(plan.project, plan.job_id));
        // A minute past the job's own end, for a trial that reports as it is stopped.
        let left = plan
            .deadline
            .saturating_duration_since(tokio::time::Instant::now())
            + std::time::Duration::from_secs(60);
        let expire_time =
            chrono::Utc::now() + chrono::Duration::from_std(left).unwrap_or(chrono::Duration::MAX);
        let made = access.create_token(Token {
            service_account: TRIAL_ACCOUNT.into(),
            description: format!("reports the measurements of {resource}"),
            grant: Some(TokenGrant {
                resource,
                role: TRIAL_REPORTER.into(),
            }),
            expire_time: expire_time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ..Token::default()
        });
        let recorded = made.and_then(|token| {
            let file = token_file(plan.working_dir, trial_id);
            let id = token.name.trim_start_matches("tokens/");
            std::fs::create_dir_all(file.parent().unwrap_or(plan.working_dir))
                .and_then(|()| std::fs::write(&file, id))
                .map_err(|error| {
                    // A token whose id is not kept could not be revoked at the trial's end.
                    let _ = access.revoke_token(id);
                    RegistryError::Internal(format!("{}: {error}", file.display()))
                })?;
            Ok(token.secret)
        });
        match recorded {
            Ok(secret) => env.push(("KILN_TOKEN".into(), secret)),
            Err(error) => {
                tracing::warn!(job = plan.job_id, trial = trial_id, %error, "could not make the trial's token; it reports through files only")
            }
        }
        env
    }

    /// Revokes the token of a trial that has ended.
    pub(crate) fn end_reporting(&self, working_dir: &Path, trial_id: &str) {
        let Ok(id) = std::fs::read_to_string(token_file(working_dir, trial_id)) else {
            return;
        };
        if let Err(error) = self.registry.access().revoke_token(id.trim()) {
            tracing::warn!(trial = trial_id, %error, "could not revoke the trial's token; it expires with the job");
        }
    }
}

/// Appends one line in one write, so lines from concurrent requests never interleave.
fn append_line(path: &Path, line: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    file.write_all(format!("{line}\n").as_bytes())
}

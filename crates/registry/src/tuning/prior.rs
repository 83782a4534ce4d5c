//! Starting a tuner from what is known: the completed trials of earlier tuning jobs and studies
//! (`transferLearningConfig.priorStudyNames`), read as observations of a new space.
//!
//! A prior trial counts when every parameter active in the new space has a value the new space can
//! take, and it reports every metric the new tuner measures (a tuning job reports one, its
//! `hyperparameterMetricTag`). A study reads its priors each time it is asked for trials, a tuning
//! job when it starts; their trials inform the suggestions and are never copied.
//!
//! Invariant: a caller names a prior only if it may read it. [`check`] authorizes the caller on
//! each prior before anything of it is read, so a refusal never tells whether it exists.

use kiln_api::study::{TransferLearningConfig, TrialState};
use kiln_iam::Principal;
use kiln_store::Store;
use kiln_tuner::{Space, Trial, Value};

use crate::RegistryError;
use crate::access::Access;
use crate::studies::space as study_space;

/// An earlier tuning job or study a tuner starts from.
#[derive(Debug, Clone, PartialEq)]
pub struct Prior {
    name: String,
    project: String,
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Job(String),
    Study,
}

impl Prior {
    /// Reads `projects/P/jobs/J` or `projects/P/locations/L/studies/S`.
    fn parse(name: &str) -> Option<Prior> {
        let parts: Vec<&str> = name.split('/').collect();
        let (project, kind) = match parts[..] {
            ["projects", project, "jobs", job] if !job.is_empty() => {
                (project, Kind::Job(job.to_string()))
            }
            ["projects", project, "locations", location, "studies", study]
                if !location.is_empty() && !study.is_empty() =>
            {
                (project, Kind::Study)
            }
            _ => return None,
        };
        kiln_api::names::check_project(project).ok()?;
        Some(Prior {
            name: name.to_string(),
            project: project.to_string(),
            kind,
        })
    }

    /// The permission a caller needs to start from this prior, and the resource it is needed on.
    fn permission(&self) -> (&'static str, String) {
        match &self.kind {
            Kind::Job(_) => ("ml.jobs.get", self.name.clone()),
            Kind::Study => ("ml.studies.get", format!("projects/{}", self.project)),
        }
    }

    /// The prior's completed trials that fit `space` and report `metrics` (by name, in order), as
    /// the tuner's observations.
    pub fn observations(
        &self,
        store: &dyn Store,
        space: &Space,
        metrics: &[String],
    ) -> Result<Vec<Trial>, RegistryError> {
        let missing = || RegistryError::NotFound(format!("{} was not found", self.name));
        let fits = |values: &Vec<Value>| {
            space
                .params()
                .iter()
                .zip(values)
                .all(|(param, value)| *value == Value::Inactive || param.domain.holds(value))
        };
        let found: Vec<Trial> = match &self.kind {
            Kind::Job(job_id) => {
                let job = store.get_job(&self.project, job_id)?.ok_or_else(missing)?;
                let spec = job
                    .training_input
                    .as_ref()
                    .and_then(|input| input.hyperparameters.as_ref())
                    .ok_or_else(|| {
                        RegistryError::InvalidArgument(format!(
                            "{} is not a hyperparameter tuning job",
                            self.name
                        ))
                    })?;
                let tag = match spec.hyperparameter_metric_tag.as_str() {
                    "" => super::DEFAULT_METRIC_TAG,
                    tag => tag,
                };
                if metrics != [tag] {
                    return Ok(Vec::new());
                }
                // Succeeded trials carry their final metric; failed ones are no completed trial.
                job.training_output
                    .map(|output| output.trials)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|trial| super::observation(space, trial))
                    .filter(|trial| trial.metrics.is_some() && fits(&trial.values))
                    .collect()
            }
            Kind::Study => {
                store
                    .get_study(&self.project, &self.name)?
                    .ok_or_else(missing)?;
                store
                    .list_trials(&self.project, &self.name)?
                    .iter()
                    .filter(|(_, trial)| {
                        trial.state == TrialState::Completed && !trial.trial_infeasible
                    })
                    .filter_map(|(_, trial)| {
                        let values = study_space::values(space, trial).filter(fits)?;
                        let reported = trial.final_measurement.as_ref()?;
                        let measured = metrics
                            .iter()
                            .map(|name| study_space::value(reported, name))
                            .collect::<Option<Vec<f64>>>()?;
                        Some(Trial {
                            values,
                            metrics: Some(measured),
                        })
                    })
                    .collect()
            }
        };
        Ok(found)
    }
}

/// The priors a config names; problems name `field`'s entries.
pub fn parse(
    config: Option<&TransferLearningConfig>,
    field: &str,
) -> Result<Vec<Prior>, Vec<String>> {
    let names = config.map_or(&[][..], |config| &config.prior_study_names[..]);
    let mut problems = Vec::new();
    let mut priors = Vec::new();
    for (index, name) in names.iter().enumerate() {
        match Prior::parse(name) {
            Some(prior) if priors.contains(&prior) => problems.push(format!(
                "Field: {field}.prior_study_names[{index}] Error: {name:?} is named twice"
            )),
            Some(prior) => priors.push(prior),
            None => problems.push(format!(
                "Field: {field}.prior_study_names[{index}] Error: {name:?} must name a study \
                 (projects/P/locations/L/studies/S) or a tuning job (projects/P/jobs/J)"
            )),
        }
    }
    match problems.is_empty() {
        true => Ok(priors),
        false => Err(problems),
    }
}

/// Checks that `creator` may read every prior and that each gives at least one observation of
/// `space` measuring `metrics`; problems name `field`'s entries.
pub fn check(
    priors: &[Prior],
    store: &dyn Store,
    access: &Access,
    creator: &Principal,
    (space, metrics): (&Space, &[String]),
    field: &str,
) -> Result<(), RegistryError> {
    for (index, prior) in priors.iter().enumerate() {
        let (permission, resource) = prior.permission();
        access.authorize(creator, permission, &resource)?;
        let at = format!("Field: {field}.prior_study_names[{index}] Error:");
        match prior.observations(store, space, metrics) {
            Ok(found) if found.is_empty() => {
                return Err(RegistryError::InvalidArgument(format!(
                    "{at} no completed trial of {} fits this search space and reports {}",
                    prior.name,
                    metrics.join(", ")
                )));
            }
            Ok(_) => {}
            Err(RegistryError::NotFound(message) | RegistryError::InvalidArgument(message)) => {
                return Err(RegistryError::InvalidArgument(format!("{at} {message}")));
            }
            Err(other) => return Err(other),
        }
    }
    Ok(())
}

/// Every prior's observations of `space` measuring `metrics`; a prior that can no longer be read
/// (deleted since) gives none.
pub fn observations(
    priors: &[Prior],
    store: &dyn Store,
    space: &Space,
    metrics: &[String],
) -> Vec<Trial> {
    priors
        .iter()
        .flat_map(|prior| match prior.observations(store, space, metrics) {
            Ok(found) => found,
            Err(error) => {
                tracing::warn!(prior = prior.name, %error, "could not read a prior's trials");
                Vec::new()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prior_names_are_jobs_or_studies_named_once() {
        let config = TransferLearningConfig {
            prior_study_names: vec![
                "projects/p/jobs/j".into(),
                "projects/p/locations/us-central1/studies/s".into(),
                "projects/p/jobs/j".into(),
                "projects/p/models/m".into(),
                "projects/../jobs/j".into(),
            ],
        };
        let problems = parse(Some(&config), "f").unwrap_err().join("\n");
        assert!(
            problems.contains("f.prior_study_names[2] Error: \"projects/p/jobs/j\" is named twice"),
            "{problems}"
        );
        assert!(
            problems.contains(
                "f.prior_study_names[3] Error: \"projects/p/models/m\" must name a study"
            ),
            "{problems}"
        );
        assert!(problems.contains("f.prior_study_names[4]"), "{problems}");
        let config = TransferLearningConfig {
            prior_study_names: config.prior_study_names[..2].to_vec(),
        };
        let priors = parse(Some(&config), "f").unwrap();
        assert_eq!(
            priors[0].permission(),
            ("ml.jobs.get", "projects/p/jobs/j".to_string())
        );
        assert_eq!(
            priors[1].permission(),
            ("ml.studies.get", "projects/p".to_string())
        );
        assert_eq!(parse(None, "f").unwrap(), Vec::new());
    }
}

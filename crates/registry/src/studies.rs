//! `projects.locations.studies` and their `trials`: Kiln's tuner as a service, after AI Platform
//! Vizier, for clients that evaluate trials themselves.
//!
//! A study's tuner is rebuilt from its config and stored trials on every request (the tuner is
//! stateless and seeded by the study's name), so a restarted server suggests exactly as the old one
//! would have. Trials are numbered per study; `suggest` and `checkEarlyStoppingState` return
//! operations that are done, kept under their location (`operations`). `space` translates a study's
//! config and trials to and from the tuner's terms.

use std::sync::Arc;

use kiln_api::names::{check_name, check_project};
use kiln_api::study::{
    AddMeasurementRequest, CheckTrialEarlyStoppingStateResponse, CompleteTrialRequest,
    ListStudiesResponse, ListTrialsResponse, Measurement, Study, StudyOperation,
    StudyOperationResponse, StudyState, SuggestTrialsRequest, SuggestTrialsResponse, Trial,
    TrialState,
};
use kiln_iam::Principal;
use kiln_store::Store;
use kiln_tuner::Tuner;

use crate::RegistryError;
use crate::access::Access;
use crate::error::refusable;
use crate::tuning::prior;

mod operations;
pub(crate) mod space;

use space::{
    TRANSFER, metric_names, metrics_of, objective, objective_name, parameters, priors, stopping,
    tuner, values,
};

/// Most trials one `suggest` call may ask for.
const MAX_SUGGESTIONS: i32 = 100;

/// The studies service.
pub struct Studies {
    store: Arc<dyn Store>,
    /// Whether a study's creator may read the priors it names.
    access: Arc<Access>,
}

fn not_found(what: &str) -> RegistryError {
    RegistryError::NotFound(format!("{what} was not found"))
}

/// `projects/{p}/locations/{l}/studies/{id}`.
fn study_name(project: &str, location: &str, study_id: &str) -> String {
    format!("projects/{project}/locations/{location}/studies/{study_id}")
}

/// The number of a study's next trial: one past the last (trials are listed by number).
fn next_id(trials: &[(i64, Trial)]) -> i64 {
    trials.last().map_or(1, |(id, _)| id + 1)
}

/// Runs `attempt`, which numbers new trials after those it read and inserts them, again while
/// another client (on this server or another) takes the same numbers first.
fn numbering<T>(mut attempt: impl FnMut() -> Result<T, RegistryError>) -> Result<T, RegistryError> {
    const ATTEMPTS: usize = 8;
    for _ in 1..ATTEMPTS {
        match attempt() {
            Err(RegistryError::AlreadyExists(_)) => continue,
            done => return done,
        }
    }
    attempt()
}

/// Seconds of an `elapsedTime` such as `"12.5s"`.
fn seconds(text: &str) -> Option<f64> {
    text.strip_suffix('s')?.parse().ok()
}

/// Refuses a measurement whose `elapsedTime` is given but is not a duration.
pub(crate) fn check_elapsed_time(measurement: &Measurement) -> Result<(), RegistryError> {
    match measurement.elapsed_time.is_empty() || seconds(&measurement.elapsed_time).is_some() {
        true => Ok(()),
        false => Err(RegistryError::InvalidArgument(format!(
            "Field: measurement.elapsed_time Error: {:?} is not a duration such as \"12.5s\"",
            measurement.elapsed_time
        ))),
    }
}

impl Studies {
    /// A studies service over a store.
    pub fn new(store: Arc<dyn Store>, access: Arc<Access>) -> Self {
        Self { store, access }
    }

    /// `studies.create`.
    pub fn create(
        &self,
        project: &str,
        location: &str,
        study_id: &str,
        mut study: Study,
        creator: &Principal,
    ) -> Result<Study, RegistryError> {
        check_project(project).map_err(RegistryError::InvalidArgument)?;
        let mut problems = Vec::new();
        if let Err(problem) = check_name("studyId", study_id) {
            problems.push(problem);
        }
        let region = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
        if location.is_empty() || location.len() > 63 || !location.chars().all(region) {
            problems.push(format!(
                "location {location:?} is invalid: use a region name such as us-central1"
            ));
        }
        study.name = study_name(project, location, study_id);
        let tuner = tuner(&study).map_err(|found| problems.extend(found)).ok();
        let (Some(tuner), true) = (tuner, problems.is_empty()) else {
            return Err(RegistryError::InvalidArgument(problems.join("; ")));
        };
        prior::check(
            &priors(&study),
            self.store.as_ref(),
            &self.access,
            creator,
            (tuner.space(), &metric_names(&study)),
            TRANSFER,
        )?;
        study.state = StudyState::Active;
        study.create_time = kiln_api::now();
        study.inactive_reason.clear();
        self.store.create_study(project, &study)?;
        Ok(study)
    }

    /// `studies.get`.
    pub fn get(
        &self,
        project: &str,
        location: &str,
        study_id: &str,
    ) -> Result<Study, RegistryError> {
        let name = study_name(project, location, study_id);
        self.store
            .get_study(project, &name)?
            .ok_or_else(|| not_found(&format!("study {name:?}")))
    }

    /// `studies.list`: the location's studies, or every location's for location `-` (AIP-159).
    pub fn list(
        &self,
        project: &str,
        location: &str,
    ) -> Result<ListStudiesResponse, RegistryError> {
        check_project(project).map_err(RegistryError::InvalidArgument)?;
        let prefix = study_name(project, location, "");
        let studies = self
            .store
            .list_studies(project)?
            .into_iter()
            .filter(|s| location == "-" || s.name.starts_with(&prefix))
            .collect();
        Ok(ListStudiesResponse { studies })
    }

    /// `studies.delete`, with its trials.
    pub fn delete(
        &self,
        project: &str,
        location: &str,
        study_id: &str,
    ) -> Result<(), RegistryError> {
        let study = self.get(project, location, study_id)?;
        self.store.delete_study(project, &study.name)?;
        Ok(())
    }

    fn tuner_of(&self, study: &Study) -> Result<Tuner, RegistryError> {
        tuner(study).map_err(|problems| RegistryError::Internal(problems.join("; ")))
    }

    fn trials(&self, project: &str, study: &Study) -> Result<Vec<(i64, Trial)>, RegistryError> {
        Ok(self.store.list_trials(project, &study.name)?)
    }

    /// `trials.suggest`: up to `suggestionCount` trials, ACTIVE and assigned to the client. A client
    /// that still has ACTIVE trials gets those back instead, as Vizier does.
    pub fn suggest(
        &self,
        project: &str,
        location: &str,
        study_id: &str,
        request: SuggestTrialsRequest,
    ) -> Result<StudyOperation, RegistryError> {
        let started = kiln_api::now();
        let count = match request.suggestion_count {
            0 => 1,
            n if (1..=MAX_SUGGESTIONS).contains(&n) => n as usize,
            n => {
                return Err(RegistryError::InvalidArgument(format!(
                    "Field: suggestion_count Error: must be between 1 and {MAX_SUGGESTIONS}, got {n}"
                )));
            }
        };
        let mut study = self.get(project, location, study_id)?;
        let tuner = self.tuner_of(&study)?;
        let trials = numbering(|| {
            let existing = self.trials(project, &study)?;
            let mine: Vec<Trial> = existing
                .iter()
                .filter(|(_, t)| {
                    !request.client_id.is_empty()
                        && t.client_id == request.client_id
                        && t.state == TrialState::Active
                })
                .map(|(_, t)| t.clone())
                .collect();
            if !mine.is_empty() {
                return Ok(mine);
            }
            let mut completed = prior::observations(
                &priors(&study),
                self.store.as_ref(),
                tuner.space(),
                &metric_names(&study),
            );
            let mut pending = Vec::new();
            for (_, trial) in &existing {
                let Some(values) = values(tuner.space(), trial) else {
                    continue;
                };
                match trial.state {
                    TrialState::Completed => completed.push(kiln_tuner::Trial {
                        metrics: measured(&study, trial),
                        values,
                    }),
                    _ => pending.push(values),
                }
            }
            let suggestions = tuner
                .suggest(&completed, &pending, count)
                .map_err(|error| RegistryError::Internal(error.to_string()))?;
            let created: Vec<(i64, Trial)> = (next_id(&existing)..)
                .zip(suggestions)
                .map(|(next, values)| {
                    let trial = Trial {
                        name: format!("{}/trials/{next}", study.name),
                        state: TrialState::Active,
                        parameters: parameters(&tuner, &values),
                        start_time: kiln_api::now(),
                        client_id: request.client_id.clone(),
                        ..Trial::default()
                    };
                    (next, trial)
                })
                .collect();
            self.store.insert_trials(project, &study.name, &created)?;
            Ok(created.into_iter().map(|(_, trial)| trial).collect())
        })?;
        if trials.len() < count && study.state == StudyState::Active {
            study.state = StudyState::Completed;
            study.inactive_reason = "every point of the search space has been suggested".into();
            self.store.update_study(project, &study)?;
        }
        self.operation(
            project,
            location,
            StudyOperationResponse::Suggest(SuggestTrialsResponse {
                trials,
                study_state: study.state,
                start_time: started,
                end_time: kiln_api::now(),
            }),
        )
    }

    fn find_trial(
        &self,
        project: &str,
        study: &Study,
        trial_id: &str,
    ) -> Result<(i64, Trial), RegistryError> {
        let id: i64 = trial_id
            .parse()
            .map_err(|_| not_found(&format!("trial {trial_id:?} of {}", study.name)))?;
        self.trials(project, study)?
            .into_iter()
            .find(|(found, _)| *found == id)
            .ok_or_else(|| not_found(&format!("trial {trial_id:?} of {}", study.name)))
    }

    /// `trials.get`.
    pub fn get_trial(
        &self,
        project: &str,
        location: &str,
        study_id: &str,
        trial_id: &str,
    ) -> Result<Trial, RegistryError> {
        let study = self.get(project, location, study_id)?;
        Ok(self.find_trial(project, &study, trial_id)?.1)
    }

    /// `trials.list`.
    pub fn list_trials(
        &self,
        project: &str,
        location: &str,
        study_id: &str,
    ) -> Result<ListTrialsResponse, RegistryError> {
        let study = self.get(project, location, study_id)?;
        Ok(ListTrialsResponse {
            trials: self
                .trials(project, &study)?
                .into_iter()
                .map(|(_, t)| t)
                .collect(),
        })
    }

    /// `trials.create`: a trial the client chose itself (completed or not), which the tuner then
    /// learns from.
    pub fn create_trial(
        &self,
        project: &str,
        location: &str,
        study_id: &str,
        mut trial: Trial,
    ) -> Result<Trial, RegistryError> {
        let study = self.get(project, location, study_id)?;
        let tuner = self.tuner_of(&study)?;
        let Some(values) = values(tuner.space(), &trial) else {
            return Err(RegistryError::InvalidArgument(
                "Field: trial.parameters Error: give one value of the right kind for every parameter of the study".into(),
            ));
        };
        if tuner.space().encode(&values).is_none() {
            return Err(RegistryError::InvalidArgument(
                "Field: trial.parameters Error: a value lies outside its parameter's domain".into(),
            ));
        }
        trial.parameters = parameters(&tuner, &values);
        trial.start_time = kiln_api::now();
        trial.state = match trial.final_measurement.is_some() || trial.trial_infeasible {
            true => {
                trial.end_time = kiln_api::now();
                TrialState::Completed
            }
            false => TrialState::Active,
        };
        numbering(|| {
            let id = next_id(&self.trials(project, &study)?);
            trial.name = format!("{}/trials/{id}", study.name);
            self.store
                .insert_trials(project, &study.name, &[(id, trial.clone())])?;
            Ok(trial.clone())
        })
    }

    /// `trials.delete`.
    pub fn delete_trial(
        &self,
        project: &str,
        location: &str,
        study_id: &str,
        trial_id: &str,
    ) -> Result<(), RegistryError> {
        let study = self.get(project, location, study_id)?;
        let (id, _) = self.find_trial(project, &study, trial_id)?;
        match self.store.delete_trial(project, &study.name, id) {
            Err(kiln_store::StoreError::NotFound(_)) => {
                Err(not_found(&format!("trial {trial_id:?} of {}", study.name)))
            }
            deleted => Ok(deleted?),
        }
    }

    /// Applies `change` to an unfinished trial and stores it.
    fn change_trial(
        &self,
        project: &str,
        location: &str,
        study_id: &str,
        trial_id: &str,
        change: impl FnOnce(&Study, &mut Trial) -> Result<(), RegistryError> + Send,
    ) -> Result<Trial, RegistryError> {
        let study = self.get(project, location, study_id)?;
        let (id, _) = self.find_trial(project, &study, trial_id)?;
        let mut change = Some(change);
        let changed = refusable(
            |update| self.store.update_trial(project, &study.name, id, update),
            |trial: &mut Trial| {
                if trial.state == TrialState::Completed {
                    return Err(RegistryError::FailedPrecondition(format!(
                        "trial {} is already COMPLETED",
                        trial.name
                    )));
                }
                // Called again only when a concurrent change won a race: the change is applied
                // to the trial as that change left it.
                let apply = change.take().ok_or_else(|| {
                    RegistryError::Aborted(format!(
                        "trial {} changed concurrently; try again",
                        trial.name
                    ))
                })?;
                apply(&study, trial)
            },
        );
        match changed {
            Err(RegistryError::NotFound(_)) => {
                Err(not_found(&format!("trial {trial_id:?} of {}", study.name)))
            }
            changed => changed?
                .ok_or_else(|| RegistryError::Internal("the trial change was declined".into())),
        }
    }

    /// `trials.addMeasurement`.
    pub fn add_measurement(
        &self,
        project: &str,
        location: &str,
        study_id: &str,
        trial_id: &str,
        request: AddMeasurementRequest,
    ) -> Result<Trial, RegistryError> {
        self.change_trial(project, location, study_id, trial_id, |study, trial| {
            if objective(study, &request.measurement).is_none() {
                return Err(RegistryError::InvalidArgument(format!(
                    "Field: measurement.metrics Error: the measurement has no finite value of the study's objective {:?}",
                    objective_name(study)
                )));
            }
            check_elapsed_time(&request.measurement)?;
            trial.measurements.push(request.measurement);
            Ok(())
        })
    }

    /// `trials.complete`: with the final measurement given, else the last one added, or infeasible.
    pub fn complete(
        &self,
        project: &str,
        location: &str,
        study_id: &str,
        trial_id: &str,
        request: CompleteTrialRequest,
    ) -> Result<Trial, RegistryError> {
        self.change_trial(project, location, study_id, trial_id, |study, trial| {
            if request.trial_infeasible {
                trial.trial_infeasible = true;
                trial.infeasible_reason = request.infeasible_reason;
            } else {
                let last = request.final_measurement.or_else(|| trial.measurements.last().cloned());
                match last.filter(|m| metrics_of(study, m).is_some()) {
                    Some(measurement) => trial.final_measurement = Some(measurement),
                    None => {
                        return Err(RegistryError::InvalidArgument(
                            "Field: final_measurement Error: give a final measurement with a finite value of every metric of the study, or trialInfeasible".into(),
                        ));
                    }
                }
            }
            trial.state = TrialState::Completed;
            trial.end_time = kiln_api::now();
            Ok(())
        })
    }

    /// `trials.stop`: marks the trial STOPPING; the client completes it.
    pub fn stop(
        &self,
        project: &str,
        location: &str,
        study_id: &str,
        trial_id: &str,
    ) -> Result<Trial, RegistryError> {
        self.change_trial(project, location, study_id, trial_id, |_, trial| {
            trial.state = TrialState::Stopping;
            Ok(())
        })
    }

    /// `trials.checkEarlyStoppingState`: the study's stopping rule (the median rule, or successive
    /// halving for `decayCurveStoppingConfig`) against the finished trials, by step or by elapsed
    /// time as its config says. A study without one never stops trials.
    pub fn check_early_stopping(
        &self,
        project: &str,
        location: &str,
        study_id: &str,
        trial_id: &str,
    ) -> Result<StudyOperation, RegistryError> {
        let started = kiln_api::now();
        let study = self.get(project, location, study_id)?;
        let (_, trial) = self.find_trial(project, &study, trial_id)?;
        let rule = stopping(&study.study_config).ok().flatten();
        let by_time = rule.is_some_and(|(_, by_time)| by_time);
        let curve = |trial: &Trial| -> Vec<kiln_tuner::Measurement> {
            trial
                .measurements
                .iter()
                .filter_map(|m| {
                    let step = if by_time {
                        seconds(&m.elapsed_time)?
                    } else {
                        m.step_count as f64
                    };
                    Some(kiln_tuner::Measurement {
                        step,
                        value: objective(&study, m)?,
                    })
                })
                .collect()
        };
        let completed: Vec<Vec<kiln_tuner::Measurement>> = self
            .trials(project, &study)?
            .iter()
            .filter(|(_, t)| t.state == TrialState::Completed && !t.trial_infeasible)
            .map(|(_, t)| curve(t))
            .collect();
        let tuner = self.tuner_of(&study)?;
        let should_stop = rule.is_some_and(|(rule, _)| {
            matches!(trial.state, TrialState::Active | TrialState::Requested)
                && rule.should_stop(tuner.goal(), &curve(&trial), &completed)
        });
        self.operation(
            project,
            location,
            StudyOperationResponse::EarlyStopping(CheckTrialEarlyStoppingStateResponse {
                should_stop,
                start_time: started,
                end_time: kiln_api::now(),
            }),
        )
    }

    /// `trials.listOptimalTrials`: the feasible completed trials no other dominates (every trial tied
    /// for the best value, with one objective); trials that miss a safety threshold are not
    /// feasible.
    pub fn optimal(
        &self,
        project: &str,
        location: &str,
        study_id: &str,
    ) -> Result<ListTrialsResponse, RegistryError> {
        let study = self.get(project, location, study_id)?;
        let tuner = self.tuner_of(&study)?;
        let completed: Vec<Trial> = self
            .trials(project, &study)?
            .into_iter()
            .map(|(_, t)| t)
            .filter(|t| t.state == TrialState::Completed)
            .collect();
        let measured: Vec<kiln_tuner::Trial> = completed
            .iter()
            .map(|t| kiln_tuner::Trial {
                values: Vec::new(),
                metrics: measured(&study, t),
            })
            .collect();
        let optimal = kiln_tuner::front::optimal(tuner.metrics(), &measured);
        Ok(ListTrialsResponse {
            trials: optimal
                .into_iter()
                .map(|at| completed[at].clone())
                .collect(),
        })
    }
}

/// What a completed trial measured, one value per metric of the study; `None` when it was
/// infeasible or its final measurement lacks one.
fn measured(study: &Study, trial: &Trial) -> Option<Vec<f64>> {
    if trial.trial_infeasible {
        return None;
    }
    metrics_of(study, trial.final_measurement.as_ref()?)
}

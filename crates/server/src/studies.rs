//! Handlers of `projects.locations.studies` and `projects.locations.studies.trials` (Vizier).

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use kiln_api::Empty;
use kiln_api::study::{
    AddMeasurementRequest, CompleteTrialRequest, Study, SuggestTrialsRequest, Trial,
};
use kiln_iam::Principal;
use kiln_registry::Studies;

use crate::error::ApiError;
use crate::extract::{JsonBody, QueryParams};
use crate::route::{ApiResult, Found, json};
use crate::watch;

type Shared = State<Arc<Studies>>;

/// The project, location and study a study path names.
fn study(found: &Found) -> (&str, &str, &str) {
    (
        found.project(),
        found.value("location"),
        found.value("study"),
    )
}

pub(crate) async fn list_studies(State(studies): Shared, found: Found) -> ApiResult {
    json(studies.list(found.project(), found.value("location"))?)
}

pub(crate) async fn create_study(
    State(studies): Shared,
    Extension(principal): Extension<Principal>,
    found: Found,
    query: QueryParams,
    JsonBody(study): JsonBody<Study>,
) -> ApiResult {
    let study_id = query.0.get("studyId").ok_or_else(|| {
        ApiError::invalid("Field: study_id Error: the studyId query parameter is required")
    })?;
    json(studies.create(
        found.project(),
        found.value("location"),
        study_id,
        study,
        &principal,
    )?)
}

pub(crate) async fn get_study(State(studies): Shared, found: Found) -> ApiResult {
    let (project, location, study) = study(&found);
    json(studies.get(project, location, study)?)
}

pub(crate) async fn delete_study(State(studies): Shared, found: Found) -> ApiResult {
    let (project, location, study) = study(&found);
    studies.delete(project, location, study)?;
    json(Empty {})
}

pub(crate) async fn list_trials(State(studies): Shared, found: Found) -> ApiResult {
    let (project, location, study) = study(&found);
    json(studies.list_trials(project, location, study)?)
}

/// `GET .../trials:watch`: the trials `list` would answer, as event `trials` whenever they change.
pub(crate) async fn watch_trials(
    State(studies): Shared,
    found: Found,
    query: QueryParams,
) -> ApiResult {
    let (project, location, study) = study(&found);
    let (project, location, study) = (project.to_string(), location.to_string(), study.to_string());
    watch::value(&query, "trials", move || {
        studies.list_trials(&project, &location, &study)
    })
}

pub(crate) async fn create_trial(
    State(studies): Shared,
    found: Found,
    JsonBody(trial): JsonBody<Trial>,
) -> ApiResult {
    let (project, location, study) = study(&found);
    json(studies.create_trial(project, location, study, trial)?)
}

pub(crate) async fn suggest(
    State(studies): Shared,
    found: Found,
    JsonBody(request): JsonBody<SuggestTrialsRequest>,
) -> ApiResult {
    let (project, location, study) = study(&found);
    json(studies.suggest(project, location, study, request)?)
}

pub(crate) async fn optimal(
    State(studies): Shared,
    found: Found,
    JsonBody(Empty {}): JsonBody<Empty>,
) -> ApiResult {
    let (project, location, study) = study(&found);
    json(studies.optimal(project, location, study)?)
}

pub(crate) async fn get_trial(State(studies): Shared, found: Found) -> ApiResult {
    let (project, location, study) = study(&found);
    json(studies.get_trial(project, location, study, found.value("trial"))?)
}

pub(crate) async fn delete_trial(State(studies): Shared, found: Found) -> ApiResult {
    let (project, location, study) = study(&found);
    studies.delete_trial(project, location, study, found.value("trial"))?;
    json(Empty {})
}

pub(crate) async fn add_measurement(
    State(studies): Shared,
    found: Found,
    JsonBody(request): JsonBody<AddMeasurementRequest>,
) -> ApiResult {
    let (project, location, study) = study(&found);
    json(studies.add_measurement(project, location, study, found.value("trial"), request)?)
}

pub(crate) async fn complete(
    State(studies): Shared,
    found: Found,
    JsonBody(request): JsonBody<CompleteTrialRequest>,
) -> ApiResult {
    let (project, location, study) = study(&found);
    json(studies.complete(project, location, study, found.value("trial"), request)?)
}

pub(crate) async fn stop(
    State(studies): Shared,
    found: Found,
    JsonBody(Empty {}): JsonBody<Empty>,
) -> ApiResult {
    let (project, location, study) = study(&found);
    json(studies.stop(project, location, study, found.value("trial"))?)
}

pub(crate) async fn check_early_stopping(
    State(studies): Shared,
    found: Found,
    JsonBody(Empty {}): JsonBody<Empty>,
) -> ApiResult {
    let (project, location, study) = study(&found);
    json(studies.check_early_stopping(project, location, study, found.value("trial"))?)
}

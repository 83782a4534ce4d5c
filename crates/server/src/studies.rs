//! Handlers of `projects.locations.studies` and `projects.locations.studies.trials` (Vizier).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use kiln_api::study::{
    AddMeasurementRequest, CompleteTrialRequest, Study, SuggestTrialsRequest, Trial,
};
use kiln_registry::Studies;
use serde_json::json;

use crate::Services;
use crate::error::ApiError;
use crate::extract::{JsonBody, QueryParams, RawBody, or_empty_object, parse_json};
use crate::routes::{ApiResult, json, plain, split_verb, unknown_verb};

/// The study routes.
pub fn routes() -> Router<Services> {
    const STUDIES: &str = "/v1/projects/{project}/locations/{location}/studies";
    Router::new()
        .route(STUDIES, get(list_studies).post(create_study))
        .route(
            &format!("{STUDIES}/{{study}}"),
            get(get_study).delete(delete_study),
        )
        .route(
            &format!("{STUDIES}/{{study}}/trials"),
            get(list_trials).post(create_trial),
        )
        .route(&format!("{STUDIES}/{{study}}/{{verb}}"), post(trials_verb))
        .route(
            &format!("{STUDIES}/{{study}}/trials/{{trial}}"),
            get(get_trial).delete(delete_trial).post(trial_verb),
        )
}

type Shared = State<Arc<Studies>>;

async fn list_studies(
    State(studies): Shared,
    Path((project, location)): Path<(String, String)>,
) -> ApiResult {
    json(studies.list(&project, &location)?)
}

async fn create_study(
    State(studies): Shared,
    Path((project, location)): Path<(String, String)>,
    query: QueryParams,
    JsonBody(study): JsonBody<Study>,
) -> ApiResult {
    let study_id = query.0.get("studyId").ok_or_else(|| {
        ApiError::invalid("Field: study_id Error: the studyId query parameter is required")
    })?;
    json(studies.create(&project, &location, study_id, study)?)
}

async fn get_study(
    State(studies): Shared,
    Path((project, location, study)): Path<(String, String, String)>,
) -> ApiResult {
    json(studies.get(&project, &location, plain(&study)?)?)
}

async fn delete_study(
    State(studies): Shared,
    Path((project, location, study)): Path<(String, String, String)>,
) -> ApiResult {
    studies.delete(&project, &location, plain(&study)?)?;
    json(json!({}))
}

async fn list_trials(
    State(studies): Shared,
    Path((project, location, study)): Path<(String, String, String)>,
) -> ApiResult {
    json(studies.list_trials(&project, &location, &study)?)
}

async fn create_trial(
    State(studies): Shared,
    Path((project, location, study)): Path<(String, String, String)>,
    JsonBody(trial): JsonBody<Trial>,
) -> ApiResult {
    json(studies.create_trial(&project, &location, &study, trial)?)
}

/// `trials:suggest` and `trials:listOptimalTrials`.
async fn trials_verb(
    State(studies): Shared,
    Path((project, location, study, segment)): Path<(String, String, String, String)>,
    RawBody(body): RawBody,
) -> ApiResult {
    match split_verb(&segment) {
        ("trials", Some("suggest")) => {
            let request: SuggestTrialsRequest = parse_json(or_empty_object(&body))?;
            json(studies.suggest(&project, &location, &study, request)?)
        }
        ("trials", Some("listOptimalTrials")) => {
            json(studies.optimal(&project, &location, &study)?)
        }
        ("trials", verb) => Err(unknown_verb(verb, crate::auth::known_verbs("trials"))),
        _ => Err(ApiError::Http(
            kiln_api::Code::NotFound,
            format!("Not found: {segment}"),
        )),
    }
}

async fn get_trial(
    State(studies): Shared,
    Path((project, location, study, trial)): Path<(String, String, String, String)>,
) -> ApiResult {
    json(studies.get_trial(&project, &location, &study, plain(&trial)?)?)
}

async fn delete_trial(
    State(studies): Shared,
    Path((project, location, study, trial)): Path<(String, String, String, String)>,
) -> ApiResult {
    studies.delete_trial(&project, &location, &study, plain(&trial)?)?;
    json(json!({}))
}

/// `addMeasurement`, `complete`, `stop` and `checkEarlyStoppingState` on one trial.
async fn trial_verb(
    State(studies): Shared,
    Path((project, location, study, segment)): Path<(String, String, String, String)>,
    RawBody(body): RawBody,
) -> ApiResult {
    let (trial, verb) = split_verb(&segment);
    match verb {
        Some("addMeasurement") => {
            let request: AddMeasurementRequest = parse_json(or_empty_object(&body))?;
            json(studies.add_measurement(&project, &location, &study, trial, request)?)
        }
        Some("complete") => {
            let request: CompleteTrialRequest = parse_json(or_empty_object(&body))?;
            json(studies.complete(&project, &location, &study, trial, request)?)
        }
        Some("stop") => json(studies.stop(&project, &location, &study, trial)?),
        Some("checkEarlyStoppingState") => {
            json(studies.check_early_stopping(&project, &location, &study, trial)?)
        }
        verb => Err(unknown_verb(verb, crate::auth::known_verbs("trial"))),
    }
}

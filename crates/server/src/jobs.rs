//! Handlers of `projects.jobs` and of the job log and metrics endpoints.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Extension, Router};
use kiln_api::Job;
use kiln_iam::Principal;
use kiln_registry::{Access, Jobs};
use serde_json::json;

use crate::Services;
use crate::error::ApiError;
use crate::extract::{JsonBody, QueryParams, RawBody};
use crate::iam::policy_verb;
use crate::routes::{ApiResult, json, plain, split_verb, unknown_verb};

/// Most log entries one page returns.
pub const MAX_LOG_PAGE: usize = 10_000;

/// The job routes.
pub fn routes() -> Router<Services> {
    Router::new()
        .route(
            "/v1/projects/{project}/jobs",
            get(list_jobs).post(create_job),
        )
        .route(
            "/v1/projects/{project}/jobs/{job}",
            get(get_job).patch(patch_job).post(job_verb),
        )
        .route("/v1/projects/{project}/jobs/{job}/logs", get(job_logs))
        .route(
            "/v1/projects/{project}/jobs/{job}/metrics",
            get(job_metrics),
        )
}

async fn job_metrics(
    State(jobs): Shared,
    Path((project, job)): Path<(String, String)>,
) -> ApiResult {
    json(jobs.metrics(&project, &job).await?)
}

type Shared = State<Arc<Jobs>>;

async fn list_jobs(
    State(jobs): Shared,
    Path(project): Path<String>,
    query: QueryParams,
) -> ApiResult {
    json(jobs.list(&project, &query.list()?)?)
}

async fn create_job(
    State(jobs): Shared,
    State(access): State<Arc<Access>>,
    Extension(principal): Extension<Principal>,
    Path(project): Path<String>,
    JsonBody(job): JsonBody<Job>,
) -> ApiResult {
    let job = jobs.create(&project, job).await?;
    let resource = format!("projects/{project}/jobs/{}", job.job_id);
    access
        .grant_creator(&principal, &resource, kiln_iam::roles::JOB_OWNER)
        .await?;
    json(job)
}

async fn get_job(
    State(jobs): Shared,
    State(access): State<Arc<Access>>,
    Path((project, segment)): Path<(String, String)>,
) -> ApiResult {
    match split_verb(&segment) {
        (job, Some("getIamPolicy")) => {
            json(access.get_policy(&format!("projects/{project}/jobs/{job}"))?)
        }
        _ => json(jobs.get(&project, plain(&segment)?)?),
    }
}

async fn patch_job(
    State(jobs): Shared,
    Path((project, job)): Path<(String, String)>,
    query: QueryParams,
    JsonBody(patch): JsonBody<Job>,
) -> ApiResult {
    json(jobs.patch(&project, plain(&job)?, patch, query.update_mask()?)?)
}

async fn job_verb(
    State(jobs): Shared,
    State(access): State<Arc<Access>>,
    Extension(principal): Extension<Principal>,
    Path((project, segment)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> ApiResult {
    let (job, verb) = split_verb(&segment);
    let resource = format!("projects/{project}/jobs/{job}");
    if let Some(answer) =
        verb.and_then(|verb| policy_verb(&access, &principal, &resource, verb, &body))
    {
        return answer;
    }
    match verb {
        Some("cancel") => {
            jobs.cancel(&project, job)?;
            json(json!({}))
        }
        verb => Err(unknown_verb(verb, crate::auth::known_verbs("jobs"))),
    }
}

/// `GET .../jobs/{job}/logs?pageToken=N&pageSize=M&taskName=master-replica-0`: entries from line N;
/// `nextPageToken` is where to continue, also while the job still writes.
async fn job_logs(
    State(jobs): Shared,
    Path((project, job)): Path<(String, String)>,
    query: QueryParams,
) -> ApiResult {
    let number = |name: &str, default: usize| -> Result<usize, ApiError> {
        match query.0.get(name) {
            None => Ok(default),
            Some(text) if text.is_empty() => Ok(default),
            Some(text) => text.parse().map_err(|_| {
                ApiError::invalid(format!(
                    "Invalid value at '{name}' ({text:?}): must be a non-negative integer"
                ))
            }),
        }
    };
    let start = number("pageToken", 0)?;
    let limit = number("pageSize", 1000)?.clamp(1, MAX_LOG_PAGE);
    let page = jobs.logs(
        &project,
        &job,
        start,
        limit,
        query.0.get("taskName").map(String::as_str),
    )?;
    json(json!({ "entries": page.entries, "nextPageToken": page.next.to_string() }))
}

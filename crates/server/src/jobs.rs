//! Handlers of `projects.jobs` and of the job log and metrics endpoints.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use kiln_api::{Empty, Job, JobLogs};
use kiln_iam::Principal;
use kiln_registry::{Access, Jobs};

use crate::error::ApiError;
use crate::extract::{JsonBody, QueryParams};
use crate::route::{ApiResult, Found, json};

/// Most log entries one page returns.
pub const MAX_LOG_PAGE: usize = 10_000;

type Shared = State<Arc<Jobs>>;

pub(crate) async fn list_jobs(State(jobs): Shared, found: Found, query: QueryParams) -> ApiResult {
    json(jobs.list(found.project(), &query.list()?)?)
}

pub(crate) async fn create_job(
    State(jobs): Shared,
    State(access): State<Arc<Access>>,
    Extension(principal): Extension<Principal>,
    found: Found,
    JsonBody(job): JsonBody<Job>,
) -> ApiResult {
    let project = found.project();
    let job = jobs.create(project, job).await?;
    let resource = format!("projects/{project}/jobs/{}", job.job_id);
    access
        .grant_creator(&principal, &resource, kiln_iam::roles::JOB_OWNER)
        .await?;
    json(job)
}

pub(crate) async fn get_job(State(jobs): Shared, found: Found) -> ApiResult {
    json(jobs.get(found.project(), found.value("job"))?)
}

pub(crate) async fn patch_job(
    State(jobs): Shared,
    found: Found,
    query: QueryParams,
    JsonBody(patch): JsonBody<Job>,
) -> ApiResult {
    json(jobs.patch(
        found.project(),
        found.value("job"),
        patch,
        query.update_mask()?,
    )?)
}

pub(crate) async fn cancel_job(State(jobs): Shared, found: Found) -> ApiResult {
    jobs.cancel(found.project(), found.value("job"))?;
    json(Empty {})
}

pub(crate) async fn job_metrics(State(jobs): Shared, found: Found) -> ApiResult {
    json(jobs.metrics(found.project(), found.value("job")).await?)
}

/// `GET .../jobs/{job}/logs?pageToken=N&pageSize=M&taskName=master-replica-0`: entries from line N;
/// `nextPageToken` is where to continue, also while the job still writes.
pub(crate) async fn job_logs(State(jobs): Shared, found: Found, query: QueryParams) -> ApiResult {
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
        found.project(),
        found.value("job"),
        start,
        limit,
        query.0.get("taskName").map(String::as_str),
    )?;
    json(JobLogs {
        entries: page.entries,
        next_page_token: page.next.to_string(),
    })
}

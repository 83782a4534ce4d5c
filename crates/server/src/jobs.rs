//! Handlers of `projects.jobs` and of the job log and metrics endpoints.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use kiln_api::study::AddMeasurementRequest;
use kiln_api::{Empty, Job, JobLogs};
use kiln_iam::Principal;
use kiln_registry::Jobs;

use crate::error::ApiError;
use crate::extract::{JsonBody, QueryParams};
use crate::route::{ApiResult, Found, json};
use crate::watch;

/// Most log entries one page returns.
pub const MAX_LOG_PAGE: usize = 10_000;

type Shared = State<Arc<Jobs>>;

pub(crate) async fn list_jobs(State(jobs): Shared, found: Found, query: QueryParams) -> ApiResult {
    json(jobs.list(found.project(), &query.list()?)?)
}

pub(crate) async fn create_job(
    State(jobs): Shared,
    Extension(principal): Extension<Principal>,
    found: Found,
    query: QueryParams,
    JsonBody(job): JsonBody<Job>,
) -> ApiResult {
    let project = found.project();
    match query.flag("validateOnly")? {
        true => json(jobs.validate(project, job, &principal)?),
        false => json(jobs.create(project, job, &principal).await?),
    }
}

/// `GET .../jobs:watch`: the page `list` would answer, as event `jobs` whenever it changes.
pub(crate) async fn watch_jobs(State(jobs): Shared, found: Found, query: QueryParams) -> ApiResult {
    let (project, params) = (found.project().to_string(), query.list()?);
    watch::value(&query, "jobs", move || jobs.list(&project, &params))
}

/// `GET .../jobs/{job}:watch?pageToken=N`: events `logs` (each page of new entries, from line N),
/// `metrics` (the curves, when they change) and `job` (the job, when it changes), ending once
/// the job has finished and its last lines and curves are sent.
pub(crate) async fn watch_job(State(jobs): Shared, found: Found, query: QueryParams) -> ApiResult {
    let (project, job_id) = (found.project().to_string(), found.value("job").to_string());
    let mut next = log_number(&query, "pageToken", 0)?;
    jobs.get(&project, &job_id)?;
    watch::stream(&query, move |mut events| async move {
        for look in 0usize.. {
            let job = match jobs.get(&project, &job_id) {
                Ok(job) => job,
                Err(error) => return events.fail(error).await,
            };
            let finished = job.state.is_final();
            let page = match jobs.logs(&project, &job_id, next, MAX_LOG_PAGE, None) {
                Ok(page) => page,
                Err(error) => return events.fail(error).await,
            };
            let more = page.entries.len() == MAX_LOG_PAGE;
            if !page.entries.is_empty() {
                next = page.next;
                let logs = JobLogs {
                    entries: page.entries,
                    next_page_token: next.to_string(),
                };
                if !events.send("logs", &logs).await {
                    return;
                }
            }
            // The curves come from event files; reading them on every other look is enough.
            if (finished || look % 2 == 0)
                && let Ok(metrics) = jobs.metrics(&project, &job_id).await
                && !events.changed("metrics", &metrics).await
            {
                return;
            }
            if !events.changed("job", &job).await || (finished && !more) {
                return;
            }
            if !more && !events.pause().await {
                return;
            }
        }
    })
}

/// `GET /v1/builtInAlgorithms`.
pub(crate) async fn built_in_algorithms() -> ApiResult {
    json(kiln_registry::jobs::built_in_algorithms())
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

pub(crate) async fn cancel_job(
    State(jobs): Shared,
    found: Found,
    JsonBody(Empty {}): JsonBody<Empty>,
) -> ApiResult {
    jobs.cancel(found.project(), found.value("job"))?;
    json(Empty {})
}

pub(crate) async fn add_measurement(
    State(jobs): Shared,
    found: Found,
    JsonBody(request): JsonBody<AddMeasurementRequest>,
) -> ApiResult {
    jobs.add_measurement(
        found.project(),
        found.value("job"),
        found.value("trial"),
        request,
    )?;
    json(Empty {})
}

pub(crate) async fn job_metrics(State(jobs): Shared, found: Found) -> ApiResult {
    json(jobs.metrics(found.project(), found.value("job")).await?)
}

/// `GET .../jobs/{job}/logs?pageToken=N&pageSize=M&taskName=master-replica-0`: entries from line N;
/// `nextPageToken` is where to continue, also while the job still writes.
pub(crate) async fn job_logs(State(jobs): Shared, found: Found, query: QueryParams) -> ApiResult {
    let start = log_number(&query, "pageToken", 0)?;
    let limit = log_number(&query, "pageSize", 1000)?.clamp(1, MAX_LOG_PAGE);
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

/// A log position or page size from the query; absent or empty means `default`.
fn log_number(query: &QueryParams, name: &str, default: usize) -> Result<usize, ApiError> {
    match query.0.get(name) {
        None => Ok(default),
        Some(text) if text.is_empty() => Ok(default),
        Some(text) => text.parse().map_err(|_| {
            ApiError::invalid(format!(
                "Invalid value at '{name}' ({text:?}): must be a non-negative integer"
            ))
        }),
    }
}

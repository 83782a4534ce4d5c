//! The `projects.jobs` methods on stored jobs: get, list, patch, cancel, and the job's log.

use kiln_api::ListJobsResponse;
use kiln_api::job::{Job, JobState};
use kiln_api::names::check_project;
use kiln_scheduler::JobLog;
use kiln_scheduler::logs::LogPage;

use super::{Jobs, StopReason};
use crate::{ListParams, RegistryError};

impl Jobs {
    /// `projects.jobs.get`.
    pub fn get(&self, project: &str, job_id: &str) -> Result<Job, RegistryError> {
        check_project(project).map_err(RegistryError::InvalidArgument)?;
        let job = self.store.get_job(project, job_id)?.ok_or_else(|| {
            RegistryError::NotFound(format!(
                "Field: name Error: The job resource: \"{job_id}\" was not found."
            ))
        })?;
        Ok(self.with_position(project, job))
    }

    /// `projects.jobs.list`, scanned from the page token on ([`ListParams::scan`]).
    pub fn list(
        &self,
        project: &str,
        params: &ListParams,
    ) -> Result<ListJobsResponse, RegistryError> {
        check_project(project).map_err(RegistryError::InvalidArgument)?;
        let page = params.scan(
            &["jobPosition"],
            |scan| {
                Ok(self
                    .store
                    .scan_jobs(project, scan)?
                    .into_iter()
                    .map(|job| self.with_position(project, job))
                    .collect())
            },
            |job: &Job| job.job_id.clone(),
            |job_id| Ok(self.store.get_job(project, job_id)?.is_some()),
        )?;
        Ok(ListJobsResponse {
            jobs: page.items,
            next_page_token: page.next_page_token,
        })
    }

    /// `projects.jobs.cancel`.
    pub fn cancel(&self, project: &str, job_id: &str) -> Result<(), RegistryError> {
        let job = self.get(project, job_id)?;
        if job.state.is_final() || job.state == JobState::Cancelling {
            return Err(RegistryError::FailedPrecondition(format!(
                "Cannot cancel job \"{job_id}\": it is already {:?}",
                job.state
            )));
        }
        self.update(project, job_id, |job| job.state = JobState::Cancelling)?;
        // A job another server runs stops when that server next looks (`owners::keep`).
        self.stop(project, job_id, StopReason::Cancelled);
        Ok(())
    }

    /// `projects.jobs.patch`: `labels` by `updateMask`, with an etag check.
    pub fn patch(
        &self,
        project: &str,
        job_id: &str,
        patch: Job,
        update_mask: &str,
    ) -> Result<Job, RegistryError> {
        let current = self.get(project, job_id)?;
        if !patch.etag.is_empty() && patch.etag != current.etag {
            return Err(RegistryError::Aborted(format!(
                "etag {:?} does not match the job's current etag",
                patch.etag
            )));
        }
        for path in update_mask
            .split(',')
            .map(str::trim)
            .filter(|path| !path.is_empty())
        {
            if path != "labels" && path != "etag" {
                return Err(RegistryError::InvalidArgument(format!(
                    "updateMask field {path:?} cannot be updated; allowed: labels, etag"
                )));
            }
        }
        if !update_mask.contains("labels") {
            return Err(RegistryError::InvalidArgument(
                "updateMask is required and must name labels".into(),
            ));
        }
        crate::registry::refuse_all(kiln_api::names::check_labels("job.labels", &patch.labels))?;
        self.update(project, job_id, |job| job.labels.clone_from(&patch.labels))
    }

    /// A page of the job's log (a Kiln extension: ML Engine sent logs to Cloud Logging).
    pub fn logs(
        &self,
        project: &str,
        job_id: &str,
        start: usize,
        limit: usize,
        task_name: Option<&str>,
    ) -> Result<LogPage, RegistryError> {
        self.get(project, job_id)?;
        JobLog::read(&self.log_path(project, job_id), start, limit, task_name)
            .map_err(|error| RegistryError::Internal(error.to_string()))
    }
}

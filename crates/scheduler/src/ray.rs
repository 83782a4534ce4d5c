//! `RayExecutor`: each gang is one Ray job, submitted through the Ray Jobs REST API.
//!
//! The job's entrypoint is Kiln's driver (`ray/driver.py`, written into the gang's directory),
//! run by the cluster's Python: it reserves a placement group of one bundle per replica (the
//! CPUs, memory and GPUs of the gang's largest machine type, spread over nodes) so the replicas
//! start together or not at all, and runs each replica's launcher (`kiln replica --rank N`) as a
//! Ray task in its bundle. A replica's id is `<submission id>/<rank>`.
//!
//! Ray's REST API stops a job but cannot signal its processes, so a stop goes through the gang's
//! `stop` file, which each launcher watches; a kill also stops the Ray job. A replica whose job
//! ended without its launcher's record ends with Ray's status and message.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use crate::SchedulerError;
use crate::cluster::Resources;
use crate::executor::{Executor, ExitReport, Pending, Replica};
use crate::gang::{EngineEnd, Followed, Following, Gang};
use crate::rest::Rest;

/// The driver, written next to each gang.
const DRIVER: &str = include_str!("ray/driver.py");

/// How to reach a Ray cluster.
#[derive(Debug, Clone)]
pub struct RayConfig {
    /// The dashboard's URL (`http://head:8265`), which serves the Jobs API.
    pub address: String,
    /// The Python on the head node that has the `ray` package, which runs the driver.
    pub python: String,
}

/// Runs each gang as one Ray job.
#[derive(Debug, Clone)]
pub struct RayExecutor {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    rest: Rest,
    config: RayConfig,
    largest: Resources,
    /// The gang directory of each Ray job this server follows, where a stop is asked for.
    followed: Arc<Followed<String>>,
}

#[derive(Debug, Deserialize)]
struct JobInfo {
    #[serde(default)]
    status: String,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Debug, Deserialize)]
struct NodesAnswer {
    data: NodesData,
}

#[derive(Debug, Deserialize)]
struct NodesData {
    result: NodesResult,
}

#[derive(Debug, Deserialize)]
struct NodesResult {
    result: Vec<NodeInfo>,
}

#[derive(Debug, Deserialize)]
struct NodeInfo {
    #[serde(default)]
    state: String,
    #[serde(default)]
    resources_total: std::collections::HashMap<String, f64>,
}

impl NodeInfo {
    fn resources(&self) -> Resources {
        let total = |name: &str| self.resources_total.get(name).copied().unwrap_or(0.0);
        Resources {
            cpus: total("CPU") as u32,
            memory_mb: (total("memory") / 1e6) as u64,
            gpus: total("GPU") as u32,
        }
    }
}

impl RayExecutor {
    /// Connects to the Ray dashboard: checks that it answers and learns the largest live node.
    pub async fn connect(config: RayConfig) -> Result<Self, SchedulerError> {
        let mut inner = Inner {
            rest: Rest::new("Ray", &config.address)?,
            config,
            largest: Resources::default(),
            followed: Followed::new(),
        };
        inner.get::<serde_json::Value>("api/version").await?;
        let mut nodes: Vec<NodeInfo> = Vec::new();
        // A head that has just started lists its node a moment later.
        for _ in 0..20 {
            let answer: NodesAnswer = inner.get("api/v0/nodes").await?;
            nodes = answer.data.result.result;
            if nodes.iter().any(|node| node.state == "ALIVE") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        inner.largest = Resources::largest(
            nodes
                .iter()
                .filter(|node| node.state == "ALIVE")
                .map(NodeInfo::resources),
        );
        if inner.largest.cpus == 0 {
            return Err(SchedulerError::Io(format!(
                "Ray at {} has no live node with CPUs",
                inner.config.address
            )));
        }
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// The submission and rank a replica id names.
    fn parse(id: &str) -> Option<(&str, usize)> {
        let (submission, rank) = id.rsplit_once('/')?;
        Some((submission, rank.parse().ok()?))
    }

    fn attach_to(&self, gang: &Gang, submission: &str) -> Vec<Box<dyn Replica>> {
        let followed = self
            .inner
            .followed
            .follow(submission.to_string(), &gang.dir);
        (0..gang.replicas.len())
            .map(|rank| {
                Box::new(RayReplica {
                    inner: Arc::clone(&self.inner),
                    submission: submission.to_string(),
                    rank,
                    gang: gang.clone(),
                    _followed: Arc::clone(&followed),
                }) as Box<dyn Replica>
            })
            .collect()
    }

    /// Asks the launchers of `id`'s gang to send `signal`, and with SIGKILL (or when they cannot
    /// be asked) stops the Ray job.
    fn stop(&self, id: &str, signal: &'static str) {
        let Some((submission, _)) = Self::parse(id) else {
            return;
        };
        let asked = self
            .inner
            .followed
            .request_stop(&submission.to_string(), signal)
            .is_ok();
        let signal = if asked { signal } else { "SIGKILL" };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (inner, submission) = (Arc::clone(&self.inner), submission.to_string());
        runtime.spawn(async move {
            if let Err(error) = inner.stop(&submission, signal).await {
                tracing::warn!(%submission, %error, "could not stop a Ray job");
            }
        });
    }
}

impl Inner {
    /// Sends `request`; a status other than success is an error in Ray's words.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<String, SchedulerError> {
        match self.rest.send(request).await? {
            (status, text) if status.is_success() => Ok(text),
            (status, text) => Err(self.rest.error(format_args!(
                "answered {status}: {}",
                text.chars().take(500).collect::<String>()
            ))),
        }
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, SchedulerError> {
        self.rest
            .json(self.rest.request(reqwest::Method::GET, path))
            .await
    }

    /// Ray's words for a job that is over (or gone), `None` while it waits or runs.
    async fn ended(&self, submission: &str) -> Result<Option<EngineEnd>, SchedulerError> {
        let request = self
            .rest
            .request(reqwest::Method::GET, &format!("api/jobs/{submission}"));
        let (status, text) = self.rest.send(request).await?;
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(Some(EngineEnd {
                words: format!(
                    "ended without a record, and Ray no longer knows its job {submission}"
                ),
                engine_fault: false,
            }));
        }
        let info: JobInfo = serde_json::from_str(&text)
            .map_err(|error| self.rest.error(format_args!("answered {status}: {error}")))?;
        Ok(match info.status.as_str() {
            "PENDING" | "RUNNING" => None,
            status => Some(EngineEnd {
                words: format!(
                    "ended as Ray job {submission} did: {status} ({})",
                    info.message.unwrap_or_default()
                ),
                engine_fault: false,
            }),
        })
    }

    async fn stop(&self, submission: &str, signal: &str) -> Result<(), SchedulerError> {
        let info: Result<JobInfo, _> = self.get(&format!("api/jobs/{submission}")).await;
        if let Ok(info) = &info
            && !matches!(info.status.as_str(), "PENDING" | "RUNNING")
        {
            return Ok(());
        }
        if signal == "SIGKILL" {
            let path = format!("api/jobs/{submission}/stop");
            self.send(self.rest.request(reqwest::Method::POST, &path))
                .await?;
        }
        Ok(())
    }
}

/// A replica running as one task of a Ray job.
struct RayReplica {
    inner: Arc<Inner>,
    submission: String,
    rank: usize,
    gang: Gang,
    /// Shared by the job's replicas: the executor forgets the job when the last is dropped.
    _followed: Arc<Following<String>>,
}

impl Replica for RayReplica {
    fn id(&self) -> String {
        format!("{}/{}", self.submission, self.rank)
    }

    fn wait(&mut self) -> Pending<'_, ExitReport> {
        let (inner, submission) = (Arc::clone(&self.inner), self.submission.clone());
        Box::pin(crate::gang::follow(&self.gang, self.rank, move || {
            let (inner, submission) = (Arc::clone(&inner), submission.clone());
            async move { inner.ended(&submission).await }
        }))
    }
}

impl Executor for RayExecutor {
    fn launch<'a>(
        &'a self,
        gang: &'a Gang,
    ) -> Pending<'a, Result<Vec<Box<dyn Replica>>, SchedulerError>> {
        Box::pin(async move {
            let file = gang.save()?;
            let driver = gang.dir.join("ray_driver.py");
            std::fs::write(&driver, DRIVER)
                .map_err(|error| SchedulerError::Io(format!("{}: {error}", driver.display())))?;
            let need = gang.largest_need();
            let started = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |since| since.as_millis());
            let submission = match &gang.trial {
                Some(trial) => format!("kiln-{}-trial-{trial}-{started}", gang.job_id),
                None => format!("kiln-{}-{started}", gang.job_id),
            };
            let quote = |text: &str| format!("'{}'", text.replace('\'', r"'\''"));
            let entrypoint = [
                quote(&self.inner.config.python),
                quote(&driver.display().to_string()),
                quote(&gang.kiln.display().to_string()),
                quote(&file.display().to_string()),
                gang.replicas.len().to_string(),
                need.cpus.max(1).to_string(),
                (need.memory_mb * 1_000_000).to_string(),
                need.gpus.to_string(),
            ]
            .join(" ");
            let body = json!({
                "entrypoint": entrypoint,
                "submission_id": submission,
                "metadata": {"kiln_job": gang.job_id},
                "entrypoint_num_cpus": 0,
            });
            let request = self
                .inner
                .rest
                .request(reqwest::Method::POST, "api/jobs/")
                .json(&body);
            self.inner
                .send(request)
                .await
                .map_err(|error| SchedulerError::Io(format!("Ray refused the job: {error}")))?;
            Ok(self.attach_to(gang, &submission))
        })
    }

    fn attach(&self, gang: &Gang, ids: &[String]) -> Vec<Box<dyn Replica>> {
        match ids.first().and_then(|id| Self::parse(id)) {
            Some((submission, _)) => self.attach_to(gang, submission),
            None => Vec::new(),
        }
    }

    fn terminate(&self, id: &str) {
        self.stop(id, "SIGTERM");
    }

    fn kill(&self, id: &str) {
        self.stop(id, "SIGKILL");
    }

    fn reclaim(&self, id: &str, job_id: &str) {
        if Self::parse(id)
            .is_some_and(|(submission, _)| submission.starts_with(&format!("kiln-{job_id}-")))
        {
            self.stop(id, "SIGKILL");
        }
    }

    fn largest_node(&self) -> Option<Resources> {
        Some(self.inner.largest)
    }

    fn waiting<'a>(&'a self, id: &'a str) -> Pending<'a, Option<String>> {
        Box::pin(async move {
            let (submission, _) = Self::parse(id)?;
            let info: JobInfo = self
                .inner
                .get(&format!("api/jobs/{submission}"))
                .await
                .ok()?;
            // A RUNNING driver may still wait for its placement group: Ray says so only then.
            (info.status == "PENDING").then(|| {
                format!(
                    "Waiting for the cluster: Ray job {submission} is PENDING ({})",
                    info.message.unwrap_or_default()
                )
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_ids_name_their_submission_and_rank() {
        assert_eq!(RayExecutor::parse("kiln-j1-17/3"), Some(("kiln-j1-17", 3)));
        assert_eq!(RayExecutor::parse("kiln-j1-17"), None);
    }
}

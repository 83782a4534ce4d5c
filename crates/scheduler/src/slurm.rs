//! `SlurmExecutor`: each gang is one Slurm job, submitted through slurmrestd's REST API.
//!
//! The job has one task per replica (`srun kiln replica --gang FILE`, rank from `SLURM_PROCID`;
//! a gang of one replica runs in the batch step, without `srun`),
//! each task given the CPUs, memory and GPUs of the gang's largest machine type, so Slurm places
//! the replicas together or not at all and spreads them over nodes as their sizes demand. The job
//! is named `kiln-<job id>` (and `-trial-<id>` in a tuning job); its time limit is the job's
//! `maxRunningTime` and half a minute, in whole minutes, so Kiln's own limit acts first. A replica's id is
//! `<Slurm job id>.<rank>`.
//!
//! The launcher records each replica's end in the gang's directory; when the Slurm job ended
//! without one (a lost node, the time limit, the out-of-memory killer, preemption, a cancel), or
//! its trainer was killed while Slurm ended the job, the replica ends with Slurm's state and
//! reason. A job Slurm requeues after a lost node ends with `NODE_FAIL`: Kiln cancels the rerun
//! (and the batch script of a rerun does nothing), since Kiln decides what runs again.
//!
//! Speaks the `v0.0.38` API (Slurm 22.05); requests carry `X-SLURM-USER-NAME` and
//! `X-SLURM-USER-TOKEN` (a JWT from `scontrol token`).

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::SchedulerError;
use crate::answers::Answers;
use crate::cluster::Resources;
use crate::executor::{Executor, ExitReport, Pending, Replica, detached, passed_env};
use crate::gang::{EngineEnd, Followed, Following, Gang};
use crate::rest::Rest;

/// The REST API version spoken.
const API: &str = "slurm/v0.0.38";

/// How long past `maxRunningTime` Slurm's time limit lies at least: time for Kiln's own limit to
/// stop the replicas (SIGTERM, then SIGKILL after the job's grace) before Slurm does.
const SLURM_GRACE_SECONDS: u64 = 30;

/// How to reach slurmrestd.
#[derive(Debug, Clone)]
pub struct SlurmConfig {
    /// `http://host:6820`.
    pub url: String,
    /// The Slurm user jobs run as.
    pub user: String,
    /// Its JWT.
    pub token: String,
    /// The partition jobs go to (Slurm's default when `None`).
    pub partition: Option<String>,
    /// The account jobs are charged to.
    pub account: Option<String>,
}

/// Runs each gang as one Slurm job.
#[derive(Debug, Clone)]
pub struct SlurmExecutor {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    rest: Rest,
    config: SlurmConfig,
    /// The largest node of the partition.
    largest: Resources,
    /// The gang directory of each Slurm job this server follows, where a stop is asked for.
    followed: Arc<Followed<u64>>,
    /// What Slurm said lately of each job its replicas follow (`None`: it no longer knows it).
    answers: Answers<u64, Option<JobInfo>>,
}

/// An answer's `errors`, in Slurm's words.
#[derive(Debug, Default, Deserialize)]
struct Errors {
    #[serde(default)]
    errors: Vec<SlurmError>,
}

#[derive(Debug, Default, Deserialize)]
struct SlurmError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    description: String,
}

impl Errors {
    fn words(&self) -> Option<String> {
        let words: Vec<String> = self
            .errors
            .iter()
            .map(
                |error| match (error.description.is_empty(), error.error.is_empty()) {
                    (false, false) => format!("{}: {}", error.error, error.description),
                    (false, true) => error.description.clone(),
                    _ => error.error.clone(),
                },
            )
            .collect();
        (!words.is_empty()).then(|| words.join("; "))
    }
}

#[derive(Debug, Deserialize)]
struct Submitted {
    #[serde(flatten)]
    errors: Errors,
    #[serde(default)]
    job_id: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct Jobs {
    #[serde(flatten)]
    errors: Errors,
    #[serde(default)]
    jobs: Vec<JobInfo>,
}

/// What Kiln reads of a Slurm job.
#[derive(Debug, Clone, Deserialize)]
struct JobInfo {
    #[serde(default)]
    name: String,
    #[serde(default)]
    job_state: String,
    #[serde(default)]
    state_reason: String,
    /// How often Slurm requeued it (after a lost node).
    #[serde(default)]
    restart_cnt: u32,
}

#[derive(Debug, Deserialize)]
struct Nodes {
    #[serde(flatten)]
    errors: Errors,
    #[serde(default)]
    nodes: Vec<NodeInfo>,
}

#[derive(Debug, Deserialize)]
struct NodeInfo {
    #[serde(default)]
    cpus: u32,
    #[serde(default)]
    real_memory: u64,
    #[serde(default)]
    gres: String,
    #[serde(default)]
    partitions: Vec<String>,
}

impl NodeInfo {
    fn resources(&self) -> Resources {
        Resources {
            cpus: self.cpus,
            memory_mb: self.real_memory,
            gpus: gpus(&self.gres),
        }
    }
}

/// The GPUs in a node's `gres` (`gpu:4`, `gpu:a100:2(S:0-1),mps:100`).
fn gpus(gres: &str) -> u32 {
    gres.split(',')
        .filter(|entry| entry.starts_with("gpu"))
        .filter_map(|entry| {
            let entry = entry.split('(').next().unwrap_or(entry);
            entry.rsplit(':').next()?.parse::<u32>().ok()
        })
        .sum()
}

/// Slurm's job states that are final.
fn is_final(state: &str) -> bool {
    !matches!(
        state,
        "PENDING"
            | "RUNNING"
            | "SUSPENDED"
            | "COMPLETING"
            | "CONFIGURING"
            | "RESIZING"
            | "REQUEUED"
    )
}

impl SlurmExecutor {
    /// Connects to slurmrestd: checks that it answers, accepts the token and has the partition,
    /// and learns the partition's largest node.
    pub async fn connect(config: SlurmConfig) -> Result<Self, SchedulerError> {
        let inner = Inner {
            rest: Rest::new(
                "Slurm",
                &format!("{}/{API}", config.url.trim_end_matches('/')),
            )?,
            config,
            largest: Resources::default(),
            followed: Followed::new(),
            answers: Answers::new(),
        };
        let ping: Errors = inner.get("ping").await?;
        if let Some(words) = ping.words() {
            return Err(inner.refused(&words));
        }
        let nodes: Nodes = inner.get("nodes").await?;
        if let Some(words) = nodes.errors.words() {
            return Err(inner.refused(&words));
        }
        let partition = inner.config.partition.clone();
        let members: Vec<&NodeInfo> = nodes
            .nodes
            .iter()
            .filter(|node| {
                partition
                    .as_ref()
                    .is_none_or(|partition| node.partitions.contains(partition))
            })
            .collect();
        if members.is_empty() {
            return Err(SchedulerError::Io(match partition {
                Some(partition) => format!(
                    "Slurm at {} has no nodes in partition {partition:?}",
                    inner.config.url
                ),
                None => format!("Slurm at {} has no nodes", inner.config.url),
            }));
        }
        let largest = Resources::largest(members.iter().map(|node| node.resources()));
        Ok(Self {
            inner: Arc::new(Inner { largest, ..inner }),
        })
    }

    /// The Slurm job a replica id names.
    fn slurm_job(id: &str) -> Option<u64> {
        id.split('.').next()?.parse().ok()
    }

    /// Cancels the Slurm job of replica `id` (its processes get SIGKILL).
    fn cancel(&self, id: &str) {
        let Some(job) = Self::slurm_job(id) else {
            return;
        };
        let inner = Arc::clone(&self.inner);
        detached(async move {
            if let Err(error) = inner.cancel(job).await {
                tracing::warn!(job, %error, "could not cancel a Slurm job");
            }
        });
    }
}

impl Inner {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.rest
            .request(method, path)
            .header("X-SLURM-USER-NAME", &self.config.user)
            .header("X-SLURM-USER-TOKEN", &self.config.token)
    }

    fn refused(&self, words: &str) -> SchedulerError {
        self.rest.error(format_args!(
            "refused the request (is the token valid for user {:?}?): {words}",
            self.config.user
        ))
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, SchedulerError> {
        self.rest.json(request).await
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, SchedulerError> {
        self.send(self.request(reqwest::Method::GET, path)).await
    }

    /// The Slurm job's state, `None` when Slurm no longer knows it.
    async fn job(&self, job: u64) -> Result<Option<JobInfo>, SchedulerError> {
        let answer: Jobs = self.get(&format!("job/{job}")).await?;
        match (answer.jobs.into_iter().next(), answer.errors.words()) {
            (Some(info), _) => Ok(Some(info)),
            (None, Some(words)) if words.contains("Invalid job id") => Ok(None),
            (None, Some(words)) => Err(self.refused(&words)),
            (None, None) => Ok(None),
        }
    }

    async fn cancel(&self, job: u64) -> Result<(), SchedulerError> {
        let request = self.request(reqwest::Method::DELETE, &format!("job/{job}"));
        let answer: Errors = self.send(request).await?;
        match answer.words() {
            // Each running replica of a job cancels it; all but the first find it ending.
            Some(words) if !words.contains("already") => Err(self.refused(&words)),
            _ => Ok(()),
        }
    }

    /// The submission of `gang` as one Slurm job.
    fn submission(&self, gang: &Gang, file: &std::path::Path) -> Value {
        let need = gang.largest_need();
        // One replica runs in the batch step itself: a job step would only add its start-up.
        let launch = if gang.replicas.len() == 1 {
            "exec"
        } else {
            "exec srun --kill-on-bad-exit=0"
        };
        // Kiln decides what runs again: a run Slurm requeued after a lost node does nothing.
        let script = format!(
            "#!/bin/sh\n[ \"${{SLURM_RESTART_COUNT:-0}}\" = 0 ] || exit 0\n\
             {launch} {} replica --gang {}\n",
            shell_quote(&gang.kiln.display().to_string()),
            shell_quote(&file.display().to_string()),
        );
        let mut environment: serde_json::Map<String, Value> = passed_env()
            .map(|(name, value)| (name, Value::String(value)))
            .collect();
        environment.insert("CLOUD_ML_JOB_ID".into(), json!(gang.job_id));
        environment
            .entry("PATH")
            .or_insert_with(|| json!("/usr/local/bin:/usr/bin:/bin"));
        let name = match &gang.trial {
            Some(trial) => format!("kiln-{}-trial-{trial}", gang.job_id),
            None => format!("kiln-{}", gang.job_id),
        };
        let output = gang.dir.join("slurm-%j.out").display().to_string();
        let mut job = json!({
            "name": name,
            "comment": format!("kiln job={}", gang.job_id),
            "tasks": gang.replicas.len(),
            "cpus_per_task": need.cpus.max(1),
            "memory_per_cpu": need.memory_mb.div_ceil(u64::from(need.cpus.max(1))).max(1),
            "time_limit": (gang.max_running_seconds + SLURM_GRACE_SECONDS).div_ceil(60),
            "current_working_directory": gang.dir.display().to_string(),
            "standard_output": output,
            "standard_error": output,
            "environment": environment,
        });
        if need.gpus > 0 {
            job["gpus_per_task"] = json!(need.gpus.to_string());
        }
        if let Some(partition) = &self.config.partition {
            job["partition"] = json!(partition);
        }
        if let Some(account) = &self.config.account {
            job["account"] = json!(account);
        }
        json!({"script": script, "job": job})
    }
}

/// `text` in single quotes for `sh`.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// A replica running as one task of a Slurm job.
struct SlurmReplica {
    inner: Arc<Inner>,
    job: u64,
    rank: usize,
    gang: Gang,
    /// Shared by the job's replicas: the executor forgets the job when the last is dropped.
    _followed: Arc<Following<u64>>,
}

/// Slurm's words for a job that is over (or gone), `None` while it waits or runs.
fn ended(job: u64, info: Option<&JobInfo>) -> Option<EngineEnd> {
    match info {
        // Slurm requeues a batch job whose node failed (unless the site says otherwise).
        Some(info) if info.restart_cnt > 0 => Some(EngineEnd {
            words: format!(
                "ended as Slurm job {job} lost a node: NODE_FAIL (Slurm requeued it; Kiln \
                 cancelled the rerun)"
            ),
            engine_fault: true,
        }),
        Some(info) if !is_final(&info.job_state) => None,
        Some(info) => Some(EngineEnd {
            words: format!(
                "ended as Slurm job {job} did: {} (reason: {})",
                info.job_state, info.state_reason
            ),
            engine_fault: matches!(
                info.job_state.as_str(),
                "NODE_FAIL" | "TIMEOUT" | "OUT_OF_MEMORY" | "PREEMPTED" | "BOOT_FAIL" | "DEADLINE"
            ),
        }),
        None => Some(EngineEnd {
            words: format!("ended without a record, and Slurm no longer knows its job {job}"),
            engine_fault: false,
        }),
    }
}

impl Replica for SlurmReplica {
    fn id(&self) -> String {
        format!("{}.{}", self.job, self.rank)
    }

    fn wait(&mut self) -> Pending<'_, ExitReport> {
        let (inner, job) = (Arc::clone(&self.inner), self.job);
        Box::pin(crate::gang::follow(&self.gang, self.rank, move || {
            let inner = Arc::clone(&inner);
            async move {
                let info = inner.answers.get(&job, || inner.job(job)).await?;
                if info
                    .as_ref()
                    .is_some_and(|info| info.restart_cnt > 0 && !is_final(&info.job_state))
                {
                    let _ = inner.cancel(job).await;
                }
                Ok(ended(job, info.as_ref()))
            }
        }))
    }
}

impl Executor for SlurmExecutor {
    fn launch<'a>(
        &'a self,
        gang: &'a Gang,
    ) -> Pending<'a, Result<Vec<Box<dyn Replica>>, SchedulerError>> {
        Box::pin(async move {
            let file = gang.save()?;
            let body = self.inner.submission(gang, &file);
            let request = self
                .inner
                .request(reqwest::Method::POST, "job/submit")
                .json(&body);
            let answer: Submitted = self.inner.send(request).await?;
            let job = match (answer.job_id, answer.errors.words()) {
                (Some(job), None) => job,
                (_, words) => {
                    return Err(SchedulerError::Io(format!(
                        "Slurm refused the job: {}",
                        words.unwrap_or_else(|| "no job id in its answer".into())
                    )));
                }
            };
            Ok(self.attach_to(gang, job))
        })
    }

    fn attach(&self, gang: &Gang, ids: &[String]) -> Vec<Box<dyn Replica>> {
        match ids.first().and_then(|id| Self::slurm_job(id)) {
            Some(job) => self.attach_to(gang, job),
            None => Vec::new(),
        }
    }

    fn terminate(&self, id: &str) {
        // slurmrestd cancels but cannot signal: the launchers signal their trainers.
        let Some(job) = Self::slurm_job(id) else {
            return;
        };
        if let Err(error) = self.inner.followed.request_stop(&job, "SIGTERM") {
            tracing::warn!(%error, "could not ask a Slurm job's replicas to stop; cancelling it");
            self.cancel(id);
        }
    }

    fn kill(&self, id: &str) {
        self.cancel(id);
    }

    fn reclaim(&self, id: &str, job_id: &str) {
        let Some(job) = Self::slurm_job(id) else {
            return;
        };
        let inner = Arc::clone(&self.inner);
        let prefix = format!("kiln-{job_id}");
        detached(async move {
            if let Ok(Some(info)) = inner.job(job).await
                && (info.name == prefix || info.name.starts_with(&format!("{prefix}-trial-")))
                && !is_final(&info.job_state)
            {
                let _ = inner.cancel(job).await;
            }
        });
    }

    fn spans_nodes(&self) -> bool {
        true
    }

    fn largest_node(&self) -> Option<Resources> {
        Some(self.inner.largest)
    }

    fn waiting<'a>(&'a self, id: &'a str) -> Pending<'a, Option<String>> {
        Box::pin(async move {
            let job = Self::slurm_job(id)?;
            let info = self.inner.job(job).await.ok()??;
            (info.job_state == "PENDING").then(|| {
                format!(
                    "Waiting for the cluster: Slurm job {job} is PENDING (reason: {})",
                    info.state_reason
                )
            })
        })
    }
}

impl SlurmExecutor {
    fn attach_to(&self, gang: &Gang, job: u64) -> Vec<Box<dyn Replica>> {
        let followed = self.inner.followed.follow(job, &gang.dir);
        (0..gang.replicas.len())
            .map(|rank| {
                Box::new(SlurmReplica {
                    inner: Arc::clone(&self.inner),
                    job,
                    rank,
                    gang: gang.clone(),
                    _followed: Arc::clone(&followed),
                }) as Box<dyn Replica>
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpus_are_read_from_gres() {
        assert_eq!(gpus(""), 0);
        assert_eq!(gpus("(null)"), 0);
        assert_eq!(gpus("gpu:4"), 4);
        assert_eq!(gpus("gpu:a100:2(S:0-1),mps:100"), 2);
        assert_eq!(gpus("gpu:t4:1,gpu:a100:2"), 3);
    }

    #[test]
    fn replica_ids_name_their_slurm_job() {
        assert_eq!(SlurmExecutor::slurm_job("42.3"), Some(42));
        assert_eq!(SlurmExecutor::slurm_job("x.3"), None);
        assert_eq!(shell_quote("/a b/it's"), r"'/a b/it'\''s'");
    }
}

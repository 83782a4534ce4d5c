//! `RayExecutor`: gangs run by Kiln's driver in Ray jobs, submitted through the Ray Jobs REST API.
//!
//! A job's entrypoint is Kiln's driver (`ray/driver.py`, written beside the gang), run by the
//! cluster's Python: for a gang of several replicas it reserves a placement group of one bundle
//! per replica (the CPUs, memory and GPUs of the gang's largest machine type, spread over nodes)
//! so they start together or not at all, and runs each replica's launcher (`kiln replica --rank
//! N`) as a Ray task (in its bundle). A gang outside a tuning job is one Ray job, and a replica's
//! id is `<submission id>/<rank>`. The trials of a tuning job share one Ray job, a pool whose
//! driver runs each gang asked for in its `requests` directory (under the gang's
//! [`Gang::pool`]), so a trial starts without a Ray job's start-up; a replica's id is then
//! `<submission id>/<trial>/<rank>`. The pool's driver ends once the tuning job says it is done
//! (or nothing was asked of it for two minutes) and no gang runs.
//!
//! Ray's REST API stops a job but cannot signal its processes, so a stop goes through the gang's
//! `stop` file, which each launcher watches (and the driver, while the gang waits for resources);
//! a kill also stops a gang's own Ray job. A replica whose gang ended without its launcher's
//! record ends with Ray's words: the job's status and message, or in a pool what the driver
//! recorded of the gang (`ray.end`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::json;

use crate::SchedulerError;
use crate::answers::Answers;
use crate::cluster::Resources;
use crate::executor::{Executor, ExitReport, Pending, Replica, detached};
use crate::gang::{EngineEnd, Followed, Following, Gang};
use crate::rest::Rest;

/// The driver, written next to each gang (or pool).
const DRIVER: &str = include_str!("ray/driver.py");

/// How long after its last request a pool is given more: well within the two minutes its driver
/// waits for one before it ends.
const POOL_REUSE: Duration = Duration::from_secs(60);

/// What the driver of a pool records in a gang's directory when the gang's tasks are over.
const POOL_END_FILE: &str = "ray.end";

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
    /// The gang directory of each gang this server follows (by the id of its replicas less the
    /// rank), where a stop is asked for.
    followed: Arc<Followed<String>>,
    /// What Ray said lately of each job replicas follow (`None`: it no longer knows it).
    answers: Answers<String, Option<JobInfo>>,
    /// The pool each tuning job's trials are asked of, by [`Gang::pool`].
    pools: tokio::sync::Mutex<HashMap<PathBuf, Pool>>,
}

/// A Ray job whose driver runs the gangs asked of it.
#[derive(Debug)]
struct Pool {
    submission: String,
    /// Where its driver reads requests (`requests/`) and the word to end (`done`).
    home: PathBuf,
    /// When it was last asked for a gang.
    used: Instant,
}

#[derive(Debug, Clone, Deserialize)]
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
            answers: Answers::new(),
            pools: tokio::sync::Mutex::new(HashMap::new()),
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

    /// The gang (the id less the rank: `<submission>` or `<submission>/<trial>`) and rank a
    /// replica id names.
    fn parse(id: &str) -> Option<(&str, usize)> {
        let (gang, rank) = id.rsplit_once('/')?;
        Some((gang, rank.parse().ok()?))
    }

    fn attach_to(&self, gang: &Gang, key: &str) -> Vec<Box<dyn Replica>> {
        let followed = self.inner.followed.follow(key.to_string(), &gang.dir);
        (0..gang.replicas.len())
            .map(|rank| {
                Box::new(RayReplica {
                    inner: Arc::clone(&self.inner),
                    key: key.to_string(),
                    rank,
                    gang: gang.clone(),
                    _followed: Arc::clone(&followed),
                }) as Box<dyn Replica>
            })
            .collect()
    }

    /// Asks the launchers of `id`'s gang to send `signal`. A gang's own Ray job is stopped too
    /// with SIGKILL, and a pool's only when this server does not follow the gang (it reclaims
    /// what a previous server left), since the pool runs the job's other trials.
    fn stop(&self, id: &str, signal: &'static str) {
        let Some((key, _)) = Self::parse(id) else {
            return;
        };
        let asked = self
            .inner
            .followed
            .request_stop(&key.to_string(), signal)
            .is_ok();
        let pooled = key.contains('/');
        if asked && (pooled || signal != "SIGKILL") {
            return;
        }
        let (inner, submission) = (Arc::clone(&self.inner), submission_of(key).to_string());
        detached(async move {
            if let Err(error) = inner.stop(&submission).await {
                tracing::warn!(%submission, %error, "could not stop a Ray job");
            }
        });
    }

    /// Submits a Ray job running the driver (written to `dir`) in `mode` (`gang` or `pool`) with
    /// the `kiln` binary and `args`: `python driver.py MODE KILN ARGS...`.
    async fn submit(
        &self,
        submission: &str,
        job_id: &str,
        kiln: &Path,
        dir: &Path,
        mode: &str,
        args: &[String],
    ) -> Result<(), SchedulerError> {
        let driver = dir.join("ray_driver.py");
        std::fs::write(&driver, DRIVER)
            .map_err(|error| SchedulerError::Io(format!("{}: {error}", driver.display())))?;
        let quote = |text: &str| format!("'{}'", text.replace('\'', r"'\''"));
        let mut entrypoint = vec![
            quote(&self.inner.config.python),
            quote(&driver.display().to_string()),
            mode.to_string(),
            quote(&kiln.display().to_string()),
        ];
        entrypoint.extend(args.iter().map(|arg| quote(arg)));
        let body = json!({
            "entrypoint": entrypoint.join(" "),
            "submission_id": submission,
            "metadata": {"kiln_job": job_id},
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
            .map(drop)
            .map_err(|error| SchedulerError::Io(format!("Ray refused the job: {error}")))
    }

    /// The pool that runs the trials of `gang`'s job: the one started for `pool` while it runs
    /// and was used lately, else a new one.
    async fn pool(&self, gang: &Gang, pool: &Path) -> Result<(String, PathBuf), SchedulerError> {
        let mut pools = self.inner.pools.lock().await;
        if let Some(known) = pools.get_mut(pool)
            && known.used.elapsed() < POOL_REUSE
            && matches!(self.inner.ended(&known.submission, None).await, Ok(None))
        {
            known.used = Instant::now();
            return Ok((known.submission.clone(), known.home.clone()));
        }
        let submission = format!("kiln-{}-pool-{}", gang.job_id, millis());
        let home = pool.join("ray").join(&submission);
        let requests = home.join("requests");
        std::fs::create_dir_all(&requests)
            .map_err(|error| SchedulerError::Io(format!("{}: {error}", requests.display())))?;
        let args = [home.display().to_string()];
        self.submit(&submission, &gang.job_id, &gang.kiln, &home, "pool", &args)
            .await?;
        pools.insert(
            pool.to_path_buf(),
            Pool {
                submission: submission.clone(),
                home: home.clone(),
                used: Instant::now(),
            },
        );
        Ok((submission, home))
    }
}

/// The Ray job a gang key (`<submission>` or `<submission>/<trial>`) names.
fn submission_of(key: &str) -> &str {
    key.split('/').next().unwrap_or(key)
}

/// Milliseconds since the epoch, which make submission ids unique.
fn millis() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis())
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

    /// Ray's words for a gang that is over, `None` while it waits or runs: in a pool (`pooled`
    /// names the gang's directory) what the driver recorded of it, else (and when the pool
    /// itself is over) the Ray job's status.
    async fn ended(
        &self,
        submission: &str,
        pooled: Option<&Path>,
    ) -> Result<Option<EngineEnd>, SchedulerError> {
        if let Some(dir) = pooled
            && let Ok(words) = std::fs::read_to_string(dir.join(POOL_END_FILE))
        {
            return Ok(Some(EngineEnd {
                words: format!(
                    "ended as its gang in Ray job {submission} did: {}",
                    words.trim()
                ),
                engine_fault: false,
            }));
        }
        let key = submission.to_string();
        let Some(info) = self.answers.get(&key, || self.job(submission)).await? else {
            return Ok(Some(EngineEnd {
                words: format!(
                    "ended without a record, and Ray no longer knows its job {submission}"
                ),
                engine_fault: false,
            }));
        };
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

    /// Ray's record of a job, `None` when it no longer knows it.
    async fn job(&self, submission: &str) -> Result<Option<JobInfo>, SchedulerError> {
        let request = self
            .rest
            .request(reqwest::Method::GET, &format!("api/jobs/{submission}"));
        let (status, text) = self.rest.send(request).await?;
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|error| self.rest.error(format_args!("answered {status}: {error}")))
    }

    /// Stops a Ray job that still runs.
    async fn stop(&self, submission: &str) -> Result<(), SchedulerError> {
        if !matches!(self.ended(submission, None).await, Ok(None)) {
            return Ok(());
        }
        let path = format!("api/jobs/{submission}/stop");
        self.send(self.rest.request(reqwest::Method::POST, &path))
            .await
            .map(drop)
    }
}

/// A replica running as one task of a Ray job.
struct RayReplica {
    inner: Arc<Inner>,
    /// Its gang's key: `<submission>`, or `<submission>/<trial>` in a pool.
    key: String,
    rank: usize,
    gang: Gang,
    /// Shared by the job's replicas: the executor forgets the job when the last is dropped.
    _followed: Arc<Following<String>>,
}

impl Replica for RayReplica {
    fn id(&self) -> String {
        format!("{}/{}", self.key, self.rank)
    }

    fn wait(&mut self) -> Pending<'_, ExitReport> {
        let inner = Arc::clone(&self.inner);
        let submission = submission_of(&self.key).to_string();
        let pooled = self.key.contains('/').then(|| self.gang.dir.clone());
        Box::pin(crate::gang::follow(&self.gang, self.rank, move || {
            let (inner, submission, pooled) =
                (Arc::clone(&inner), submission.clone(), pooled.clone());
            async move { inner.ended(&submission, pooled.as_deref()).await }
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
            let _ = std::fs::remove_file(gang.dir.join(POOL_END_FILE));
            let need = gang.largest_need();
            let (count, cpus, memory, gpus) = (
                gang.replicas.len(),
                need.cpus.max(1),
                need.memory_mb * 1_000_000,
                need.gpus,
            );
            if let (Some(pool), Some(trial)) = (&gang.pool, &gang.trial) {
                let (submission, home) = self.pool(gang, pool).await?;
                let request = json!({"gang": file, "count": count, "cpus": cpus,
                    "memory": memory, "gpus": gpus});
                let path = home
                    .join("requests")
                    .join(format!("{trial}-{}.json", millis()));
                crate::gang::write_whole(&path, &request.to_string())
                    .map_err(|error| SchedulerError::Io(format!("{}: {error}", path.display())))?;
                return Ok(self.attach_to(gang, &format!("{submission}/{trial}")));
            }
            let submission = format!("kiln-{}-{}", gang.job_id, millis());
            let args = [
                file.display().to_string(),
                count.to_string(),
                cpus.to_string(),
                memory.to_string(),
                gpus.to_string(),
            ];
            self.submit(
                &submission,
                &gang.job_id,
                &gang.kiln,
                &gang.dir,
                "gang",
                &args,
            )
            .await?;
            Ok(self.attach_to(gang, &submission))
        })
    }

    fn attach(&self, gang: &Gang, ids: &[String]) -> Vec<Box<dyn Replica>> {
        match ids.first().and_then(|id| Self::parse(id)) {
            Some((key, _)) => self.attach_to(gang, key),
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
        if submission_of(id).starts_with(&format!("kiln-{job_id}-")) {
            self.stop(id, "SIGKILL");
        }
    }

    fn spans_nodes(&self) -> bool {
        true
    }

    fn largest_node(&self) -> Option<Resources> {
        Some(self.inner.largest)
    }

    fn pool_done(&self, pool: &Path) {
        let (inner, pool) = (Arc::clone(&self.inner), pool.to_path_buf());
        detached(async move {
            if let Some(known) = inner.pools.lock().await.remove(&pool) {
                let done = known.home.join("done");
                if let Err(error) = std::fs::write(&done, "") {
                    tracing::warn!(path = %done.display(), %error, "could not end a Ray pool");
                }
            }
        });
    }

    fn waiting<'a>(&'a self, id: &'a str) -> Pending<'a, Option<String>> {
        Box::pin(async move {
            let submission = submission_of(id);
            let info = self.inner.job(submission).await.ok().flatten()?;
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
        assert_eq!(
            RayExecutor::parse("kiln-j1-pool-17/4/0"),
            Some(("kiln-j1-pool-17/4", 0))
        );
        assert_eq!(RayExecutor::parse("kiln-j1-17"), None);
        assert_eq!(submission_of("kiln-j1-pool-17/4"), "kiln-j1-pool-17");
    }
}

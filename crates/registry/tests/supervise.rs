//! The job lifecycle below the process level: `Jobs` over an in-memory executor whose replicas
//! start (publish their addresses, as launchers do) and end when the test says, so the supervision
//! rules are checked without starting a process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kiln_api::job::{Job, JobState};
use kiln_artifacts::{ArtifactStore, PathPolicy};
use kiln_iam::Principal;
use kiln_registry::{JobSettings, Jobs, Registry};
use kiln_scheduler::program::Runtime;
use kiln_scheduler::{Executor, ExitReport, Gang, Pending, Replica, Sandbox, SchedulerError};
use kiln_store::SqliteStore;
use tokio::sync::oneshot;

/// What happened to the replicas, by task name.
#[derive(Default)]
struct Record {
    /// Task names launched, in order.
    launched: Vec<String>,
    /// Task names asked to stop (SIGTERM), in order.
    terminated: Vec<String>,
    /// How to end each running replica, by task name.
    ends: HashMap<String, oneshot::Sender<ExitReport>>,
    /// Task name of each id.
    names: HashMap<String, String>,
    /// While set, gangs wait for resources: their replicas do not start, and the engine says this.
    waiting: Option<String>,
    /// Gangs launched while the engine waited, started when it stops waiting.
    held: Vec<Gang>,
}

/// Replicas that run until the test ends them, or until they are terminated (exit by SIGTERM).
#[derive(Clone, Default)]
struct InMemory(Arc<Mutex<Record>>);

struct InMemoryReplica {
    id: String,
    end: Option<oneshot::Receiver<ExitReport>>,
}

impl Replica for InMemoryReplica {
    fn id(&self) -> String {
        self.id.clone()
    }

    fn wait(&mut self) -> Pending<'_, ExitReport> {
        let end = self.end.take();
        Box::pin(async move {
            match end {
                Some(end) => end.await.unwrap_or(ExitReport {
                    signal: Some(9),
                    ..ExitReport::default()
                }),
                None => ExitReport::default(),
            }
        })
    }
}

/// Starts a gang's replicas as their launchers would: each publishes its address.
fn start(gang: &Gang) {
    for rank in 0..gang.replicas.len() {
        gang.publish(rank, "127.0.0.1:1", "memory").unwrap();
    }
}

impl InMemory {
    /// Makes gangs wait with `words`, or (`None`) starts those held and stops waiting.
    fn wait_for_resources(&self, words: Option<&str>) {
        let mut record = self.0.lock().unwrap();
        record.waiting = words.map(str::to_string);
        if words.is_none() {
            for gang in record.held.drain(..) {
                start(&gang);
            }
        }
    }

    /// Ends replica `task` with `report`.
    fn end(&self, task: &str, report: ExitReport) {
        let sender = self.0.lock().unwrap().ends.remove(task);
        sender.expect("a running replica").send(report).unwrap();
    }

    fn record<T>(&self, read: impl FnOnce(&Record) -> T) -> T {
        read(&self.0.lock().unwrap())
    }

    fn stop(&self, id: &str, signal: i32) {
        let mut record = self.0.lock().unwrap();
        let Some(name) = record.names.get(id).cloned() else {
            return;
        };
        if signal == 15 {
            record.terminated.push(name.clone());
        }
        if let Some(end) = record.ends.remove(&name) {
            let _ = end.send(ExitReport {
                signal: Some(signal),
                ..ExitReport::default()
            });
        }
    }
}

impl Executor for InMemory {
    fn launch<'a>(
        &'a self,
        gang: &'a Gang,
    ) -> Pending<'a, Result<Vec<Box<dyn Replica>>, SchedulerError>> {
        gang.save().unwrap();
        let mut record = self.0.lock().unwrap();
        match record.waiting.is_some() {
            true => record.held.push(gang.clone()),
            false => start(gang),
        }
        let mut replicas: Vec<Box<dyn Replica>> = Vec::new();
        for spec in &gang.replicas {
            let id = format!("memory-{}", record.launched.len() + 1);
            let (end, wait) = oneshot::channel();
            record.launched.push(spec.task_name.clone());
            record.ends.insert(spec.task_name.clone(), end);
            record.names.insert(id.clone(), spec.task_name.clone());
            replicas.push(Box::new(InMemoryReplica {
                id,
                end: Some(wait),
            }));
        }
        Box::pin(std::future::ready(Ok(replicas)))
    }

    fn attach(&self, _gang: &Gang, _ids: &[String]) -> Vec<Box<dyn Replica>> {
        Vec::new()
    }

    fn terminate(&self, id: &str) {
        self.stop(id, 15);
    }

    fn kill(&self, id: &str) {
        self.stop(id, 9);
    }

    fn reclaim(&self, _id: &str, _job_id: &str) {}

    fn waiting<'a>(&'a self, _id: &'a str) -> Pending<'a, Option<String>> {
        let words = self.0.lock().unwrap().waiting.clone();
        Box::pin(std::future::ready(words))
    }
}

fn jobs(dir: &std::path::Path, executor: InMemory) -> Arc<Jobs> {
    let store = Arc::new(SqliteStore::open(&dir.join("kiln.db")).unwrap());
    let paths = PathPolicy::new(dir, Vec::new());
    let registry = Registry::new(
        store.clone(),
        kiln_registry::Access::new(store.clone(), false),
        ArtifactStore::open(&dir.join("artifacts")).unwrap(),
        paths.clone(),
        kiln_registry::BatchConfig::default(),
        None,
    );
    let settings = JobSettings {
        shared_dir: dir.to_path_buf(),
        runtime: Runtime {
            kiln: "/nonexistent/kiln".into(),
            python: "/nonexistent/python".into(),
        },
        stop_grace: Duration::from_secs(5),
        quota: 100.0,
        paths,
        sandbox: Sandbox::off(),
        allow_unconfined: true,
        job_env: Vec::new(),
        endpoint: None,
    };
    Jobs::new(store, registry, Arc::new(executor), settings)
}

/// A CUSTOM job of a master and two workers running a container command.
fn distributed(job_id: &str) -> Job {
    serde_json::from_value(serde_json::json!({
        "jobId": job_id,
        "trainingInput": {
            "scaleTier": "CUSTOM",
            "masterType": "standard",
            "workerType": "standard",
            "workerCount": 2,
            "masterConfig": {"containerCommand": ["train"]},
        },
    }))
    .unwrap()
}

/// A replica's exit with `code`.
fn exited(code: i32) -> ExitReport {
    ExitReport {
        code: Some(code),
        ..ExitReport::default()
    }
}

async fn until(jobs: &Jobs, job_id: &str, done: impl Fn(&Job) -> bool) -> Job {
    for _ in 0..500 {
        let job = jobs.get("p", job_id).unwrap();
        if done(&job) {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{job_id} never got there: {:?}", jobs.get("p", job_id));
}

async fn launched(executor: &InMemory, count: usize) {
    for _ in 0..500 {
        if executor.record(|record| record.launched.len()) >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{count} replicas never launched");
}

#[tokio::test]
async fn a_failing_worker_fails_the_job_naming_it_and_stops_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let executor = InMemory::default();
    let jobs = jobs(dir.path(), executor.clone());
    jobs.create("p", distributed("fails"), &Principal::anonymous())
        .await
        .unwrap();
    launched(&executor, 3).await;
    until(&jobs, "fails", |job| job.state == JobState::Running).await;
    executor.end("worker-replica-1", exited(3));
    let job = until(&jobs, "fails", |job| job.state == JobState::Failed).await;
    assert!(
        job.error_message
            .starts_with("The replica worker 1 exited with a non-zero status of 3"),
        "{}",
        job.error_message
    );
    let mut terminated = executor.record(|record| record.terminated.clone());
    terminated.sort();
    assert_eq!(terminated, ["master-replica-0", "worker-replica-0"]);
}

#[tokio::test]
async fn the_master_ending_ends_the_job_and_a_cancel_stops_every_replica() {
    let dir = tempfile::tempdir().unwrap();
    let executor = InMemory::default();
    let jobs = jobs(dir.path(), executor.clone());
    jobs.create("p", distributed("done"), &Principal::anonymous())
        .await
        .unwrap();
    launched(&executor, 3).await;
    executor.end("master-replica-0", exited(0));
    let job = until(&jobs, "done", |job| job.state == JobState::Succeeded).await;
    assert!(job.error_message.is_empty(), "{}", job.error_message);
    assert_eq!(
        executor.record(|record| record.terminated.len()),
        2,
        "the workers are stopped once the master is done"
    );

    jobs.create("p", distributed("cancelled"), &Principal::anonymous())
        .await
        .unwrap();
    launched(&executor, 6).await;
    until(&jobs, "cancelled", |job| job.state == JobState::Running).await;
    jobs.cancel("p", "cancelled").unwrap();
    let job = until(&jobs, "cancelled", |job| job.state == JobState::Cancelled).await;
    assert_eq!(job.state, JobState::Cancelled);
    assert_eq!(executor.record(|record| record.terminated.len()), 5);
}

#[tokio::test]
async fn a_job_the_engine_cannot_place_yet_is_queued_with_the_engines_words() {
    let dir = tempfile::tempdir().unwrap();
    let executor = InMemory::default();
    let jobs = jobs(dir.path(), executor.clone());
    executor.wait_for_resources(Some("Slurm job 7 is PENDING (reason: Resources)"));
    jobs.create("p", distributed("waits"), &Principal::anonymous())
        .await
        .unwrap();
    launched(&executor, 3).await;
    let job = until(&jobs, "waits", |job| !job.error_message.is_empty()).await;
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(
        job.error_message,
        "Slurm job 7 is PENDING (reason: Resources)"
    );
    executor.wait_for_resources(None);
    let job = until(&jobs, "waits", |job| job.state == JobState::Running).await;
    assert!(job.error_message.is_empty(), "{}", job.error_message);
    executor.end("master-replica-0", exited(0));
    until(&jobs, "waits", |job| job.state == JobState::Succeeded).await;
}

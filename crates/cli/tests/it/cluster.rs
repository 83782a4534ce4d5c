//! Jobs on a real cluster: Slurm (`bash scripts/dev-cluster.sh slurm up`: two emulated nodes, n1
//! and n2, of 64 CPUs and 256000 MB each) or Ray (`... ray up`: one head node of the same size).
//! Replicas spread over nodes, a `torch.distributed` all-reduce between replicas (between nodes on
//! Slurm), sizes no node has, and a server that cannot reach or use its engine.
//!
//! These run when the environment names a cluster executor (`KILN_EXECUTOR` and the variables
//! `dev-cluster.sh` prints), as CI's cluster passes do; elsewhere they say so and pass, unless
//! `KILN_REQUIRE_CLUSTER` names the engine that must be there. The job suites (`jobs`, `tuning`, `batch`, `sandbox`) run on Slurm in that pass too.

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::{Value, json};

use crate::jobs::{ended, python_job, replica_record, trainer_package, wait_dead, wait_job};
use crate::support::{Server, call, kiln_binary};

/// A cluster engine the tests run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Engine {
    Slurm,
    Ray,
}

/// The cluster executor configured, if any; says so when none is, and fails where one must be
/// (`KILN_REQUIRE_CLUSTER`, as in CI's cluster passes).
fn cluster(test: &str) -> Option<Engine> {
    let engine = match std::env::var("KILN_EXECUTOR").as_deref() {
        Ok("slurm") => Some(Engine::Slurm),
        Ok("ray") => Some(Engine::Ray),
        _ => None,
    };
    let required = std::env::var("KILN_REQUIRE_CLUSTER").ok();
    assert!(
        engine.is_some() || required.is_none(),
        "{test}: KILN_REQUIRE_CLUSTER={required:?} but KILN_EXECUTOR names no cluster"
    );
    if engine.is_none() {
        eprintln!("{test}: skipped, KILN_EXECUTOR is not slurm or ray (scripts/dev-cluster.sh)");
    }
    engine
}

/// A `torch.distributed` trainer: joins the process group from the environment Kiln sets, sums
/// its rank + 1 over all ranks with gloo, and records the result and its node.
const ALL_REDUCE: &str = r#"
import argparse, json, os
import torch, torch.distributed as dist
parser = argparse.ArgumentParser()
parser.add_argument('--job-dir', required=True)
args = parser.parse_args()
dist.init_process_group('gloo')
total = torch.tensor([float(dist.get_rank() + 1)])
dist.all_reduce(total)
os.makedirs(args.job_dir, exist_ok=True)
with open(os.path.join(args.job_dir, 'rank-%d.json' % dist.get_rank()), 'w') as out:
    json.dump({'sum': total.item(), 'world': dist.get_world_size(),
               'node': os.environ.get('SLURMD_NODENAME')}, out)
dist.destroy_process_group()
"#;

/// A server on the Slurm development cluster, and its data directory; `None` (the test says it is
/// skipped) where the executor is not Slurm.
fn slurm_server(test: &str) -> Option<(tempfile::TempDir, Server)> {
    if cluster(test) != Some(Engine::Slurm) {
        return None;
    }
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    Some((data, server))
}

/// On Slurm, that the replicas ran on both of its nodes (Ray's development cluster has one).
fn used_both_nodes(engine: Engine, nodes: &BTreeSet<Option<String>>) {
    if engine == Engine::Slurm {
        let both = BTreeSet::from([Some("n1".to_string()), Some("n2".to_string())]);
        assert_eq!(nodes, &both);
    }
}

#[test]
fn a_torch_distributed_all_reduce_runs_across_two_nodes() {
    let Some(engine) = cluster("a_torch_distributed_all_reduce_runs_across_two_nodes") else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let package = work.path().join("reducer");
    std::fs::create_dir_all(&package).unwrap();
    std::fs::write(package.join("__init__.py"), "").unwrap();
    std::fs::write(package.join("task.py"), ALL_REDUCE).unwrap();
    let job_dir = work.path().join("out");
    // On Slurm a machine type of 64 CPUs fills a node: one replica per node. Ray's development
    // cluster is one node.
    let machine = match engine {
        Engine::Slurm => "n1-standard-64",
        Engine::Ray => "standard",
    };
    let cluster = json!({"scaleTier": "CUSTOM", "masterType": machine,
        "workerType": machine, "workerCount": "1"});
    let mut body: Value =
        serde_json::from_str(&python_job("reduce", &package, &job_dir, &[], cluster)).unwrap();
    body["trainingInput"]["pythonModule"] = json!("reducer.task");
    let (status, job) = call("POST", &server.api("p", "jobs"), Some(&body.to_string()));
    assert_eq!(status, 200, "{job}");
    let job = wait_job(&server, "p", "reduce", ended);
    assert_eq!(job["state"], "SUCCEEDED", "{job}");
    let mut nodes = BTreeSet::new();
    for rank in 0..2 {
        let record: Value = serde_json::from_str(
            &std::fs::read_to_string(job_dir.join(format!("rank-{rank}.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(record["sum"], 3.0, "rank {rank}: {record}");
        assert_eq!(record["world"], 2);
        nodes.insert(record["node"].as_str().map(str::to_string));
    }
    used_both_nodes(engine, &nodes);
}

#[test]
fn a_tf_config_trainer_runs_master_workers_and_a_parameter_server_over_both_nodes() {
    let test = "a_tf_config_trainer_runs_master_workers_and_a_parameter_server_over_both_nodes";
    let Some(engine) = cluster(test) else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let package = trainer_package(work.path());
    let job_dir = work.path().join("out");
    // On Slurm 32 CPUs each: two replicas per node.
    let machine = match engine {
        Engine::Slurm => "complex_model_l",
        Engine::Ray => "standard",
    };
    let cluster = json!({"scaleTier": "CUSTOM", "masterType": machine,
        "workerType": machine, "workerCount": "2",
        "parameterServerType": machine, "parameterServerCount": "1"});
    let body = python_job("spread", &package, &job_dir, &[], cluster);
    assert_eq!(call("POST", &server.api("p", "jobs"), Some(&body)).0, 200);
    let job = wait_job(&server, "p", "spread", ended);
    assert_eq!(job["state"], "SUCCEEDED", "{job}");
    let master = replica_record(&job_dir, "master-0");
    let mut nodes = BTreeSet::new();
    for name in ["master-0", "worker-0", "worker-1", "ps-0"] {
        let record = replica_record(&job_dir, name);
        assert_eq!(
            record["tf_config"]["cluster"], master["tf_config"]["cluster"],
            "{name}"
        );
        nodes.insert(record["node"].as_str().map(str::to_string));
    }
    used_both_nodes(engine, &nodes);
}

#[test]
fn a_replica_larger_than_any_node_is_refused_at_submit() {
    if cluster("a_replica_larger_than_any_node_is_refused_at_submit").is_none() {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let body = json!({"jobId": "huge", "trainingInput": {"scaleTier": "CUSTOM",
        "masterType": "n1-standard-96", "masterConfig": {"containerCommand": ["true"]}}});
    let (status, error) = call("POST", &server.api("p", "jobs"), Some(&body.to_string()));
    assert_eq!(status, 400, "{error}");
    let message = error["error"]["message"].as_str().unwrap();
    for fragment in ["master_type", "96 CPUs", "64 CPUs", "256000 MB"] {
        assert!(message.contains(fragment), "{message}");
    }
    let gpus = json!({"jobId": "gpus", "trainingInput": {"scaleTier": "BASIC_GPU",
        "masterConfig": {"containerCommand": ["true"]}}});
    let (status, error) = call("POST", &server.api("p", "jobs"), Some(&gpus.to_string()));
    assert_eq!(status, 400, "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1 GPUs")
    );
}

#[test]
fn a_server_that_cannot_reach_or_use_its_engine_does_not_start() {
    let Some(engine) = cluster("a_server_that_cannot_reach_or_use_its_engine_does_not_start")
    else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str, &str)] = match engine {
        Engine::Slurm => &[
            ("KILN_SLURM_URL", "http://127.0.0.1:9", "unreachable"),
            ("KILN_SLURM_TOKEN", "not-a-token", "refused"),
            ("KILN_SLURM_PARTITION", "nosuch", "partition \"nosuch\""),
        ],
        Engine::Ray => &[("KILN_RAY_ADDRESS", "http://127.0.0.1:9", "unreachable")],
    };
    let name = match engine {
        Engine::Slurm => "Slurm",
        Engine::Ray => "Ray",
    };
    for &(variable, value, expected) in cases {
        let output = Command::new(kiln_binary())
            .args([
                "server",
                "--bind",
                "127.0.0.1:0",
                "--insecure-no-auth",
                "--data-dir",
            ])
            .arg(data.path())
            .env(variable, value)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{variable}={value}: {stderr}");
        assert!(stderr.contains(expected), "{variable}={value}: {stderr}");
        assert!(stderr.contains(name), "{stderr}");
    }
}

#[test]
fn an_unknown_executor_is_refused_naming_the_known_ones() {
    let data = tempfile::tempdir().unwrap();
    for (flag, variable) in [(Some("kubernetes"), None), (None, Some("nomad"))] {
        let mut command = Command::new(kiln_binary());
        command
            .args(["server", "--bind", "127.0.0.1:0", "--insecure-no-auth"])
            .arg("--data-dir")
            .arg(data.path())
            .env_remove("KILN_EXECUTOR");
        if let Some(flag) = flag {
            command.args(["--executor", flag]);
        }
        if let Some(variable) = variable {
            command.env("KILN_EXECUTOR", variable);
        }
        let output = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{stderr}");
        let named = flag.or(variable).unwrap();
        assert!(stderr.contains(named), "{stderr}");
        assert!(
            stderr.contains("local") && stderr.contains("slurm") && stderr.contains("ray"),
            "the known executors: {stderr}"
        );
    }
}

/// Runs its closure when dropped: puts back what a test took of the shared cluster (a node, a
/// partition, slurmrestd, the nodes a job holds), even when the test fails.
struct Restore<F: FnMut()>(F);

impl<F: FnMut()> Drop for Restore<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

#[test]
fn a_job_slurm_cannot_place_yet_is_queued_with_slurms_reason() {
    let Some((_data, server)) =
        slurm_server("a_job_slurm_cannot_place_yet_is_queued_with_slurms_reason")
    else {
        return;
    };
    // Two replicas of 64 CPUs fill both nodes; the next job waits for them (the other tests' jobs
    // wait too, for as long as this one holds the nodes).
    let filler = json!({"jobId": "filler", "trainingInput": {"scaleTier": "CUSTOM",
        "masterType": "n1-standard-64", "workerType": "n1-standard-64", "workerCount": "1",
        "masterConfig": {"containerCommand": ["sleep", "600"]}}});
    assert_eq!(
        call("POST", &server.api("p", "jobs"), Some(&filler.to_string())).0,
        200
    );
    let holding = Restore(|| {
        call("POST", &server.api("p", "jobs/filler:cancel"), Some("{}"));
    });
    wait_job(&server, "p", "filler", |job| job["state"] == "RUNNING");
    let waiting = json!({"jobId": "waiting", "trainingInput": {"scaleTier": "CUSTOM",
        "masterType": "n1-standard-64", "masterConfig": {"containerCommand": ["true"]}}});
    assert_eq!(
        call("POST", &server.api("p", "jobs"), Some(&waiting.to_string())).0,
        200
    );
    let job = wait_job(&server, "p", "waiting", |job| {
        job["errorMessage"]
            .as_str()
            .is_some_and(|message| message.contains("PENDING"))
    });
    drop(holding);
    assert_eq!(job["state"], "QUEUED", "{job}");
    assert!(
        job["errorMessage"].as_str().unwrap().contains("reason: "),
        "Slurm's reason: {job}"
    );
    let job = wait_job(&server, "p", "waiting", ended);
    assert_eq!(job["state"], "SUCCEEDED", "{job}");
    assert_eq!(job["errorMessage"], Value::Null, "{job}");
}

/// Sets a Slurm node's state with `scontrol` (the environment's `SLURM_CONF`); whether it could.
fn set_node(node: &str, state: &str) -> bool {
    let mut command = Command::new("scontrol");
    command.args([
        "update",
        &format!("nodename={node}"),
        &format!("state={state}"),
    ]);
    if state == "down" {
        command.arg("reason=kiln node failure test");
    }
    command
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Returns node `n2` to service (it may have returned by itself: Slurm's `ReturnToService=2`
/// brings back a node whose daemon answers).
fn resume_n2() {
    set_node("n2", "resume");
}

#[test]
#[ignore = "takes a node of the shared development cluster down: CI runs it alone"]
fn a_node_lost_mid_job_fails_the_job_with_node_fail() {
    let Some((_data, server)) = slurm_server("a_node_lost_mid_job_fails_the_job_with_node_fail")
    else {
        return;
    };
    // One replica per node.
    let body = json!({"jobId": "lost", "trainingInput": {"scaleTier": "CUSTOM",
        "masterType": "n1-standard-64", "workerType": "n1-standard-64", "workerCount": "1",
        "masterConfig": {"containerCommand": ["sleep", "600"]}}});
    assert_eq!(
        call("POST", &server.api("p", "jobs"), Some(&body.to_string())).0,
        200
    );
    wait_job(&server, "p", "lost", |job| job["state"] == "RUNNING");
    let _back = Restore(resume_n2);
    assert!(set_node("n2", "down"), "scontrol could not take n2 down");
    let job = wait_job(&server, "p", "lost", ended);
    assert_eq!(job["state"], "FAILED", "{job}");
    let message = job["errorMessage"].as_str().unwrap();
    assert!(message.contains("NODE_FAIL"), "{message}");
}

#[test]
#[ignore = "takes a node of the shared development cluster down: CI runs it alone"]
fn a_tuning_job_goes_on_when_a_trial_loses_its_node() {
    let Some((_data, server)) = slurm_server("a_tuning_job_goes_on_when_a_trial_loses_its_node")
    else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let release = work.path().join("release");
    // Each trial fills a node, reports `x` once `release` exists, and says it is up first.
    let trainer = format!(
        "touch {up}/up-$CLOUD_ML_TRIAL_ID; while [ ! -e {release} ]; do sleep 0.1; done; \
         mkdir -p \"$(dirname \"$CLOUD_ML_HP_METRIC_FILE\")\"; \
         printf '{{\"score\": %s, \"global_step\": 1}}\\n' \"${{1#--x=}}\" > \"$CLOUD_ML_HP_METRIC_FILE\"",
        up = work.path().display(),
        release = release.display(),
    );
    let body = json!({"jobId": "tune_lost", "trainingInput": {"scaleTier": "CUSTOM",
        "masterType": "n1-standard-64",
        "masterConfig": {"containerCommand": ["sh", "-c", trainer, "trainer"]},
        "hyperparameters": {"goal": "MAXIMIZE", "hyperparameterMetricTag": "score", "maxTrials": 2,
            "maxParallelTrials": 2, "maxFailedTrials": 2, "algorithm": "GRID_SEARCH",
            "params": [{"parameterName": "x", "type": "INTEGER", "minValue": 1, "maxValue": 2}]}}});
    assert_eq!(
        call("POST", &server.api("p", "jobs"), Some(&body.to_string())).0,
        200
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !(work.path().join("up-1").exists() && work.path().join("up-2").exists()) {
        assert!(
            std::time::Instant::now() < deadline,
            "the two trials never both started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let back = Restore(resume_n2);
    assert!(set_node("n2", "down"), "scontrol could not take n2 down");
    let lost = wait_job(&server, "p", "tune_lost", |job| {
        job["trainingOutput"]["trials"]
            .as_array()
            .is_some_and(|trials| trials.iter().any(|trial| trial["state"] == "FAILED"))
    });
    drop(back);
    std::fs::write(&release, "").unwrap();
    let job = wait_job(&server, "p", "tune_lost", ended);
    assert_eq!(
        job["state"], "SUCCEEDED",
        "the other trial carries the job: {lost:#}"
    );
    let trials = job["trainingOutput"]["trials"].as_array().unwrap();
    let failed: Vec<&Value> = trials.iter().filter(|t| t["state"] == "FAILED").collect();
    assert_eq!(failed.len(), 1, "{job:#}");
    assert!(
        failed[0]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("NODE_FAIL"),
        "{job:#}"
    );
    assert!(trials.iter().any(|t| t["state"] == "SUCCEEDED"), "{job:#}");
}

/// `scripts/dev-cluster.sh slurm ACTION`.
fn dev_cluster(action: &str) {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/dev-cluster.sh");
    let status = Command::new("bash")
        .arg(script)
        .args(["slurm", action])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("dev-cluster.sh");
    assert!(status.success(), "dev-cluster.sh slurm {action}");
}

#[test]
#[ignore = "stops the shared development cluster's slurmrestd: CI runs it alone"]
fn a_job_whose_engine_goes_away_fails_naming_it() {
    let Some((_data, server)) = slurm_server("a_job_whose_engine_goes_away_fails_naming_it") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let up = work.path().join("up");
    let body = json!({"jobId": "orphaned", "trainingInput": {
        "masterConfig": {"containerCommand": ["sh", "-c",
            format!("echo $$ > {0}.tmp && mv {0}.tmp {0}; exec sleep 600", up.display())]}}});
    assert_eq!(
        call("POST", &server.api("p", "jobs"), Some(&body.to_string())).0,
        200
    );
    wait_job(&server, "p", "orphaned", |job| {
        job["state"] == "RUNNING" && up.exists()
    });
    let pid: u64 = std::fs::read_to_string(&up)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _back = Restore(|| dev_cluster("rest-start"));
    dev_cluster("rest-stop");
    let job = wait_job(&server, "p", "orphaned", ended);
    assert_eq!(job["state"], "FAILED", "{job}");
    let message = job["errorMessage"].as_str().unwrap();
    assert!(
        message.contains("Slurm at") && message.contains("unreachable"),
        "{message}"
    );
    wait_dead(pid);
}

/// Submits `body` (a job named by its `jobId`) and waits for its end; its state and errorMessage.
fn run_to_end(server: &Server, body: &Value) -> (String, String) {
    assert_eq!(
        call("POST", &server.api("p", "jobs"), Some(&body.to_string())).0,
        200
    );
    let id = body["jobId"].as_str().unwrap();
    let job = wait_job(server, "p", id, ended);
    (
        job["state"].as_str().unwrap().to_string(),
        job["errorMessage"].as_str().unwrap_or_default().to_string(),
    )
}

#[test]
#[ignore = "fills 7.2 GB of the machine's memory: CI runs it alone"]
fn a_replica_out_of_memory_fails_the_job_with_slurms_out_of_memory() {
    let Some((_data, server)) =
        slurm_server("a_replica_out_of_memory_fails_the_job_with_slurms_out_of_memory")
    else {
        return;
    };
    // `tail` keeps all of a line in memory, and /dev/zero has no end of line: the replica's
    // 7,200 MB (complex_model_s), enforced by Slurm's cgroup, run out.
    let body = json!({"jobId": "oom", "trainingInput": {"scaleTier": "CUSTOM",
        "masterType": "complex_model_s",
        "masterConfig": {"containerCommand": ["sh", "-c", "echo filling memory; exec tail -n 1 /dev/zero"]}}});
    let (state, message) = run_to_end(&server, &body);
    assert_eq!(state, "FAILED", "{message}");
    assert!(message.contains("OUT_OF_MEMORY"), "{message}");
    assert!(
        message.contains("filling memory"),
        "the log tail: {message}"
    );
}

#[test]
#[ignore = "preempts whatever runs on the shared development cluster: CI runs it alone"]
fn a_job_slurm_preempts_fails_with_preempted() {
    let Some((_data, server)) = slurm_server("a_job_slurm_preempts_fails_with_preempted") else {
        return;
    };
    let body = json!({"jobId": "preempted", "trainingInput": {"scaleTier": "CUSTOM",
        "masterType": "n1-standard-64", "workerType": "n1-standard-64", "workerCount": "1",
        "masterConfig": {"containerCommand": ["sh", "-c", "echo holding both nodes; exec sleep 600"]}}});
    assert_eq!(
        call("POST", &server.api("p", "jobs"), Some(&body.to_string())).0,
        200
    );
    wait_job(&server, "p", "preempted", |job| job["state"] == "RUNNING");
    // A job of the higher-tier partition takes a node: Slurm cancels Kiln's job to make room.
    let urgent = Command::new("sbatch")
        .args([
            "--partition=urgent",
            "--cpus-per-task=64",
            "--mem-per-cpu=100",
        ])
        .args(["--output=/dev/null", "--wrap=sleep 1"])
        .output()
        .expect("sbatch");
    assert!(
        urgent.status.success(),
        "sbatch to the urgent partition failed: {urgent:?}"
    );
    let job = wait_job(&server, "p", "preempted", ended);
    assert_eq!(job["state"], "FAILED", "{job}");
    let message = job["errorMessage"].as_str().unwrap();
    assert!(message.contains("PREEMPTED"), "{message}");
    assert!(
        message.contains("holding both nodes"),
        "the log tail: {message}"
    );
}

#[test]
#[ignore = "waits out a Slurm time limit of a minute: CI runs it alone"]
fn a_job_past_slurms_time_limit_while_no_server_runs_fails_with_timeout() {
    let Some((data, server)) =
        slurm_server("a_job_past_slurms_time_limit_while_no_server_runs_fails_with_timeout")
    else {
        return;
    };
    // Kiln's own limit acts first while a server runs; with none, Slurm's (at least half a minute
    // later, in whole minutes: here one) does.
    let body = json!({"jobId": "overtime", "trainingInput": {
        "scheduling": {"maxRunningTime": "20s"},
        "masterConfig": {"containerCommand": ["sh", "-c", "echo still going; exec sleep 600"]}}});
    assert_eq!(
        call("POST", &server.api("p", "jobs"), Some(&body.to_string())).0,
        200
    );
    wait_job(&server, "p", "overtime", |job| job["state"] == "RUNNING");
    server.kill();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(240);
    loop {
        let queued = Command::new("squeue")
            .args(["--noheader", "--name=kiln-overtime", "--format=%T"])
            .output()
            .expect("squeue");
        if queued.status.success() && queued.stdout.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Slurm never ended the job at its time limit"
        );
        std::thread::sleep(std::time::Duration::from_secs(2));
    }
    let server = Server::start(data.path());
    let job = wait_job(&server, "p", "overtime", ended);
    assert_eq!(job["state"], "FAILED", "{job}");
    let message = job["errorMessage"].as_str().unwrap();
    assert!(message.contains("TIMEOUT"), "{message}");
    assert!(message.contains("still going"), "the log tail: {message}");
}

/// Sets the development cluster's `debug` partition's state with `scontrol`; whether it could.
fn set_partition(state: &str) -> bool {
    Command::new("scontrol")
        .args(["update", "partitionname=debug", &format!("state={state}")])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

#[test]
#[ignore = "takes the shared development cluster's partition out of service: CI runs it alone"]
fn a_job_slurm_refuses_fails_with_slurms_words() {
    let Some((_data, server)) = slurm_server("a_job_slurm_refuses_fails_with_slurms_words") else {
        return;
    };
    let _back = Restore(|| {
        set_partition("up");
    });
    // An inactive partition takes no job: Slurm refuses the submission itself.
    assert!(
        set_partition("inactive"),
        "scontrol could not deactivate the partition"
    );
    let body = json!({"jobId": "refused", "trainingInput": {
        "masterConfig": {"containerCommand": ["true"]}}});
    let (state, message) = run_to_end(&server, &body);
    assert_eq!(state, "FAILED", "{message}");
    assert!(message.contains("Slurm refused the job: "), "{message}");
    assert!(
        message.to_lowercase().contains("partition"),
        "Slurm's words: {message}"
    );
}

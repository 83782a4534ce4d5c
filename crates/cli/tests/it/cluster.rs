//! Jobs on a real Slurm cluster (`bash scripts/dev-cluster.sh slurm up`: two emulated nodes, n1 and
//! n2, of 64 CPUs and 256000 MB each): replicas spread over nodes, a `torch.distributed` all-reduce
//! between nodes, sizes no node has, and a server that cannot reach or use Slurm.
//!
//! These run when the environment names the Slurm executor (`KILN_EXECUTOR=slurm` and the
//! `KILN_SLURM_*` variables `dev-cluster.sh` prints), as CI's Slurm pass does; elsewhere they say
//! so and pass, unless `KILN_REQUIRE_CLUSTER=slurm` says they must run. The job suites (`jobs`, `tuning`, `batch`, `sandbox`) run on Slurm in that pass too.

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::{Value, json};

use crate::jobs::{ended, python_job, replica_record, trainer_package, wait_job};
use crate::support::{Server, call, kiln_binary};

/// Whether the Slurm executor is configured; says so when not, and fails where it must be
/// (`KILN_REQUIRE_CLUSTER=slurm`, as in CI's Slurm pass).
fn on_slurm(test: &str) -> bool {
    let configured = std::env::var("KILN_EXECUTOR").is_ok_and(|executor| executor == "slurm");
    let required = std::env::var("KILN_REQUIRE_CLUSTER").is_ok_and(|engine| engine == "slurm");
    assert!(
        configured || !required,
        "{test}: KILN_REQUIRE_CLUSTER=slurm but KILN_EXECUTOR is not slurm"
    );
    if !configured {
        eprintln!("{test}: skipped, KILN_EXECUTOR is not slurm (scripts/dev-cluster.sh slurm up)");
    }
    configured
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

#[test]
fn a_torch_distributed_all_reduce_runs_across_two_nodes() {
    if !on_slurm("a_torch_distributed_all_reduce_runs_across_two_nodes") {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let package = work.path().join("reducer");
    std::fs::create_dir_all(&package).unwrap();
    std::fs::write(package.join("__init__.py"), "").unwrap();
    std::fs::write(package.join("task.py"), ALL_REDUCE).unwrap();
    let job_dir = work.path().join("out");
    // A machine type of 64 CPUs fills a node: one replica per node.
    let cluster = json!({"scaleTier": "CUSTOM", "masterType": "n1-standard-64",
        "workerType": "n1-standard-64", "workerCount": "1"});
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
        nodes.insert(record["node"].as_str().unwrap().to_string());
    }
    assert_eq!(nodes, BTreeSet::from(["n1".into(), "n2".into()]));
}

#[test]
fn a_tf_config_trainer_runs_master_workers_and_a_parameter_server_over_both_nodes() {
    if !on_slurm("a_tf_config_trainer_runs_master_workers_and_a_parameter_server_over_both_nodes") {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let package = trainer_package(work.path());
    let job_dir = work.path().join("out");
    // 32 CPUs each: two replicas per node.
    let cluster = json!({"scaleTier": "CUSTOM", "masterType": "complex_model_l",
        "workerType": "complex_model_l", "workerCount": "2",
        "parameterServerType": "complex_model_l", "parameterServerCount": "1"});
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
        nodes.insert(record["node"].as_str().unwrap().to_string());
    }
    assert_eq!(nodes, BTreeSet::from(["n1".into(), "n2".into()]));
}

#[test]
fn a_replica_larger_than_any_node_is_refused_at_submit() {
    if !on_slurm("a_replica_larger_than_any_node_is_refused_at_submit") {
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
fn a_server_that_cannot_reach_or_use_slurm_does_not_start() {
    if !on_slurm("a_server_that_cannot_reach_or_use_slurm_does_not_start") {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let cases = [
        ("KILN_SLURM_URL", "http://127.0.0.1:9", "unreachable"),
        ("KILN_SLURM_TOKEN", "not-a-token", "refused"),
        ("KILN_SLURM_PARTITION", "nosuch", "partition \"nosuch\""),
    ];
    for (variable, value, expected) in cases {
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
        assert!(stderr.contains("Slurm"), "{stderr}");
    }
}

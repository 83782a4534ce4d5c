//! Training jobs over HTTP and the CLI: Python trainers written for ML Engine, distributed
//! replicas and their TF_CONFIG, failures, cancel, time limits, built-in algorithms, restarts.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Server, call, call_as, census, file_uri, kiln, wait_operation};

/// A trainer as ML Engine users write them: reads TF_CONFIG, writes under --job-dir.
const TRAINER: &str = r#"
import argparse, json, os, signal, sys, time
parser = argparse.ArgumentParser()
parser.add_argument('--job-dir', required=True)
parser.add_argument('--mode', default='ok')
parser.add_argument('--sleep', type=float, default=0)
args = parser.parse_args()
# Before the record below, which tests take as the sign that the trainer is up.
if args.mode == 'stubborn':
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
tf_config = json.loads(os.environ['TF_CONFIG'])
task = tf_config['task']
name = '%s-%d' % (task['type'], task['index'])
os.makedirs(args.job_dir, exist_ok=True)
# Written whole, then renamed: a test that sees the file reads all of it.
record = os.path.join(args.job_dir, name + '.json')
with open(record + '.tmp', 'w') as out:
    json.dump({'tf_config': tf_config, 'job_id': os.environ.get('CLOUD_ML_JOB_ID'),
               'secret': os.environ.get('KILN_TEST_SECRET'), 'pid': os.getpid(),
               'torch': {k: os.environ.get(k) for k in ('MASTER_ADDR', 'MASTER_PORT', 'WORLD_SIZE', 'RANK')},
               'node': os.environ.get('SLURMD_NODENAME')}, out)
os.replace(record + '.tmp', record)
print('hello from', name, flush=True)
if args.mode == 'fail':
    print('about to fail', flush=True)
    print('boom: something broke', file=sys.stderr, flush=True)
    sys.exit(3)
if task['type'] == 'ps':
    time.sleep(3600)
if task['type'] in ('master', 'chief'):
    cluster = tf_config['cluster']
    expected = sum(len(cluster[role]) for role in cluster)
    deadline = time.time() + 30
    while len([f for f in os.listdir(args.job_dir) if f.endswith('.json')]) < expected and time.time() < deadline:
        time.sleep(0.05)
time.sleep(args.sleep)
print('done', name, flush=True)
"#;

/// A package directory `trainer/` with the trainer as `trainer.task`.
pub(crate) fn trainer_package(root: &Path) -> PathBuf {
    let package = root.join("trainer");
    std::fs::create_dir_all(&package).unwrap();
    std::fs::write(package.join("__init__.py"), "").unwrap();
    std::fs::write(package.join("task.py"), TRAINER).unwrap();
    package
}

/// The trainer package as an sdist, `trainer-0.1.tar.gz` in `dist`, built from a copy under
/// `root`.
pub(crate) fn trainer_sdist(root: &Path, dist: &Path) -> PathBuf {
    let source = root.join("source");
    trainer_package(&source);
    std::fs::write(
        source.join("setup.py"),
        "from setuptools import setup\nsetup(name='trainer', version='0.1', packages=['trainer'])\n",
    )
    .unwrap();
    let built = Command::new("python3")
        .args(["setup.py", "-q", "sdist", "--dist-dir"])
        .arg(dist)
        .current_dir(&source)
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    dist.join("trainer-0.1.tar.gz")
}

pub(crate) fn python_job(
    id: &str,
    package: &Path,
    job_dir: &Path,
    args: &[&str],
    extra: Value,
) -> String {
    let mut input = json!({
        "pythonModule": "trainer.task",
        "packageUris": [file_uri(package)],
        "jobDir": job_dir.display().to_string(),
        "args": args,
        "region": "us-central1",
    });
    if let (Value::Object(input), Value::Object(extra)) = (&mut input, extra) {
        input.extend(extra);
    }
    json!({"jobId": id, "trainingInput": input}).to_string()
}

pub(crate) fn wait_job(
    server: &Server,
    project: &str,
    id: &str,
    until: impl Fn(&Value) -> bool,
) -> Value {
    wait_job_as(None, server, project, id, until)
}

/// [`wait_job`] with a bearer token.
pub(crate) fn wait_job_as(
    token: Option<&str>,
    server: &Server,
    project: &str,
    id: &str,
    until: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let url = server.api(project, &format!("jobs/{id}"));
        let (status, job) = call_as(token, "GET", &url, None);
        assert_eq!(status, 200, "{job}");
        if until(&job) {
            return job;
        }
        assert!(Instant::now() < deadline, "job {id} stuck: {job}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(crate) fn ended(job: &Value) -> bool {
    matches!(
        job["state"].as_str(),
        Some("SUCCEEDED" | "FAILED" | "CANCELLED")
    )
}

pub(crate) fn alive(pid: u64) -> bool {
    // A zombie is dead for our purpose: its process group was killed.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| !stat.contains(") Z "))
}

pub(crate) fn wait_dead(pid: u64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while alive(pid) {
        assert!(Instant::now() < deadline, "process {pid} is still alive");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(crate) fn replica_record(job_dir: &Path, name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(job_dir.join(format!("{name}.json"))).unwrap())
        .unwrap()
}

#[test]
fn a_distributed_python_job_gives_each_replica_its_tf_config() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(data.path(), &[("KILN_TEST_SECRET", "hunter2")]);
    let package = trainer_package(work.path());
    let job_dir = work.path().join("out");
    let cluster = json!({"scaleTier": "CUSTOM", "masterType": "complex_model_m", "workerType": "standard",
        "workerCount": "2", "parameterServerType": "large_model", "parameterServerCount": "1"});
    let body = python_job("dist_job", &package, &job_dir, &["--mode", "ok"], cluster);
    let (status, job) = call("POST", &server.api("p", "jobs"), Some(&body));
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["state"], "QUEUED");
    assert!(job["createTime"].is_string());
    let job = wait_job(&server, "p", "dist_job", ended);
    assert_eq!(job["state"], "SUCCEEDED", "{job}");
    assert!(job["startTime"].is_string() && job["endTime"].is_string());
    assert!(
        job["trainingOutput"]["consumedMLUnits"].as_f64().unwrap() > 0.0,
        "{job}"
    );

    let master = replica_record(&job_dir, "master-0");
    let cluster = &master["tf_config"]["cluster"];
    assert_eq!(cluster["worker"].as_array().unwrap().len(), 2);
    assert_eq!(cluster["ps"].as_array().unwrap().len(), 1);
    assert_eq!(master["tf_config"]["environment"], "cloud");
    assert_eq!(master["tf_config"]["job"]["workerCount"], "2");
    assert_eq!(master["job_id"], "dist_job");
    assert_eq!(
        master["secret"],
        Value::Null,
        "server environment does not reach trainers"
    );
    let master_address = cluster["master"][0].as_str().unwrap();
    let (master_host, master_port) = master_address.rsplit_once(':').unwrap();
    for (name, kind, index, rank) in [
        ("master-0", "master", 0, Some("0")),
        ("worker-0", "worker", 0, Some("1")),
        ("worker-1", "worker", 1, Some("2")),
        ("ps-0", "ps", 0, None),
    ] {
        let record = replica_record(&job_dir, name);
        assert_eq!(
            &record["tf_config"]["cluster"], cluster,
            "{name} sees the same cluster"
        );
        assert_eq!(
            record["tf_config"]["task"],
            json!({"type": kind, "index": index, "cloud": "kiln-dist_job"})
        );
        let torch = match rank {
            Some(rank) => json!({"MASTER_ADDR": master_host, "MASTER_PORT": master_port,
                "WORLD_SIZE": "3", "RANK": rank}),
            None => {
                json!({"MASTER_ADDR": null, "MASTER_PORT": null, "WORLD_SIZE": null, "RANK": null})
            }
        };
        assert_eq!(
            record["torch"], torch,
            "{name}'s torch.distributed environment"
        );
    }
    wait_dead(replica_record(&job_dir, "ps-0")["pid"].as_u64().unwrap());

    let (_, logs) = call("GET", &server.api("p", "jobs/dist_job/logs"), None);
    let messages: Vec<&str> = logs["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["message"].as_str().unwrap())
        .collect();
    assert!(
        messages.contains(&"hello from master-0") && messages.contains(&"hello from worker-1"),
        "{messages:?}"
    );
    let (_, master_logs) = call(
        "GET",
        &server.api(
            "p",
            "jobs/dist_job/logs?taskName=master-replica-0&pageSize=1",
        ),
        None,
    );
    assert_eq!(master_logs["entries"].as_array().unwrap().len(), 1);
    assert_eq!(master_logs["entries"][0]["taskName"], "master-replica-0");
    assert_eq!(master_logs["entries"][0]["severity"], "INFO");

    let (_, list) = call(
        "GET",
        &server.api("p", "jobs?filter=jobId:dist*%20AND%20state:SUCCEEDED"),
        None,
    );
    assert_eq!(list["jobs"].as_array().unwrap().len(), 1);
    let (_, none) = call("GET", &server.api("p", "jobs?filter=state:FAILED"), None);
    assert_eq!(none, json!({}));
    let grouped =
        "jobs?filter=(jobId:none%20OR%20jobId:dist*)%20NOT%20(state:FAILED%20OR%20state:CANCELLED)";
    let (_, list) = call("GET", &server.api("p", grouped), None);
    assert_eq!(list["jobs"].as_array().unwrap().len(), 1, "{list}");
    let excluded = "jobs?filter=jobId:dist*%20AND%20-(state:SUCCEEDED)";
    let (_, none) = call("GET", &server.api("p", excluded), None);
    assert_eq!(none, json!({}));
}

#[test]
fn a_failing_trainer_names_the_replica_the_cause_and_its_last_lines() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let package = trainer_package(work.path());
    let body = python_job(
        "fails",
        &package,
        &work.path().join("out"),
        &["--mode", "fail"],
        json!({}),
    );
    call("POST", &server.api("p", "jobs"), Some(&body));
    let job = wait_job(&server, "p", "fails", ended);
    assert_eq!(job["state"], "FAILED");
    let message = job["errorMessage"].as_str().unwrap();
    assert!(
        message.contains("The replica master 0 exited with a non-zero status of 3"),
        "{message}"
    );
    assert!(
        message.contains("about to fail") && message.contains("boom: something broke"),
        "{message}"
    );
}

#[test]
fn cancel_and_max_running_time_stop_the_whole_job() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let package = trainer_package(work.path());

    let cancel_dir = work.path().join("cancel");
    call(
        "POST",
        &server.api("p", "jobs"),
        Some(&python_job(
            "to_cancel",
            &package,
            &cancel_dir,
            &["--sleep", "600"],
            json!({}),
        )),
    );
    wait_job(&server, "p", "to_cancel", |job| {
        job["state"] == "RUNNING" && cancel_dir.join("master-0.json").exists()
    });
    let pid = replica_record(&cancel_dir, "master-0")["pid"]
        .as_u64()
        .unwrap();
    let (status, body) = call(
        "POST",
        &server.api("p", "jobs/to_cancel:cancel"),
        Some("{}"),
    );
    assert_eq!((status, body), (200, json!({})));
    let job = wait_job(&server, "p", "to_cancel", ended);
    assert_eq!(job["state"], "CANCELLED", "{job}");
    wait_dead(pid);
    let (status, error) = call(
        "POST",
        &server.api("p", "jobs/to_cancel:cancel"),
        Some("{}"),
    );
    assert_eq!(status, 400, "an ended job cannot be cancelled: {error}");

    // A trainer that ignores SIGTERM is killed after the grace period.
    let stubborn_dir = work.path().join("stubborn");
    let body = python_job(
        "stubborn",
        &package,
        &stubborn_dir,
        &["--mode", "stubborn", "--sleep", "600"],
        json!({}),
    );
    call("POST", &server.api("p", "jobs"), Some(&body));
    wait_job(&server, "p", "stubborn", |job| {
        job["state"] == "RUNNING" && stubborn_dir.join("master-0.json").exists()
    });
    let pid = replica_record(&stubborn_dir, "master-0")["pid"]
        .as_u64()
        .unwrap();
    assert_eq!(
        call("POST", &server.api("p", "jobs/stubborn:cancel"), Some("{}")).0,
        200
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(alive(pid), "SIGTERM alone does not stop it");
    assert_eq!(
        wait_job(&server, "p", "stubborn", ended)["state"],
        "CANCELLED"
    );
    wait_dead(pid);

    let limit = json!({"scheduling": {"maxRunningTime": "1s"}});
    call(
        "POST",
        &server.api("p", "jobs"),
        Some(&python_job(
            "too_long",
            &package,
            &work.path().join("long"),
            &["--sleep", "600"],
            limit,
        )),
    );
    let job = wait_job(&server, "p", "too_long", ended);
    assert_eq!(job["state"], "CANCELLED");
    assert!(
        job["errorMessage"]
            .as_str()
            .unwrap()
            .contains("maxRunningTime (1s)"),
        "{job}"
    );
}

#[test]
fn a_builtin_algorithm_job_exports_a_model_that_deploys() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let job_dir = work.path().join("census");
    let census = census();
    let body = json!({"jobId": "census_builtin", "trainingInput": {
        "scaleTier": "BASIC",
        "masterConfig": {"imageUri": "gcr.io/cloud-ml-algos/wide_deep_learner_cpu"},
        "args": [
            format!("--training_data_path={}", census.join("adult.data.csv.gz").display()),
            format!("--validation_data_path={}", census.join("adult.test.csv.gz").display()),
            format!("--schema={}", census.join("schema.yaml").display()),
            "--num_epochs=1",
        ],
        "jobDir": job_dir.display().to_string(),
        "region": "us-central1",
    }})
    .to_string();
    let (status, job) = call("POST", &server.api("p", "jobs"), Some(&body));
    assert_eq!(status, 200, "{job}");
    let job = wait_job(&server, "p", "census_builtin", ended);
    assert_eq!(job["state"], "SUCCEEDED", "{job}");
    let output = &job["trainingOutput"];
    assert_eq!(output["isBuiltInAlgorithmJob"], true);
    let model_path = output["builtInAlgorithmOutput"]["modelPath"]
        .as_str()
        .unwrap();
    assert_eq!(model_path, job_dir.join("model").display().to_string());
    let (_, logs) = call("GET", &server.api("p", "jobs/census_builtin/logs"), None);
    assert!(logs["entries"].as_array().unwrap().iter().any(|entry| {
        entry["message"]
            .as_str()
            .unwrap()
            .starts_with("eval after epoch 1")
    }));

    // The curves: from the event files the trainer wrote, through the API and through TensorBoard.
    let (status, metrics) = call("GET", &server.api("p", "jobs/census_builtin/metrics"), None);
    assert_eq!(status, 200, "{metrics}");
    let series = |run: &str, tag: &str| -> Vec<Value> {
        metrics["series"]
            .as_array()
            .unwrap()
            .iter()
            .find(|series| series["run"] == run && series["tag"] == tag)
            .and_then(|series| series["points"].as_array().cloned())
            .unwrap_or_else(|| panic!("no {run}/{tag} in {metrics}"))
    };
    let accuracy = series("eval", "accuracy");
    assert_eq!(accuracy.len(), 1, "one evaluation per epoch");
    let reported = job["trainingOutput"]["builtInAlgorithmOutput"].clone();
    assert!(
        accuracy[0]["value"].as_f64().unwrap() > 0.8,
        "{accuracy:?} {reported}"
    );
    let loss = series("train", "loss");
    assert!(loss.len() >= 4, "a point every 100 steps: {loss:?}");
    assert!(
        loss.windows(2)
            .all(|w| w[0]["step"].as_i64() < w[1]["step"].as_i64())
    );
    assert!(!series("train", "examples_per_second").is_empty());
    let read = Command::new("python3")
        .args([
            "-c",
            "import sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator as A
a = A(sys.argv[1]); a.Reload()
print(' '.join(f'{e.step}:{e.value:.6f}' for e in a.Scalars('accuracy')))",
        ])
        .arg(job_dir.join("eval"))
        .output()
        .expect("python3");
    assert!(
        read.status.success(),
        "{}",
        String::from_utf8_lossy(&read.stderr)
    );
    let tensorboard = String::from_utf8_lossy(&read.stdout).trim().to_string();
    assert_eq!(
        tensorboard,
        format!(
            "{}:{:.6}",
            accuracy[0]["step"],
            accuracy[0]["value"].as_f64().unwrap()
        ),
        "TensorBoard reads the same scalars"
    );

    call(
        "POST",
        &server.api("p", "models"),
        Some(r#"{"name": "census"}"#),
    );
    let (_, operation) = call(
        "POST",
        &server.api("p", "models/census/versions"),
        Some(&json!({"name": "v1", "deploymentUri": model_path}).to_string()),
    );
    assert!(
        wait_operation(&server, "p", &operation)
            .get("error")
            .is_none()
    );
    let instance = std::fs::read_to_string(census.join("test.json")).unwrap();
    let (status, predictions) = call(
        "POST",
        &server.api("p", "models/census:predict"),
        Some(&format!(
            "{{\"instances\": [{}]}}",
            instance.lines().next().unwrap()
        )),
    );
    assert_eq!(status, 200, "{predictions}");
}

#[test]
fn invalid_jobs_are_refused_with_every_problem_named() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let jobs = server.api("p", "jobs");
    let cases: &[(Value, u16, &[&str])] = &[
        (
            json!({"jobId": "1bad", "trainingInput": {"pythonModule": "t", "packageUris": ["/tmp"]}}),
            400,
            &["jobId \"1bad\" is invalid"],
        ),
        (
            json!({"jobId": "no_input"}),
            400,
            &["a job needs a trainingInput"],
        ),
        (
            json!({"jobId": "custom", "trainingInput": {"scaleTier": "CUSTOM", "workerCount": "2", "pythonModule": "t", "packageUris": ["/tmp"]}}),
            400,
            &["master_type", "worker_type"],
        ),
        (
            json!({"jobId": "machine", "trainingInput": {"scaleTier": "CUSTOM", "masterType": "huge", "pythonModule": "t", "packageUris": ["/tmp"]}}),
            400,
            &["machine type \"huge\""],
        ),
        (
            json!({"jobId": "image", "trainingInput": {"masterConfig": {"imageUri": "gcr.io/me/trainer"}}}),
            400,
            &["no container engine"],
        ),
        (
            json!({"jobId": "hp", "trainingInput": {"pythonModule": "t", "packageUris": ["/tmp"], "hyperparameters": {"goal": "MAXIMIZE"}}}),
            400,
            &["hyperparameters.params Error: a tuning job needs at least one parameter"],
        ),
        (
            json!({"jobId": "dir", "trainingInput": {"pythonModule": "t", "packageUris": ["/tmp"], "jobDir": "out"}}),
            400,
            &["job_dir"],
        ),
        (
            json!({"jobId": "time", "trainingInput": {"pythonModule": "t", "packageUris": ["/tmp"], "scheduling": {"maxRunningTime": "soon"}}}),
            400,
            &["max_running_time"],
        ),
        (
            json!({"jobId": "count", "trainingInput": {"pythonModule": "t", "packageUris": ["/tmp"], "workerCount": "many"}}),
            400,
            &["workerCount"],
        ),
        (
            json!({"jobId": "batch", "predictionInput": {"dataFormat": "JSON"}}),
            400,
            &["modelName", "input_paths", "output_path"],
        ),
    ];
    let validate = format!("{jobs}?validateOnly=true");
    for (body, status, fragments) in cases {
        let (actual, error) = call("POST", &jobs, Some(&body.to_string()));
        assert_eq!(actual, *status, "{body}: {error}");
        let message = error["error"]["message"].as_str().unwrap();
        for fragment in *fragments {
            assert!(
                message.contains(fragment),
                "{body}: {message:?} lacks {fragment:?}"
            );
        }
        let checked = call("POST", &validate, Some(&body.to_string()));
        assert_eq!(checked, (actual, error), "validateOnly answers as create");
    }
    let (status, _) = call("GET", &server.api("p", "jobs/absent"), None);
    assert_eq!(status, 404);
    let ok = json!({"jobId": "twice", "trainingInput": {"masterConfig": {"containerCommand": ["true"]}}}).to_string();
    let (status, checked) = call("POST", &validate, Some(&ok));
    assert_eq!((status, checked["state"].as_str()), (200, Some("QUEUED")));
    assert_eq!(call("GET", &server.api("p", "jobs/twice"), None).0, 404);
    let (status, error) = call("POST", &format!("{jobs}?validateOnly=yes"), Some(&ok));
    assert_eq!(status, 400);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("validateOnly")
    );
    assert_eq!(call("POST", &jobs, Some(&ok)).0, 200);
    assert_eq!(call("POST", &jobs, Some(&ok)).0, 409);
    assert_eq!(call("POST", &validate, Some(&ok)).0, 409);
}

#[test]
fn a_job_outlives_a_killed_server_and_the_next_one_takes_it_over() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let package = trainer_package(work.path());
    let (orphan_dir, finisher_dir) = (work.path().join("orphan"), work.path().join("finisher"));
    for (id, dir, sleep) in [
        ("orphan", &orphan_dir, "600"),
        ("finisher", &finisher_dir, "8"),
    ] {
        let body = python_job(id, &package, dir, &["--sleep", sleep], json!({}));
        assert_eq!(call("POST", &server.api("p", "jobs"), Some(&body)).0, 200);
    }
    for (id, dir) in [("orphan", &orphan_dir), ("finisher", &finisher_dir)] {
        wait_job(&server, "p", id, |job| {
            job["state"] == "RUNNING" && dir.join("master-0.json").exists()
        });
    }
    let pid = replica_record(&orphan_dir, "master-0")["pid"]
        .as_u64()
        .unwrap();
    let killed = server.pid();
    server.kill();
    assert!(alive(pid), "the trainer outlives the killed server");

    let server = Server::start(data.path());
    let (_, orphan) = call("GET", &server.api("p", "jobs/orphan"), None);
    assert_eq!(orphan["state"], "RUNNING", "{orphan}");
    let finisher = wait_job(&server, "p", "finisher", ended);
    assert_eq!(finisher["state"], "SUCCEEDED", "{finisher}");
    let (_, logs) = call("GET", &server.api("p", "jobs/finisher/logs"), None);
    let entries = logs["entries"].as_array().unwrap();
    let of = |service: bool| -> Vec<&str> {
        entries
            .iter()
            .filter(|entry| (entry["taskName"] == "service") == service)
            .filter_map(|entry| entry["message"].as_str())
            .collect()
    };
    assert_eq!(
        of(false),
        ["hello from master-0", "done master-0"],
        "the log goes on across the restart"
    );
    let taken = of(true);
    assert!(
        taken.len() == 1 && taken[0].contains(&format!(":{killed}:")),
        "the new server says once that it took the job over from the killed one: {taken:?}"
    );
    assert!(alive(pid));
    let (status, _) = call("POST", &server.api("p", "jobs/orphan:cancel"), Some("{}"));
    assert_eq!(status, 200);
    assert_eq!(
        wait_job(&server, "p", "orphan", ended)["state"],
        "CANCELLED"
    );
    wait_dead(pid);
}

#[test]
fn the_cli_submits_with_a_config_file_and_streams_logs() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let package = trainer_package(work.path());
    let config = work.path().join("job.yaml");
    std::fs::write(
        &config,
        "trainingInput:\n  scaleTier: STANDARD_1\n  region: us-central1\n",
    )
    .unwrap();
    let job_dir = work.path().join("out").display().to_string();
    let package = package.display().to_string();
    let config = config.display().to_string();
    let output = kiln(&[
        "--endpoint",
        &server.url,
        "--project",
        "p",
        "ai-platform",
        "jobs",
        "submit",
        "training",
        "cli_job",
        "--module-name",
        "trainer.task",
        "--package-path",
        &package,
        "--job-dir",
        &job_dir,
        "--config",
        &config,
        "--scale-tier",
        "basic",
        "--stream-logs",
        "--",
        "--mode",
        "ok",
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("master-replica-0\thello from master-0"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("worker"),
        "the --scale-tier flag overrides the config's STANDARD_1: {stdout}"
    );
    let (_, job) = call("GET", &server.api("p", "jobs/cli_job"), None);
    assert_eq!(job["trainingInput"]["scaleTier"], "BASIC");
    assert_eq!(
        job["trainingInput"]["region"], "us-central1",
        "the config's other fields stay"
    );

    let listed = kiln(&[
        "--endpoint",
        &server.url,
        "--project",
        "p",
        "jobs",
        "list",
        "--filter",
        "state:SUCCEEDED",
    ]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("cli_job"));
    let failing = kiln(&[
        "--endpoint",
        &server.url,
        "--project",
        "p",
        "jobs",
        "submit",
        "training",
        "cli_fail",
        "--module-name",
        "trainer.task",
        "--package-path",
        &package,
        "--job-dir",
        &job_dir,
        "--stream-logs",
        "--",
        "--mode",
        "fail",
    ]);
    assert!(!failing.status.success(), "a failed job fails the command");
    assert!(
        String::from_utf8_lossy(&failing.stderr).contains("exited with a non-zero status of 3")
    );
}

/// A server whose quota fits one BASIC job (0.3878 ML units) at a time.
fn one_job_server(data: &Path) -> Server {
    Server::start_with_env(data, &[("KILN_QUOTA_ML_UNITS", "0.4")])
}

#[test]
fn a_busy_server_queues_jobs_in_order_and_enforces_max_wait_time() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = one_job_server(data.path());
    let package = trainer_package(work.path());
    let jobs = server.api("p", "jobs");
    let submit = |id: &str, args: &[&str], extra: Value| {
        let (status, job) = call(
            "POST",
            &jobs,
            Some(&python_job(
                id,
                &package,
                &work.path().join(id),
                args,
                extra,
            )),
        );
        assert_eq!(status, 200, "{job}");
        job
    };

    submit("first", &["--sleep", "1.5"], json!({}));
    wait_job(&server, "p", "first", |job| job["state"] == "RUNNING");
    let second = submit("second", &[], json!({}));
    assert_eq!(
        (second["state"].clone(), second["jobPosition"].clone()),
        (json!("QUEUED"), json!("1")),
        "{second}"
    );
    let impatient = submit(
        "impatient",
        &[],
        json!({"scheduling": {"maxWaitTime": "0.3s"}}),
    );
    assert_eq!(impatient["jobPosition"], "2");
    let job = wait_job(&server, "p", "impatient", ended);
    assert_eq!(job["state"], "CANCELLED");
    assert!(
        job["errorMessage"]
            .as_str()
            .unwrap()
            .contains("maxWaitTime (0.3s)"),
        "{job}"
    );

    let too_big = json!({"scaleTier": "CUSTOM", "masterType": "standard", "workerType": "standard", "workerCount": "1"});
    let (status, error) = call(
        "POST",
        &jobs,
        Some(&python_job("too_big", &package, work.path(), &[], too_big)),
    );
    assert_eq!(status, 400, "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("more than this server's quota of 0.4000"),
        "{error}"
    );

    let first = wait_job(&server, "p", "first", ended);
    let second = wait_job(&server, "p", "second", ended);
    assert_eq!(
        (first["state"].clone(), second["state"].clone()),
        (json!("SUCCEEDED"), json!("SUCCEEDED"))
    );
    assert!(
        second["startTime"].as_str().unwrap() >= first["endTime"].as_str().unwrap(),
        "second ran after first: {first} {second}"
    );
    assert!(
        second.get("jobPosition").is_none(),
        "jobPosition is 0 once scheduled"
    );

    submit("blocker", &["--sleep", "600"], json!({}));
    wait_job(&server, "p", "blocker", |job| job["state"] == "RUNNING");
    submit("waiting", &[], json!({}));
    assert_eq!(
        call("POST", &server.api("p", "jobs/waiting:cancel"), Some("{}")).0,
        200
    );
    assert_eq!(
        wait_job(&server, "p", "waiting", ended)["state"],
        "CANCELLED"
    );
    assert_eq!(
        call("POST", &server.api("p", "jobs/blocker:cancel"), Some("{}")).0,
        200
    );
    assert_eq!(
        wait_job(&server, "p", "blocker", ended)["state"],
        "CANCELLED"
    );
}

#[test]
fn queued_jobs_run_after_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = one_job_server(data.path());
    let package = trainer_package(work.path());
    let jobs = server.api("p", "jobs");
    call(
        "POST",
        &jobs,
        Some(&python_job(
            "running",
            &package,
            &work.path().join("running"),
            &["--sleep", "600"],
            json!({}),
        )),
    );
    wait_job(&server, "p", "running", |job| {
        job["state"] == "RUNNING" && work.path().join("running/master-0.json").exists()
    });
    call(
        "POST",
        &jobs,
        Some(&python_job(
            "queued",
            &package,
            &work.path().join("queued"),
            &[],
            json!({}),
        )),
    );
    assert_eq!(
        wait_job(&server, "p", "queued", |_| true)["state"],
        "QUEUED"
    );
    server.kill();

    let server = one_job_server(data.path());
    // The job that was running still holds its place under the quota.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        call("GET", &server.api("p", "jobs/running"), None).1["state"],
        "RUNNING"
    );
    assert_eq!(
        call("GET", &server.api("p", "jobs/queued"), None).1["state"],
        "QUEUED"
    );
    call("POST", &server.api("p", "jobs/running:cancel"), Some("{}"));
    assert_eq!(
        wait_job(&server, "p", "running", ended)["state"],
        "CANCELLED"
    );
    let queued = wait_job(&server, "p", "queued", ended);
    assert_eq!(queued["state"], "SUCCEEDED", "{queued}");
}

#[test]
fn an_sdist_is_pip_installed_into_the_jobs_environment_and_a_broken_one_fails_the_job() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let sdist = trainer_sdist(work.path(), &work.path().join("dist"));
    let broken = work.path().join("broken-0.1.tar.gz");
    std::fs::write(&broken, "not a tarball").unwrap();

    for (id, package) in [("from_sdist", &sdist), ("broken_sdist", &broken)] {
        let body = json!({"jobId": id, "trainingInput": {
            "pythonModule": "trainer.task",
            "packageUris": [file_uri(package)],
            "jobDir": work.path().join(id).display().to_string(),
        }});
        let (status, job) = call("POST", &server.api("p", "jobs"), Some(&body.to_string()));
        assert_eq!(status, 200, "{job}");
    }
    let job = wait_job(&server, "p", "from_sdist", ended);
    assert_eq!(job["state"], "SUCCEEDED", "{job}");
    assert!(work.path().join("from_sdist/master-0.json").is_file());
    let (_, logs) = call(
        "GET",
        &server.api("p", "jobs/from_sdist/logs?taskName=service"),
        None,
    );
    assert!(
        logs["entries"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("creating the job's virtual environment"),
        "{logs}"
    );

    let job = wait_job(&server, "p", "broken_sdist", ended);
    assert_eq!(job["state"], "FAILED");
    let message = job["errorMessage"].as_str().unwrap();
    assert!(
        message.contains("pip install of broken-0.1.tar.gz failed"),
        "{message}"
    );
}

#[test]
fn local_train_runs_a_python_trainer_distributed_without_a_server() {
    let work = tempfile::tempdir().unwrap();
    let package = trainer_package(work.path()).display().to_string();
    let job_dir = work.path().join("out");
    let output = kiln(&[
        "local",
        "train",
        "--module-name",
        "trainer.task",
        "--package-path",
        &package,
        "--job-dir",
        &job_dir.display().to_string(),
        "--distributed",
        "--worker-count",
        "1",
        "--parameter-server-count",
        "1",
        "--start-port",
        "29311",
        "--",
        "--mode",
        "ok",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let chief = replica_record(&job_dir, "chief-0");
    assert_eq!(
        chief["tf_config"]["cluster"],
        json!({"chief": ["localhost:29311"], "ps": ["localhost:29312"], "worker": ["localhost:29313"]})
    );
    assert_eq!(chief["tf_config"]["job"]["job_name"], "trainer.task");
    assert_eq!(
        replica_record(&job_dir, "ps-0")["tf_config"]["task"],
        json!({"type": "ps", "index": 0})
    );
    wait_dead(replica_record(&job_dir, "ps-0")["pid"].as_u64().unwrap());

    let failing = kiln(&[
        "local",
        "train",
        "--module-name",
        "trainer.task",
        "--package-path",
        &package,
        "--job-dir",
        &job_dir.display().to_string(),
        "--",
        "--mode",
        "fail",
    ]);
    assert!(!failing.status.success());
}

#[test]
fn patch_changes_job_labels_with_an_etag_check() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let body = json!({"jobId": "labelled", "labels": {"team": "a"}, "trainingInput": {"masterConfig": {"containerCommand": ["true"]}}});
    call("POST", &server.api("p", "jobs"), Some(&body.to_string()));
    let job = wait_job(&server, "p", "labelled", ended);
    let patch = json!({"labels": {"team": "b"}, "etag": job["etag"]}).to_string();
    let (status, patched) = call(
        "PATCH",
        &server.api("p", "jobs/labelled?updateMask=labels"),
        Some(&patch),
    );
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["labels"], json!({"team": "b"}));
    assert_eq!(patched["state"], "SUCCEEDED");
    let (status, error) = call(
        "PATCH",
        &server.api("p", "jobs/labelled?updateMask=labels"),
        Some(&patch),
    );
    assert_eq!(
        (status, error["error"]["status"].clone()),
        (409, json!("ABORTED")),
        "the etag changed: {error}"
    );
    let (status, _) = call(
        "PATCH",
        &server.api("p", "jobs/labelled?updateMask=state"),
        Some("{}"),
    );
    assert_eq!(status, 400);
}

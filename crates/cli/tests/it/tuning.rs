//! Hyperparameter tuning jobs over HTTP and the CLI: trials run the trainer with `--name=value`,
//! report through the `cloudml-hypertune` package, TensorBoard event files or a built-in
//! algorithm, in parallel, stopped early, resumed, and failing when they report nothing.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::jobs::{alive, ended, python_job, wait_job};
use crate::support::{Server, call, census, kiln};

/// A trainer whose "accuracy" depends on its flags, reported as the `mode` flag says.
const TRAINER: &str = r#"
import argparse, json, math, os, sys, time
parser = argparse.ArgumentParser()
parser.add_argument('--job-dir', required=True)
parser.add_argument('--mode', default='hypertune')
parser.add_argument('--steps', type=int, default=3)
parser.add_argument('--sleep', type=float, default=0)
args, extra = parser.parse_known_args()
flags = dict(arg[2:].split('=', 1) for arg in extra)
trial = json.loads(os.environ['TF_CONFIG'])['task']['trial']
assert trial == os.environ['CLOUD_ML_TRIAL_ID'], 'TF_CONFIG.task.trial is CLOUD_ML_TRIAL_ID'
score = 1.0
if 'lr' in flags: score -= (math.log10(float(flags['lr'])) + 2) ** 2 / 4
if 'layers' in flags: score -= ((int(flags['layers']) - 4) / 10) ** 2
if 'act' in flags: score -= 0 if flags['act'] == 'tanh' else 0.2
if 'q' in flags: score = 1.0 - 0.3 * (int(flags['q']) - 1)
if 'first-layer-size' in flags: score -= abs(int(flags['first-layer-size']) - 200) / 1000 + abs(float(flags['scale-factor']) - 0.5)
if 'num-layers' in flags: time.sleep(0.1 * int(flags['num-layers']))
print('trial', trial, 'flags', json.dumps(flags, sort_keys=True), flush=True)
if flags.get('hang') == '1':
    with open(os.path.join(args.job_dir, 'hang.pid'), 'w') as out:
        out.write(str(os.getpid()))
    while not os.path.exists(os.path.join(args.job_dir, 'release')):
        time.sleep(0.05)
values = [score * step / args.steps for step in range(1, args.steps + 1)]
if args.mode == 'hypertune':
    import hypertune
    reporter = hypertune.HyperTune()
    for step, value in enumerate(values, 1):
        reporter.report_hyperparameter_tuning_metric(hyperparameter_metric_tag='accuracy', metric_value=value, global_step=step * 100)
        time.sleep(args.sleep)
elif args.mode == 'events':
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter
    writer = EventFileWriter(os.path.join(args.job_dir, trial, 'eval'))
    for step, value in enumerate(values, 1):
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag='accuracy', simple_value=value)])
        writer.add_event(event_pb2.Event(wall_time=time.time(), step=step * 100, summary=summary))
        writer.flush()
        time.sleep(args.sleep)
    writer.close()
"#;

/// A package `trainer` under `root` whose `task` module is `task`.
fn package(root: &Path, task: &str) -> std::path::PathBuf {
    let package = root.join("trainer");
    std::fs::create_dir_all(&package).unwrap();
    std::fs::write(package.join("__init__.py"), "").unwrap();
    std::fs::write(package.join("task.py"), task).unwrap();
    package
}

fn tuning_job(id: &str, root: &Path, args: &[&str], hyperparameters: Value) -> String {
    python_job(
        id,
        &package(root, TRAINER),
        &root.join("out"),
        args,
        json!({"hyperparameters": hyperparameters}),
    )
}

fn trials(job: &Value) -> &Vec<Value> {
    job["trainingOutput"]["trials"].as_array().expect("trials")
}

fn message_of(error: &Value) -> &str {
    error["error"]["message"].as_str().unwrap_or_default()
}

fn objective(trial: &Value) -> f64 {
    trial["finalMetric"]["objectiveValue"]
        .as_f64()
        .expect("objective")
}

const SPACE: &str = r#"[
    {"parameterName": "lr", "type": "DOUBLE", "minValue": 0.0001, "maxValue": 1, "scaleType": "UNIT_LOG_SCALE"},
    {"parameterName": "layers", "type": "INTEGER", "minValue": 1, "maxValue": 10, "scaleType": "UNIT_LINEAR_SCALE"},
    {"parameterName": "act", "type": "CATEGORICAL", "categoricalValues": ["relu", "tanh"]}
]"#;

#[test]
fn parallel_trials_report_through_cloudml_hypertune_live_and_a_finished_job_resumes() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let space: Value = serde_json::from_str(SPACE).unwrap();
    let body = tuning_job(
        "hp",
        work.path(),
        &["--steps=4", "--sleep=0.4"],
        json!({"goal": "MAXIMIZE", "hyperparameterMetricTag": "accuracy", "maxTrials": 6, "maxParallelTrials": 2, "params": space}),
    );
    let (status, job) = call("POST", &server.api("p", "jobs"), Some(&body));
    assert_eq!(status, 200, "{job}");
    // While trials run, their metrics are already visible.
    let mut seen_live = false;
    let deadline = Instant::now() + Duration::from_secs(120);
    let job = loop {
        let (_, job) = call("GET", &server.api("p", "jobs/hp"), None);
        if ended(&job) || Instant::now() > deadline {
            break job;
        }
        seen_live |= job["trainingOutput"]["trials"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|trial| {
                trial["state"] == "RUNNING"
                    && trial["allMetrics"]
                        .as_array()
                        .is_some_and(|m| !m.is_empty())
            });
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(job["state"], "SUCCEEDED", "{job:#}");
    assert!(seen_live, "a running trial showed its metrics");
    let output = &job["trainingOutput"];
    assert_eq!(output["isHyperparameterTuningJob"], true);
    assert_eq!(output["hyperparameterMetricTag"], "accuracy");
    assert_eq!(output["completedTrialCount"], "6");
    let first = trials(&job);
    assert_eq!(first.len(), 6);
    let objectives: Vec<f64> = first.iter().map(objective).collect();
    assert!(
        objectives.windows(2).all(|pair| pair[0] >= pair[1]),
        "best first: {objectives:?}"
    );
    let ids: BTreeSet<&str> = first
        .iter()
        .map(|t| t["trialId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, BTreeSet::from(["1", "2", "3", "4", "5", "6"]));
    for trial in first {
        assert_eq!(trial["state"], "SUCCEEDED", "{trial}");
        let values = &trial["hyperparameters"];
        let lr: f64 = values["lr"].as_str().unwrap().parse().unwrap();
        let layers: i64 = values["layers"].as_str().unwrap().parse().unwrap();
        assert!(
            (1e-4..=1.0).contains(&lr) && (1..=10).contains(&layers),
            "{values}"
        );
        assert!(["relu", "tanh"].contains(&values["act"].as_str().unwrap()));
        let steps: Vec<&str> = trial["allMetrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["trainingStep"].as_str().unwrap())
            .collect();
        assert_eq!(steps, ["100", "200", "300", "400"]);
        assert_eq!(trial["finalMetric"]["trainingStep"], "400");
        // The trainer computed its score from the flags it was given.
        let expected = 1.0
            - (lr.log10() + 2.0).powi(2) / 4.0
            - ((layers as f64 - 4.0) / 10.0).powi(2)
            - if values["act"] == "tanh" { 0.0 } else { 0.2 };
        assert!((objective(trial) - expected).abs() < 1e-3, "{trial}");
    }
    // Two trials ran at the same time.
    let span = |t: &Value| {
        (
            t["startTime"].as_str().unwrap().to_string(),
            t["endTime"].as_str().unwrap().to_string(),
        )
    };
    let overlapping = first.iter().any(|a| {
        first
            .iter()
            .any(|b| a["trialId"] != b["trialId"] && span(a).0 < span(b).1 && span(b).0 < span(a).1)
    });
    assert!(overlapping, "maxParallelTrials 2 ran trials side by side");
    let (_, logs) = call("GET", &server.api("p", "jobs/hp/logs?pageSize=1000"), None);
    assert!(
        logs.to_string().contains("trial-3-master-replica-0"),
        "{logs}"
    );

    // Resuming continues the trial ids and never repeats a point.
    let resumed = tuning_job(
        "hp_more",
        work.path(),
        &["--steps=2"],
        json!({"goal": "MAXIMIZE", "hyperparameterMetricTag": "accuracy", "maxTrials": 2, "params": space, "resumePreviousJobId": "hp"}),
    );
    let (status, _) = call("POST", &server.api("p", "jobs"), Some(&resumed));
    assert_eq!(status, 200);
    let more = wait_job(&server, "p", "hp_more", ended);
    assert_eq!(more["state"], "SUCCEEDED", "{more:#}");
    let new: BTreeSet<&str> = trials(&more)
        .iter()
        .map(|t| t["trialId"].as_str().unwrap())
        .collect();
    assert_eq!(new, BTreeSet::from(["7", "8"]));
    for trial in trials(&more) {
        assert!(
            first
                .iter()
                .all(|old| old["hyperparameters"] != trial["hyperparameters"]),
            "{trial}"
        );
    }
    for (resume, message) in [("nope", "was not found"), ("hp_more_bad", "was not found")] {
        let body = tuning_job(
            "bad_resume",
            work.path(),
            &[],
            json!({"maxTrials": 1, "params": space, "resumePreviousJobId": resume}),
        );
        let (status, error) = call("POST", &server.api("p", "jobs"), Some(&body));
        assert_eq!(status, 400);
        assert!(message_of(&error).contains(message), "{error}");
    }
    let other_space =
        json!([{"parameterName": "lr", "type": "DOUBLE", "minValue": 0.1, "maxValue": 1}]);
    let body = tuning_job(
        "bad_resume",
        work.path(),
        &[],
        json!({"maxTrials": 1, "params": other_space, "resumePreviousJobId": "hp"}),
    );
    let (status, error) = call("POST", &server.api("p", "jobs"), Some(&body));
    assert_eq!(status, 400);
    assert!(message_of(&error).contains("same space"), "{error}");
}

/// The seeds' census space, two trials at a time, each running longer the more layers it has, so
/// trials end out of order and every suggestion is made with another trial in flight.
#[test]
fn parallel_trials_never_repeat_a_point() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let body = tuning_job(
        "census_hp",
        work.path(),
        &["--steps=1"],
        json!({"goal": "MAXIMIZE", "hyperparameterMetricTag": "accuracy", "maxTrials": 10,
               "maxParallelTrials": 2, "params": [
            {"parameterName": "first-layer-size", "type": "INTEGER", "minValue": 50, "maxValue": 500,
             "scaleType": "UNIT_LINEAR_SCALE"},
            {"parameterName": "num-layers", "type": "INTEGER", "minValue": 1, "maxValue": 15,
             "scaleType": "UNIT_LINEAR_SCALE"},
            {"parameterName": "scale-factor", "type": "DOUBLE", "minValue": 0.1, "maxValue": 1.0,
             "scaleType": "UNIT_REVERSE_LOG_SCALE"}]}),
    );
    let (status, job) = call("POST", &server.api("p", "jobs"), Some(&body));
    assert_eq!(status, 200, "{job}");
    let job = wait_job(&server, "p", "census_hp", ended);
    assert_eq!(job["state"], "SUCCEEDED", "{job:#}");
    let points: Vec<&Value> = trials(&job).iter().map(|t| &t["hyperparameters"]).collect();
    assert_eq!(points.len(), 10);
    let distinct: BTreeSet<String> = points.iter().map(|p| p.to_string()).collect();
    assert_eq!(distinct.len(), 10, "a point was tried twice: {points:#?}");
}

#[test]
fn event_files_grid_search_and_a_trial_that_reports_nothing() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let grid = json!([
        {"parameterName": "layers", "type": "INTEGER", "minValue": 1, "maxValue": 2},
        {"parameterName": "act", "type": "CATEGORICAL", "categoricalValues": ["relu", "tanh"]}
    ]);
    let body = tuning_job(
        "events",
        work.path(),
        &["--mode=events"],
        json!({"goal": "MAXIMIZE", "hyperparameterMetricTag": "accuracy", "maxTrials": 3, "algorithm": "GRID_SEARCH", "params": grid}),
    );
    let (status, job) = call("POST", &server.api("p", "jobs"), Some(&body));
    assert_eq!(status, 200, "{job}");
    let job = wait_job(&server, "p", "events", ended);
    assert_eq!(job["state"], "SUCCEEDED", "{job:#}");
    // The grid in order: (1, relu), (1, tanh), (2, relu); tanh scores 0.2 higher.
    let by_id = |id: &str| {
        trials(&job)
            .iter()
            .find(|t| t["trialId"] == id)
            .unwrap()
            .clone()
    };
    for (id, layers, act) in [("1", "1", "relu"), ("2", "1", "tanh"), ("3", "2", "relu")] {
        let trial = by_id(id);
        assert_eq!(
            (
                trial["hyperparameters"]["layers"].as_str().unwrap(),
                trial["hyperparameters"]["act"].as_str().unwrap()
            ),
            (layers, act)
        );
        assert_eq!(trial["allMetrics"].as_array().unwrap().len(), 3, "{trial}");
    }
    assert_eq!(trials(&job)[0]["trialId"], "2", "best first");
    assert!((objective(&by_id("2")) - (1.0 - 0.09)).abs() < 1e-6);

    // A trainer that never reports fails its trials, and the job fails at maxFailedTrials.
    // Its own job directory: the events of the job above must not count for it.
    let silent = tempfile::tempdir().unwrap();
    let body = tuning_job(
        "silent",
        silent.path(),
        &["--mode=silent"],
        json!({"hyperparameterMetricTag": "accuracy", "maxTrials": 3, "maxFailedTrials": 2, "params": grid}),
    );
    let (status, _) = call("POST", &server.api("p", "jobs"), Some(&body));
    assert_eq!(status, 200);
    let job = wait_job(&server, "p", "silent", ended);
    assert_eq!(job["state"], "FAILED", "{job:#}");
    assert_eq!(trials(&job).len(), 2, "no trial starts after the limit");
    let message = job["errorMessage"].as_str().unwrap();
    assert!(
        message.contains("2 trials failed, reaching maxFailedTrials (2)"),
        "{message}"
    );
    assert!(
        message.contains("without reporting the metric \"accuracy\""),
        "{message}"
    );
    for trial in trials(&job) {
        assert_eq!(trial["state"], "FAILED");
        assert!(
            trial["errorMessage"]
                .as_str()
                .unwrap()
                .contains("cloudml-hypertune"),
            "{trial}"
        );
    }
}

#[test]
fn early_stopping_stops_clearly_bad_trials() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    // Grid order q = 1..6: each trial worse than the last. Successive halving judges a trial once
    // two have finished, and stops those below the top third at a rung.
    let body = tuning_job(
        "stop",
        work.path(),
        &["--steps=12", "--sleep=0.25"],
        json!({"goal": "MAXIMIZE", "hyperparameterMetricTag": "accuracy", "maxTrials": 6, "algorithm": "GRID_SEARCH",
               "enableTrialEarlyStopping": true,
               "params": [{"parameterName": "q", "type": "INTEGER", "minValue": 1, "maxValue": 6}]}),
    );
    let (status, _) = call("POST", &server.api("p", "jobs"), Some(&body));
    assert_eq!(status, 200);
    let job = wait_job(&server, "p", "stop", ended);
    assert_eq!(job["state"], "SUCCEEDED", "{job:#}");
    for trial in trials(&job) {
        let q: i64 = trial["hyperparameters"]["q"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let reports = trial["allMetrics"].as_array().unwrap().len();
        assert_eq!(trial["state"], "SUCCEEDED", "{trial}");
        if q <= 2 {
            assert_eq!(
                (
                    trial["isTrialStoppedEarly"].as_bool().unwrap_or(false),
                    reports
                ),
                (false, 12),
                "{trial}"
            );
        } else {
            assert_eq!(trial["isTrialStoppedEarly"], true, "{trial}");
            assert!(reports < 12, "{trial}");
        }
    }
}

#[test]
fn the_census_sample_config_runs_as_written_through_the_cli_and_built_ins_report_natively() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let package = package(work.path(), TRAINER);
    // census/hptuning_config.yaml from the samples, unchanged.
    let config = work.path().join("hptuning_config.yaml");
    std::fs::write(
        &config,
        "trainingInput:\n  hyperparameters:\n    goal: MAXIMIZE\n    hyperparameterMetricTag: accuracy\n    maxTrials: 4\n    maxParallelTrials: 2\n    params:\n      - parameterName: first-layer-size\n        type: INTEGER\n        minValue: 50\n        maxValue: 500\n        scaleType: UNIT_LINEAR_SCALE\n      - parameterName: num-layers\n        type: INTEGER\n        minValue: 1\n        maxValue: 15\n        scaleType: UNIT_LINEAR_SCALE\n      - parameterName: scale-factor\n        type: DOUBLE\n        minValue: 0.1\n        maxValue: 1.0\n        scaleType: UNIT_REVERSE_LOG_SCALE\n",
    )
    .unwrap();
    let job_dir = work.path().join("out");
    let output = kiln(&[
        "--endpoint",
        &server.url,
        "--project",
        "p",
        "jobs",
        "submit",
        "training",
        "census_hp",
        "--module-name=trainer.task",
        &format!("--package-path={}", package.display()),
        &format!("--job-dir={}", job_dir.display()),
        &format!("--config={}", config.display()),
        "--region=us-central1",
        "--",
        "--mode=hypertune",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let job = wait_job(&server, "p", "census_hp", ended);
    assert_eq!(job["state"], "SUCCEEDED", "{job:#}");
    assert_eq!(trials(&job).len(), 4);
    let described = kiln(&[
        "--endpoint",
        &server.url,
        "--project",
        "p",
        "jobs",
        "describe",
        "census_hp",
        "--summarize",
    ]);
    let table = String::from_utf8_lossy(&described.stdout);
    assert!(
        described.status.success(),
        "{}",
        String::from_utf8_lossy(&described.stderr)
    );
    let header = table.lines().next().unwrap_or_default();
    for column in [
        "TRIAL",
        "OBJECTIVE_VALUE",
        "STEP",
        "first-layer-size",
        "num-layers",
        "scale-factor",
    ] {
        assert!(header.contains(column), "{table}");
    }
    assert_eq!(table.lines().count(), 5, "{table}");

    // A built-in algorithm reports its eval metrics itself; each trial exports under <jobDir>/<trial>.
    let census = census();
    let body = json!({"jobId": "builtin_hp", "trainingInput": {
        "masterConfig": {"imageUri": "gcr.io/cloud-ml-algos/linear_learner_cpu"},
        "args": [
            format!("--training_data_path={}", census.join("adult.data.csv.gz").display()),
            format!("--validation_data_path={}", census.join("adult.test.csv.gz").display()),
            format!("--schema={}", census.join("schema.yaml").display()),
            "--max_steps=200",
        ],
        "jobDir": work.path().join("builtin").display().to_string(),
        "hyperparameters": {"goal": "MAXIMIZE", "hyperparameterMetricTag": "accuracy", "maxTrials": 2,
            "params": [{"parameterName": "learning_rate", "type": "DOUBLE", "minValue": 0.001, "maxValue": 0.1, "scaleType": "UNIT_LOG_SCALE"}]},
    }})
    .to_string();
    let (status, job) = call("POST", &server.api("p", "jobs"), Some(&body));
    assert_eq!(status, 200, "{job}");
    let job = wait_job(&server, "p", "builtin_hp", ended);
    assert_eq!(job["state"], "SUCCEEDED", "{job:#}");
    for trial in trials(&job) {
        assert!(objective(trial) > 0.7, "{trial}");
        let model = trial["builtInAlgorithmOutput"]["modelPath"]
            .as_str()
            .unwrap();
        assert!(
            model.ends_with(&format!(
                "builtin/{}/model",
                trial["trialId"].as_str().unwrap()
            )),
            "{model}"
        );
        assert!(Path::new(model).join("kiln_model.json").exists());
    }
}

#[test]
fn a_tuning_job_goes_on_under_the_server_that_follows_a_killed_one() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    // Grid order, one at a time: hang=0 finishes, hang=1 waits for a file while the server is
    // killed and another starts, hang=2 runs under the new server.
    let body = tuning_job(
        "killed",
        work.path(),
        &[],
        json!({"hyperparameterMetricTag": "accuracy", "maxTrials": 3, "algorithm": "GRID_SEARCH",
               "params": [{"parameterName": "hang", "type": "INTEGER", "minValue": 0, "maxValue": 2}]}),
    );
    assert_eq!(call("POST", &server.api("p", "jobs"), Some(&body)).0, 200);
    let pid_file = work.path().join("out/hang.pid");
    wait_job(&server, "p", "killed", |_| pid_file.exists());
    std::thread::sleep(Duration::from_millis(200));
    let pid: u64 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    server.kill();
    assert!(alive(pid), "the trial outlives the killed server");

    let server = Server::start(data.path());
    let (_, job) = call("GET", &server.api("p", "jobs/killed"), None);
    assert_eq!(job["state"], "RUNNING", "{job:#}");
    assert!(alive(pid), "the running trial was taken over, not stopped");
    std::fs::write(work.path().join("out/release"), "").unwrap();
    let job = wait_job(&server, "p", "killed", ended);
    assert_eq!(job["state"], "SUCCEEDED", "{job:#}");
    let trials = trials(&job);
    assert_eq!(trials.len(), 3, "{job:#}");
    let mut hangs: Vec<&str> = trials
        .iter()
        .map(|trial| trial["hyperparameters"]["hang"].as_str().unwrap())
        .collect();
    hangs.sort();
    assert_eq!(hangs, ["0", "1", "2"], "no trial ran twice");
    for trial in trials {
        assert_eq!(trial["state"], "SUCCEEDED", "{trial}");
        assert!(
            trial["finalMetric"]["objectiveValue"].is_number(),
            "{trial}"
        );
    }
}

/// Conditional parameters (Vizier's `childParameterSpecs`, a Kiln extension for tuning jobs): a
/// child is tried, and passed to the trainer, only under its parent's values.
#[test]
fn a_child_parameter_is_tried_only_under_its_parent() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let body = tuning_job(
        "branches",
        work.path(),
        &["--steps=1"],
        json!({"goal": "MAXIMIZE", "hyperparameterMetricTag": "accuracy", "maxTrials": 8,
               "maxParallelTrials": 2, "params": [
            {"parameterName": "act", "type": "CATEGORICAL", "categoricalValues": ["relu", "tanh"],
             "childParameterSpecs": [
                {"parameterName": "lr", "type": "DOUBLE", "minValue": 0.0001, "maxValue": 1,
                 "scaleType": "UNIT_LOG_SCALE", "parentCategoricalValues": {"values": ["tanh"]}},
                {"parameterName": "layers", "type": "INTEGER", "minValue": 1, "maxValue": 10,
                 "parentCategoricalValues": {"values": ["relu"]}}]}]}),
    );
    let (status, job) = call("POST", &server.api("p", "jobs"), Some(&body));
    assert_eq!(status, 200, "{job}");
    let job = wait_job(&server, "p", "branches", ended);
    assert_eq!(job["state"], "SUCCEEDED", "{job:#}");
    let mut branches = BTreeSet::new();
    for trial in trials(&job) {
        let point = trial["hyperparameters"].as_object().unwrap();
        let act = point["act"].as_str().unwrap();
        let keys: Vec<&str> = point.keys().map(String::as_str).collect();
        let expected = if act == "tanh" {
            ["act", "lr"]
        } else {
            ["act", "layers"]
        };
        assert_eq!(keys, expected, "{trial}");
        branches.insert(act.to_string());
    }
    assert_eq!(branches.len(), 2, "both branches tried: {job:#}");

    // A DOUBLE cannot be a parent, a child names its parent's values in the field of the parent's
    // type, and those values are the parent's; each problem names the child's field.
    let refused = |params: Value, expected: &[&str]| {
        let body = tuning_job(
            "bad_branches",
            work.path(),
            &[],
            json!({"goal": "MAXIMIZE", "maxTrials": 2, "params": params}),
        );
        let (status, error) = call("POST", &server.api("p", "jobs"), Some(&body));
        assert_eq!(status, 400, "{error}");
        let message = message_of(&error);
        for expected in expected {
            assert!(message.contains(expected), "{expected} in {message}");
        }
    };
    let integer = |name: &str, parent: Value| {
        let mut spec =
            json!({"parameterName": name, "type": "INTEGER", "minValue": 1, "maxValue": 3});
        spec.as_object_mut()
            .unwrap()
            .extend(parent.as_object().unwrap().clone());
        spec
    };
    refused(
        json!([
            {"parameterName": "x", "type": "DOUBLE", "minValue": 0, "maxValue": 1,
             "childParameterSpecs": [integer("y", json!({"parentDiscreteValues": {"values": [0.5]}}))]},
            {"parameterName": "n", "type": "INTEGER", "minValue": 1, "maxValue": 3,
             "childParameterSpecs": [integer("a", json!({"parentCategoricalValues": {"values": ["2"]}}))]}]),
        &[
            "params[0].child_parameter_specs[0] Error: a DOUBLE parameter cannot have child parameters",
            "params[1].child_parameter_specs[0] Error: a child parameter names its parent's values in parentIntValues alone",
        ],
    );
    refused(
        json!([{"parameterName": "n", "type": "INTEGER", "minValue": 1, "maxValue": 3,
                "childParameterSpecs": [integer("b", json!({"parentIntValues": {"values": ["7"]}}))]}]),
        &["params[0].child_parameter_specs[0] Error: the parent \"n\" cannot take the value 7"],
    );
}

/// How far a learning rate is from the trainer's best, 0.01, in decades.
fn decades_off(lr: f64) -> f64 {
    (lr.log10() + 2.0).abs()
}

#[test]
fn jobs_and_studies_start_from_each_other_s_trials() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let studies = format!("{}/v1/projects/p/locations/us-central1/studies", server.url);
    let space = |name: &str| json!([{"parameter": name, "type": "DOUBLE", "doubleValueSpec": {"minValue": 0.001, "maxValue": 100}, "scaleType": "UNIT_LOG_SCALE"}]);
    let study = |id: &str, metric: &str, parameter: &str, priors: Value| {
        call(
            "POST",
            &format!("{studies}?studyId={id}"),
            Some(
                &json!({"studyConfig": {"metrics": [{"metric": metric, "goal": "MAXIMIZE"}], "parameters": space(parameter),
                    "transferLearningConfig": {"priorStudyNames": priors}}})
                .to_string(),
            ),
        )
    };
    // A study a client ran by hand: the trainer's score at ten learning rates from 1e-3 to 100, the
    // best (0.01) a fifth of the way along the log scale.
    assert_eq!(study("known", "accuracy", "lr", json!([])).0, 200);
    for i in 0..10 {
        let lr = 10f64.powf(-3.0 + 5.0 * f64::from(i) / 9.0);
        let accuracy = 1.0 - (lr.log10() + 2.0).powi(2) / 4.0;
        let (status, trial) = call(
            "POST",
            &format!("{studies}/known/trials"),
            Some(
                &json!({"parameters": [{"parameter": "lr", "floatValue": lr}],
                "finalMeasurement": {"metrics": [{"metric": "accuracy", "value": accuracy}]}})
                .to_string(),
            ),
        );
        assert_eq!(status, 200, "{trial}");
    }
    let known = "projects/p/locations/us-central1/studies/known";

    // A tuning job over the same space starts where the study left off: no start-up design, its
    // trials close to the best; the study's trials are not copied into it.
    let params = json!([{"parameterName": "lr", "type": "DOUBLE", "minValue": 0.001, "maxValue": 100, "scaleType": "UNIT_LOG_SCALE"}]);
    let body = tuning_job(
        "seeded",
        work.path(),
        &["--steps=1"],
        json!({"goal": "MAXIMIZE", "hyperparameterMetricTag": "accuracy", "maxTrials": 2, "params": params,
               "transferLearningConfig": {"priorStudyNames": [known]}}),
    );
    let (status, job) = call("POST", &server.api("p", "jobs"), Some(&body));
    assert_eq!(status, 200, "{job}");
    let job = wait_job(&server, "p", "seeded", ended);
    assert_eq!(job["state"], "SUCCEEDED", "{job:#}");
    assert_eq!(trials(&job).len(), 2, "{job:#}");
    for trial in trials(&job) {
        let lr: f64 = trial["hyperparameters"]["lr"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(decades_off(lr) < 0.5, "{trial}");
    }

    // A study starts from the job and the study together.
    let (status, created) = study(
        "from_both",
        "accuracy",
        "lr",
        json!(["projects/p/jobs/seeded", known]),
    );
    assert_eq!(status, 200, "{created}");
    let (_, operation) = call(
        "POST",
        &format!("{studies}/from_both/trials:suggest"),
        Some(r#"{"suggestionCount": 1}"#),
    );
    let suggested = &operation["response"]["trials"][0];
    let lr = suggested["parameters"][0]["floatValue"].as_f64().unwrap();
    assert!(decades_off(lr) < 0.5, "{suggested}");
    let (_, listed) = call("GET", &format!("{studies}/from_both/trials"), None);
    assert_eq!(listed["trials"].as_array().unwrap().len(), 1, "{listed}");

    // A prior must report the metric, fit the space, exist and be named as a study or a job.
    for (id, metric, parameter, prior, expected) in [
        (
            "other_metric",
            "loss",
            "lr",
            known,
            "fits this search space and reports loss",
        ),
        (
            "other_space",
            "accuracy",
            "momentum",
            known,
            "fits this search space",
        ),
        (
            "missing",
            "accuracy",
            "lr",
            "projects/p/jobs/nothing",
            "projects/p/jobs/nothing was not found",
        ),
        (
            "misnamed",
            "accuracy",
            "lr",
            "projects/p/models/m",
            "must name a study",
        ),
    ] {
        let (status, error) = study(id, metric, parameter, json!([prior]));
        assert_eq!(status, 400, "{id}: {error}");
        let message = message_of(&error);
        assert!(
            message.contains("transfer_learning_config.prior_study_names[0] Error:")
                && message.contains(expected),
            "{id}: {message}"
        );
    }
    let body = tuning_job(
        "wrong_metric",
        work.path(),
        &[],
        json!({"hyperparameterMetricTag": "loss", "maxTrials": 1, "params": params,
               "transferLearningConfig": {"priorStudyNames": [known]}}),
    );
    let (status, error) = call("POST", &server.api("p", "jobs"), Some(&body));
    assert_eq!(status, 400, "{error}");
    assert!(
        message_of(&error).contains(
            "hyperparameters.transfer_learning_config.prior_study_names[0] Error: no completed trial"
        ),
        "{error}"
    );
}

/// A trainer that reports only over HTTP, then tries what else its trial's token reaches and
/// writes what it found to `<jobDir>/probe-<trial>.json`.
const HTTP_TRAINER: &str = r#"
import argparse, json, os, urllib.error, urllib.request
parser = argparse.ArgumentParser()
parser.add_argument('--job-dir', required=True)
parser.add_argument('--x', type=float, required=True)
args = parser.parse_args()
endpoint, token = os.environ['KILN_ENDPOINT'], os.environ['KILN_TOKEN']
project, job, trial = os.environ['KILN_PROJECT'], os.environ['CLOUD_ML_JOB_ID'], os.environ['CLOUD_ML_TRIAL_ID']
def send(method, path, body=None):
    request = urllib.request.Request(endpoint + '/v1/' + path, method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={'Authorization': 'Bearer ' + token, 'Content-Type': 'application/json'})
    try:
        with urllib.request.urlopen(request) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code
def measure(path, step, metrics):
    return send('POST', path + ':addMeasurement', {'measurement': {'stepCount': str(step), 'metrics': metrics}})
own = f'projects/{project}/jobs/{job}/trials/{trial}'
score = 1 - (args.x - 0.3) ** 2
found = {'token': token, 'score': score, 'sent': [
    measure(own, step, [{'metric': 'score', 'value': score * step / 30}, {'metric': 'loss', 'value': 1.0}])
    for step in (10, 20, 30)]}
found['other trial'] = measure(f'projects/{project}/jobs/{job}/trials/{int(trial) % 2 + 1}', 40, [{'metric': 'score', 'value': 9}])
found['other project'] = measure(f'projects/q/jobs/{job}/trials/{trial}', 40, [{'metric': 'score', 'value': 9}])
found['get job'] = send('GET', f'projects/{project}/jobs/{job}')
found['list models'] = send('GET', f'projects/{project}/models')
found['no score'] = measure(own, 40, [{'metric': 'loss', 'value': 0.5}])
with open(os.path.join(args.job_dir, f'probe-{trial}.json'), 'w') as out:
    json.dump(found, out)
"#;

/// A trial's trainer sends its measurements to `:addMeasurement` with the token its replicas
/// get, which reaches that trial alone and is revoked when the trial ends.
#[test]
fn trials_report_over_http_with_a_token_that_reaches_their_own_trial_only() {
    let secured = crate::auth::Secured::start();
    let developer = secured.token("dev");
    secured.bind("projects/p", "roles/ml.developer", "serviceAccount:dev");
    let root = secured.dir("p");
    let package = package(&root, HTTP_TRAINER);
    let out = root.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let job = python_job(
        "pushed",
        &package,
        &out,
        &[],
        json!({"hyperparameters": {"goal": "MAXIMIZE", "hyperparameterMetricTag": "score", "maxTrials": 2,
               "params": [{"parameterName": "x", "type": "DOUBLE", "minValue": 0, "maxValue": 1}]}}),
    );
    secured.ok(
        &developer,
        "POST",
        "projects/p/jobs",
        Some(serde_json::from_str(&job).unwrap()),
    );
    let job = crate::jobs::wait_job_as(Some(&developer), &secured.server, "p", "pushed", ended);
    assert_eq!(job["state"], "SUCCEEDED", "{job:#}");
    for trial in trials(&job) {
        let id = trial["trialId"].as_str().unwrap();
        let probe: Value =
            serde_json::from_slice(&std::fs::read(out.join(format!("probe-{id}.json"))).unwrap())
                .unwrap();
        assert_eq!(probe["sent"], json!([200, 200, 200]), "{probe}");
        for (attempt, status) in [
            ("other trial", 403),
            ("other project", 403),
            ("get job", 403),
            ("list models", 403),
            ("no score", 400),
        ] {
            assert_eq!(probe[attempt], status, "{attempt}: {probe}");
        }
        // Every measurement sent is the trial's, in order, and the last is its final metric.
        let steps: Vec<&str> = trial["allMetrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|metric| metric["trainingStep"].as_str().unwrap())
            .collect();
        assert_eq!(steps, ["10", "20", "30"], "{trial}");
        let sent = probe["score"].as_f64().unwrap();
        assert!((objective(trial) - sent).abs() < 1e-9, "{sent}: {trial}");
        // The trial is over, and so is its token.
        let path = format!("projects/p/jobs/pushed/trials/{id}:addMeasurement");
        let body = json!({"measurement": {"metrics": [{"metric": "score", "value": 1}]}});
        let (status, answer) = secured.call(
            probe["token"].as_str().unwrap(),
            "POST",
            &path,
            Some(body.clone()),
        );
        assert_eq!(status, 401, "{answer}");
        assert!(message_of(&answer).contains("revoked"), "{answer}");
        // The job's owner may send measurements too, while the trial runs.
        let (status, answer) = secured.call(&developer, "POST", &path, Some(body));
        assert_eq!(
            (status, answer["error"]["status"].as_str()),
            (400, Some("FAILED_PRECONDITION")),
            "{answer}"
        );
        assert!(
            message_of(&answer).contains("only a running trial"),
            "{answer}"
        );
    }
}

//! The `kiln` CLI against a real server, and its local commands.

use std::fmt::Write as _;

use serde_json::Value;

use crate::support::{Server, census, census_model, kiln};

fn run_ok(args: &[&str]) -> String {
    let output = kiln(args);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "kiln {args:?} failed:\n{stdout}\n{stderr}"
    );
    stdout
}

#[test]
fn models_versions_and_predict_through_the_cli() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let origin = census_model().display().to_string();
    let instances = census().join("test.json").display().to_string();
    let global = ["--endpoint", server.url.as_str(), "--project", "cli-test"];
    let with = |args: &[&str]| -> Vec<String> {
        global
            .iter()
            .chain(args)
            .map(|arg| arg.to_string())
            .collect()
    };
    let run = |args: &[&str]| {
        let args = with(args);
        run_ok(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };

    run(&[
        "models",
        "create",
        "census",
        "--regions",
        "us-central1",
        "--labels",
        "team=ml",
    ]);
    run(&[
        "ml-engine",
        "versions",
        "create",
        "v1",
        "--model",
        "census",
        "--origin",
        &origin,
    ]);
    let table = run(&["ai-platform", "models", "list"]);
    assert!(
        table
            .lines()
            .any(|line| line.split_whitespace().collect::<Vec<_>>() == ["census", "v1"]),
        "{table}"
    );

    // gcloud's list flags and projections.
    run(&["models", "create", "wide", "--labels", "team=ads"]);
    let names = |extra: &[&str]| {
        let mut args = vec!["models", "list", "--format", "value(name.basename())"];
        args.extend(extra);
        run(&args)
    };
    assert_eq!(names(&["--sort-by", "~name"]), "wide\ncensus\n");
    assert_eq!(names(&["--sort-by", "name", "--limit", "1"]), "census\n");
    assert_eq!(
        names(&["--filter", "labels.team=ads OR name:nothing"]),
        "wide\n"
    );
    assert_eq!(
        names(&["--page-size", "1", "--sort-by", "labels.team"]),
        "wide\ncensus\n"
    );
    assert_eq!(
        run(&[
            "models",
            "list",
            "--sort-by",
            "name",
            "--format",
            "csv(name.basename(),labels.team)",
        ]),
        "name,labels.team\ncensus,ml\nwide,ads\n"
    );
    assert_eq!(
        run(&[
            "models",
            "list",
            "--sort-by",
            "name",
            "--flatten",
            "regions[]",
            "--format",
            "value(name.segment(0), regions.len(), defaultVersion.yesno(yes=serving, no=idle))",
        ]),
        "projects\t11\tserving\nprojects\t11\tidle\n",
        "a record per region, its text in the list's place (us-central1), transforms chained"
    );
    let versions = run(&[
        "versions",
        "list",
        "--model",
        "census",
        "--format",
        "table(name.basename(), state:label=status)",
    ]);
    assert_eq!(versions, "NAME  STATUS\nv1    READY\n");
    let created = run(&[
        "versions",
        "list",
        "--model",
        "census",
        "--format",
        "value(createTime.date('%Y-%m-%d'), createTime.date(%Y).len())",
    ]);
    assert_eq!(
        created,
        format!("{}\t4\n", chrono::Utc::now().format("%Y-%m-%d")),
        "created today, in UTC"
    );
    let refusal = |args: &[&str]| {
        let refused = kiln(&with(args).iter().map(String::as_str).collect::<Vec<_>>());
        assert!(!refused.status.success(), "kiln {args:?} succeeded");
        String::from_utf8_lossy(&refused.stderr).into_owned()
    };
    let message = refusal(&["models", "list", "--format", "xml"]);
    assert!(message.contains("unknown format \"xml\""), "{message}");
    let message = refusal(&["models", "list", "--filter", "(name:wide"]);
    assert!(message.contains("expected ')' at position 10"), "{message}");
    run(&["models", "delete", "wide"]);

    let listed: Value = serde_json::from_str(&run(&[
        "versions", "list", "--model", "census", "--format", "json",
    ]))
    .unwrap();
    assert_eq!(listed[0]["state"], "READY");
    assert_eq!(listed[0]["framework"], "KILN");

    let predictions = run(&[
        "predict",
        "--model",
        "census",
        "--json-instances",
        &instances,
    ]);
    let header: Vec<&str> = predictions
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "CLASS_IDS",
            "CLASSES",
            "LOGISTIC",
            "LOGITS",
            "PROBABILITIES"
        ],
        "{predictions}"
    );
    assert_eq!(
        predictions.lines().count(),
        3,
        "a header and two predictions:\n{predictions}"
    );
    let json: Value = serde_json::from_str(&run(&[
        "predict",
        "--model",
        "census",
        "--version",
        "v1",
        "--json-instances",
        &instances,
        "--format",
        "json",
    ]))
    .unwrap();
    assert_eq!(json["predictions"].as_array().unwrap().len(), 2);

    let text = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(text.path(), "25, Private, 226802, 11th, 7, Never-married, Machine-op-inspct, Own-child, Black, Male, 0, 0, 40, United-States\n").unwrap();
    let csv: Value = serde_json::from_str(&run(&[
        "predict",
        "--model",
        "census",
        "--text-instances",
        &text.path().display().to_string(),
        "--format",
        "json",
    ]))
    .unwrap();
    assert_eq!(
        csv["predictions"][0], json["predictions"][0],
        "a CSV line predicts like the same instance as JSON"
    );

    let described = run(&["versions", "describe", "v1", "--model", "census"]);
    assert!(described.contains("state: READY"), "{described}");

    let refused = kiln(
        &with(&["models", "delete", "census"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("A model with versions cannot be deleted")
    );
    run(&["versions", "delete", "v1", "--model", "census"]);
    run(&["models", "delete", "census"]);
    assert_eq!(run(&["models", "list", "--format", "json"]).trim(), "[]");
}

#[test]
fn local_predict_matches_the_server_and_local_train_runs_a_builtin_algorithm() {
    let instances = census().join("test.json").display().to_string();
    let model_dir = census_model().display().to_string();
    let local: Value = serde_json::from_str(&run_ok(&[
        "local",
        "predict",
        "--model-dir",
        &model_dir,
        "--json-instances",
        &instances,
    ]))
    .unwrap();
    assert_eq!(local["predictions"].as_array().unwrap().len(), 2);
    assert!(local["predictions"][0]["logistic"][0].as_f64().unwrap() < 0.5);

    // ML Engine's built-in algorithm contract: CSV, no header, target first.
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::new();
    let mut state = 12345u64;
    for _ in 0..2000 {
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as f64 / (1u64 << 31) as f64
        };
        let (x, y, colour) = (next(), next(), if next() > 0.5 { "red" } else { "blue" });
        let label = u8::from(x + y > 1.0);
        writeln!(csv, "{label},{x:.4},{y:.4},{colour}").unwrap();
    }
    let data = dir.path().join("train.csv");
    std::fs::write(&data, csv).unwrap();
    let job_dir = dir.path().join("job");
    let output = run_ok(&[
        "local",
        "train",
        "--master-image-uri",
        "gcr.io/cloud-ml-algos/wide_deep_learner_cpu",
        "--job-dir",
        &job_dir.display().to_string(),
        "--",
        &format!("--training_data_path={}", data.display()),
        "--model_type=classification",
        "--num_epochs=20",
        "--batch_size=32",
        "--learning_rate=0.01",
    ]);
    assert!(
        output.contains("examples/s"),
        "progress lines are printed:\n{output}"
    );
    let metrics_line = output
        .lines()
        .find(|line| line.starts_with("eval metrics: "))
        .unwrap();
    let metrics: Value =
        serde_json::from_str(metrics_line.trim_start_matches("eval metrics: ")).unwrap();
    assert!(metrics["accuracy"].as_f64().unwrap() > 0.9, "{metrics}");
    assert!(job_dir.join("model/kiln_model.json").is_file());

    let bad = kiln(&[
        "local",
        "train",
        "--master-image-uri",
        "xgboost",
        "--",
        "--training_data_path=x",
    ]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("unknown built-in algorithm \"xgboost\"")
    );
}

//! The Vizier-style study API over HTTP: a client suggests, measures and completes trials itself
//! and Kiln's tuner finds the optimum; early stopping, optimal trials, validation and deletion; the
//! operations suggestions return, kept under their location across a restart.

use serde_json::{Value, json};

use crate::support::{Server, call, kiln};

fn url(server: &Server, path: &str) -> String {
    format!(
        "{}/v1/projects/p/locations/us-central1/studies{path}",
        server.url
    )
}

fn post(server: &Server, path: &str, body: Value) -> (u16, Value) {
    call("POST", &url(server, path), Some(&body.to_string()))
}

fn float(trial: &Value, name: &str) -> f64 {
    trial["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["parameter"] == name)
        .and_then(|p| p["floatValue"].as_f64())
        .unwrap()
}

fn suggested(operation: &Value) -> Vec<Value> {
    assert_eq!(operation["done"], true, "{operation}");
    assert_eq!(
        operation["response"]["@type"],
        "type.googleapis.com/google.cloud.ml.v1.SuggestTrialsResponse"
    );
    operation["response"]["trials"].as_array().unwrap().clone()
}

fn trial_path(trial: &Value) -> String {
    let name = trial["name"].as_str().unwrap();
    format!("/{}", name.split("/studies/").nth(1).unwrap())
}

#[test]
fn a_client_finds_the_minimum_of_a_quadratic_within_fifteen_trials() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let study = json!({"studyConfig": {
        "metrics": [{"metric": "loss", "goal": "MINIMIZE"}],
        "parameters": [{"parameter": "x", "type": "DOUBLE", "doubleValueSpec": {"minValue": -5, "maxValue": 5}}],
    }});
    let (status, created) = post(&server, "?studyId=quadratic", study.clone());
    assert_eq!(status, 200, "{created}");
    assert_eq!(
        created["name"],
        "projects/p/locations/us-central1/studies/quadratic"
    );
    assert_eq!(created["state"], "ACTIVE");
    assert_eq!(post(&server, "?studyId=quadratic", study).0, 409);

    let mut best = f64::INFINITY;
    for _ in 0..15 {
        let (status, operation) = post(
            &server,
            "/quadratic/trials:suggest",
            json!({"suggestionCount": 1, "clientId": "w1"}),
        );
        assert_eq!(status, 200, "{operation}");
        let trial = &suggested(&operation)[0];
        assert_eq!(trial["state"], "ACTIVE");
        let x = float(trial, "x");
        let loss = (x - 1.3).powi(2);
        best = best.min(loss);
        let path = trial_path(trial);
        let (status, measured) = post(
            &server,
            &format!("{path}:addMeasurement"),
            json!({"measurement": {"stepCount": "1", "metrics": [{"metric": "loss", "value": loss}]}}),
        );
        assert_eq!(status, 200, "{measured}");
        let (status, completed) = post(&server, &format!("{path}:complete"), json!({}));
        assert_eq!(status, 200, "{completed}");
        assert_eq!(completed["state"], "COMPLETED");
        let reported = completed["finalMeasurement"]["metrics"][0]["value"]
            .as_f64()
            .unwrap();
        assert!(
            (reported - loss).abs() <= 1e-12 * (1.0 + loss),
            "{completed}"
        );
    }
    assert!(best < 0.05 * 0.05, "best loss after 15 trials: {best}");
    let (_, optimal) = post(&server, "/quadratic/trials:listOptimalTrials", json!({}));
    let optimal = optimal["trials"].as_array().unwrap();
    assert_eq!(optimal.len(), 1);
    assert!(((float(&optimal[0], "x") - 1.3).powi(2) - best).abs() < 1e-12);
    let (_, listed) = call("GET", &url(&server, "/quadratic/trials"), None);
    assert_eq!(listed["trials"].as_array().unwrap().len(), 15);

    // A batch for another client: distinct points, returned again while still active.
    let (_, batch) = post(
        &server,
        "/quadratic/trials:suggest",
        json!({"suggestionCount": 3, "clientId": "w2"}),
    );
    let batch = suggested(&batch);
    assert_eq!(batch.len(), 3);
    let xs: Vec<f64> = batch.iter().map(|t| float(t, "x")).collect();
    assert!(xs[0] != xs[1] && xs[1] != xs[2] && xs[0] != xs[2], "{xs:?}");
    let (_, again) = post(
        &server,
        "/quadratic/trials:suggest",
        json!({"suggestionCount": 3, "clientId": "w2"}),
    );
    assert_eq!(suggested(&again), batch);

    // Errors name what is wrong; a completed trial stays completed.
    let first = trial_path(&optimal[0]);
    let (status, error) = post(&server, &format!("{first}:complete"), json!({}));
    assert_eq!(
        (status, error["error"]["status"].as_str()),
        (400, Some("FAILED_PRECONDITION")),
        "{error}"
    );
    let open = trial_path(&batch[0]);
    let (status, error) = post(
        &server,
        &format!("{open}:addMeasurement"),
        json!({"measurement": {"metrics": [{"metric": "accuracy", "value": 1}]}}),
    );
    assert_eq!(status, 400);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"loss\""),
        "{error}"
    );
    let (status, error) = post(&server, &format!("{open}:frobnicate"), json!({}));
    assert_eq!(status, 404, "{error}");
    let (status, error) = post(
        &server,
        "/quadratic/trials:suggest",
        json!({"suggestionCount": 1000}),
    );
    assert_eq!(status, 400);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("suggestion_count"),
        "{error}"
    );

    // Deleting the study deletes its trials.
    let (status, _) = call("DELETE", &url(&server, "/quadratic"), None);
    assert_eq!(status, 200);
    assert_eq!(call("GET", &url(&server, "/quadratic"), None).0, 404);
    assert_eq!(
        call("GET", &url(&server, "/quadratic/trials/1"), None).0,
        404
    );
}

/// Two objectives with a trade-off along x (y only hurts both) and a safety constraint on x: the
/// optimal trials are the safe ones no other dominates, and the search keeps to the safe side.
#[test]
fn a_two_objective_study_with_a_safety_threshold_reports_its_safe_pareto_front() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let study = json!({"studyConfig": {
        "metrics": [
            {"metric": "left", "goal": "MINIMIZE"},
            {"metric": "right", "goal": "MINIMIZE"},
            {"metric": "cost", "goal": "MINIMIZE", "safetyConfig": {"safetyThreshold": 0.6}},
        ],
        "parameters": [
            {"parameter": "x", "type": "DOUBLE", "doubleValueSpec": {"minValue": 0, "maxValue": 1}},
            {"parameter": "y", "type": "DOUBLE", "doubleValueSpec": {"minValue": 0, "maxValue": 1}},
        ],
    }});
    let (status, created) = post(&server, "?studyId=front", study);
    assert_eq!(status, 200, "{created}");
    let measure = |x: f64, y: f64| [x * x + y, (1.0 - x).powi(2) + y, x];
    let mut measured = Vec::new();
    for _ in 0..20 {
        let (_, operation) = post(&server, "/front/trials:suggest", json!({"clientId": "w"}));
        let trial = &suggested(&operation)[0];
        let (x, y) = (float(trial, "x"), float(trial, "y"));
        let [left, right, cost] = measure(x, y);
        let (status, completed) = post(
            &server,
            &format!("{}:complete", trial_path(trial)),
            json!({"finalMeasurement": {"metrics": [
                {"metric": "left", "value": left},
                {"metric": "right", "value": right},
                {"metric": "cost", "value": cost},
            ]}}),
        );
        assert_eq!(status, 200, "{completed}");
        measured.push((
            trial["name"].as_str().unwrap().to_string(),
            [left, right, cost],
        ));
    }
    // A final measurement needs every metric.
    let (_, operation) = post(&server, "/front/trials:suggest", json!({"clientId": "w"}));
    let open = trial_path(&suggested(&operation)[0]);
    let (status, error) = post(
        &server,
        &format!("{open}:complete"),
        json!({"finalMeasurement": {"metrics": [{"metric": "left", "value": 1}]}}),
    );
    assert_eq!(status, 400, "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("every metric"),
        "{error}"
    );

    let expected: Vec<&String> = measured
        .iter()
        .filter(|(_, [l, r, c])| {
            *c <= 0.6
                && !measured
                    .iter()
                    .any(|(_, [l2, r2, c2])| *c2 <= 0.6 && l2 <= l && r2 <= r && (l2 < l || r2 < r))
        })
        .map(|(name, _)| name)
        .collect();
    let (_, optimal) = post(&server, "/front/trials:listOptimalTrials", json!({}));
    let mut names: Vec<&str> = optimal["trials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    names.sort();
    let mut expected: Vec<&str> = expected.iter().map(|n| n.as_str()).collect();
    expected.sort();
    assert_eq!(names, expected);
    // The search found the front (y near 0) on the safe side: several optimal trials, and most
    // trials after the start-up design were safe, where random search would be 60% of the time.
    assert!(names.len() >= 3, "{optimal}");
    let late = &measured[6..];
    let safe = late.iter().filter(|(_, [_, _, c])| *c <= 0.6).count();
    assert!(safe * 10 >= late.len() * 8, "{safe} of {} safe", late.len());
    // left = x² + y and cost = x, so y = left − cost².
    let near_front = measured
        .iter()
        .filter(|(name, [l, _, c])| names.contains(&name.as_str()) && l - c * c <= 0.05)
        .count();
    assert!(near_front >= 3, "{optimal}");
}

/// A conditional space: `optimizer` chooses between `momentum` and `beta`, and sgd's `layers`
/// (an INTEGER) brings `width` at 2 or 3. Trials list exactly their active parameters.
#[test]
fn a_conditional_study_suggests_children_only_under_their_parents() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let unit = |name: &str, parent: &str| {
        json!({"parameter": name, "type": "DOUBLE", "doubleValueSpec": {"minValue": 0, "maxValue": 1},
               "parentCategoricalValues": {"values": [parent]}})
    };
    let study = json!({"studyConfig": {
        "metrics": [{"metric": "loss", "goal": "MINIMIZE"}],
        "parameters": [{
            "parameter": "optimizer", "type": "CATEGORICAL",
            "categoricalValueSpec": {"values": ["sgd", "adam"]},
            "childParameterSpecs": [
                unit("momentum", "sgd"),
                unit("beta", "adam"),
                {"parameter": "layers", "type": "INTEGER", "integerValueSpec": {"minValue": "1", "maxValue": "3"},
                 "parentCategoricalValues": {"values": ["sgd"]},
                 "childParameterSpecs": [{"parameter": "width", "type": "DISCRETE",
                    "discreteValueSpec": {"values": [16, 32, 64]}, "parentIntValues": {"values": ["2", 3]}}]},
            ],
        }],
    }});
    let (status, created) = post(&server, "?studyId=branches", study);
    assert_eq!(status, 200, "{created}");
    // The config comes back as given, nesting included.
    assert_eq!(
        created["studyConfig"]["parameters"][0]["childParameterSpecs"][2]["childParameterSpecs"][0]
            ["parentIntValues"],
        json!({"values": ["2", "3"]})
    );
    let mut shapes = std::collections::BTreeSet::new();
    for _ in 0..12 {
        let (_, operation) = post(
            &server,
            "/branches/trials:suggest",
            json!({"clientId": "w"}),
        );
        let trial = &suggested(&operation)[0];
        let given: Vec<&str> = trial["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["parameter"].as_str().unwrap())
            .collect();
        let value = |name: &str| {
            trial["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["parameter"] == name)
                .cloned()
        };
        let optimizer = value("optimizer").unwrap()["stringValue"].clone();
        let expected: Vec<&str> = if optimizer == "adam" {
            vec!["optimizer", "beta"]
        } else {
            let layers = value("layers").unwrap()["intValue"].clone();
            if layers == "1" {
                vec!["optimizer", "momentum", "layers"]
            } else {
                vec!["optimizer", "momentum", "layers", "width"]
            }
        };
        assert_eq!(given, expected, "{trial}");
        shapes.insert(given.len());
        let (status, completed) = post(
            &server,
            &format!("{}:complete", trial_path(trial)),
            json!({"finalMeasurement": {"metrics": [{"metric": "loss", "value": given.len() as f64}]}}),
        );
        assert_eq!(status, 200, "{completed}");
    }
    assert!(shapes.len() >= 2, "only one branch tried: {shapes:?}");
    // A client's own trial: a value given for an inactive parameter is dropped, a missing active
    // one refused.
    let (status, trial) = post(
        &server,
        "/branches/trials",
        json!({"parameters": [
            {"parameter": "optimizer", "stringValue": "adam"},
            {"parameter": "beta", "floatValue": 0.5},
            {"parameter": "momentum", "floatValue": 0.5}]}),
    );
    assert_eq!(status, 200, "{trial}");
    assert_eq!(trial["parameters"].as_array().unwrap().len(), 2, "{trial}");
    let (status, error) = post(
        &server,
        "/branches/trials",
        json!({"parameters": [{"parameter": "optimizer", "stringValue": "sgd"}]}),
    );
    assert_eq!(status, 400, "{error}");
}

#[test]
fn invalid_studies_are_refused_with_every_field_named() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let (status, error) = post(
        &server,
        "?studyId=bad",
        json!({"studyConfig": {
            "metrics": [
                {"metric": "a", "goal": "MAXIMIZE"},
                {"metric": "a", "goal": "MINIMIZE"},
                {"metric": "c", "safetyConfig": {"safetyThreshold": 1}},
            ],
            "parameters": [
                {"parameter": "lr", "type": "DOUBLE", "doubleValueSpec": {"minValue": 0, "maxValue": 1}, "scaleType": "UNIT_LOG_SCALE"},
                {"parameter": "n", "type": "INTEGER"},
            ],
        }}),
    );
    assert_eq!(status, 400);
    let message = error["error"]["message"].as_str().unwrap();
    for expected in [
        "study_config.metrics[1].metric Error: the metric \"a\" is named twice",
        "study_config.metrics[2].goal Error: MAXIMIZE or MINIMIZE is required",
        "parameters[1] Error: a Integer parameter needs its integerValueSpec",
    ] {
        assert!(message.contains(expected), "{expected} in {message}");
    }
    let (status, error) = post(
        &server,
        "?studyId=bad",
        json!({"studyConfig": {"metrics": [{"metric": "a", "goal": "MAXIMIZE"}],
            "parameters": [{"parameter": "lr", "type": "DOUBLE", "doubleValueSpec": {"minValue": 0, "maxValue": 1}, "scaleType": "UNIT_LOG_SCALE"}]}}),
    );
    assert_eq!(status, 400);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("parameters[0] Error: a log scale needs minValue > 0"),
        "{error}"
    );
    let (status, error) = post(
        &server,
        "?studyId=bad",
        json!({"studyConfig": {
            "metrics": [{"metric": "cost", "goal": "MINIMIZE", "safetyConfig": {"safetyThreshold": 1}}],
            "parameters": [{"parameter": "x", "type": "DOUBLE", "doubleValueSpec": {"minValue": 0, "maxValue": 1}}]}}),
    );
    assert_eq!(status, 400);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at least one metric must be an objective"),
        "{error}"
    );
    let (status, error) = post(&server, "", json!({"studyConfig": {}}));
    assert_eq!(status, 400);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("studyId"),
        "{error}"
    );
}

#[test]
fn check_early_stopping_state_applies_the_study_s_rule() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let curve = |top: f64, steps: i64| -> Vec<Value> {
        (1..=steps).map(|s| json!({"stepCount": (s * 10).to_string(), "metrics": [{"metric": "acc", "value": top * s as f64 / 10.0}]})).collect()
    };
    // A trial heading for 0.86 beats the median of the finished trials' running averages, but at
    // the rung of step 30 it falls short of the top third of their values there.
    for (study, config, stops) in [
        (
            "median",
            json!({"medianAutomatedStoppingConfig": {}}),
            [true, false, false],
        ),
        (
            "halving",
            json!({"decayCurveStoppingConfig": {}}),
            [true, true, false],
        ),
    ] {
        let (status, created) = post(
            &server,
            &format!("?studyId={study}"),
            json!({"studyConfig": {
                "metrics": [{"metric": "acc", "goal": "MAXIMIZE"}],
                "parameters": [{"parameter": "lr", "type": "DOUBLE", "doubleValueSpec": {"minValue": 0.001, "maxValue": 1}, "scaleType": "UNIT_LOG_SCALE"}],
                "automatedStoppingConfig": config,
            }}),
        );
        assert_eq!(status, 200, "{created}");
        // Three finished trials the client ran on its own points.
        for (lr, top) in [(0.01, 0.8), (0.02, 0.85), (0.05, 0.9)] {
            let mut measurements = curve(top, 10);
            let last = measurements.pop().unwrap();
            let (status, trial) = post(
                &server,
                &format!("/{study}/trials"),
                json!({"parameters": [{"parameter": "lr", "floatValue": lr}], "measurements": measurements, "finalMeasurement": last}),
            );
            assert_eq!(status, 200, "{trial}");
            assert_eq!(trial["state"], "COMPLETED");
        }
        let (_, operation) = post(
            &server,
            &format!("/{study}/trials:suggest"),
            json!({"suggestionCount": 3}),
        );
        let running = suggested(&operation);
        for ((trial, top), stop) in running.iter().zip([0.3, 0.86, 0.95]).zip(stops) {
            let path = trial_path(trial);
            for measurement in curve(top, 5) {
                assert_eq!(
                    post(
                        &server,
                        &format!("{path}:addMeasurement"),
                        json!({"measurement": measurement})
                    )
                    .0,
                    200
                );
            }
            let (status, check) = post(
                &server,
                &format!("{path}:checkEarlyStoppingState"),
                json!({}),
            );
            assert_eq!(status, 200, "{check}");
            assert_eq!(
                check["response"]["@type"],
                "type.googleapis.com/google.cloud.ml.v1.CheckTrialEarlyStoppingStateResponse"
            );
            assert_eq!(
                check["response"]["shouldStop"], stop,
                "{study}: a trial heading for {top}"
            );
        }
        let (_, stopped) = post(
            &server,
            &format!("{}:stop", trial_path(&running[0])),
            json!({}),
        );
        assert_eq!(stopped["state"], "STOPPING");
    }
    let (status, error) = post(
        &server,
        "?studyId=both",
        json!({"studyConfig": {
            "metrics": [{"metric": "acc", "goal": "MAXIMIZE"}],
            "parameters": [{"parameter": "lr", "type": "DOUBLE", "doubleValueSpec": {"minValue": 0.001, "maxValue": 1}}],
            "automatedStoppingConfig": {"medianAutomatedStoppingConfig": {}, "decayCurveStoppingConfig": {}},
        }}),
    );
    assert_eq!(status, 400);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("automated_stopping_config Error: set one of"),
        "{error}"
    );
}

#[test]
fn the_operations_studies_return_are_kept_under_their_location_across_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let study = json!({"studyConfig": {
        "metrics": [{"metric": "loss", "goal": "MINIMIZE"}],
        "parameters": [{"parameter": "x", "type": "DOUBLE", "doubleValueSpec": {"minValue": 0, "maxValue": 1}}],
    }});
    assert_eq!(post(&server, "?studyId=kept", study).0, 200);
    let (status, operation) = post(
        &server,
        "/kept/trials:suggest",
        json!({"suggestionCount": 1, "clientId": "c"}),
    );
    assert_eq!(status, 200, "{operation}");
    let name = operation["name"].as_str().unwrap().to_string();
    assert!(
        name.starts_with("projects/p/locations/us-central1/operations/"),
        "{name}"
    );
    server.kill();
    let server = Server::start(data.path());
    let (status, kept) = call("GET", &format!("{}/v1/{name}", server.url), None);
    assert_eq!((status, &kept), (200, &operation));
    let (status, cancelled) = call(
        "POST",
        &format!("{}/v1/{name}:cancel", server.url),
        Some("{}"),
    );
    assert_eq!((status, cancelled), (200, json!({})));
    let elsewhere = name.replace("projects/p/", "projects/q/");
    let (status, answer) = call("GET", &format!("{}/v1/{elsewhere}", server.url), None);
    assert_eq!(
        status, 404,
        "another project's name finds nothing: {answer}"
    );
}

/// `kiln studies`, as `gcloud ai-platform optimizer`: a study from a YAML config, trials suggested,
/// completed, stopped and listed, the optimal one, and the study deleted.
#[test]
fn the_cli_runs_a_study() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let config = data.path().join("study.yaml");
    std::fs::write(
        &config,
        "metrics:\n  - metric: loss\n    goal: MINIMIZE\nparameters:\n  - parameter: x\n    \
         type: DOUBLE\n    doubleValueSpec: {minValue: -1, maxValue: 1}\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        let global = ["--endpoint", server.url.as_str(), "--project", "p"];
        let output = kiln(&[&global[..], args].concat());
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let errors = String::from_utf8_lossy(&output.stderr).into_owned();
        (output.status.success(), text, errors)
    };
    let config = config.display().to_string();
    let (ok, text, errors) = run(&["studies", "create", "cli", "--config", &config]);
    assert!(ok && text.contains("ACTIVE"), "{text}{errors}");
    let (ok, text, _) = run(&["studies", "list", "--format", "value(name)"]);
    assert!(ok && text.trim().ends_with("/studies/cli"), "{text}");
    let json = |args: &[&str]| -> Value {
        let (ok, text, errors) = run(&[args, &["--format", "json"]].concat());
        assert!(ok, "{args:?}: {errors}");
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("{args:?}: {text}"))
    };
    let suggested = json(&[
        "studies", "trials", "suggest", "--study", "cli", "--count", "2",
    ]);
    assert_eq!(suggested.as_array().map(Vec::len), Some(2), "{suggested}");
    let completed = json(&[
        "studies",
        "trials",
        "complete",
        "1",
        "--study",
        "cli",
        "--metrics",
        "loss=0.25",
    ]);
    assert_eq!(completed["state"], "COMPLETED", "{completed}");
    let stopped = json(&["studies", "trials", "stop", "2", "--study", "cli"]);
    assert_eq!(stopped["state"], "STOPPING", "{stopped}");
    let optimal = json(&["studies", "trials", "optimal", "--study", "cli"]);
    assert_eq!(
        optimal[0]["finalMeasurement"]["metrics"][0]["value"], 0.25,
        "{optimal}"
    );
    let listed = json(&["studies", "trials", "list", "--study", "cli"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");
    let (ok, _, errors) = run(&[
        "studies",
        "trials",
        "complete",
        "2",
        "--study",
        "cli",
        "--metrics",
        "loss",
    ]);
    assert!(!ok && errors.contains("NAME=VALUE"), "{errors}");
    let (ok, _, errors) = run(&["studies", "delete", "cli"]);
    assert!(ok, "{errors}");
    let (ok, _, errors) = run(&["studies", "describe", "cli"]);
    assert!(!ok && errors.contains("404"), "{errors}");
}

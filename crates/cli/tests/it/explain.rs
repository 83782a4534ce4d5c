//! `:explain` against a real server: sampled Shapley and integrated-gradients attributions of a
//! linear regressor trained here (additive, so its exact attributions are known: each feature's
//! marginal effect), Shapley attributions of the census classifier (they sum to its score minus
//! the baseline's), and the requests it refuses.

use std::path::Path;

use serde_json::{Value, json};

use crate::support::{Server, call, census_instances, census_model, file_uri, wait_operation};

/// A regressor (`linear` or `dnn`) of y = 3a - 2b + 0.5c + noise over 3,000 rows, exported
/// under `dir/algorithm`.
fn regressor(dir: &Path, algorithm: &str) -> std::path::PathBuf {
    let mut rows = String::new();
    let mut state = 7u64;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) as f64 / (1u64 << 31) as f64) * 2.0 - 1.0
    };
    for _ in 0..3000 {
        let (a, b, c) = (next() * 2.0, next() * 2.0, next() * 2.0);
        let y = 3.0 * a - 2.0 * b + 0.5 * c + next() * 0.05;
        rows.push_str(&format!("{y},{a},{b},{c}\n"));
    }
    std::fs::write(dir.join("train.csv"), rows).unwrap();
    std::fs::write(
        dir.join("schema.yaml"),
        "columns: [y, a, b, c]\nlabel: y\nheader: false\nfeatures:\n  a: {type: numeric}\n  b: {type: numeric}\n  c: {type: numeric}\n",
    )
    .unwrap();
    let algorithm = kiln_train::Algorithm::find(algorithm).unwrap();
    let schema = kiln_train::Schema::from_file(&dir.join("schema.yaml")).unwrap();
    let mut config = kiln_train::TrainConfig::new(
        algorithm.name,
        algorithm.columns_kind().unwrap(),
        schema,
        dir.join(algorithm.name),
    );
    config.train_files = vec![dir.join("train.csv")];
    config.model_type = Some(kiln_train::resolve::ModelType::Regression);
    config.num_epochs = 3;
    kiln_train::train(&config, &mut |_| {}).unwrap().export_dir
}

fn deploy(server: &Server, model: &str, dir: &Path, explanation: Value) {
    call(
        "POST",
        &server.api("p", "models"),
        Some(&json!({"name": model}).to_string()),
    );
    let body =
        json!({"name": "v1", "deploymentUri": file_uri(dir), "explanationConfig": explanation});
    let (status, operation) = call(
        "POST",
        &server.api("p", &format!("models/{model}/versions")),
        Some(&body.to_string()),
    );
    assert_eq!(status, 200, "{operation}");
    assert!(
        wait_operation(server, "p", &operation)
            .get("error")
            .is_none()
    );
}

fn score(server: &Server, model: &str, instance: Value) -> f64 {
    let body = json!({ "instances": [instance] }).to_string();
    let (status, answer) = call(
        "POST",
        &server.api("p", &format!("models/{model}:predict")),
        Some(&body),
    );
    assert_eq!(status, 200, "{answer}");
    let prediction = &answer["predictions"][0];
    prediction
        .get("logistic")
        .or_else(|| prediction.get("predictions"))
        .and_then(|values| values[0].as_f64())
        .unwrap_or_else(|| panic!("{prediction}"))
}

fn explain(server: &Server, model: &str, instances: Value) -> (u16, Value) {
    let body = json!({ "instances": instances }).to_string();
    call(
        "POST",
        &server.api("p", &format!("models/{model}:explain")),
        Some(&body),
    )
}

#[test]
fn explanations_match_known_attributions_and_add_up() {
    let work = tempfile::tempdir().unwrap();
    let export = regressor(work.path(), "linear");
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_serving(data.path(), Some(work.path()), &[]);
    deploy(
        &server,
        "linear",
        &export,
        json!({"sampledShapleyAttribution": {"numPaths": 5}}),
    );

    let instance = json!({"a": 1.5, "b": -0.7, "c": 1.2, "key": "row-1"});
    let (status, answer) = explain(&server, "linear", json!([instance]));
    assert_eq!(status, 200, "{answer}");
    let label = &answer["explanations"][0]["attributions_by_label"][0];
    let example = score(&server, "linear", json!({"a": 1.5, "b": -0.7, "c": 1.2}));
    let nothing = json!({"a": null, "b": null, "c": null});
    let baseline = score(&server, "linear", nothing.clone());
    assert!(
        (label["example_score"].as_f64().unwrap() - example).abs() < 1e-5,
        "{label}"
    );
    assert!(
        (label["baseline_score"].as_f64().unwrap() - baseline).abs() < 1e-5,
        "{label}"
    );
    let attributions = &label["attributions"];
    let mut total = 0.0;
    for feature in ["a", "b", "c"] {
        let attribution = attributions[feature].as_f64().unwrap();
        total += attribution;
        // Additive model: the feature's Shapley value is its effect alone.
        let mut only = nothing.clone();
        only[feature] = instance[feature].clone();
        let alone = score(&server, "linear", only) - baseline;
        assert!(
            (attribution - alone).abs() < 1e-4,
            "{feature}: {attribution} vs {alone}"
        );
    }
    assert!(
        (total - (example - baseline)).abs() < 1e-4,
        "{total} vs {}",
        example - baseline
    );
    assert!(
        label["approx_error"].as_f64().unwrap() < 1e-5,
        "every path agrees: {label}"
    );
    // The weights' signs: a pushes up, b (negative weight, negative value) pushes up, c is small.
    let (a, c) = (
        attributions["a"].as_f64().unwrap(),
        attributions["c"].as_f64().unwrap(),
    );
    assert!(a > 0.0 && a.abs() > c.abs(), "{attributions}");
    assert!(attributions.get("key").is_none());
    // The same through the CLI.
    let file = work.path().join("instance.json");
    std::fs::write(&file, format!("{instance}\n")).unwrap();
    let cli = std::process::Command::new(crate::support::kiln_binary())
        .args([
            "explain",
            "--model",
            "linear",
            "--project",
            "p",
            "--endpoint",
            &server.url,
        ])
        .arg("--json-instances")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let printed: Value = serde_json::from_slice(&cli.stdout).unwrap();
    assert_eq!(
        printed["explanations"][0]["attributions_by_label"][0]["attributions"],
        *attributions
    );

    // Integrated gradients need a model differentiable in its inputs (the linear model's deciles
    // are flat): a DNN regressor of the same data, from a zero baseline. The attributions add up,
    // and as the network learned a nearly linear function each is close to the score's change
    // when that input alone goes from 0 to its value.
    let network = regressor(work.path(), "dnn");
    deploy(
        &server,
        "gradients",
        &network,
        json!({"integratedGradientsAttribution": {"numIntegralSteps": 50}}),
    );
    let (status, answer) = explain(&server, "gradients", json!([instance]));
    assert_eq!(status, 200, "{answer}");
    let label = &answer["explanations"][0]["attributions_by_label"][0];
    let zeros = json!({"a": 0.0, "b": 0.0, "c": 0.0});
    let baseline = score(&server, "gradients", zeros.clone());
    let example = score(&server, "gradients", json!({"a": 1.5, "b": -0.7, "c": 1.2}));
    assert!(
        (label["baseline_score"].as_f64().unwrap() - baseline).abs() < 1e-5,
        "{label}"
    );
    let mut total = 0.0;
    for feature in ["a", "b", "c"] {
        let attribution = label["attributions"][feature].as_f64().unwrap();
        total += attribution;
        let mut only = zeros.clone();
        only[feature] = instance[feature].clone();
        let alone = score(&server, "gradients", only) - baseline;
        assert!(
            (attribution - alone).abs() < 0.15,
            "{feature}: {attribution} vs {alone}: {label}"
        );
    }
    let change = example - baseline;
    assert!(
        (total - change).abs() < 0.02 * change.abs(),
        "{total} vs {change}: {label}"
    );
    assert!(label["approx_error"].as_f64().unwrap() < 0.02, "{label}");

    // The census classifier: the positive class's probability, attributed over 13 inputs.
    deploy(&server, "census", census_model(), Value::Null);
    let instances = census_instances();
    let (status, answer) = explain(&server, "census", Value::Array(instances.clone()));
    assert_eq!(status, 200, "{answer}");
    for (instance, explanation) in instances
        .iter()
        .zip(answer["explanations"].as_array().unwrap())
    {
        let label = &explanation["attributions_by_label"][0];
        assert_eq!(label["label_index"], 1);
        assert_eq!(label["output_name"], "logistic");
        let example = label["example_score"].as_f64().unwrap();
        assert!((example - score(&server, "census", instance.clone())).abs() < 1e-5);
        let total: f64 = label["attributions"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_f64().unwrap())
            .sum();
        let baseline = label["baseline_score"].as_f64().unwrap();
        assert!(
            (total - (example - baseline)).abs() < 1e-4,
            "{total} vs {}",
            example - baseline
        );
        assert_eq!(
            label["attributions"].as_object().unwrap().len(),
            instance.as_object().unwrap().len()
        );
    }

    // Refusals name what is wrong.
    let (status, answer) = explain(&server, "census", json!(["25, Private, 226802"]));
    assert_eq!(status, 400, "{answer}");
    assert!(answer.to_string().contains("instances[0]"), "{answer}");
    deploy(
        &server,
        "images",
        census_model(),
        json!({"xraiAttribution": {"stepCount": 50}}),
    );
    let (status, answer) = explain(&server, "images", Value::Array(instances.clone()));
    assert_eq!(status, 400, "{answer}");
    assert!(answer.to_string().contains("xrai_attribution"), "{answer}");
    deploy(
        &server,
        "many",
        census_model(),
        json!({"sampledShapleyAttribution": {"numPaths": 500}}),
    );
    let (status, answer) = explain(&server, "many", Value::Array(instances));
    assert_eq!(status, 400, "{answer}");
    assert!(answer.to_string().contains("num_paths"), "{answer}");
}
